"""The identities table (the user's addresses: configured, inferred, provisional or rejected) and
the messages' ``identity_id`` that points at it. The rules deciding who is the user live in
:mod:`app.mail.identity`; this module only reads and writes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database


@dataclass(frozen=True)
class IdentityRow:
    id: int
    address: str
    origin: str  # config | inferred | provisional | rejected


def identity(db: Database, address: str) -> IdentityRow | None:
    row = db.execute("SELECT id, address, origin FROM identities WHERE address = ?", [address]).fetchone()
    return IdentityRow(*row) if row else None


def all_identities(db: Database) -> list[IdentityRow]:
    return [IdentityRow(*r) for r in db.execute("SELECT id, address, origin FROM identities")]


def active_addresses(db: Database) -> list[str]:
    """Configured or inferred (not rejected), alphabetically."""
    return [r[0] for r in db.execute("SELECT address FROM identities WHERE origin != 'rejected' ORDER BY address")]


def save_configured(db: Database, address: str, display_name: str | None) -> int:
    """Add ``address`` as configured (or make an existing one configured); its id. One statement,
    so another process adding the same address at the same time cannot collide."""
    db.execute(
        "INSERT INTO identities (address, display_name, origin, sent_count) VALUES (?, ?, 'config', 0) "
        "ON CONFLICT(address) DO UPDATE SET origin = 'config'",
        [address, display_name],
    )
    return db.execute("SELECT id FROM identities WHERE address = ?", [address]).fetchone()[0]


def save_inferred(db: Database, address: str, display_name: str | None, sent_count: int) -> bool:
    """Add an inferred address; False when it exists already."""
    return bool(
        db.execute(
            "INSERT OR IGNORE INTO identities (address, display_name, origin, sent_count) VALUES (?, ?, 'inferred', ?)",
            [address, display_name, sent_count],
        ).rowcount
    )


def save_provisional(conn, address: str, display_name: str | None) -> int | None:
    """Add a guessed address (during an import, on its connection); its id, None when it exists."""
    cursor = conn.execute(
        "INSERT OR IGNORE INTO identities (address, display_name, origin, sent_count) VALUES (?, ?, 'provisional', 0)",
        [address, display_name],
    )
    return cursor.lastrowid if cursor.rowcount else None


def confirm_provisional(db: Database, identity_id: int, sent_count: int, display_name: str | None) -> None:
    db.execute(
        "UPDATE identities SET origin = 'inferred', sent_count = ?, display_name = coalesce(?, display_name) "
        "WHERE id = ?",
        [sent_count, display_name, identity_id],
    )


def raise_sent_count(db: Database, identity_id: int, sent_count: int) -> None:
    db.execute("UPDATE identities SET sent_count = max(sent_count, ?) WHERE id = ?", [sent_count, identity_id])


def mark_rejected(db: Database, identity_id: int) -> None:
    """Kept as rejected (so no later import infers it again); its messages become context."""
    db.execute("UPDATE identities SET origin = 'rejected' WHERE id = ?", [identity_id])
    db.execute("UPDATE messages SET identity_id = NULL WHERE identity_id = ?", [identity_id])


def provisional_ids(db: Database) -> list[int]:
    return [r[0] for r in db.execute("SELECT id FROM identities WHERE origin = 'provisional'")]


def delete_identity(db: Database, identity_id: int) -> None:
    """Gone, and its messages become context."""
    db.execute("UPDATE messages SET identity_id = NULL WHERE identity_id = ?", [identity_id])
    db.execute("DELETE FROM identities WHERE id = ?", [identity_id])


def sent_folder_senders(db: Database, source_id: int) -> list[tuple[str, str, str | None, int]]:
    """(folder, from address, a display name, messages) for each sender of each sent folder of a source."""
    return [
        tuple(r)
        for r in db.execute(
            "SELECT folder, from_addr, from_name, count(*) FROM messages "
            "WHERE source_id = ? AND is_sent_folder = 1 AND from_addr IS NOT NULL GROUP BY folder, from_addr",
            [source_id],
        )
    ]


def assign_identities(db: Database) -> None:
    """Point every message written from one of the user's addresses at that identity (only the
    rows that change are written)."""
    db.execute(
        "UPDATE messages SET identity_id = (SELECT i.id FROM identities i WHERE i.address = messages.from_addr) "
        "WHERE from_addr IN (SELECT address FROM identities WHERE origin != 'rejected') AND identity_id IS NOT "
        "(SELECT i.id FROM identities i WHERE i.address = messages.from_addr)"
    )


def source_ids(db: Database) -> list[int]:
    return [r[0] for r in db.execute("SELECT id FROM sources")]
