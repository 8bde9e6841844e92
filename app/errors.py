"""One error path for the CLI and the GUI: an exception becomes one sentence that says what is
wrong and what to do, and an exit code; the traceback goes to a log file (or the terminal with
``tiller --debug``), never in the user's face.

Exit codes (documented in the README): 0 done; 1 an error explained in one line; 2 a usage error
(click's); 3 the data store cannot be used (damaged, read-only, disk full, TILLER_HOME wrong);
130 cancelled (Ctrl-C), with everything done so far saved.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

from app.clock import utc_now
from app.exceptions import EXIT_ERROR, EXIT_STORE, StoreError, TillerError  # noqa: F401 - StoreError re-exported

EXIT_USAGE = 2
EXIT_CANCELLED = 130

# SQLite's primary result codes (the low byte of sqlite3.Error.sqlite_errorcode): what went wrong
# is read from the code, not from the message's wording
SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_CORRUPT = 5, 6, 8, 11
SQLITE_FULL, SQLITE_CANTOPEN, SQLITE_NOTADB = 13, 14, 26


@dataclass
class Explained:
    message: str  # one line: what is wrong and what to do
    exit_code: int = EXIT_ERROR


def _db_path() -> str:
    override = os.environ.get("TILLER_HOME")
    if override:
        return str(Path(override).expanduser() / "tiller.db")
    try:
        from app import paths

        return str(paths.database_path())
    except Exception:  # noqa: BLE001 - this is the error path: never fail here
        return "tiller.db in Tiller's data folder"


def explain(exc: BaseException) -> Explained | None:
    """The sentence for an error we understand, or None for a bug (shown as one line plus the log)."""
    if isinstance(exc, TillerError):
        return Explained(str(exc), exc.exit_code)
    text = str(exc)
    if isinstance(exc, sqlite3.DatabaseError) and getattr(exc, "sqlite_errorcode", None) is not None:
        db = _db_path()
        code = exc.sqlite_errorcode & 0xFF
        if code in (SQLITE_CORRUPT, SQLITE_NOTADB):
            return Explained(f"The database {db} is damaged ({text}). {_what_to_do_for_damage(db)}", EXIT_STORE)
        if code == SQLITE_READONLY:
            return Explained(
                f"Tiller cannot write to {db}: it or its folder is read-only. Make both writable, or set TILLER_HOME "
                "to a writable folder.",
                EXIT_STORE,
            )
        if code == SQLITE_FULL:
            return Explained(_disk_full(db), EXIT_STORE)
        if code == SQLITE_CANTOPEN:
            return Explained(
                f"Tiller cannot open {db} ({text}): check that its folder exists and is writable, or set TILLER_HOME.",
                EXIT_STORE,
            )
        if code in (SQLITE_BUSY, SQLITE_LOCKED):
            return Explained(
                f"The database {db} stayed busy (another Tiller process is writing to it): wait for it and try again.",
                EXIT_STORE,
            )
    if isinstance(exc, OSError):
        where = exc.filename or ""
        if exc.errno == errno.ENOSPC:
            return Explained(_disk_full(where or _db_path()), EXIT_STORE)
        home = os.environ.get("TILLER_HOME")
        if (
            home
            and isinstance(exc, (FileExistsError, NotADirectoryError))
            and str(where).startswith(str(Path(home).expanduser()))
        ):
            return Explained(
                f"TILLER_HOME is {home!r}, which is not a folder: point it at a folder (it is created if missing).",
                EXIT_STORE,
            )
        if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            return Explained(
                f"Permission denied: {where or text}: make it writable (or readable), or choose another place.",
                EXIT_STORE if "tiller" in str(where).lower() else EXIT_ERROR,
            )
        if where:
            return Explained(f"{where}: {exc.strerror or text}")
    if isinstance(exc, MemoryError):
        return Explained("Out of memory: close other programs, or import a smaller part of the mailbox first.")
    return None


def _disk_full(where: str) -> str:
    return (
        f"The disk holding {where} is full. Free some space and run the same command again: nothing was lost, "
        "and interrupted work resumes where it stopped."
    )


def log_path() -> Path:
    """Where tracebacks go: ``<data>/logs/errors.log``, or the temp folder when the data folder is the
    problem."""
    try:
        from app import paths

        folder = paths.logs_dir()
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / "errors.log"
        with open(probe, "a", encoding="utf-8"):
            pass
        return probe
    except Exception:  # noqa: BLE001
        return Path(tempfile.gettempdir()) / "tiller-errors.log"


def log_traceback(exc: BaseException, context: str = "") -> Path | None:
    """Append the traceback to the log; the path, or None when even that failed (a full disk)."""
    path = log_path()
    try:
        with open(path, "a", encoding="utf-8", errors="replace") as fh:
            fh.write(f"--- {utc_now()} {context}\n")
            fh.write("".join(traceback.format_exception(exc)))
        return path
    except OSError:
        return None


def one_line(exc: BaseException, context: str = "") -> Explained:
    """What the user is told: the explanation, or for an unexpected error its type and text plus
    where the traceback was written."""
    known = explain(exc)
    logged = log_traceback(exc, context)
    if known is not None:
        return known
    where = f"; details in {logged}" if logged else ""
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    return Explained(f"{type(exc).__name__}: {first}{where} (or run with --debug)")


def _what_to_do_for_damage(db) -> str:
    """The restore when a sound backup exists; otherwise what is left (never the restore that would fail)."""
    from pathlib import Path

    from app.store.backup import backup_path, integrity

    try:
        usable = db is not None and backup_path(Path(db)).is_file() and integrity(backup_path(Path(db))) == "ok"
    except Exception:
        usable = False
    if usable:
        return (
            "Restore the automatic backup with `tiller check --restore` (the damaged file is kept beside it), "
            "or move the file away to start afresh."
        )
    return (
        "There is no sound backup to restore: move the file away (keep it to recover with sqlite3's .recover) and "
        "import your mail again into a fresh database (tiller import PATH)."
    )
