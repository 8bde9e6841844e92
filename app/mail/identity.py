"""Which addresses are the user's own.

Configured addresses always count. Otherwise they are inferred from the From headers of messages in
sent folders: an address is the user's when it wrote at least 10% (and at least 2) of the messages
of one sent folder. Counting per folder finds every owner of a tree holding several mailboxes (the
Enron layout, ``<owner>/sent``) however unequal their volumes, and finds an executive whose own
``sent_items`` sits beside a ``sent`` folder written by an assistant (Enron's lay-k); a stray
sender (a system address, an occasional delegate) stays out. Each identity is one voice Tiller can
learn. An address the user removes is kept as ``rejected`` so later imports never infer it again.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import sqlite_utils

MIN_SHARE = 0.10
MIN_COUNT = 2


def add_configured(db: sqlite_utils.Database, address: str, display_name: str | None = None) -> int:
    address = address.strip().lower()
    if "@" not in address:
        raise ValueError(f"{address!r} is not an email address")
    existing = db.execute("SELECT id FROM identities WHERE address = ?", [address]).fetchone()
    if existing:
        db.execute("UPDATE identities SET origin = 'config' WHERE id = ?", [existing[0]])
        return existing[0]
    cur = db.execute(
        "INSERT INTO identities (address, display_name, origin, sent_count) VALUES (?, ?, 'config', 0)",
        [address, display_name],
    )
    return cur.lastrowid


def active_identities(db: sqlite_utils.Database) -> list[str]:
    """The user's addresses (configured or inferred, not rejected), alphabetically."""
    return [r[0] for r in db.execute("SELECT address FROM identities WHERE origin != 'rejected' ORDER BY address")]


def reject(db: sqlite_utils.Database, address: str) -> bool:
    """The address is not the user's: its messages become context, and inference skips it."""
    address = address.strip().lower()
    row = db.execute("SELECT id FROM identities WHERE address = ?", [address]).fetchone()
    if row is None:
        return False
    db.execute("UPDATE identities SET origin = 'rejected' WHERE id = ?", [row[0]])
    db.execute("UPDATE messages SET identity_id = NULL WHERE identity_id = ?", [row[0]])
    return True


def infer_identities(db: sqlite_utils.Database, source_id: int) -> list[str]:
    """Record the addresses inferred from this source's sent folders; returns the new ones."""
    by_folder: dict[str, Counter] = defaultdict(Counter)
    names: dict[str, str] = {}
    rows = db.execute(
        "SELECT folder, from_addr, from_name, count(*) FROM messages "
        "WHERE source_id = ? AND is_sent_folder = 1 AND from_addr IS NOT NULL GROUP BY folder, from_addr",
        [source_id],
    )
    for folder, addr, name, count in rows:
        by_folder[folder][addr] += count
        if name:
            names.setdefault(addr, name)
    found: dict[str, int] = Counter()
    for counts in by_folder.values():
        total = sum(counts.values())
        for addr, count in counts.items():
            if count >= MIN_COUNT and count >= MIN_SHARE * total:
                found[addr] += count
    new = []
    for addr, count in found.items():
        row = db.execute("SELECT id FROM identities WHERE address = ?", [addr]).fetchone()
        if row:
            db.execute("UPDATE identities SET sent_count = max(sent_count, ?) WHERE id = ?", [count, row[0]])
        else:
            db.execute(
                "INSERT INTO identities (address, display_name, origin, sent_count) VALUES (?, ?, 'inferred', ?)",
                [addr, names.get(addr), count],
            )
            new.append(addr)
    return new


def assign_identities(db: sqlite_utils.Database) -> None:
    """Point every message written from one of the user's addresses at that identity."""
    db.execute(
        "UPDATE messages SET identity_id = (SELECT i.id FROM identities i WHERE i.address = messages.from_addr) "
        "WHERE from_addr IN (SELECT address FROM identities WHERE origin != 'rejected') AND identity_id IS NOT "
        "(SELECT i.id FROM identities i WHERE i.address = messages.from_addr)"
    )
