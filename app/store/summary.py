"""What the user's mailbox holds, per identity: the numbers the CLI and GUI show after an import."""

from __future__ import annotations

from dataclasses import dataclass

import sqlite_utils
from sqlite_utils import Database

from app.store.messages import TRAINING_CANDIDATE_SQL

# the same condition on messages joined as ``m``
_CANDIDATE_M = (
    TRAINING_CANDIDATE_SQL.replace("identity_id", "m.identity_id")
    .replace("own_text", "m.own_text")
    .replace("flags", "m.flags")
)


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
               coalesce(sum(CASE WHEN {_CANDIDATE_M}
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


@dataclass(frozen=True)
class SetupCounts:
    """How far the user has come: what the first-run checklist shows."""

    messages: int
    identities: int  # not rejected
    intents: int  # messages with an ok intent
    llm_rules: int  # ok rule sets written by a model (not measured offline)


def setup_counts(db: Database) -> SetupCounts:
    one = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
    return SetupCounts(
        one("SELECT COUNT(*) FROM messages"),
        one("SELECT COUNT(*) FROM identities WHERE origin != 'rejected'"),
        one("SELECT COUNT(DISTINCT message_id) FROM intents WHERE status = 'ok'"),
        one("SELECT COUNT(*) FROM rules WHERE status = 'ok' AND strategy != 'measured'"),
    )


def identity_data_counts(db: Database, address: str) -> tuple[int, int]:
    """(messages ``address`` wrote that can train the agent, of those the ones with an intent)."""
    row = db.execute(
        f"""
        SELECT count(*), coalesce(sum(EXISTS (SELECT 1 FROM intents t WHERE t.message_id = m.id AND t.status = 'ok')), 0)
        FROM messages m JOIN identities i ON i.id = m.identity_id
        WHERE i.address = ? AND {_CANDIDATE_M}
        """,
        [address.lower()],
    ).fetchone()
    return int(row[0]), int(row[1])
