"""The consents table: which backend the user allowed to receive sent mail, for what, and when."""

from __future__ import annotations

from sqlite_utils import Database

from app.clock import utc_now


def save_consent(db: Database, backend: str, scope: str, statement: str) -> None:
    db.table("consents").upsert(
        {"backend": backend, "scope": scope, "granted_at": utc_now(), "statement": statement},
        pk=("backend", "scope"),
    )


def delete_consent(db: Database, backend: str, scope: str) -> bool:
    """True when there was one to delete."""
    return db.execute("DELETE FROM consents WHERE backend = ? AND scope = ?", [backend, scope]).rowcount > 0


def consent_exists(db: Database, backend: str, scope: str) -> bool:
    return db.execute("SELECT 1 FROM consents WHERE backend = ? AND scope = ?", [backend, scope]).fetchone() is not None
