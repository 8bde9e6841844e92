"""``tiller distill --batch`` and ``--status``: the batch chain (agent_training/batch_distill.py)
as the user sees it: the estimate and a confirmation before anything is sent, one line per batch
event, a table of the batches, and the datasets once every stage is stored."""

from __future__ import annotations

import sys
from dataclasses import replace

import click
from rich.table import Table

from agent_training.batch_distill import BatchDistillation, BatchEvent
from agent_training.distill import ConsentRequired, DistillConfig
from app.backends.batch import BatchUnsupported
from app.backends.errors import BackendError, ConfigError
from app.cli.common import console, on_ctrl_c
from app.console_text import cells, esc
from app.errors import EXIT_CANCELLED
from app.jobs import CancelToken
from app.store import batches as batch_store


def show_event(event: BatchEvent) -> None:
    counts = ", ".join(f"{k} {v}" for k, v in (event.counts or {}).items() if v)
    what = f"{event.stage} batch {event.batch_id}: " if event.batch_id else ""
    style = {"failed": "red", "retrying": "yellow"}.get(event.kind, "")
    line = f"{event.kind}: {what}{event.message}" + (f" ({counts})" if counts else "")
    console.print(esc(line), style=style or None)


def chains(db, config: DistillConfig, status: bool = False) -> list[DistillConfig]:
    """The distillations to look at: for ``--batch``, ``config`` itself; for ``--status``, one per
    (backend, selection) among the open batches (of ``config.backend`` when it names one), so a
    status check never starts a distillation of its own."""
    if config.backend and not status:
        return [config]
    found = {}
    for row in batch_store.open_batches(db, config.backend):
        chain = dict(row.config, strategies=tuple(row.config.get("strategies") or ("R3",)))
        found[(row.backend, repr(sorted(chain.items())))] = replace(config, backend=row.backend, **chain)
    return list(found.values())


def batch_table(db) -> Table:
    table = Table(title="Distillation batches")
    for col in ("backend", "stage", "batch", "requests", "state", "outcome", "submitted"):
        table.add_column(col)
    for row in reversed(batch_store.all_batches(db, limit=20)):
        counts = ", ".join(f"{k} {v}" for k, v in row.counts.items() if v)
        table.add_row(
            *cells(row.backend, row.stage, row.batch_id, row.requests, row.state, counts, row.submitted_at[:16])
        )
    return table


def batch_distill(db, config: DistillConfig, *, status: bool, wait: bool, poll_s: float, yes: bool, out_dir) -> None:
    from agent_training.export_report import export_datasets

    if not status and not config.backend:
        raise click.UsageError("--batch needs --backend NAME (a cloud backend)")
    todo = chains(db, config, status)
    if status and not todo:
        console.print("No distillation batch is open.")
        console.print(batch_table(db))
        return
    token = CancelToken()
    restore = on_ctrl_c(token, "Stopping the wait (the batches go on at the provider)")
    try:
        for chain_config in todo:
            try:
                job = BatchDistillation(db, chain_config)
                if not status and not job.open_batches():
                    _submit_first(job, yes)
                elif not wait:
                    for event in job.check():
                        show_event(event)
                if wait:
                    console.print(
                        f"Waiting for {esc(job.endpoint.name)} (checking every {poll_s:.0f} s; Ctrl-C stops waiting)"
                    )
                    job.run_until_done(poll_s, token, show_event)
                if job.done():
                    for _ in job.finish():
                        pass
                    console.print(f"Every stage is stored for {esc(job.endpoint.name)}; writing the datasets.")
                    export_datasets(db, chain_config, out_dir)
                elif not token.cancelled:
                    console.print("Check again later with: tiller distill --status (the app can be closed meanwhile)")
            except (ConsentRequired, ConfigError, BatchUnsupported, ValueError) as exc:
                raise click.ClickException(str(exc)) from None
            except BackendError as exc:
                raise click.ClickException(
                    f"{exc} (the batch ids are kept: tiller distill --status tries again)"
                ) from None
    finally:
        restore()
    console.print(batch_table(db))
    if token.cancelled:
        console.print(
            "[yellow]Stopped waiting.[/] The batches go on at the provider: tiller distill --status collects them."
        )
        sys.exit(EXIT_CANCELLED)


def _submit_first(job: BatchDistillation, yes: bool) -> None:
    nxt = job.next_stage()
    if nxt is None:
        return  # every stage is stored already: the caller finishes
    stage, jobs, _ = nxt
    estimate = job.estimate(stage, jobs)
    console.print(f"Batch distillation through {esc(job.endpoint.name)} ({esc(job.model)}), one batch per stage:")
    for line in estimate.lines():
        console.print("  " + esc(line))
    console.print(
        "  Your sent mail goes to the provider's batch service and stays there until the batch is collected "
        "or expires (their retention rules apply); every upload is in the privacy ledger (tiller ledger)."
    )
    if not yes:
        if not sys.stdin.isatty():
            raise click.ClickException("add --yes to submit without being asked (no terminal to ask on)")
        if not click.confirm("Submit the first stage now?", default=False):
            raise click.ClickException("nothing was sent")
    show_event(job.submit(stage, jobs, estimate))
