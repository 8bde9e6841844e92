import sqlite3

import pytest

from app.store import open_database
from app.store.migrations import MIGRATIONS, migrate, schema_version
from tests.helpers import REPO


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
    from app.errors import EXIT_STORE, explain
    from app.exceptions import DatabaseTooNew

    with pytest.raises(DatabaseTooNew, match="newer than this Tiller") as refused:
        open_database(path)
    assert explain(refused.value).exit_code == EXIT_STORE  # by its class, not by its wording


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
    from tests.helpers import run_import

    assert not has_mail(db)
    assert import_runs(db) == []
    run_import(db, enron / "maildir" / "mann-k")
    assert has_mail(db)
    runs = import_runs(db)
    assert len(runs) == 1
    assert runs[0].status == "completed"
    assert runs[0].seen == runs[0].stored + runs[0].duplicates + runs[0].skipped
    found = search_messages(db, "kay.mann", limit=5)
    assert len(found) == 5
    assert [m.date for m in found] == sorted((m.date for m in found), reverse=True)
    text = message_text(db, found[0].id)
    assert text.sender == "kay.mann@enron.com"
    assert text.own_text is not None
    assert message_text(db, -1) is None
    assert senders_by_mail(db)[0] == "kay.mann@enron.com"


def test_processes_opening_one_new_database_at_once_migrate_it_once(tmp_path):
    """The first open of a new database migrates it; two processes doing that at the same moment
    (the GUI and a CLI import) must not both run a migration (table "consents" already exists)."""
    import subprocess
    import sys
    import time

    go = tmp_path / "go"
    script = (
        "import os, sys, time\n"
        "from app.store import open_database\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.001)\n"
        f"open_database({str(tmp_path / 'tiller.db')!r})\n"
    )
    for _attempt in range(3):  # the window is milliseconds wide: give the race several chances
        (tmp_path / "tiller.db").unlink(missing_ok=True)
        for suffix in ("-wal", "-shm"):
            (tmp_path / f"tiller.db{suffix}").unlink(missing_ok=True)
        go.unlink(missing_ok=True)
        procs = [
            subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stderr=subprocess.PIPE, text=True)
            for _ in range(4)
        ]
        time.sleep(1.5)  # all four import the store and wait at the line
        go.touch()
        errors = [p.communicate(timeout=60)[1] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0, 0], errors


def test_the_newest_rows_of_a_whole_mailbox_are_read_in_pieces(db):
    """The voice stage reads the plain rewrites of every email a sender wrote: more ids than SQLite
    binds in one statement (32,766) must still read."""
    from app.store import distilled

    db.conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)  # an old build's limit (Debian's is 250,000)
    assert distilled.plain_rewrites_of(db, list(range(1, 40_001))) == {}
    assert distilled.baselines_of(db, list(range(1, 40_001))) == {}
