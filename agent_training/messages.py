"""The user's own messages as distillation sees them."""

from __future__ import annotations

import json
from dataclasses import dataclass

from app.mail.summary import TRAINING_CANDIDATE_SQL


@dataclass(frozen=True)
class SentMessage:
    id: int
    sender: str
    recipients: str
    subject: str
    date: str | None
    own_text: str
    previous_context: str
    signature: str


def load_messages(
    db, sender: str | None = None, limit: int | None = None, *, newest_first: bool = False
) -> list[SentMessage]:
    """Training candidates (own words, not pure forwards), oldest first per sender; ``limit`` takes
    the first N of each sender's messages (quick runs). ``newest_first``: newest first, so a limited
    or cancelled slow run has the user's current style (undated messages last either way)."""
    where = TRAINING_CANDIDATE_SQL
    args: list = []
    if sender:
        where += " AND from_addr = ?"
        args.append(sender.lower())
    rows = db.execute(
        f"SELECT id, from_addr, to_addrs, subject, date, own_text, previous_context, signature FROM messages "
        f"WHERE {where} ORDER BY from_addr, date IS NULL, date {'DESC' if newest_first else ''}, id {'DESC' if newest_first else ''}",
        args,
    ).fetchall()
    out: list[SentMessage] = []
    per_sender: dict[str, int] = {}
    for r in rows:
        if limit is not None and per_sender.get(r[1], 0) >= limit:
            continue
        per_sender[r[1]] = per_sender.get(r[1], 0) + 1
        recipients = ", ".join(json.loads(r[2] or "[]"))
        out.append(SentMessage(r[0], r[1], recipients, r[3] or "", r[4], r[5] or "", r[6] or "", r[7] or ""))
    return out
