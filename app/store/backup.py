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

from app.exceptions import TillerError


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


class RestoreRefused(TillerError, RuntimeError):
    """The restore would do harm (a healthy database, an import running) or cannot help (the backup
    is damaged too); the message says what is left to do."""


def integrity(path: Path) -> str:
    """'ok', or what SQLite's integrity check (or opening the file) says is wrong."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return conn.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        return str(exc)


def restore_backup(db_path: Path, *, force: bool = False) -> tuple[Path, Path]:
    """Put ``<db>.bak`` back as the database; the current file (and its WAL) are kept as
    ``<db>.damaged-<time>`` (or ``.replaced-<time>`` when it was sound). Returns (restored from,
    kept as). Refused while an import runs (it holds the import lock, which this takes), for a
    database that passes its integrity check unless ``force`` (the backup is older: the restore
    would undo everything since), and when the backup is damaged too."""
    from app.store.locks import import_lock

    source = backup_path(db_path)
    lock = import_lock(db_path)
    if not lock.try_acquire():
        raise RestoreRefused(
            f"an import is writing to {db_path} ({lock.holder()}): wait for it to finish (or stop it with Ctrl-C), "
            "then restore"
        )
    try:
        current = integrity(db_path) if db_path.exists() else "missing"
        if not source.is_file():
            raise RestoreRefused(f"no backup at {source}: nothing to restore{_what_is_left(db_path, current)}")
        backup_state = integrity(source)
        if backup_state != "ok":
            raise RestoreRefused(
                f"the backup {source} is damaged too ({backup_state}){_what_is_left(db_path, current)}"
            )
        if current == "ok" and not force:
            raise RestoreRefused(
                f"{db_path} passes its integrity check: restoring the backup would undo everything since it was taken "
                "(before the last import or upgrade). To do that anyway: tiller check --restore --force"
            )
        stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        kept = Path(f"{db_path}.{'replaced' if current == 'ok' else 'damaged'}-{stamp}")
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
    finally:
        lock.release()


def _what_is_left(db_path: Path, current: str) -> str:
    if current in ("ok", "missing"):
        return ""
    return (
        f". What is left: your mail is still in its source, so move {db_path} aside (it is kept for recovery with "
        "sqlite3's .recover) and import again (tiller import PATH) into a fresh database"
    )


def database_copies(db_path: Path) -> list[Path]:
    """Every other copy of the database Tiller keeps: the automatic backup and the files a restore
    set aside (``.damaged-*``, ``.replaced-*``)."""
    folder, name = db_path.parent, db_path.name
    found = (
        [backup_path(db_path)] + sorted(folder.glob(f"{name}.damaged-*")) + sorted(folder.glob(f"{name}.replaced-*"))
    )
    return [p for p in found if p.is_file() and not p.name.endswith(("-wal", "-shm"))]


def forget_in_copies(db_path: Path, forget_rows) -> list[str]:
    """Run ``forget_rows(conn)`` in every copy of the database (with secure_delete, so the freed
    pages are overwritten), so a forgotten draft's text is not kept in a backup. A copy that cannot
    be changed (damaged, or from before the tables existed) is named in the returned list."""
    problems = []
    for copy in database_copies(db_path):
        try:
            conn = sqlite3.connect(str(copy), isolation_level=None, timeout=10)
            try:
                conn.execute("PRAGMA secure_delete=ON")
                conn.execute("BEGIN IMMEDIATE")
                forget_rows(conn)
                conn.execute("COMMIT")
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            finally:
                conn.close()
        except sqlite3.Error as exc:
            problems.append(f"{copy}: {exc}")
    return problems
