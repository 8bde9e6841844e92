"""What happens after an import or an edit: match sent mail, relearn the scoped rules."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlite_utils import Database

from app.learning import matching, retrain, scoped
from app.store import drafts as store


@dataclass
class LoopReport:
    matched: list[tuple[int, int, float]] = field(default_factory=list)
    scoped_rules: int | None = None  # None: not relearned
    retraining: list[str] = field(default_factory=list)  # profiles a background retrain started for
    replaced_edits: list[int] = field(default_factory=list)  # drafts whose edit a matched sent email replaced


def after_import(db: Database, run_id: int) -> LoopReport:
    """Match what an import run stored to open drafts, then relearn when anything matched."""
    report = LoopReport()
    oldest = store.oldest_unmatched_draft(db)
    if oldest is None:  # the usual case: a first import holds nothing to match
        return report
    # only mail dated after the oldest open draft can be one (not the years of mail a first import
    # brings); a date that does not parse bounds nothing
    oldest_date = matching.parse_date(oldest)
    since = (oldest_date - matching.CLOCK_SKEW).isoformat(timespec="seconds") if oldest_date else None
    with db.atomic():
        matches = matching.match_sent_mail(db, store.sent_messages_of_run(db, run_id, since))
    report.matched, report.replaced_edits = matches.matched, matches.replaced_edits
    if report.matched:
        report.scoped_rules = len(scoped.learn(db).rules)
        teach_selector(db, [draft_id for draft_id, _, _ in report.matched])
        identities = {d.identity for d in map(lambda m: store.draft(db, m[0]), report.matched) if d is not None}
        report.retraining = maybe_retrain(db, identities)
    return report


def after_edit(db: Database, identity: str | None = None, *, background: bool = True) -> LoopReport:
    """Relearn the scoped rules after the user edited (or forgot) drafts; start a background
    retrain of ``identity``'s agent when one is due."""
    report = LoopReport(scoped_rules=len(scoped.learn(db).rules))
    if background:
        report.retraining = maybe_retrain(db, {identity})
    return report


def undo_matches(db: Database, draft_ids: list[int]) -> int:
    """The user says these drafts were not sent as the mail matched to them: undo the matches (one
    transaction) and relearn; how many were undone."""
    from app.store.db import write_transaction

    with write_transaction(db.conn):
        undone = sum(matching.undo_match(db, draft_id) for draft_id in draft_ids)
    if undone:
        after_edit(db, background=False)
    return undone


def maybe_retrain(db: Database, identities) -> list[str]:
    """Start the retrains that are due; the profiles started. A retrain that cannot start (no
    trainer Python in a desktop bundle) is logged (app/logs.py; the desktop app shows it in its status
    bar), never raised: the edit is already learned."""
    from app import logs

    started = []
    for identity in identities:
        try:
            if retrain.start_background(db, identity) is not None:
                started.append(retrain.profile_key(identity))
        except (OSError, RuntimeError) as exc:
            logs.get("learning").warning("retrain of %s not started: %s", retrain.profile_key(identity), exc)
    return started


def teach_selector(db: Database, draft_ids: list[int]) -> int:
    """A sent draft that was one of several candidates the user did not rank in the app is the
    user's pick after all: it teaches the PREMIUM tag selector (as a pick of one). The selector
    needs torch (the ``train`` extra); without it nothing is taught."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:  # the bare core: no text encoder to teach
        return 0
    from app.ranking.selector import learn_ranking, load_selector

    taught = 0
    for draft_id in draft_ids:
        sent = store.draft(db, draft_id)
        if sent is None:  # forgotten meanwhile
            continue
        group = store.compose_group(db, sent.compose_id) if sent.compose_id else []
        if len(group) < 2 or any(d.picked for d in group) or not all(d.tags for d in group):
            continue
        ranked = [tuple(sent.tags)] + [tuple(d.tags) for d in group if d.id != sent.id]
        learn_ranking(load_selector(sent.identity), sent.identity, sent.intent, ranked, best_only=True)
        taught += 1
    return taught
