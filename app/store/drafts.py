"""The drafts Tiller wrote, what the user did with each, the sent mail it became, and what was learned.

Tables (migration 7): ``drafts``, ``draft_events`` (every action, in order), ``refused_matches``
(a match the user undid), ``scoped_rules`` and ``retrains``. See app/learning/ for the logic.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from sqlite_utils import Database

from app.clock import utc_now


@dataclass
class DraftRow:
    id: int
    compose_id: int | None
    created_at: str
    identity: str | None
    recipient: str | None
    subject: str | None
    intent: str
    previous_email: str | None
    agent_rules: list[str]
    scoped_rules: list[str]
    rules: list[str]
    rules_source: str | None
    profile: str | None
    backend: str | None
    model: str | None
    tags: list[str]
    text: str
    status: str
    picked: bool
    final_text: str | None
    final_source: str | None
    final_at: str | None
    sent_message_id: int | None
    match_similarity: float | None
    edit_distance: float | None
    r3_rules: list[str]
    r3_source: str | None


_COLUMNS = (
    "id, compose_id, created_at, identity, recipient, subject, intent, previous_email, agent_rules, "
    "scoped_rules, rules, rules_source, profile, backend, model, tags, text, status, picked, final_text, "
    "final_source, final_at, sent_message_id, match_similarity, edit_distance, r3_rules, r3_source"
)
_JSON_FIELDS = ("agent_rules", "scoped_rules", "rules", "tags", "r3_rules")


def _draft(row) -> DraftRow:
    values = dict(zip([c.strip() for c in _COLUMNS.split(",")], row))
    for key in _JSON_FIELDS:
        values[key] = json.loads(values[key] or "[]")
    values["picked"] = bool(values["picked"])
    return DraftRow(**values)


def insert_draft(
    db: Database,
    *,
    identity: str | None,
    recipient: str | None,
    subject: str | None,
    intent: str,
    previous_email: str | None,
    agent_rules: list[str],
    scoped_rules: list[str],
    rules: list[str],
    rules_source: str | None,
    profile: str | None,
    backend: str | None,
    model: str | None,
    tags: list[str],
    text: str,
    compose_id: int | None = None,
    created_at: str | None = None,
) -> int:
    """Store one shown draft and its "shown" event; returns its id (its own compose id when none given)."""
    at = created_at or utc_now()
    cur = db.execute(
        "INSERT INTO drafts (compose_id, created_at, identity, recipient, subject, intent, previous_email, "
        "agent_rules, scoped_rules, rules, rules_source, profile, backend, model, tags, text, status, picked) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'shown', 0)",
        [
            compose_id,
            at,
            identity,
            recipient,
            subject,
            intent,
            previous_email,
            json.dumps(agent_rules),
            json.dumps(scoped_rules),
            json.dumps(rules),
            rules_source,
            profile,
            backend,
            model,
            json.dumps(tags),
            text,
        ],
    )
    draft_id = cur.lastrowid
    if compose_id is None:
        db.execute("UPDATE drafts SET compose_id = ? WHERE id = ?", [draft_id, draft_id])
    add_event(db, draft_id, "shown", at=at)
    return draft_id


def add_event(db: Database, draft_id: int, action: str, detail: str | None = None, *, at: str | None = None) -> None:
    db.execute(
        "INSERT INTO draft_events (draft_id, at, action, detail) VALUES (?, ?, ?, ?)",
        [draft_id, at or utc_now(), action, detail],
    )


def set_status(db: Database, draft_id: int, status: str) -> None:
    db.execute("UPDATE drafts SET status = ? WHERE id = ?", [status, draft_id])


def mark_picked(db: Database, compose_id: int, draft_id: int) -> None:
    db.execute("UPDATE drafts SET picked = (id = ?) WHERE compose_id = ?", [draft_id, compose_id])


def set_final(
    db: Database,
    draft_id: int,
    *,
    text: str,
    source: str,
    edit_distance: float,
    sent_message_id: int | None = None,
    similarity: float | None = None,
    at: str | None = None,
) -> None:
    db.execute(
        "UPDATE drafts SET final_text = ?, final_source = ?, final_at = ?, edit_distance = ?, "
        "sent_message_id = ?, match_similarity = ? WHERE id = ?",
        [text, source, at or utc_now(), edit_distance, sent_message_id, similarity, draft_id],
    )


def set_r3_rules(db: Database, draft_id: int, rules: list[str], source: str) -> None:
    db.execute("UPDATE drafts SET r3_rules = ?, r3_source = ? WHERE id = ?", [json.dumps(rules), source, draft_id])


def clear_final(db: Database, draft_id: int) -> None:
    db.execute(
        "UPDATE drafts SET final_text = NULL, final_source = NULL, final_at = NULL, edit_distance = NULL, "
        "sent_message_id = NULL, match_similarity = NULL WHERE id = ?",
        [draft_id],
    )


def last_edit(db: Database, draft_id: int) -> str | None:
    """The newest text the user edited this draft to (kept when a sent match is undone)."""
    row = db.execute(
        "SELECT detail FROM draft_events WHERE draft_id = ? AND action = 'edited' ORDER BY id DESC LIMIT 1",
        [draft_id],
    ).fetchone()
    return row[0] if row else None


def draft(db: Database, draft_id: int) -> DraftRow | None:
    row = db.execute(f"SELECT {_COLUMNS} FROM drafts WHERE id = ?", [draft_id]).fetchone()
    return _draft(row) if row else None


def drafts(db: Database, identity: str | None = None, limit: int | None = None) -> list[DraftRow]:
    """Newest first; ``identity`` None: every identity's."""
    sql = f"SELECT {_COLUMNS} FROM drafts"
    args: list = []
    if identity is not None:
        sql += " WHERE identity = ?"
        args.append(identity)
    sql += " ORDER BY created_at DESC, id DESC"
    if limit:
        sql += " LIMIT ?"
        args.append(limit)
    return [_draft(r) for r in db.execute(sql, args)]


