"""A restorable copy of the database, taken before a migration or an import.

SQLite's online backup API copies a consistent snapshot while others may read or write; the copy
is written under a temporary name and renamed, so ``tiller.db.bak`` is always a whole database.
``tiller check --restore`` puts it back, keeping the current file beside it.
"""

from __future__ import annotations

import datetime as dt
import os
import sqlite3
from pathlib import Path


def backup_path(db_path: Path) -> Path:
    return Path(f"{db_path}.bak")


def take_backup(conn: sqlite3.Connection, db_path: Path) -> Path | None:
    """Copy the database behind ``conn`` to ``<db>.bak``; None when there is nothing to keep
    (an empty database) or the copy could not be written (reported by the caller's next write)."""
    if conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] == 0:
        return None
    target = backup_path(db_path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        dest = sqlite3.connect(str(tmp))
        try:
            conn.backup(dest)
            dest.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        finally:
            dest.close()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, target)
        return target
    except (OSError, sqlite3.Error):
        try:
            tmp.unlink()
        except OSError:
            pass
        return None


def restore_backup(db_path: Path) -> tuple[Path, Path]:
    """Put ``<db>.bak`` back as the database; the current file (and its WAL) are kept as
    ``<db>.damaged-<time>``. Returns (restored from, kept as). The backup is checked first."""
    source = backup_path(db_path)
    if not source.is_file():
        raise FileNotFoundError(f"no backup at {source}: nothing to restore")
    check = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        result = check.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        check.close()
    if result != "ok":
        raise RuntimeError(f"the backup {source} is damaged too ({result})")
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    kept = Path(f"{db_path}.damaged-{stamp}")
    if db_path.exists():
        os.replace(db_path, kept)
    for suffix in ("-wal", "-shm"):
        side = Path(f"{db_path}{suffix}")
        if side.exists():
            os.replace(side, Path(f"{kept}{suffix}"))
    tmp = db_path.with_name(f".{db_path.name}.restore.tmp")
    with open(source, "rb") as src, open(tmp, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
        dst.flush()
        os.fsync(dst.fileno())
    os.replace(tmp, db_path)
    return source, kept
