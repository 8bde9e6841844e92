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