def unmatched_drafts(db: Database, since: str) -> list[DraftRow]:
    return [
        _draft(r)
        for r in db.execute(
            f"SELECT {_COLUMNS} FROM drafts WHERE sent_message_id IS NULL AND created_at >= ? ORDER BY created_at",
            [since],
        )
    ]


def learning_pairs(db: Database, identity: str | None = None) -> list[DraftRow]:
    """Drafts with a final text (edited or sent), oldest first."""
    sql = f"SELECT {_COLUMNS} FROM drafts WHERE final_text IS NOT NULL"
    args: list = []
    if identity is not None:
        sql += " AND identity = ?"
        args.append(identity)
    return [_draft(r) for r in db.execute(sql + " ORDER BY COALESCE(final_at, created_at), id", args)]


def events(db: Database, draft_id: int) -> list[tuple[str, str, str | None]]:
    """(at, action, detail) in order."""
    return [
        tuple(r)
        for r in db.execute("SELECT at, action, detail FROM draft_events WHERE draft_id = ? ORDER BY id", [draft_id])
    ]


# -- matching sent mail ------------------------------------------------------------------------------


@dataclass
class SentCandidate:
    id: int
    date: str | None
    from_addr: str | None
    to_addrs: list[str]
    subject: str | None
    own_text: str


def sent_messages_of_run(db: Database, run_id: int, since: str | None) -> list[SentCandidate]:
    """Messages an import run stored dated ``since`` or later (the candidates for drafts sent since;
    all of them when ``since`` is None)."""
    rows = db.execute(
        "SELECT m.id, m.date, m.from_addr, m.to_addrs, m.cc_addrs, m.subject, m.own_text FROM source_items s "
        "JOIN messages m ON m.id = s.message_ref WHERE s.run_id = ? AND s.status = 'stored' AND (? IS NULL OR m.date >= ?) "
        # only what the user sent: a message in the Inbox "From" the user (forged, or a copy someone
        # bounced back) is not the sent version of a draft (issue 5/5 item 10)
        "AND m.is_sent_folder = 1",
        [run_id, since, since],
    )
    return [_candidate(r) for r in rows]


def _candidate(row) -> SentCandidate:
    mid, date, sender, to, cc, subject, own = row
    return SentCandidate(mid, date, sender, json.loads(to or "[]") + json.loads(cc or "[]"), subject, own or "")


def matched_message_ids(db: Database) -> set[int]:
    return {r[0] for r in db.execute("SELECT sent_message_id FROM drafts WHERE sent_message_id IS NOT NULL")}


