"""The user's own messages as distillation sees them."""

from __future__ import annotations

import json
from dataclasses import dataclass

from app.store.messages import training_candidates


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
    rows = training_candidates(db, sender, newest_first=newest_first)
    out: list[SentMessage] = []
    per_sender: dict[str, int] = {}
    for r in rows:
        if limit is not None and per_sender.get(r.sender, 0) >= limit:
            continue
        per_sender[r.sender] = per_sender.get(r.sender, 0) + 1
        recipients = ", ".join(json.loads(r.to_addrs or "[]"))
        out.append(
            SentMessage(
                r.id,
                r.sender,
                recipients,
                r.subject or "",
                r.date,
                r.own_text or "",
                r.previous_context or "",
                r.signature or "",
            )
        )
    return out
