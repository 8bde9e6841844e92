"""The distill_batches table: batch jobs submitted to a provider, until their results are collected."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlite_utils import Database

from app.clock import utc_now

OPEN_STATES = ("submitted", "running")


@dataclass(frozen=True)
class BatchRow:
    id: int
    backend: str
    provider: str
    model: str
    batch_id: str
    stage: str
    sender: str | None
    config: dict
    custom_ids: list[str]
    requests: int
    estimate: dict
    state: str
    provider_state: str | None
    counts: dict
    submitted_at: str
    checked_at: str | None
    collected_at: str | None
    error: str | None

    @classmethod
    def from_row(cls, row: dict) -> BatchRow:
        loads = lambda value, default: json.loads(value) if value else default  # noqa: E731
        return cls(
            **{
                **row,
                "config": loads(row["config"], {}),
                "custom_ids": loads(row["custom_ids"], []),
                "estimate": loads(row["estimate"], {}),
                "counts": loads(row["counts"], {}),
            }
        )


def add_batch(
    db: Database, *, backend, provider, model, batch_id, stage, sender, config: dict, custom_ids, estimate: dict
) -> int:
    with db.conn:
        table = db.table("distill_batches").insert(
            {
                "backend": backend,
                "provider": provider,
                "model": model,
                "batch_id": batch_id,
                "stage": stage,
                "sender": sender,
                "config": json.dumps(config, sort_keys=True),
                "custom_ids": json.dumps(list(custom_ids)),
                "requests": len(custom_ids),
                "estimate": json.dumps(estimate),
                "state": "submitted",
                "counts": "{}",
                "submitted_at": utc_now(),
            }
        )
    return table.last_pk


def update_batch(db: Database, row_id: int, **fields) -> None:
    for name in ("counts", "estimate"):
        if name in fields and not isinstance(fields[name], str):
            fields[name] = json.dumps(fields[name])
    with db.conn:
        db.table("distill_batches").update(row_id, {**fields, "checked_at": utc_now()})


def open_batches(db: Database, backend: str | None = None) -> list[BatchRow]:
    sql = "SELECT * FROM distill_batches WHERE state IN (?, ?)"
    params: list = list(OPEN_STATES)
    if backend:
        sql += " AND backend = ?"
        params.append(backend)
    return [BatchRow.from_row(dict(r)) for r in db.query(sql + " ORDER BY id", params)]


def all_batches(db: Database, limit: int = 50) -> list[BatchRow]:
    return [
        BatchRow.from_row(dict(r)) for r in db.query("SELECT * FROM distill_batches ORDER BY id DESC LIMIT ?", [limit])
    ]
