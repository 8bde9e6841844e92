"""Bad input gets a clear per-item error naming the file and reason; import goes on; nothing is lost."""

import os
import shutil

from tests.helpers import run_import

GOOD = (
    "Message-ID: <good-{n}@example.com>\nDate: Tue, 3 Oct 2000 03:1{n}:00 -0700\nFrom: kay@example.com\n"
    "To: sylvia@example.com\nSubject: note {n}\n\nThe NG contract is ready for legal review.\nKay\n"
)


def make_mailbox(root, enron):
    sent = root / "Sent"
    sent.mkdir(parents=True)
    for n in range(3):
        (sent / f"{n}.eml").write_text(GOOD.format(n=n))
    (sent / "empty.eml").write_bytes(b"")
    (sent / "photo.eml").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + os.urandom(2048))
    (sent / "notes.eml").write_text("shopping list\nmilk\neggs\n")
    (sent / "klingon.eml").write_bytes(
        b"Message-ID: <k@example.com>\nFrom: kay@example.com\nSubject: charset\n"
        b"Content-Type: text/plain; charset=x-klingon\n\nCaf\xc3\xa9 at noon?\nKay\n"
    )
    (sent / "cut.eml").write_bytes(
        b"Message-ID: <cut@example.com>\nFrom: kay@example.com\nSubject: cut\n"
        b"Content-Type: multipart/mixed; boundary=XX\n\n--XX\nContent-Type: text/plain\n\nSee the draft.\n--XX\n"
        b"Content-Type: application/pdf\nContent-Transfer-Encoding: base64\n\nJVBERi0xLjQK"
    )
    (sent / "gone.eml").symlink_to(root / "does-not-exist.eml")  # unreadable path
    # a real Enron message, with its original bytes
    shutil.copy(enron / "maildir" / "mann-k" / "sent_items" / "1.", sent / "enron.eml")
    return sent


def test_each_bad_item_is_reported_by_path_and_reason_and_the_rest_is_stored(db, tmp_path, enron):
    from app.store.imports import skipped_items

    root = tmp_path / "mail"
    make_mailbox(root, enron)
    result = run_import(db, root, my_addresses=["kay@example.com"])
    c = result.counts
    assert c.adds_up()
    assert (c.seen, c.stored, c.skipped, c.duplicates) == (10, 6, 4, 0)
    skipped = {key: (reason, detail) for _, key, reason, detail in skipped_items(db, result.run_id)}
    assert set(skipped) == {"Sent/empty.eml", "Sent/photo.eml", "Sent/notes.eml", "Sent/gone.eml"}
    assert skipped["Sent/empty.eml"][0] == "empty"
    assert skipped["Sent/photo.eml"][0] == "binary"
    assert skipped["Sent/notes.eml"][0] == "not-an-email"
    assert skipped["Sent/gone.eml"] == ("unreadable", "cannot open: No such file or directory")
    # stored with a warning rather than lost
    klingon = db.execute("SELECT own_text, flags FROM messages WHERE message_id = 'k@example.com'").fetchone()
    assert klingon[0] == "Café at noon?\nKay"
    assert "charset_fallback" in klingon[1]
    cut = db.execute("SELECT own_text, flags FROM messages WHERE message_id = 'cut@example.com'").fetchone()
    assert cut[0] == "See the draft."
    assert "truncated" in cut[1]
    assert c.warnings == 2
    warned = dict(db.execute("SELECT item_key, detail FROM source_items WHERE reason = 'warning'"))
    assert "unknown charset 'x-klingon'" in warned["Sent/klingon.eml"]
    assert "truncated" in warned["Sent/cut.eml"]


def test_a_bad_import_never_loses_what_is_already_stored(db, tmp_path, enron):
    good = tmp_path / "good"
    good.mkdir()
    (good / "a.eml").write_text(GOOD.format(n=1))
    assert run_import(db, good).counts.stored == 1
    bad = tmp_path / "bad"
    make_mailbox(bad, enron)
    run_import(db, bad)
    assert db.execute("SELECT count(*) FROM messages WHERE message_id = 'good-1@example.com'").fetchone()[0] == 1


def test_fixed_files_are_picked_up_on_rerun(db, tmp_path, enron):
    root = tmp_path / "mail"
    sent = make_mailbox(root, enron)
    run_import(db, root)
    (sent / "gone.eml").unlink()
    (sent / "gone.eml").write_text(GOOD.format(n=7))
    again = run_import(db, root)
    assert (again.counts.stored, again.counts.already_imported, again.counts.skipped) == (1, 6, 3)


def test_missing_or_wrong_source_paths_give_clear_errors(tmp_path):
    import pytest

    from app.mail.sources import SourceError, open_source

    with pytest.raises(SourceError, match="no such file or directory"):
        open_source(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="holds no files"):
        open_source(tmp_path / "empty")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(SourceError, match="not an mbox file"):
        open_source(tmp_path / "notes.txt")