def refused_pairs(db: Database) -> set[tuple[int, int]]:
    return {(d, m) for d, m in db.execute("SELECT draft_id, message_id FROM refused_matches")}


def refuse_match(db: Database, draft_id: int, message_id: int) -> None:
    db.execute(
        "INSERT OR IGNORE INTO refused_matches (draft_id, message_id, at) VALUES (?, ?, ?)",
        [draft_id, message_id, utc_now()],
    )


def own_texts_to(
    db: Database,
    sender: str | None,
    *,
    address: str | None = None,
    domain: str | None = None,
    before: str | None = None,
) -> list[str]:
    """The own text of the user's sent emails to one address, or to anyone at one domain (the
    emails a scoped rule is verified against); ``sender`` None: any identity's; ``before``: only
    emails dated earlier (a replay must not verify against the future)."""
    sql = "SELECT own_text, to_addrs FROM messages WHERE identity_id IS NOT NULL AND own_text != ''"
    args: list = []
    if before:
        sql += " AND date < ?"
        args.append(before)
    if sender:
        sql += " AND from_addr = ?"
        args.append(sender)
    if address:
        sql += " AND to_addrs LIKE ?"
        args.append(f'%"{address}"%')
    elif domain:
        sql += " AND to_addrs LIKE ?"
        args.append(f'%@{domain}"%')
    texts = []
    for text, to in db.execute(sql, args):
        to_list = [a.lower() for a in json.loads(to or "[]")]
        if address and address.lower() not in to_list:
            continue
        if domain and not any(a.endswith("@" + domain.lower()) for a in to_list):
            continue
        texts.append(text)
    return texts


# -- forgetting --------------------------------------------------------------------------------------


def forget(db: Database, draft_id: int) -> bool:
    """Remove a draft, its events and refused matches; True when there was one."""
    db.execute("DELETE FROM draft_events WHERE draft_id = ?", [draft_id])
    db.execute("DELETE FROM refused_matches WHERE draft_id = ?", [draft_id])
    return db.execute("DELETE FROM drafts WHERE id = ?", [draft_id]).rowcount > 0


def forget_everywhere(db: Database, draft_ids: list[int]) -> list[str]:
    """The forgotten drafts' text out of every place SQLite and Tiller keep it: the live file's
    freed pages and write-ahead log (secure_delete is on for every connection; the log is
    checkpointed and truncated) and the backup and set-aside copies of the database. Returns the
    copies that could not be cleaned (the caller says so)."""
    from app.store.backup import forget_in_copies

    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def forget_rows(conn) -> None:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        for draft_id in draft_ids:
            for table, column in (("draft_events", "draft_id"), ("refused_matches", "draft_id"), ("drafts", "id")):
                if table in tables:
                    conn.execute(f"DELETE FROM {table} WHERE {column} = ?", [draft_id])

    path = _db_file(db)
    return forget_in_copies(path, forget_rows) if path is not None else []


def _db_file(db: Database):
    from pathlib import Path

    row = db.execute("PRAGMA database_list").fetchone()
    return Path(row[2]) if row and row[2] else None


def draft_ids(db: Database, identity: str | None = None) -> list[int]:
    if identity is None:
        return [r[0] for r in db.execute("SELECT id FROM drafts")]
    return [r[0] for r in db.execute("SELECT id FROM drafts WHERE identity = ?", [identity])]


# -- scoped rules ------------------------------------------------------------------------------------


@dataclass
class ScopedRuleRow:
    identity: str | None
    scope: str
    scope_value: str
    aspect: str
    rule: str
    evidence: list[int]
    verified_on: int
    verified_kept: int


def replace_scoped_rules(db: Database, rows: list[ScopedRuleRow]) -> None:
    db.execute("DELETE FROM scoped_rules")
    now = utc_now()
    for r in rows:
        db.execute(
            "INSERT INTO scoped_rules (identity, scope, scope_value, aspect, rule, evidence, verified_on, "
            "verified_kept, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                r.identity,
                r.scope,
                r.scope_value,
                r.aspect,
                r.rule,
                json.dumps(r.evidence),
                r.verified_on,
                r.verified_kept,
                now,
            ],
        )


