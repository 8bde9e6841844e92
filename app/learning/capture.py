"""Every draft Tiller shows is stored with what made it; what the user does next is recorded.

Actions: ``edited`` (the draft box or $EDITOR, with the new text), ``copied``, ``opened`` (in the
mail client), ``discarded``, ``picked`` (one of several candidates). A text that differs from the
draft becomes the draft's final text (source ``edit``) until sent mail is matched to it
(app/learning/matching.py), which wins. Nothing here leaves the computer; ``tiller edits off``
stops the recording (``CAPTURE_SETTING``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlite_utils import Database

from app.learning.distance import edit_distance
from app.store import drafts as store
from app.store.db import write_transaction
from app.store.settings import get_setting, set_setting

CAPTURE_SETTING = "learning.capture"
ACTIONS = ("edited", "copied", "opened", "saved", "discarded", "picked")  # saved: to the server's Drafts


def capture_on(db: Database) -> bool:
    return bool(get_setting(db, CAPTURE_SETTING, True))


def set_capture(db: Database, on: bool) -> None:
    with write_transaction(db.conn):
        set_setting(db, CAPTURE_SETTING, bool(on))


def record_compose(db: Database, request, result, rules_event) -> list[int]:
    """Store the drafts of one finished compose operation (app.ops.compose); their ids, in order
    ([] when recording is off)."""
    shown = [
        DraftShown(text=c.draft.text, tags=list(c.tags), backend=c.backend, model=c.model)
        for c in result.drafts
        if c is not None
    ]
    return record_drafts(
        db,
        identity=request.sender,
        recipient=request.recipient,
        subject=request.subject,
        intent=request.intent,
        previous_email=request.previous_email,
        agent_rules=list(rules_event.agent_rules),
        scoped_rules=list(rules_event.scoped),
        rules=list(rules_event.rules),
        rules_source=rules_event.source,
        profile=rules_event.profile,
        shown=shown,
    )


@dataclass
class DraftShown:
    text: str
    tags: list[str] = field(default_factory=list)
    backend: str | None = None
    model: str | None = None


def record_drafts(db: Database, *, shown: list[DraftShown], **common) -> list[int]:
    """Store the drafts shown for one intent (one, or several candidates sharing a compose id)
    in one transaction; their ids ([] when recording is off). ``common``: identity, recipient,
    subject, intent, previous_email, agent_rules, scoped_rules, rules, rules_source, profile."""
    if not capture_on(db) or not shown:
        return []
    if common.get("identity"):  # addresses are compared lower-cased everywhere (matching, scoped rules)
        common["identity"] = common["identity"].strip().lower()
    ids: list[int] = []
    with write_transaction(db.conn):
        for one in shown:
            ids.append(
                store.insert_draft(
                    db,
                    **common,
                    backend=one.backend,
                    model=one.model,
                    tags=list(one.tags),
                    text=one.text,
                    compose_id=ids[0] if ids else None,
                )
            )
    return ids


def record_action(db: Database, draft_id: int, action: str, text: str | None = None) -> store.DraftRow | None:
    """Record what the user did with a draft; returns the draft after it (None when it was forgotten)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown draft action {action!r}: one of {', '.join(ACTIONS)}")
    with write_transaction(db.conn):
        d = store.draft(db, draft_id)
        if d is None:
            return None
        changed = text is not None and text.strip() != d.text.strip()
        if action == "picked":
            store.mark_picked(db, d.compose_id or d.id, d.id)
            store.add_event(db, draft_id, "picked")
        elif action == "discarded":
            store.add_event(db, draft_id, "discarded")
            if d.status != "sent":
                store.set_status(db, draft_id, "discarded")
        else:
            if changed:
                store.add_event(db, draft_id, "edited", text)
            if action != "edited":
                store.add_event(db, draft_id, action)
            if d.status != "sent":
                if changed and text is not None:
                    store.set_final(db, draft_id, text=text, source="edit", edit_distance=edit_distance(d.text, text))
                store.set_status(db, draft_id, action if action != "edited" or changed else d.status)
    return store.draft(db, draft_id)


def forget_drafts(db: Database, draft_ids: list[int], on_problem=None) -> int:
    """Forget drafts and what they taught: the rows, their history and matches; the scoped rules
    are relearned without them; an unfinished retrain's copies of their text are deleted; an agent
    that was retrained on them is marked to retrain without them. Returns how many were forgotten."""
    from app.learning import retrain
    from app.learning.loop import after_edit

    identities = set()
    forgotten = 0
    with write_transaction(db.conn):
        for draft_id in draft_ids:
            d = store.draft(db, draft_id)
            if d is None:
                continue
            if d.final_text is not None:
                retrain.mark_due(db, d.identity)
                identities.add(d.identity)
            forgotten += store.forget(db, draft_id)
    for identity in identities:
        retrain.forget_training_copies(identity)
    after_edit(db, background=False)
    for problem in store.forget_everywhere(db, draft_ids):
        if on_problem is not None:
            on_problem(problem)
    return forgotten
