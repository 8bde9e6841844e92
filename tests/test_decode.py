"""MIME decoding: encoded headers, transfer encodings, charsets, HTML-only bodies, attachments."""

import base64

import pytest

from app.mail.decode import MessageRejected, parse_message


def test_rfc2047_headers_and_quoted_printable_utf8_body():
    raw = (
        b"From: =?utf-8?q?Andr=C3=A9_M=C3=BCller?= <Andre@Example.COM>\n"
        b'To: Kay <kay@example.com>, "Doe, Jane" <jane@example.com>\n'
        b"Subject: =?iso-8859-1?q?R=E9union?= demain\n"
        b"Date: Tue, 3 Oct 2000 03:10:00 -0700\n"
        b"Message-ID: <abc@host>\n"
        b"MIME-Version: 1.0\n"
        b"Content-Type: text/plain; charset=utf-8\n"
        b"Content-Transfer-Encoding: quoted-printable\n\n"
        b"Caf=C3=A9 =E2=82=AC5, see you.\n"
    )
    msg = parse_message(raw)
    assert msg.from_name == "André Müller"
    assert msg.from_addr == "andre@example.com"
    assert msg.to_addrs == ["kay@example.com", "jane@example.com"]
    assert msg.subject == "Réunion demain"
    assert msg.body_text == "Café €5, see you.\n"
    assert msg.message_id == "abc@host"
    assert msg.date.isoformat() == "2000-10-03T10:10:00+00:00"


def test_base64_body_in_latin1_and_an_attachment_counted_not_kept():
    body = base64.b64encode("Grüße aus Köln".encode("latin-1")).decode()
    pdf = base64.b64encode(b"%PDF-1.4 binary" * 10).decode()
    raw = (
        "From: a@example.com\nSubject: s\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="XX"\n\n'
        "--XX\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: base64\n\n"
        f"{body}\n"
        '--XX\nContent-Type: application/pdf; name="deal.pdf"\nContent-Disposition: attachment; filename="deal.pdf"\n'
        f"Content-Transfer-Encoding: base64\n\n{pdf}\n"
        "--XX--\n"
    ).encode()
    msg = parse_message(raw)
    assert msg.body_text == "Grüße aus Köln"
    assert msg.attachments == [{"filename": "deal.pdf", "content_type": "application/pdf", "bytes": 150}]
    assert "%PDF" not in msg.body_text


def test_html_only_body_becomes_text_with_quotes_marked():
    raw = (
        b"From: a@example.com\nSubject: s\nContent-Type: text/html; charset=utf-8\n\n"
        b"<html><head><style>p{color:red}</style></head><body><p>Sounds good &amp; thanks!</p>"
        b'<p>Kay</p><div class="gmail_quote">On Mon, Bob wrote:<blockquote>Lunch at 1?</blockquote></div>'
        b"</body></html>"
    )
    msg = parse_message(raw)
    assert "html_only" in msg.flags
    assert msg.body_text == "Sounds good & thanks!\n\nKay\n> On Mon, Bob wrote:\n> > Lunch at 1?"


def test_multipart_alternative_prefers_plain_text():
    raw = (
        b"From: a@example.com\nSubject: s\nContent-Type: multipart/alternative; boundary=b\n\n"
        b"--b\nContent-Type: text/plain\n\nplain words\n--b\nContent-Type: text/html\n\n<p>html words</p>\n--b--\n"
    )
    msg = parse_message(raw)
    assert msg.body_text.strip() == "plain words"
    assert "html_only" not in msg.flags


def test_unknown_charset_is_decoded_and_reported_not_dropped():
    raw = b"From: a@example.com\nSubject: s\nContent-Type: text/plain; charset=x-klingon\n\nCaf\xc3\xa9 ready\n"
    msg = parse_message(raw)
    assert msg.body_text.strip() == "Café ready"
    assert "charset_fallback" in msg.flags
    assert any("unknown charset 'x-klingon'" in w for w in msg.warnings)


def test_eight_bit_bytes_mislabelled_as_ascii_decode_silently():
    raw = b"From: a@example.com\nSubject: s\nContent-Type: text/plain; charset=us-ascii\n\nna\xefve \x93quotes\x94\n"
    msg = parse_message(raw)
    assert msg.body_text.strip() == "na\u00efve \u201cquotes\u201d"
    assert msg.warnings == []


def test_truncated_multipart_is_stored_with_a_warning():
    raw = (
        b"From: a@example.com\nSubject: s\nContent-Type: multipart/mixed; boundary=XX\n\n"
        b"--XX\nContent-Type: text/plain\n\nthe part before the cut\n--XX\nContent-Type: application/pdf\n\nJVBERi0xLj"
    )
    msg = parse_message(raw)
    assert "truncated" in msg.flags
    assert "the part before the cut" in msg.body_text


