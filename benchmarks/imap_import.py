"""IMAP import speed against the file import of the same messages, measured in the same run.

    sudo python benchmarks/imap_import.py [--sender nemec-g] [--rounds 3]

Starts a throw-away Dovecot on 127.0.0.1 (tests/imap_server.py; needs dovecot-imapd and root),
APPENDs one Enron sender's sent mail into its Sent folder, writes the same bytes into a Maildir,
then imports each into a fresh database, alternating, ``--rounds`` times: msg/s for both, the IMAP
import over TLS with certificate verification exactly as ``tiller import imap:NAME`` runs it.
Target: IMAP/file ratio >= 0.5.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
ENRON = Path(os.environ.get("TILLER_ENRON_DATA", REPO.parent / "shared" / "data" / "enron"))


def sent_messages(sender: str) -> list[bytes]:
    folder = ENRON / "maildir" / sender
    files = [p for p in sorted(folder.rglob("*")) if p.is_file() and "sent" in p.parent.name.lower()]
    return [p.read_bytes() for p in files]


def timed_import(db, source) -> tuple[float, int]:
    from app.mail.importer import MailImport

    started = time.perf_counter()
    job = MailImport(db, source)
    for _ in job.run():
        pass
    return time.perf_counter() - started, job.result.counts.seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sender", default="nemec-g", help="an Enron maildir folder (default nemec-g, ~2,000 sent)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    from tests.imap_server import Dovecot, dovecot_missing

    why = dovecot_missing()
    if why:
        raise SystemExit(why)
    messages = sent_messages(args.sender)
    password = "bench-pw-1"
    server = Dovecot({"bench": password}).start()
    try:
        started = time.perf_counter()
        server.append("bench", "Sent", messages)
        print(f"seeded {len(messages):,} messages of {args.sender} by APPEND in {time.perf_counter() - started:.1f} s")
        with tempfile.TemporaryDirectory() as tmp:
            maildir = Path(tmp) / "maildir" / "Sent" / "cur"
            maildir.mkdir(parents=True)
            for i, raw in enumerate(messages):
                (maildir / f"{i:06d}.eml:2,").write_bytes(raw)
            for sub in ("new", "tmp"):
                (maildir.parent / sub).mkdir()
            imap_rates, file_rates = [], []
            for round_no in range(args.rounds):
                for kind in ("file", "imap"):
                    home = Path(tmp) / f"home-{kind}-{round_no}"
                    os.environ["TILLER_HOME"] = str(home)
                    from app.store import open_database

                    db = open_database(home / "tiller.db")
                    if kind == "file":
                        from app.mail.sources import open_source

                        seconds, seen = timed_import(db, open_source(Path(tmp) / "maildir"))
                        file_rates.append(seen / seconds)
                    else:
                        from app.mail.imap import ImapAccount, ImapSource

                        account = ImapAccount(
                            name="bench", host="127.0.0.1", user="bench", port=server.tls_port, ca_file=str(server.cert)
                        )
                        started = time.perf_counter()
                        source = ImapSource(account, password).open()  # login + plan: part of the import's time
                        seconds, seen = timed_import(db, source)
                        seconds = time.perf_counter() - started
                        imap_rates.append(seen / seconds)
                    db.conn.close()
                    print(f"round {round_no + 1} {kind:4s}: {seen:,} messages, {seen / seconds:,.0f} msg/s")
    finally:
        server.stop()
    imap, file = statistics.median(imap_rates), statistics.median(file_rates)
    print(f"median: IMAP {imap:,.0f} msg/s, file {file:,.0f} msg/s; ratio IMAP/file {imap / file:.2f} (target >= 0.5)")


if __name__ == "__main__":
    main()
