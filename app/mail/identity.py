"""Which addresses are the user's own.

Configured addresses always count. Otherwise they are inferred from the From headers of messages in
sent folders: an address is the user's when it wrote at least 10% (and at least 2) of the messages
of one sent folder. Counting per folder finds every owner of a tree holding several mailboxes (the
Enron layout, ``<owner>/sent``) however unequal their volumes, and finds an executive whose own
``sent_items`` sits beside a ``sent`` folder written by an assistant (Enron's lay-k); a stray
sender (a system address, an occasional delegate) stays out. Each identity is one voice Tiller can
learn. An address the user removes is kept as ``rejected`` so later imports never infer it again.

An import does not wait for its end to say whose messages are whose: ``IdentitiesAtInsert`` gives
each message its identity as it is stored, guessing from the sent folder so far (``provisional``
identities), and the inference over the whole source settles the guesses when the import ends.
Setting identity_id afterwards grows every row, and SQLite rewrites a grown row whole (bodies and
all): that UPDATE was 0.08 s of a 0.9 s import of the Enron sample.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable

import sqlite_utils

MIN_SHARE = 0.10
MIN_COUNT = 2


_ADDRESS = re.compile(r"^[^@\s<>(),;:\\\"\[\]]+@[^@\s<>(),;:\\\"\[\]]+\.[^@\s<>(),;:\\\"\[\]]+$")


def normalize_address(address: str) -> str:
    """``address`` lower-cased and stripped, or ValueError with a sentence saying what is wrong.
    A bare address only (``kay@example.com``), as Tiller compares it with From headers."""
    text = address.strip().lower()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    if not _ADDRESS.match(text):
        raise ValueError(f"{address!r} is not an email address (expected something like name@example.com)")
    return text


def add_configured(db: sqlite_utils.Database, address: str, display_name: str | None = None) -> int:
    address = normalize_address(address)
    # one statement, so another process adding the same address at the same time cannot collide
    db.execute(
        "INSERT INTO identities (address, display_name, origin, sent_count) VALUES (?, ?, 'config', 0) "
        "ON CONFLICT(address) DO UPDATE SET origin = 'config'",
        [address, display_name],
    )
    return db.execute("SELECT id FROM identities WHERE address = ?", [address]).fetchone()[0]


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


def infer_identities(db: sqlite_utils.Database, source_id: int, *, create: bool = True) -> list[str]:
    """Record the addresses inferred from this source's sent folders; returns the new ones
    (provisional ones it confirms count as new). ``create=False`` only confirms."""
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
        row = db.execute("SELECT id, origin FROM identities WHERE address = ?", [addr]).fetchone()
        if row and row[1] == "provisional":  # guessed during the import, confirmed now: new to the user
            db.execute(
                "UPDATE identities SET origin = 'inferred', sent_count = ?, display_name = coalesce(?, display_name) "
                "WHERE id = ?",
                [count, names.get(addr), row[0]],
            )
            new.append(addr)
        elif row:
            db.execute("UPDATE identities SET sent_count = max(sent_count, ?) WHERE id = ?", [count, row[0]])
        elif create:
            if db.execute(
                "INSERT OR IGNORE INTO identities (address, display_name, origin, sent_count) VALUES (?, ?, 'inferred', ?)",
                [addr, names.get(addr), count],
            ).rowcount:
                new.append(addr)
    return new


def assign_identities(db: sqlite_utils.Database) -> None:
    """Point every message written from one of the user's addresses at that identity."""
    db.execute(
        "UPDATE messages SET identity_id = (SELECT i.id FROM identities i WHERE i.address = messages.from_addr) "
        "WHERE from_addr IN (SELECT address FROM identities WHERE origin != 'rejected') AND identity_id IS NOT "
        "(SELECT i.id FROM identities i WHERE i.address = messages.from_addr)"
    )


def drop_provisional(db: sqlite_utils.Database, ids: Iterable[int] | None = None) -> int:
    """Guesses the inference did not confirm go (all of them, or those of ``ids``); their messages
    become context again. Returns how many went."""
    rows = db.execute("SELECT id FROM identities WHERE origin = 'provisional'").fetchall()
    wanted = None if ids is None else set(ids)
    dropped = [r[0] for r in rows if wanted is None or r[0] in wanted]
    for identity_id in dropped:
        db.execute("UPDATE messages SET identity_id = NULL WHERE identity_id = ?", [identity_id])
        db.execute("DELETE FROM identities WHERE id = ?", [identity_id])
    return len(dropped)


def settle_leftover_guesses(db: sqlite_utils.Database) -> None:
    """Guesses left by an import that was killed before its end: confirmed where a source's
    messages bear them out, dropped otherwise. (Confirming only: a source imported with the
    user's own addresses given must not gain inferred ones here.)"""
    if db.execute("SELECT 1 FROM identities WHERE origin = 'provisional' LIMIT 1").fetchone() is None:
        return
    for (source_id,) in db.execute("SELECT id FROM sources").fetchall():
        infer_identities(db, source_id, create=False)
    drop_provisional(db)
    assign_identities(db)


class IdentitiesAtInsert:
    """``identity_id`` for each message as an import stores it.

    Known identities (configured, or inferred by earlier imports) apply at once. When ``guess``
    (the user gave no addresses for this import), a sent folder's sender becomes a ``provisional``
    identity as soon as the folder so far meets the inference rule, so the rest of their mail is
    stored with it. ``settle`` then runs the real inference over the whole source: the guesses it
    confirms stay, the rest go, and ``assign_identities`` fixes the few messages stored before their
    sender was recognised. Only that remainder is rewritten.
    """

    def __init__(self, db: sqlite_utils.Database, *, guess: bool):
        self.db = db
        self.guess = guess
        self.known: dict[str, int] = {}
        self.rejected: set[str] = set()
        for address, identity_id, origin in db.execute("SELECT address, id, origin FROM identities"):
            if origin == "rejected":
                self.rejected.add(address)
            else:
                self.known[address] = identity_id
        self.provisional: dict[str, int] = {}
        self._per_folder: dict[str, Counter] = defaultdict(Counter)

    def of(self, folder: str, is_sent_folder: bool, from_addr: str | None, from_name: str | None) -> int | None:
        if from_addr is None:
            return None
        if self.guess and is_sent_folder:
            counts = self._per_folder[folder]
            counts[from_addr] += 1
            counts[None] += 1  # the folder's total so far (None is never an address)
            if from_addr not in self.known and from_addr not in self.rejected:
                n = counts[from_addr]
                if n >= MIN_COUNT and n >= MIN_SHARE * counts[None]:
                    cursor = self.db.conn.execute(
                        "INSERT OR IGNORE INTO identities (address, display_name, origin, sent_count) "
                        "VALUES (?, ?, 'provisional', 0)",
                        [from_addr, from_name],
                    )
                    if cursor.rowcount:
                        self.known[from_addr] = self.provisional[from_addr] = cursor.lastrowid
                    else:  # another process added it meanwhile (tiller identities add)
                        row = self.db.conn.execute(
                            "SELECT id, origin FROM identities WHERE address = ?", [from_addr]
                        ).fetchone()
                        if row[1] == "rejected":
                            self.rejected.add(from_addr)
                        else:
                            self.known[from_addr] = row[0]
        return self.known.get(from_addr)

    def settle(self, source_id: int) -> list[str]:
        """At the end of the import (in its transaction): the addresses new to the user."""
        new = infer_identities(self.db, source_id) if self.guess else []
        drop_provisional(self.db, self.provisional.values())
        assign_identities(self.db)
        return new