def scoped_rules(db: Database, identity: str | None = None, *, any_identity: bool = True) -> list[ScopedRuleRow]:
    """Every scoped rule, or one identity's (with the rules learned across identities when ``any_identity``)."""
    sql = "SELECT identity, scope, scope_value, aspect, rule, evidence, verified_on, verified_kept FROM scoped_rules"
    args: list = []
    if identity is not None:
        sql += " WHERE identity = ?" + (" OR identity IS NULL" if any_identity else "")
        args.append(identity)
    rows = db.execute(sql + " ORDER BY scope, scope_value, aspect", args)
    return [ScopedRuleRow(i, s, v, a, r, json.loads(e or "[]"), on, kept) for i, s, v, a, r, e, on, kept in rows]


# -- retraining --------------------------------------------------------------------------------------


@dataclass
class RetrainRow:
    id: int
    profile: str
    started_at: str
    finished_at: str | None
    pairs: int
    held_out: int
    old_score: float | None
    new_score: float | None
    decision: str
    note: str | None


def start_retrain(db: Database, profile: str, pairs: int, held_out: int) -> int:
    return db.execute(
        "INSERT INTO retrains (profile, started_at, pairs, held_out, decision) VALUES (?, ?, ?, ?, 'running')",
        [profile, utc_now(), pairs, held_out],
    ).lastrowid


def fail_stale_retrains(db: Database, profile: str) -> int:
    """Rows still "running" from a retrain that was killed (the caller holds the retrain lock)."""
    return db.execute(
        "UPDATE retrains SET decision = 'failed', finished_at = ?, note = 'stopped before it finished' "
        "WHERE profile = ? AND decision = 'running'",
        [utc_now(), profile],
    ).rowcount


def finish_retrain(
    db: Database, retrain_id: int, decision: str, *, old_score: float | None, new_score: float | None, note: str
) -> None:
    db.execute(
        "UPDATE retrains SET finished_at = ?, decision = ?, old_score = ?, new_score = ?, note = ? WHERE id = ?",
        [utc_now(), decision, old_score, new_score, note, retrain_id],
    )


def retrains(db: Database, profile: str | None = None) -> list[RetrainRow]:
    sql = "SELECT id, profile, started_at, finished_at, pairs, held_out, old_score, new_score, decision, note FROM retrains"
    args: list = []
    if profile is not None:
        sql += " WHERE profile = ?"
        args.append(profile)
    return [RetrainRow(*r) for r in db.execute(sql + " ORDER BY id DESC", args)]


def pairs_at_last_retrain(db: Database, profile: str) -> int:
    """How many pairs the newest finished retrain of ``profile`` saw (0 when none)."""
    row = db.execute(
        "SELECT pairs FROM retrains WHERE profile = ? AND decision IN ('kept_new', 'kept_old') ORDER BY id DESC LIMIT 1",
        [profile],
    ).fetchone()
    return row[0] if row else 0


def oldest_unmatched_draft(db: Database) -> str | None:
    """When the oldest draft not matched to sent mail was written (None: every draft is matched)."""
    return db.execute("SELECT MIN(created_at) FROM drafts WHERE sent_message_id IS NULL").fetchone()[0]


def weekly_edit_distance(db: Database, identity: str | None = None) -> list[tuple[str, int, float]]:
    """(ISO week "2026-W49", pairs, mean edit distance) for drafts with a final text, oldest first."""
    sql = "SELECT created_at, edit_distance FROM drafts WHERE edit_distance IS NOT NULL"
    args: list = []
    if identity is not None:
        sql += " AND identity = ?"
        args.append(identity)
    weeks: dict[str, list[float]] = {}
    for created, distance in db.execute(sql, args):
        year, week, _ = dt.datetime.fromisoformat(created).isocalendar()
        weeks.setdefault(f"{year}-W{week:02d}", []).append(distance)
    return [(w, len(v), sum(v) / len(v)) for w, v in sorted(weeks.items())]


def compose_group(db: Database, compose_id: int) -> list[DraftRow]:
    """The drafts shown together for one intent (the candidates of one "give me 3 drafts")."""
    return [
        _draft(r) for r in db.execute(f"SELECT {_COLUMNS} FROM drafts WHERE compose_id = ? ORDER BY id", [compose_id])
    ]
