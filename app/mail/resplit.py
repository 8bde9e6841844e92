"""Re-splitting stored mail when the splitter improves (``SPLITTER_VERSION``).

Every message keeps its full ``body_text`` and the ``parser_version`` that split it, so a better
splitter (v2 moves pasted articles out of the own words) reaches mail imported before it without a
re-import. Run when the database is opened; it touches only rows split by an older version, in one
transaction. A message whose own words change loses the rows distilled from the old words
(intents, zero-shot baselines, rules): they described text the user did not write, and the next
``tiller distill`` makes them again from the new own words. Flags the parser set (html, charset
repairs) are kept; only the splitter's own flags are replaced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from app.mail.split import SPLIT_FLAGS, SPLITTER_VERSION, split_message
from app.store.db import on_open, write_transaction
from app.store.distilled import drop_distilled
from app.store.messages import save_split, split_before


@dataclass
class ResplitCounts:
    messages: int = 0  # re-split
    changed: int = 0  # own words changed
    distilled_rows_dropped: int = 0


@on_open
def resplit_outdated(db) -> ResplitCounts:
    counts = ResplitCounts()
    rows = split_before(db, SPLITTER_VERSION)
    if not rows:
        return counts
    with write_transaction(db.conn) as conn:
        for row in rows:
            split = split_message(row.body_text or "", row.subject or "")
            kept = {f for f in json.loads(row.flags or "[]") if f not in SPLIT_FLAGS}
            flags = json.dumps(sorted(kept | split.flags))
            save_split(conn, row.id, split.own_text, split.previous_context, split.signature, flags, SPLITTER_VERSION)
            counts.messages += 1
            if split.own_text != (row.own_text or ""):
                counts.changed += 1
                counts.distilled_rows_dropped += drop_distilled(conn, row.id)
    return counts
