"""Sent mail imported later is matched to the draft it came from.

A message is a candidate for a draft when it was written by the draft's identity (any of the
user's identities for a draft written as "all my identities"), between 10 minutes before and
``WINDOW_DAYS`` after the draft, to the draft's recipient where the draft names an address (a name
typed as the recipient must appear in an address instead), and, where both have a subject, under
the same subject (Re:/Fwd: aside). Among candidates, the most similar one is taken when its
content-word similarity (app/learning/distance.py) reaches the threshold; one message goes to one
draft. The user can undo a match: the pair is remembered and never made again.

Thresholds, measured by ``benchmarks/draft_matching.py`` on 103 zero-shot emails the local model
wrote from distilled intents of 7 Enron senders (drafts nobody edited, the hardest case) against
the 328 other emails their senders wrote to the same recipient within 14 days: Dice 0.20 takes
0.91% of those near misses and finds 50.5% of the true pairs; with the subject equal as well, a
near miss is rarer still, so 0.10 (73.8% found).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from sqlite_utils import Database

from app.learning.distance import content_similarity, edit_distance
from app.store import drafts as store
from app.store.identities import active_addresses

WINDOW_DAYS = 14
THRESHOLD = 0.20
THRESHOLD_SAME_SUBJECT = 0.10
CLOCK_SKEW = dt.timedelta(minutes=10)
_SUBJECT_PREFIX = re.compile(r"^\s*(?:(?:re|fw|fwd|aw|sv|tr)\s*(?:\[\d+\])?\s*:\s*)+", re.I)


@dataclass
class MatchReport:
    matched: list[tuple[int, int, float]] = field(default_factory=list)  # (draft id, message id, similarity)
    replaced_edits: list[int] = field(default_factory=list)  # drafts whose own edit the sent email replaced


def normalized_subject(subject: str | None) -> str:
    return re.sub(r"\s+", " ", _SUBJECT_PREFIX.sub("", subject or "")).strip().lower()


def parse_date(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def recipient_fits(draft_recipient: str | None, addresses: list[str]) -> bool:
    if not draft_recipient or not draft_recipient.strip():
        return True
    wanted = draft_recipient.strip().lower()
    lowered = [a.lower() for a in addresses]
    if "@" in wanted:
        return any(a == wanted for a in lowered)
    # a name ("Sylvia", "Sylvia Ortiz"): its first word in an address's local part
    first = re.split(r"[\s,]+", wanted)[0]
    return any(first and first in a.split("@")[0] for a in lowered)


def similarity(draft: store.DraftRow, text: str) -> float:
    """The draft's text, or what the user edited it to when that is closer."""
    best = content_similarity(draft.text, text)
    if draft.final_text and draft.final_source == "edit":
        best = max(best, content_similarity(draft.final_text, text))
    return best


def score(draft: store.DraftRow, message: store.SentCandidate, my_addresses: set[str]) -> float | None:
    """The similarity when ``message`` may be ``draft`` sent, else None."""
    sender = (message.from_addr or "").lower()
    if draft.identity:
        if sender != draft.identity.lower():
            return None
    elif sender not in my_addresses:
        return None
    drafted, sent = parse_date(draft.created_at), parse_date(message.date)
    if (
        drafted is None
        or sent is None
        or not (drafted - CLOCK_SKEW <= sent <= drafted + dt.timedelta(days=WINDOW_DAYS))
    ):
        return None
    if not recipient_fits(draft.recipient, message.to_addrs):
        return None
    same_subject = False
    if draft.subject and message.subject:
        if normalized_subject(draft.subject) != normalized_subject(message.subject):
            return None
        same_subject = True
    value = similarity(draft, message.own_text)
    return value if value >= (THRESHOLD_SAME_SUBJECT if same_subject else THRESHOLD) else None


def match_sent_mail(db: Database, messages: list[store.SentCandidate]) -> MatchReport:
    """Match ``messages`` (just imported) to the drafts they may have been sent as; writes the
    matches (the caller holds the transaction)."""
    report = MatchReport()
    if not messages:
        return report
    # a date that does not parse (a row written by hand, a damaged value) bounds nothing
    dates = [when for when in (parse_date(m.date) for m in messages) if when is not None]
    if not dates:
        return report
    earliest = min(dates) - dt.timedelta(days=WINDOW_DAYS)
    open_drafts = store.unmatched_drafts(db, earliest.isoformat(timespec="seconds"))
    if not open_drafts:
        return report
    mine = {a.lower() for a in active_addresses(db)}
    taken = store.matched_message_ids(db)
    refused = store.refused_pairs(db)
    scored = []
    for d in open_drafts:
        for m in messages:
            if m.id in taken or (d.id, m.id) in refused or not m.own_text.strip():
                continue
            value = score(d, m, mine)
            if value is not None:
                scored.append((value, d, m))
    done_drafts: set[int] = set()
    for value, d, m in sorted(scored, key=lambda s: -s[0]):  # best pairs first; one message per draft
        if d.id in done_drafts or m.id in taken:
            continue
        if d.final_source == "edit":  # the user's edit gives way to what was sent: said, not silent
            report.replaced_edits.append(d.id)
        set_sent(db, d, m, value)
        done_drafts.add(d.id)
        taken.add(m.id)
        report.matched.append((d.id, m.id, round(value, 3)))
    return report


def set_sent(db: Database, draft: store.DraftRow, message: store.SentCandidate, value: float) -> None:
    store.set_final(
        db,
        draft.id,
        text=message.own_text,
        source="sent",
        edit_distance=edit_distance(draft.text, message.own_text),
        sent_message_id=message.id,
        similarity=value,
        at=message.date,
    )
    store.set_status(db, draft.id, "sent")
    replaced = "; it replaces your edit as what the draft became" if draft.final_source == "edit" else ""
    store.add_event(db, draft.id, "sent", f"message {message.id}, similarity {value:.2f}{replaced}")


def undo_match(db: Database, draft_id: int) -> bool:
    """Undo a wrong match: the draft goes back to its edited text (or none), the pair is never
    made again. False when the draft has no match."""
    d = store.draft(db, draft_id)
    if d is None or d.sent_message_id is None:
        return False
    store.refuse_match(db, draft_id, d.sent_message_id)
    edited = store.last_edit(db, draft_id)
    store.clear_final(db, draft_id)
    if edited is not None:
        store.set_final(db, draft_id, text=edited, source="edit", edit_distance=edit_distance(d.text, edited))
    store.set_status(db, draft_id, "edited" if edited is not None else "shown")
    store.add_event(db, draft_id, "match undone", f"message {d.sent_message_id}")
    return True
