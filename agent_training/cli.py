"""``python -m agent_training``: the training-side commands. ``tiller distill`` (and later
``tiller train``/``eval``) start this as a separate process, so the app never imports it."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from app.jobs import CancelToken

console = Console(width=None if sys.stdout.isatty() else 120)


@click.group()
def cli() -> None:
    """Tiller's training side: distillation, datasets (fine-tuning and evaluation follow)."""


@cli.command("distill")
@click.option("--backend", help="Large model that extracts intents and rules (a configured backend name).")
@click.option("--offline", is_flag=True, help="Keep everything on this computer: extractive intents and measured style rules.")
@click.option("--limit", type=int, help="Only the first N messages of each sender (quick runs).")
@click.option("--sender", help="Only this identity's messages (an address from `tiller identities`).")
@click.option("--strategy", "strategies", multiple=True, type=click.Choice(["R1", "R2", "R3"]), help="Rule strategy (repeatable; default R3).")
@click.option("--all-intent-variants", is_flag=True, help="Extract all three intent variants (0.7/1.0/1.2) instead of one sampled per message.")
@click.option("--concurrency", default=4, show_default=True, help="Parallel requests to a cloud backend.")
@click.option("--seed", default=0, show_default=True)
@click.option("--i-consent-to-send-sent-mail", "consent_now", is_flag=True, help="Allow sending your sent mail to --backend (recorded for that backend).")
@click.option("--out", "out_dir", type=click.Path(path_type=Path), help="Dataset folder (default: <data>/datasets/<sender>/<strategy>).")
def distill_command(backend, offline, limit, sender, strategies, all_intent_variants, concurrency, seed, consent_now, out_dir) -> None:
    """Turn your sent mail into the agent's training data: intents, zero-shot baselines, rules, datasets.

    Reruns skip finished rows; Ctrl-C stops cleanly and the next run resumes.
    """
    from app.backends.errors import BackendError, ConfigError
    from app.store import open_database
    from agent_training.dataset import export
    from agent_training.distill import ConsentRequired, DistillConfig, Distillation, MEASURED_SOURCE
    from agent_training.rules import MEASURED

    if offline and backend:
        raise click.UsageError("--offline and --backend exclude each other")
    db = open_database()
    strategies = tuple(strategies) or ("R3",)
    config = DistillConfig(backend=None if offline else backend, sender=sender, limit=limit, strategies=strategies,
                           all_intent_variants=all_intent_variants, concurrency=concurrency, seed=seed,
                           consent_given_now=consent_now)
    token = CancelToken()
    previous = signal.signal(signal.SIGINT, lambda *_: (token.cancel(), console.print("[yellow]Stopping after the requests in flight…[/]")))
    try:
        job = Distillation(db, config, cancel=token)
    except (ConsentRequired, ConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    where = f"through {backend}" if config.backend else "on this computer (offline)"
    console.print(f"Distilling {where}" + (f", first {limit} per sender" if limit else ""))
    try:
        with Progress(TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TimeRemainingColumn(), console=console) as bar:
            tasks = {}
            for p in job.run():
                if p.message not in tasks:
                    tasks[p.message] = bar.add_task(p.message, total=p.total)
                bar.update(tasks[p.message], completed=p.done, total=p.total)
    except BackendError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    c = job.counts
    console.print(f"intents {c.intents}, baselines {c.baselines}, rules {c.rules}, measured {c.measured}; "
                  f"already done {c.skipped_done}; failed {c.failed}")
    for failure in c.failures[:10]:
        console.print(f"  [yellow]failed[/] {failure}")
    if token.cancelled:
        console.print("[yellow]Cancelled.[/] Finished rows are saved; rerun the same command to resume.")
        sys.exit(130)
    if config.backend:
        export_strategies = [(s, None) for s in strategies]
    else:
        export_strategies = [(MEASURED, MEASURED_SOURCE)]
    for strategy, source in export_strategies:
        stats = export(db, strategy=strategy, sender=sender, out_dir=out_dir, rules_source=source)
        table = Table(title=f"Dataset ({strategy}): {stats['directory']}")
        for col in ("sender", "train", "test", "train dates", "test dates"):
            table.add_column(col)
        for s, v in stats["per_sender"].items():
            table.add_row(s, str(v["train"]), str(v["test"]), f"{(v['first_train'] or '')[:10]} … {(v['last_train'] or '')[:10]}",
                          f"{(v['first_test'] or '')[:10]} … {(v['last_test'] or '')[:10]}")
        console.print(table)
        console.print(f"{stats['examples']} examples; mean words: intent {stats['mean_intent_words']}, rules "
                      f"{stats['mean_rules_words']}, email {stats['mean_email_words']}; undated left out: {stats['undated_excluded']}")


def main() -> None:
    cli(prog_name="python -m agent_training")
