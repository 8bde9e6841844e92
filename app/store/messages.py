"""Typed queries over stored messages, for the GUI and the CLI (no SQL outside ``app/store``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MessageListing:
    id: int
    date: str | None
    sender: str | None
    subject: str | None


@dataclass(frozen=True)
class MessageText:
    sender: str | None
    subject: str | None
    own_text: str | None


def search_messages(db, text: str, limit: int = 200) -> list[MessageListing]:
    """Newest first, the messages whose subject or sender contains ``text`` (any case)."""
    pattern = f"%{text}%"
    rows = db.execute(
        "SELECT id, date, from_addr, subject FROM messages WHERE subject LIKE ? OR from_addr LIKE ?"
        " ORDER BY date DESC LIMIT ?",
        [pattern, pattern, limit],
    ).fetchall()
    return [MessageListing(*row) for row in rows]


def message_text(db, message_id: int) -> MessageText | None:
    row = db.execute("SELECT from_addr, subject, own_text FROM messages WHERE id = ?", [message_id]).fetchone()
    return MessageText(*row) if row else None


def has_mail(db) -> bool:
    return db.execute("SELECT EXISTS (SELECT 1 FROM messages)").fetchone()[0] == 1


@dataclass(frozen=True)
class ImportRunRow:
    id: int
    location: str
    status: str
    seen: int | None
    stored: int | None
    duplicates: int | None
    already_imported: int | None
    skipped: int | None
    started_at: str | None


def import_runs(db) -> list[ImportRunRow]:
    """Every import run, oldest first, with its source's location."""
    rows = db.execute(
        "SELECT r.id, s.location, r.status, r.seen, r.stored, r.duplicates, r.already_imported, r.skipped, "
        "r.started_at FROM import_runs r JOIN sources s ON s.id = r.source_id ORDER BY r.id"
    ).fetchall()
    return [ImportRunRow(*row) for row in rows]


def senders_by_mail(db) -> list[str]:
    """The user's identities (not rejected), the one with the most stored messages first."""
    rows = db.execute(
        "SELECT from_addr, COUNT(*) n FROM messages WHERE from_addr IN (SELECT address FROM identities WHERE origin != 'rejected')"
        " GROUP BY from_addr ORDER BY n DESC"
    ).fetchall()
    return [r[0] for r in rows]
