from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ENRON = Path(os.environ.get("TILLER_ENRON_DATA", REPO.parent / "shared" / "data" / "enron"))


@pytest.fixture(autouse=True)
def tiller_home(tmp_path, monkeypatch):
    """Every test gets its own data directory: nothing touches a real profile."""
    home = tmp_path / "tiller-home"
    monkeypatch.setenv("TILLER_HOME", str(home))
    return home


@pytest.fixture
def db(tiller_home):
    from app.store import open_database

    database = open_database()
    yield database
    database.conn.close()


@pytest.fixture(scope="session")
def enron() -> Path:
    if not (ENRON / "maildir").is_dir():
        pytest.fail(f"real Enron data not found at {ENRON} (set TILLER_ENRON_DATA)")
    return ENRON


def run_import(db, path, **kwargs):
    from app.mail.importer import MailImport
    from app.mail.sources import open_source

    job = MailImport(db, open_source(path), **kwargs)
    for _ in job.run():
        pass
    return job.result
