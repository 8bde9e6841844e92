"""The backends table: the user's named endpoints (provider, model, base URL, options as JSON).
Validation and the built-in endpoints live in :mod:`app.backends.config`; this module only stores."""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from app.clock import utc_now


@dataclass(frozen=True)
class BackendRow:
    name: str
    provider: str
    model: str | None
    base_url: str | None
    options_json: str | None


def backend_rows(db: Database) -> list[BackendRow]:
    """Every stored endpoint, by name."""
    rows = db.execute("SELECT name, provider, model, base_url, options FROM backends ORDER BY name")
    return [BackendRow(*r) for r in rows]


def backend_row(db: Database, name: str) -> BackendRow | None:
    row = db.execute("SELECT name, provider, model, base_url, options FROM backends WHERE name = ?", [name]).fetchone()
    return BackendRow(*row) if row else None


def backend_exists(db: Database, name: str) -> bool:
    return db.execute("SELECT 1 FROM backends WHERE name = ?", [name]).fetchone() is not None


def save_backend(db: Database, row: BackendRow) -> None:
    """Insert or replace, keeping the first ``created_at``."""
    existing = db.execute("SELECT created_at FROM backends WHERE name = ?", [row.name]).fetchone()
    now = utc_now()
    db.table("backends").upsert(
        {
            "name": row.name,
            "provider": row.provider,
            "model": row.model,
            "base_url": row.base_url,
            "options": row.options_json,
            "created_at": existing[0] if existing else now,
            "updated_at": now,
        },
        pk="name",
    )


def delete_backend(db: Database, name: str) -> bool:
    return db.execute("DELETE FROM backends WHERE name = ?", [name]).rowcount > 0
