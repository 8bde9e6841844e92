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


@dataclass
class ResplitCounts:
    messages: int = 0  # re-split
    changed: int = 0  # own words changed
    distilled_rows_dropped: int = 0


def resplit_outdated(db) -> ResplitCounts:
    counts = ResplitCounts()
    rows = db.execute(
        "SELECT id, body_text, subject, own_text, flags FROM messages WHERE parser_version IS NULL OR parser_version < ?",
        [SPLITTER_VERSION],
    ).fetchall()
    if not rows:
        return counts
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        for message_id, body, subject, own_before, flags in rows:
            split = split_message(body or "", subject or "")
            kept = {f for f in json.loads(flags or "[]") if f not in SPLIT_FLAGS}
            conn.execute(
                "UPDATE messages SET own_text = ?, previous_context = ?, signature = ?, flags = ?, parser_version = ?"
                " WHERE id = ?",
                [
                    split.own_text,
                    split.previous_context,
                    split.signature,
                    json.dumps(sorted(kept | split.flags)),
                    SPLITTER_VERSION,
                    message_id,
                ],
            )
            counts.messages += 1
            if split.own_text != (own_before or ""):
                counts.changed += 1
                counts.distilled_rows_dropped += _drop_distilled(conn, message_id)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return counts


def _drop_distilled(conn, message_id: int) -> int:
    dropped = conn.execute("DELETE FROM rules WHERE message_id = ?", [message_id]).rowcount
    intent_ids = [r[0] for r in conn.execute("SELECT id FROM intents WHERE message_id = ?", [message_id])]
    if intent_ids:
        marks = ",".join("?" * len(intent_ids))
        dropped += conn.execute(f"DELETE FROM rules WHERE intent_id IN ({marks})", intent_ids).rowcount
        dropped += conn.execute(f"DELETE FROM baselines WHERE intent_id IN ({marks})", intent_ids).rowcount
        dropped += conn.execute(f"DELETE FROM intents WHERE id IN ({marks})", intent_ids).rowcount
    return dropped
