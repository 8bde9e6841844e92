"""Opening the database: WAL journal, foreign keys, and migrations applied before first use."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from app import paths
from app.exceptions import StoreError
from app.store.backup import take_backup
from app.store.migrations import MIGRATIONS, migrate, schema_version

# Upgrades of the stored *data* that a layer above the store owns, run each time a database is
# opened after its schema migrations: the mail layer registers the re-split of mail split by an
# older splitter (app/mail/resplit.py; registered when app.mail is imported, as every command that
# reads mail does). The store runs them without knowing what they are, so it imports nothing above it.
DATA_UPGRADES: list[Callable[[sqlite_utils.Database], object]] = []


def on_open(upgrade: Callable[[sqlite_utils.Database], object]) -> Callable[[sqlite_utils.Database], object]:
    """Register ``upgrade(db)`` to run whenever a database is opened (it must be cheap when there is
    nothing to do)."""
    if upgrade not in DATA_UPGRADES:
        DATA_UPGRADES.append(upgrade)
    return upgrade


def open_database(path: Path | str | None = None) -> sqlite_utils.Database:
    """Open (creating if needed) and migrate the Tiller database.

    WAL lets the GUI read while an import or the trainer writes; ``busy_timeout`` makes a second
    writer wait instead of failing at once.
    """
    path = Path(path) if path is not None else paths.database_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.is_dir():
        raise StoreError(f"{path} is a folder, not Tiller's database: move it away, or set TILLER_HOME elsewhere.")
    # autocommit: each statement commits on its own, and ``with conn:`` opens no transaction;
    # writes that belong together go in ``with db.atomic():`` (or the importer's BEGIN IMMEDIATE)
    conn = sqlite3.connect(str(path), timeout=30, isolation_level=None)
    _use_wal(conn)
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    # deleted content is overwritten, not left in free pages: `tiller edits forget` must really
    # forget (Debian's SQLite is built with this on; not every build is)
    conn.execute("PRAGMA secure_delete=ON")
    conn.execute("PRAGMA busy_timeout=30000")
    db = sqlite_utils.Database(conn)
    if MIGRATIONS and schema_version(db) < MIGRATIONS[-1][0]:
        take_backup(conn, path)  # a migration that goes wrong can be undone: tiller check --restore
    migrate(db)
    for upgrade in DATA_UPGRADES:
        upgrade(db)
    return db


def _use_wal(conn: sqlite3.Connection, wait_s: float = 10.0) -> None:
    """Switch to WAL. Switching a new database needs it to itself, and SQLite answers "database is
    locked" at once instead of waiting when another process is creating it at the same moment (the
    app and a CLI import on a fresh install): try again for a while."""
    import time

    deadline = time.monotonic() + wait_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def integrity_problems(path: Path) -> list[str]:
    """SQLite's ``PRAGMA integrity_check`` on the file at ``path``, opened read-only: ``["ok"]``
    when sound, else what it found (or why the file could not be read)."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return [r[0] for r in conn.execute("PRAGMA integrity_check")]
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return [str(exc)]


def begin_immediate(conn: sqlite3.Connection) -> None:
    """A write transaction taken at once: no other writer slips in between its reads and writes."""
    conn.execute("BEGIN IMMEDIATE")


def commit(conn: sqlite3.Connection) -> None:
    conn.execute("COMMIT")


def roll_back(conn: sqlite3.Connection) -> None:
    """Undo the open transaction, if SQLite has not already (a full disk rolls back by itself; a
    second ROLLBACK would raise "no transaction is active" and hide the real error)."""
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass


@contextmanager
def write_transaction(conn: sqlite3.Connection):
    """One write transaction (BEGIN IMMEDIATE), committed at the end, rolled back on any exception."""
    begin_immediate(conn)
    try:
        yield conn
    except BaseException:
        roll_back(conn)
        raise
    commit(conn)
