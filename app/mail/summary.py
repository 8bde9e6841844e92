"""What the user's mailbox holds, per identity: the numbers the CLI and GUI show after an import."""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils

# A message is a training candidate when it is the user's own, has own words, and is not a pure forward.
TRAINING_CANDIDATE_SQL = "identity_id IS NOT NULL AND own_text != '' AND flags NOT LIKE '%\"pure_forward\"%'"


@dataclass
class IdentitySummary:
    address: str
    origin: str
    messages: int
    training_candidates: int
    replies: int
    pure_forwards: int
    first_date: str | None
    last_date: str | None


def identity_summaries(db: sqlite_utils.Database) -> list[IdentitySummary]:
    rows = db.execute(
        f"""
        SELECT i.address, i.origin, count(m.id),
               coalesce(sum(CASE WHEN {
            TRAINING_CANDIDATE_SQL.replace("identity_id", "m.identity_id")
            .replace("own_text", "m.own_text")
            .replace("flags", "m.flags")
        }
                            THEN 1 ELSE 0 END), 0),
               coalesce(sum(m.flags LIKE '%"reply"%'), 0),
               coalesce(sum(m.flags LIKE '%"pure_forward"%'), 0),
               min(m.date), max(m.date)
        FROM identities i LEFT JOIN messages m ON m.identity_id = i.id
        WHERE i.origin != 'rejected'
        GROUP BY i.id ORDER BY i.address
        """
    )
    return [IdentitySummary(*row) for row in rows]


def totals(db: sqlite_utils.Database) -> dict[str, int]:
    one = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
    return {
        "messages": one("SELECT count(*) FROM messages"),
        "own": one("SELECT count(*) FROM messages WHERE identity_id IS NOT NULL"),
        "context": one("SELECT count(*) FROM messages WHERE identity_id IS NULL"),
        "training_candidates": one(f"SELECT count(*) FROM messages WHERE {TRAINING_CANDIDATE_SQL}"),
        "sources": one("SELECT count(*) FROM sources"),
    }
