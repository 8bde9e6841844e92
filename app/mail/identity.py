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

from app.store import identities as store
from app.store.identities import assign_identities

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
    return store.save_configured(db, address, display_name)


def active_identities(db: sqlite_utils.Database) -> list[str]:
    """The user's addresses (configured or inferred, not rejected), alphabetically."""
    return store.active_addresses(db)


def reject(db: sqlite_utils.Database, address: str) -> bool:
    """The address is not the user's: its messages become context, and inference skips it."""
    address = address.strip().lower()
    row = store.identity(db, address)
    if row is None:
        return False
    store.mark_rejected(db, row.id)
    return True


def infer_identities(db: sqlite_utils.Database, source_id: int, *, create: bool = True) -> list[str]:
    """Record the addresses inferred from this source's sent folders; returns the new ones
    (provisional ones it confirms count as new). ``create=False`` only confirms."""
    by_folder: dict[str, Counter] = defaultdict(Counter)
    names: dict[str, str] = {}
    for folder, addr, name, count in store.sent_folder_senders(db, source_id):
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
        row = store.identity(db, addr)
        if row and row.origin == "provisional":  # guessed during the import, confirmed now: new to the user
            store.confirm_provisional(db, row.id, count, names.get(addr))
            new.append(addr)
        elif row:
            store.raise_sent_count(db, row.id, count)
        elif create and store.save_inferred(db, addr, names.get(addr), count):
            new.append(addr)
    return new


def drop_provisional(db: sqlite_utils.Database, ids: Iterable[int] | None = None) -> int:
    """Guesses the inference did not confirm go (all of them, or those of ``ids``); their messages
    become context again. Returns how many went."""
    wanted = None if ids is None else set(ids)
    dropped = [i for i in store.provisional_ids(db) if wanted is None or i in wanted]
    for identity_id in dropped:
        store.delete_identity(db, identity_id)
    return len(dropped)


def settle_leftover_guesses(db: sqlite_utils.Database) -> None:
    """Guesses left by an import that was killed before its end: confirmed where a source's
    messages bear them out, dropped otherwise. (Confirming only: a source imported with the
    user's own addresses given must not gain inferred ones here.)"""
    if not store.provisional_ids(db):
        return
    for source_id in store.source_ids(db):
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
        for row in store.all_identities(db):
            if row.origin == "rejected":
                self.rejected.add(row.address)
            else:
                self.known[row.address] = row.id
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
                    new_id = store.save_provisional(self.db.conn, from_addr, from_name)
                    if new_id is not None:
                        self.known[from_addr] = self.provisional[from_addr] = new_id
                    else:  # another process added it meanwhile (tiller identities add)
                        row = store.identity(self.db.conn, from_addr)
                        if row.origin == "rejected":
                            self.rejected.add(from_addr)
                        else:
                            self.known[from_addr] = row.id
        return self.known.get(from_addr)

    def settle(self, source_id: int) -> list[str]:
        """At the end of the import (in its transaction): the addresses new to the user."""
        new = infer_identities(self.db, source_id) if self.guess else []
        drop_provisional(self.db, self.provisional.values())
        assign_identities(self.db)
        return new
