"""The models table: GGUF files the user registered (path, role, checksum and header facts).
The embedded models are not stored; :mod:`app.model_files` knows them."""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database

from app.clock import utc_now


@dataclass(frozen=True)
class ModelRow:
    name: str
    path: str
    role: str
    size: int
    sha256: str
    architecture: str | None
    display_name: str | None
    quantization: str | None
    parameters: int | None
    chat_template: str | None
    license: str | None


def model_rows(db: Database) -> list[ModelRow]:
    rows = db.execute(
        "SELECT name, path, role, size, sha256, architecture, display_name, quantization, parameters, "
        "chat_template, license FROM models ORDER BY name"
    )
    return [ModelRow(*r) for r in rows]


def model_file(db: Database, name: str) -> str | None:
    """The registered path of model ``name``, None when there is no such model."""
    row = db.execute("SELECT path FROM models WHERE name = ?", [name]).fetchone()
    return row[0] if row else None


def save_model(db: Database, name: str, path: str, role: str, size: int, sha256: str, header: dict) -> None:
    """Insert or replace model ``name``; ``header`` holds the GGUF facts (architecture, display_name,
    quantization, parameters, chat_template, license)."""
    db.table("models").upsert(
        {"name": name, "path": path, "role": role, "size": size, "sha256": sha256, "added_at": utc_now(), **header},
        pk="name",
    )


def delete_model(db: Database, name: str) -> bool:
    return db.execute("DELETE FROM models WHERE name = ?", [name]).rowcount > 0
