"""Writes tests/corpus/hostile/: real Enron messages made hostile, one case per file.

Each file is a case that once stopped a whole import (issue 1/6) or a neighbour of one. The bytes
are committed; this script documents how they were made and rewrites them identically
(``python tests/corpus/make_hostile_corpus.py``). ``EXPECT`` in tests/test_hostile_import.py says
what each must become: stored (with the decoded value) or skipped (with the reason).
"""

from __future__ import annotations

import re
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENRON = HERE.parents[2] / "shared" / "data" / "enron" / "maildir"
OUT = HERE / "hostile"


COMMITTED_MAX_BYTES = 256 << 10  # larger cases (header bombs) are made by the test itself


def set_header(data: bytes, name: bytes, value: bytes) -> bytes:
    head, sep, body = data.partition(b"\n\n") if b"\r\n\r\n" not in data else data.partition(b"\r\n\r\n")
    pattern = re.compile(rb"^" + re.escape(name) + rb":.*$", re.M | re.I)
    if pattern.search(head):
        head = pattern.sub(lambda m: name + b": " + value, head, count=1)
    else:
        head = head + b"\n" + name + b": " + value
    return head + sep + body


def hostile_cases(maildir: Path = ENRON) -> dict[str, bytes]:
    vepco = (maildir / "mann-k/sent_items/1.").read_bytes()  # "Could you send me the notice of default…"
    other = (maildir / "mann-k/sent_items/10.").read_bytes()
    return {
        "charset-base64.eml": set_header(vepco, b"Content-Type", b"text/plain; charset=base64"),
        "charset-rot13-encoded-word.eml": set_header(vepco, b"Subject", b"=?rot13?Q?IRCPB_abgvpr?="),
        "charset-undefined.eml": set_header(vepco, b"Content-Type", b"text/plain; charset=undefined"),
        "charset-8bit-label.eml": set_header(vepco, b"Content-Type", b'text/plain; charset="utf-\xe98"'),
        "charset-idna.eml": set_header(vepco, b"Content-Type", b"text/plain; charset=idna").replace(
            b"Thanks!", b"Thanks! caf\xe9 \xff\xfe"
        ),
        "from-nested-comments.eml": set_header(vepco, b"From", b"kay.mann@enron.com " + b"(" * 2000 + b")" * 2000),
        "message-id-utf8.eml": set_header(
            set_header(vepco, b"Message-ID", "<café.31228901@enron.com>".encode()),
            b"Subject",
            "VEPCO notice, café".encode(),
        ),
        "in-reply-to-latin1.eml": set_header(
            set_header(
                set_header(other, b"Message-ID", b"<latin1-reply.1@enron.com>"),
                b"In-Reply-To",
                b"<\xe9t\xe9@enron.com>",
            ),
            b"Subject",
            b"RE: Settlement agreement, a reply",
        ),
        "subject-raw-8bit.eml": set_header(
            set_header(vepco, b"Message-ID", b"<raw-8bit.1@enron.com>"), b"Subject", b"VEPCO \xe9\xe8 \xff status"
        ),
        "multipart-nested-3000.eml": set_header(vepco, b"Message-ID", b"<nested.3000@enron.com>")
        .split(b"\n\n")[0]
        .replace(b"Content-Type: text/plain; charset=us-ascii", b"Content-Type: multipart/mixed; boundary=b0")
        + b"\n\n"
        + b"".join(b"--b%d\nContent-Type: multipart/mixed; boundary=b%d\n\n" % (i, i + 1) for i in range(3000))
        + b"--b3000\nContent-Type: text/plain\n\nThe innermost words.\n",
        "header-one-line-2mb.eml": set_header(vepco, b"X-Padding", b"A" * (2 << 20)),
        "header-100k-lines.eml": set_header(vepco, b"Message-ID", b"<many.headers@enron.com>").replace(
            b"X-FileName", b"".join(b"X-Junk-%d: %d\n" % (i, i) for i in range(100_000)) + b"X-FileName", 1
        ),
        "date-absurd.eml": set_header(
            set_header(other, b"Message-ID", b"<absurd.date@enron.com>"),
            b"Date",
            b"Tue, 99 Foo 99999999999 99:99:99 +9999",
        ),
        "attachment-filename-8bit.eml": set_header(vepco, b"Message-ID", b"<att.8bit@enron.com>")
        .split(b"\n\n")[0]
        .replace(b"Content-Type: text/plain; charset=us-ascii", b"Content-Type: multipart/mixed; boundary=XYZ")
        + b"\n\n--XYZ\nContent-Type: text/plain\n\nSee attached.\n--XYZ\nContent-Type: application/pdf\n"
        b'Content-Disposition: attachment; filename="r\xe9sum\xe9.pdf"\nContent-Transfer-Encoding: base64\n\n'
        b"JVBERi0xLjQK\n--XYZ--\n",
        "encoded-word-bad-base64.eml": set_header(
            set_header(other, b"Message-ID", b"<bad.b64@enron.com>"), b"From", b"=?utf-8?B?####?= <kay.mann@enron.com>"
        ),
        "truncated-in-headers.eml": vepco[:120],
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    written = 0
    for name, data in hostile_cases().items():
        if len(data) <= COMMITTED_MAX_BYTES:
            (OUT / name).write_bytes(data)
            written += 1
    print(f"{written} cases written to {OUT}")


if __name__ == "__main__":
    main()
