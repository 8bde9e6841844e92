"""Cancelling or interrupting an import leaves the database consistent, and a rerun resumes."""

import os
import signal
import subprocess
import sys
import time

import pytest

from app.jobs import CancelToken
from app.mail.importer import MailImport
from app.mail.sources import open_source
from tests.helpers import run_import


def _consistent(db):
    """Every stored message has exactly one 'stored' item and run counters match item rows."""
    orphans = db.execute(
        "SELECT count(*) FROM messages m WHERE NOT EXISTS "
        "(SELECT 1 FROM source_items i WHERE i.message_ref = m.id AND i.status = 'stored')"
    ).fetchone()[0]
    assert orphans == 0
    for run_id, stored in db.execute("SELECT id, stored FROM import_runs WHERE status != 'interrupted'"):
        in_items = db.execute(
            "SELECT count(*) FROM source_items WHERE run_id = ? AND status = 'stored'", [run_id]
        ).fetchone()[0]
        assert in_items == stored


def test_cancel_then_resume_gives_the_same_database_as_one_run(db, enron, tmp_path):
    token = CancelToken()
    job = MailImport(db, open_source(enron / "maildir" / "rogers-b"), cancel=token, batch_size=100)
    for progress in job.run():
        if progress.done >= 700:
            token.cancel()
    assert job.result.status == "cancelled"
    assert job.result.counts.seen == 700
    assert job.result.counts.adds_up()
    _consistent(db)
    rest = run_import(db, enron / "maildir" / "rogers-b")
    assert rest.status == "completed"
    assert rest.counts.already_imported == 700
    assert rest.counts.seen == 2159
    _consistent(db)
    assert db["messages"].count == 1294  # what a single uninterrupted run stores (test below)


def test_single_run_reference(db, enron):
    assert run_import(db, enron / "maildir" / "rogers-b").counts.stored == 1294


def test_an_exception_mid_batch_rolls_back_only_that_batch(db, enron):
    job = MailImport(db, open_source(enron / "maildir" / "rogers-b"), batch_size=100, progress_every=10)
    gen = job.run()
    for progress in gen:
        if progress.done >= 250:  # batches of 100: 200 committed, 50 in flight
            with pytest.raises(KeyboardInterrupt):
                gen.throw(KeyboardInterrupt)
            break
    assert db.execute("SELECT count(*) FROM source_items").fetchone()[0] == 200
    assert db["import_runs"].get(1)["status"] == "interrupted"
    _consistent(db)
    rest = run_import(db, enron / "maildir" / "rogers-b")
    assert rest.counts.already_imported == 200
    assert db["messages"].count == 1294


def test_ctrl_c_on_the_cli_stops_cleanly_and_a_rerun_resumes(tmp_path, enron, tiller_home):
    env = dict(os.environ, TILLER_HOME=str(tiller_home), PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "app", "import", str(enron / "maildir")]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    db_path = tiller_home / "tiller.db"
    deadline = time.monotonic() + 60
    # wait until the first batches are committed, then press Ctrl-C
    import sqlite3

    while time.monotonic() < deadline:
        if db_path.exists():
            try:
                n = sqlite3.connect(db_path).execute("SELECT count(*) FROM source_items").fetchone()[0]
            except sqlite3.OperationalError:
                n = 0
            if n >= 500:
                break
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert "Cancelled." in out
    assert "run the same command to resume" in out
    from app.store import open_database

    db = open_database(db_path)
    first = db["import_runs"].get(1)
    assert first["status"] == "cancelled"
    assert 500 <= first["seen"] < 9759
    _consistent(db)
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stdout + again.stderr
    assert db["messages"].count == 8892
    second = db["import_runs"].get(2)
    assert second["already_imported"] + second["stored"] + second["duplicates"] + second["skipped"] == 9759
    assert second["already_imported"] == first["stored"] + first["duplicates"]
