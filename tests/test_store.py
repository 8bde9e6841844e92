import sqlite3

import pytest

from app.store import open_database
from app.store.migrations import MIGRATIONS, migrate, schema_version


def test_fresh_database_is_at_latest_version_in_wal_mode(tiller_home):
    db = open_database()
    assert schema_version(db) == MIGRATIONS[-1][0]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {"sources", "messages", "import_runs", "source_items", "identities"} <= set(db.table_names())
    applied = [r[0] for r in db.execute("SELECT version FROM _migrations ORDER BY version")]
    assert applied == [v for v, _, _ in MIGRATIONS]


def test_reopening_applies_nothing_and_keeps_data(tiller_home):
    db = open_database()
    db["sources"].insert({"kind": "maildir", "location": "/x", "added_at": "now"})
    db.conn.close()
    db = open_database()
    assert migrate(db) == []
    assert db["sources"].count == 1


def test_a_newer_database_is_refused_not_damaged(tmp_path):
    path = tmp_path / "future.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this Tiller"):
        open_database(path)


def test_a_failing_migration_rolls_back(tmp_path, monkeypatch):
    from app.store import migrations

    def broken(db):
        db.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("boom")

    monkeypatch.setattr(migrations, "MIGRATIONS", MIGRATIONS + [(10_000, "broken", broken)])
    with pytest.raises(RuntimeError, match="boom"):
        open_database(tmp_path / "t.db")
    conn = sqlite3.connect(tmp_path / "t.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == MIGRATIONS[-1][0]
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'half_done'").fetchone()[0] == 0


def test_typed_message_queries_on_a_real_mailbox(db, enron):
    """What the GUI's reply picker and the CLI read, through app/store/messages.py (no SQL there)."""
    from app.store.messages import has_mail, import_runs, message_text, search_messages, senders_by_mail
    from tests.conftest import run_import

    assert not has_mail(db) and import_runs(db) == []
    run_import(db, enron / "maildir" / "mann-k")
    assert has_mail(db)
    runs = import_runs(db)
    assert (
        len(runs) == 1
        and runs[0].status == "completed"
        and runs[0].seen == runs[0].stored + runs[0].duplicates + runs[0].skipped
    )
    found = search_messages(db, "kay.mann", limit=5)
    assert len(found) == 5 and [m.date for m in found] == sorted((m.date for m in found), reverse=True)
    text = message_text(db, found[0].id)
    assert text.sender == "kay.mann@enron.com" and text.own_text is not None
    assert message_text(db, -1) is None
    assert senders_by_mail(db)[0] == "kay.mann@enron.com"