@pytest.mark.parametrize(
    "data, reason",
    [
        (b"", "empty"),
        (b"  \n\n", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 4, "binary"),
        (b"path\tbytes\tsha256\nrogers-b/1.\t628\tb6a8\n", "not-an-email"),
        (bytes(range(1, 9)) * 200, "binary"),
    ],
)
def test_rejections_name_their_reason(data, reason):
    with pytest.raises(MessageRejected) as info:
        parse_message(data)
    assert info.value.reason == reason
    assert info.value.detail


def test_mbox_from_escaping_is_not_part_of_the_content_key():
    a = parse_message(b"From: a@x.com\nDate: Tue, 3 Oct 2000 03:10:00 -0700\nSubject: s\n\nhi\n>From here on\n")
    b = parse_message(b"From: a@x.com\nDate: Tue, 3 Oct 2000 03:10:00 -0700\nSubject: s\n\nhi\nFrom here on\n")
    assert a.content_key == b.content_key
    c = parse_message(b"From: a@x.com\nDate: Tue, 3 Oct 2000 03:10:01 -0700\nSubject: s\n\nhi\nFrom here on\n")
    assert c.content_key != a.content_key


def _all_real_messages(enron):
    from app.mail.sources import open_source

    for kind in ("maildir", "mbox", "raw"):
        for item in open_source(enron / kind).iter_items():
            data, error = item.read()
            if error is None:
                yield f"{kind}/{item.key}", data


def _parse_or_reason(data, monkeypatch=None):
    try:
        return parse_message(data)
    except MessageRejected as rejected:
        return rejected.reason


def test_fast_path_gives_what_the_stdlib_parser_gives_on_every_real_message(enron, monkeypatch):
    """The hand-cut header block must be invisible: every message of the sample (maildir, mbox,
    raw CRLF) parses to the same ParsedMessage with the stdlib feed parser forced."""
    from app.mail import decode

    messages = list(_all_real_messages(enron))
    fast = [_parse_or_reason(data) for _, data in messages]
    taken = sum(decode._simple_message(data) is not None for _, data in messages)
    monkeypatch.setattr(decode, "_simple_message", lambda data: None)
    slow = [_parse_or_reason(data) for _, data in messages]
    differing = [key for (key, _), a, b in zip(messages, fast, slow) if a != b]
    assert len(messages) > 12000
    assert taken > 0.95 * len(messages)
    assert differing == []


@pytest.mark.parametrize(
    "raw",
    [
        # folded headers (LF and CRLF), a repeated To, leading blanks after the colon
        b"From: Kay <kay@x.com>\nTo: a@x.com,\n\tb@x.com\nTo: c@x.com\nSubject:   Re:\n  budget\n\nHi\n",
        b"From: kay@x.com\r\nSubject: two\r\n line\r\nDate: Tue, 3 Oct 2000 03:10:00 -0700\r\n\r\nBody\r\nmore\r\n",
        # quoted-printable body with a charset
        b"From: kay@x.com\nContent-Type: text/plain; charset=iso-8859-1\n"
        b"Content-Transfer-Encoding: quoted-printable\n\nR=E9union =\ndemain\n",
        # what the fast path hands to the stdlib: a lone CR, a Unix From line, a body-looking line
        # inside the headers, a base64 body, a first line that is a continuation
        b"From: kay@x.com\rSubject: cr\n\nbody\n",
        b"From kay@x.com Tue Oct  3 03:10:00 2000\nFrom: kay@x.com\n\nbody\n",
        b"From: kay@x.com\nnot a header\nSubject: s\n\nbody\n",
        b"From: kay@x.com\nContent-Transfer-Encoding: base64\n\nSGVsbG8K\n",
        b" folded: first\nFrom: kay@x.com\n\nbody\n",
    ],
)
def test_fast_path_edge_cases_match_the_stdlib_parser(raw, monkeypatch):
    from app.mail import decode

    fast = _parse_or_reason(raw)
    monkeypatch.setattr(decode, "_simple_message", lambda data: None)
    assert fast == _parse_or_reason(raw)


def test_a_few_nul_bytes_are_removed_not_the_whole_message(enron):
    """Issue 5/5 item 15: one NUL byte dropped a real message as "binary" (50 of 50 in the probe)."""
    from app.mail.decode import MessageRejected, parse_message

    original = sorted((enron / "maildir" / "mann-k" / "sent_items").iterdir())[5].read_bytes()
    clean = parse_message(original)
    cut = original.index(b"\n\n") + 10  # inside the body
    damaged = original[:cut] + b"\x00" + original[cut:] + b"\x00\x00"
    parsed = parse_message(damaged)
    assert parsed.body_text == clean.body_text
    assert parsed.subject == clean.subject
    assert "3 NUL byte(s) removed" in parsed.warnings
    # a file that is NULs throughout is still not mail
    utf16 = original.decode("latin-1").encode("utf-16-le")
    with pytest.raises(MessageRejected) as caught:
        parse_message(utf16)
    assert caught.value.reason == "binary"
