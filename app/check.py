"""``tiller check``: is the data sound, and if not, what to do.

Runs SQLite's ``PRAGMA integrity_check`` on the database and its backup, and compares every model
and adapter file with the size and sha256 recorded when it was made. Each finding is one line
with what to do; nothing is changed unless the user asks (``--restore``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app import paths
from app.files import sha256_file
from app.store.backup import backup_path, integrity
from app.store.db import integrity_problems


@dataclass
class Finding:
    subject: str  # what was checked (a path)
    ok: bool
    detail: str  # what was found
    fix: str = ""  # what to do when not ok


def check_database(path: Path) -> Finding:
    if not path.exists():
        return Finding(str(path), True, "no database yet (it is created on first use)")
    rows = integrity_problems(path)
    if rows == ["ok"]:
        return Finding(str(path), True, "integrity check ok")
    bak = backup_path(path)
    if bak.is_file() and integrity(bak) == "ok":
        fix = "restore the automatic backup: tiller check --restore"
    else:  # never send the user to a restore that cannot work
        fix = (
            f"{'the backup is damaged too' if bak.is_file() else 'no backup exists'}: move the file away and import "
            "your mail again into a fresh database (tiller import PATH); keep the damaged file to recover it with "
            "the sqlite3 .recover command"
        )
    return Finding(str(path), False, "damaged: " + "; ".join(rows[:3]), fix)


def check_backup(path: Path) -> Finding | None:
    bak = backup_path(path)
    if not bak.is_file():
        return None
    found = check_database(bak)
    if not found.ok:
        found.fix = "the backup is damaged too: it is replaced by the next import"
    return found


def check_file(path: Path, size: int | None, sha256: str | None, what: str) -> Finding:
    if not path.is_file():
        return Finding(str(path), False, f"{what} missing", "train again (tiller train) or remove the profile")
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        return Finding(
            str(path),
            False,
            f"{what}: {actual_size:,} bytes, recorded {size:,}",
            "the file was changed or cut short: train again (tiller train)",
        )
    if sha256 is None:
        return Finding(str(path), True, f"{what}: {actual_size:,} bytes (no checksum recorded when it was made)")
    if sha256_file(path) != sha256:
        return Finding(
            str(path),
            False,
            f"{what}: sha256 differs from the recorded one",
            "the file was changed or damaged: train again (tiller train)",
        )
    return Finding(str(path), True, f"{what}: size and sha256 match")


def check_models(db) -> Iterator[Finding]:
    """Every model file Tiller knows (embedded and added) against its expected or recorded sha256."""
    from app.model_files import list_models

    for m in list_models(db):
        if not m.present:
            if not m.embedded:
                yield Finding(
                    str(m.path),
                    False,
                    f"model {m.name} missing",
                    f"add it again (tiller models add) or forget it (tiller models remove {m.name})",
                )
            continue
        found = check_file(m.path, m.size, m.sha256, f"model {m.name}")
        if not found.ok:
            found.fix = (
                f"delete {m.path}: it is assembled again from the installed packages on next use"
                if m.embedded
                else "the file changed since it was added: add it again (tiller models add) if that was you"
            )
        yield found


def check_adapters() -> Iterator[Finding]:
    from app.agent.profiles import ADAPTER_FILE, TRAINING_FILE, TrainingRecord, agents_dir

    for directory in sorted(agents_dir().iterdir()):
        record_path = directory / TRAINING_FILE
        if not directory.is_dir() or not record_path.is_file():
            continue
        try:
            record = TrainingRecord.read(record_path)
        except ValueError as exc:
            yield Finding(str(record_path), False, f"training record unreadable ({exc})", "train again (tiller train)")
            continue
        if record.adapter is None and not (directory / ADAPTER_FILE).exists():
            continue
        yield check_file(
            directory / ADAPTER_FILE,
            record.adapter_bytes,
            record.adapter_sha256,
            f"agent adapter of {record.profile or directory.name}",
        )


def run_checks() -> list[Finding]:
    db = paths.database_path()
    findings = [check_database(db)]
    backup = check_backup(db)
    if backup is not None:
        findings.append(backup)
    if not any(f.subject == str(db) and not f.ok for f in findings) and db.exists():
        from app.store import open_database

        conn = open_database(db)
        try:
            findings.extend(check_models(conn))
        finally:
            conn.conn.close()
    findings.extend(check_adapters())
    return findings
