"""Typed queries over the distilled rows (intents, zero-shot baselines, rules) that the
distillation writes and the dataset, evaluation and reproduction read.

Every row records where it came from (``Provenance``): a rerun of a stage skips what is already
``ok`` for the same source (backend|model|prompt), and an upsert replaces a failed or outdated row
in place, so one message never holds two rows of the same kind from one source.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

from sqlite_utils import Database

from app.clock import utc_now


@dataclass(frozen=True)
class Provenance:
    """Who produced a row and how it went: stored beside every intent, baseline and rule set."""

    ok: bool
    backend: str
    model: str | None
    prompt_version: str
    source: str
    raw: str | None
    error: str | None
    attempts: int
    temperature: float | None = None

    @property
    def status(self) -> str:
        return "ok" if self.ok else "failed"


@dataclass(frozen=True)
class IntentRow:
    message_id: int
    id: int
    text: str
    variant: int


@dataclass(frozen=True)
class BaselineRow:
    intent_id: int
    id: int
    text: str


@dataclass(frozen=True)
class RulesRow:
    message_id: int
    intent_id: int | None
    rules: str


def _provenance_columns(how: Provenance) -> list:
    """status, backend, model, prompt_version, temperature, source, raw, error, attempts, created_at:
    the columns every distilled table ends with, in that order."""
    return [
        how.status,
        how.backend,
        how.model,
        how.prompt_version,
        how.temperature,
        how.source,
        how.raw,
        how.error,
        how.attempts,
        utc_now(),
    ]


def _marks(values) -> str:
    return ",".join("?" * len(values))


# -- what is done ----------------------------------------------------------------------------------


def _finished(with_failed: bool) -> str:
    # a failed row is asked again on the next run, unless the caller wants the run repeatable
    return "status IN ('ok', 'failed')" if with_failed else "status = 'ok'"


def intents_done(db: Database, source: str, with_failed: bool = False) -> set[tuple[int, int]]:
    """(message id, variant) of every ok (or, ``with_failed``, failed) intent from ``source``."""
    return {
        (r[0], r[1])
        for r in db.execute(
            f"SELECT message_id, variant FROM intents WHERE source = ? AND {_finished(with_failed)}", [source]
        )
    }


def baselines_done(db: Database, source: str, with_failed: bool = False) -> set[int]:
    """Intent ids with an ok (or failed) baseline from ``source``."""
    return {
        r[0]
        for r in db.execute(f"SELECT intent_id FROM baselines WHERE source = ? AND {_finished(with_failed)}", [source])
    }


def plain_rewrites_done(db: Database, source: str, with_failed: bool = False) -> set[int]:
    """Message ids with an ok (or failed) plain rewrite from ``source``."""
    sql = f"SELECT message_id FROM plain_rewrites WHERE source = ? AND {_finished(with_failed)}"
    return {r[0] for r in db.execute(sql, [source])}


def rules_done(
    db: Database, source: str, strategy: str | None = None, with_failed: bool = False
) -> set[tuple[int, int | None, int | None]]:
    """(message id, intent id, baseline id) of every ok (or failed) rule set from ``source`` (of ``strategy``)."""
    sql = f"SELECT message_id, intent_id, baseline_id FROM rules WHERE source = ? AND {_finished(with_failed)}"
    args: list = [source]
    if strategy is not None:
        sql += " AND strategy = ?"
        args.append(strategy)
    return {(r[0], r[1], r[2]) for r in db.execute(sql, args)}


# -- reads -----------------------------------------------------------------------------------------


def intents_of(db: Database, source: str, message_ids: list[int]) -> list[IntentRow]:
    """The ok intents from ``source`` of these messages, oldest row first."""
    if not message_ids:
        return []
    rows = db.execute(
        f"SELECT message_id, id, text, variant FROM intents WHERE status = 'ok' AND source = ? "
        f"AND message_id IN ({_marks(message_ids)}) ORDER BY id",
        [source, *message_ids],
    ).fetchall()
    return [IntentRow(*r) for r in rows]


def _newest_ok(db: Database, table: str, key: str, columns: str, keys: list[int]) -> dict[int, tuple]:
    """key -> (key, *columns) of its newest ok row in ``table`` (the last when several sources answered)."""
    out: dict[int, tuple] = {}
    # in pieces: a whole mailbox's ids (the voice stage's emails said plainly) can pass this SQLite's
    # limit on bound parameters (32,766 in most builds, 999 in old ones, 250,000 in Debian's)
    size = db.conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    for start in range(0, len(keys), size):
        piece = keys[start : start + size]
        rows = db.execute(
            f"SELECT {key}, {columns} FROM {table} WHERE status = 'ok' AND {key} IN ({_marks(piece)}) ORDER BY id",
            piece,
        ).fetchall()
        out.update((r[0], tuple(r)) for r in rows)
    return out


def baselines_of(db: Database, intent_ids: list[int]) -> dict[int, BaselineRow]:
    """intent id -> its ok baseline (the newest row when several sources answered)."""
    return {k: BaselineRow(*r) for k, r in _newest_ok(db, "baselines", "intent_id", "id, text", intent_ids).items()}


def plain_rewrites_of(db: Database, message_ids: list[int]) -> dict[int, str]:
    """message id -> its ok plain rewrite (the newest row when several sources answered)."""
    return {k: r[1] for k, r in _newest_ok(db, "plain_rewrites", "message_id", "text", message_ids).items()}


def rules_by_message(db: Database, strategy: str, source: str) -> list[RulesRow]:
    """Every ok rule set of ``strategy`` from ``source``."""
    rows = db.execute(
        "SELECT message_id, intent_id, rules FROM rules WHERE strategy = ? AND source = ? AND status = 'ok'",
        [strategy, source],
    ).fetchall()
    return [RulesRow(*r) for r in rows]


# -- writes (upserts: a rerun replaces a failed or outdated row) ------------------------------------


def save_intent(
    db: Database, message_id: int, variant: int, text: str | None, scratchpad: str | None, how: Provenance
) -> None:
    db.execute(
        "INSERT INTO intents (message_id, variant, text, scratchpad, status, backend, model, prompt_version, temperature,"
        " source, raw, error, attempts, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(message_id, variant, source) DO UPDATE SET text=excluded.text, scratchpad=excluded.scratchpad,"
        " status=excluded.status, model=excluded.model, raw=excluded.raw, error=excluded.error,"
        " attempts=excluded.attempts, created_at=excluded.created_at",
        [
            message_id,
            variant,
            text,
            scratchpad,
            *_provenance_columns(how),
        ],
    )


def save_baseline(db: Database, intent_id: int, text: str | None, how: Provenance) -> None:
    db.execute(
        "INSERT INTO baselines (intent_id, text, status, backend, model, prompt_version, temperature, source, raw,"
        " error, attempts, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(intent_id, source) DO UPDATE SET text=excluded.text, status=excluded.status,"
        " model=excluded.model, raw=excluded.raw, error=excluded.error, attempts=excluded.attempts,"
        " created_at=excluded.created_at",
        [
            intent_id,
            text,
            *_provenance_columns(how),
        ],
    )


def save_plain_rewrite(db: Database, message_id: int, text: str | None, how: Provenance) -> None:
    db.execute(
        "INSERT INTO plain_rewrites (message_id, text, status, backend, model, prompt_version, temperature, source,"
        " raw, error, attempts, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(message_id, source) DO UPDATE SET text=excluded.text, status=excluded.status,"
        " model=excluded.model, raw=excluded.raw, error=excluded.error, attempts=excluded.attempts,"
        " created_at=excluded.created_at",
        [message_id, text, *_provenance_columns(how)],
    )


def save_rules(
    db: Database,
    message_id: int,
    intent_id: int | None,
    baseline_id: int | None,
    strategy: str,
    rules: str | None,
    thinking: str | None,
    dropped_json: str,
    how: Provenance,
) -> None:
    db.execute(
        "INSERT INTO rules (message_id, intent_id, baseline_id, strategy, rules, thinking, dropped, status, backend, model,"
        " prompt_version, temperature, source, raw, error, attempts, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(message_id, intent_id, strategy, source) DO UPDATE SET baseline_id=excluded.baseline_id,"
        " rules=excluded.rules, thinking=excluded.thinking, dropped=excluded.dropped, status=excluded.status,"
        " model=excluded.model, raw=excluded.raw, error=excluded.error, attempts=excluded.attempts,"
        " created_at=excluded.created_at",
        [
            message_id,
            intent_id,
            baseline_id,
            strategy,
            rules,
            thinking,
            dropped_json,
            *_provenance_columns(how),
        ],
    )


@dataclass(frozen=True)
class DistilledExample:
    """One message with an ok intent and ok rules of one strategy: a training or evaluation example."""

    message_id: int
    sender: str
    date: str | None
    to_addrs: str | None
    subject: str | None
    previous_context: str | None
    own_text: str
    intent: str
    rules: str
    rules_backend: str
    rules_model: str | None
    rules_prompt: str
    rules_source: str
    intent_source: str
    intent_temperature: float | None
    intent_variant: int
    intent_id: int


def distilled_examples(
    db: Database, strategy: str, rules_source: str | None = None, sender: str | None = None
) -> list[DistilledExample]:
    """Every message with an ok intent and ok rules of ``strategy`` (optionally from one source, of
    one sender), by sender, date and id."""
    where = "r.status = 'ok' AND r.strategy = ? AND i.status = 'ok'"
    args: list = [strategy]
    if rules_source:
        where += " AND r.source = ?"
        args.append(rules_source)
    if sender:
        where += " AND m.from_addr = ?"
        args.append(sender.lower())
    rows = db.execute(
        f"SELECT m.id, m.from_addr, m.date, m.to_addrs, m.subject, m.previous_context, m.own_text, i.text, r.rules,"
        f" r.backend, r.model, r.prompt_version, r.source, i.source, i.temperature, i.variant, r.intent_id"
        f" FROM rules r JOIN intents i ON i.id = r.intent_id JOIN messages m ON m.id = r.message_id"
        f" WHERE {where} ORDER BY m.from_addr, m.date, m.id",
        args,
    ).fetchall()
    return [DistilledExample(*r) for r in rows]


def drop_distilled(conn, message_id: int) -> int:
    """Delete every row distilled from one message (its rules, and its intents with their baselines
    and rules); how many rows went."""
    dropped = conn.execute("DELETE FROM rules WHERE message_id = ?", [message_id]).rowcount
    intent_ids = [r[0] for r in conn.execute("SELECT id FROM intents WHERE message_id = ?", [message_id])]
    if intent_ids:
        marks = _marks(intent_ids)
        dropped += conn.execute(f"DELETE FROM rules WHERE intent_id IN ({marks})", intent_ids).rowcount
        dropped += conn.execute(f"DELETE FROM baselines WHERE intent_id IN ({marks})", intent_ids).rowcount
        dropped += conn.execute(f"DELETE FROM intents WHERE id IN ({marks})", intent_ids).rowcount
    return dropped
