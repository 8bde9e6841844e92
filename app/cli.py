"""The ``tiller`` command line. Subcommands are thin: the work lives in the core modules."""

from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app import __version__, paths
from app.jobs import CancelToken

# Piped output (CI logs, `| less`) would otherwise be squeezed into rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True)


@click.group()
@click.version_option(__version__, prog_name="tiller")
def cli() -> None:
    """Tiller drafts email in your own style, on your own machine."""


@contextmanager
def cancel_on_ctrl_c():
    """First Ctrl-C asks the running job to stop at a safe point; a second one aborts at once."""
    token = CancelToken()
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum, frame):
        if token.cancelled:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        token.cancel()
        err_console.print("[yellow]Stopping after the current batch (Ctrl-C again to abort)…[/]")

    signal.signal(signal.SIGINT, handler)
    try:
        yield token
    finally:
        signal.signal(signal.SIGINT, previous)


def _open_db():
    from app.store import open_database

    return open_database()


# -- import ---------------------------------------------------------------------------------------


@cli.command("import")
@click.argument("path", type=click.Path(path_type=Path))
@click.option("--kind", type=click.Choice(["maildir", "mbox", "mbox-folder", "eml"]), help="Source type (detected when omitted).")
@click.option("--me", "my_addresses", multiple=True, metavar="ADDRESS", help="One of your addresses (repeatable). Inferred from Sent folders when omitted.")
@click.option("--show-skipped", default=20, show_default=True, help="How many skipped items to list by path and reason.")
def import_command(path: Path, kind: str | None, my_addresses: tuple[str, ...], show_skipped: int) -> None:
    """Import a mailbox: a Maildir tree, an mbox file, a folder of mbox files, or a folder of .eml files.

    Re-importing the same source adds nothing; an interrupted import resumes where it stopped.
    """
    from app.mail.sources import SourceError, open_source

    try:
        source = open_source(path, kind)
    except SourceError as exc:
        raise click.ClickException(str(exc)) from exc
    db = _open_db()
    result = run_import(db, source, my_addresses, show_skipped)
    if result.status != "completed":
        sys.exit(130)


def run_import(db, source, my_addresses=(), show_skipped: int = 20):
    from app.mail.importer import MailImport

    console.print(f"Importing [bold]{source.location}[/] ({source.kind}) into {paths.database_path()}")
    with cancel_on_ctrl_c() as token:
        job = MailImport(db, source, my_addresses=my_addresses, cancel=token)
        with Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>6.0f} msg/s"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as bar:
            task = bar.add_task("messages", total=None, rate=0.0)
            for progress in job.run():
                bar.update(task, completed=progress.done, total=progress.total, rate=progress.rate)
    print_import_summary(db, job.result, show_skipped)
    return job.result


def print_import_summary(db, result, show_skipped: int = 20) -> None:
    from app.mail.importer import skipped_items

    counts = result.counts
    table = Table(title=f"Import run {result.run_id}: {result.status}", show_header=False)
    table.add_row("seen", str(counts.seen))
    table.add_row("stored", str(counts.stored))
    table.add_row("duplicates", str(counts.duplicates))
    table.add_row("already imported", str(counts.already_imported))
    table.add_row("skipped", str(counts.skipped))
    for reason, n in counts.skip_reasons.most_common():
        table.add_row(f"  skipped: {reason}", str(n))
    table.add_row("stored with warnings", str(counts.warnings))
    rate = counts.seen / result.elapsed_s if result.elapsed_s else 0
    table.add_row("time", f"{result.elapsed_s:.1f} s ({rate:.0f} msg/s)")
    console.print(table)
    if not counts.adds_up():  # an internal error: never expected, but never hidden either
        err_console.print("[red]internal error: counts do not add up[/]")
    if show_skipped and counts.skipped:
        for location, key, reason, detail in skipped_items(db, result.run_id, limit=show_skipped):
            console.print(f"  [yellow]skipped[/] {os.path.join(location, key)}: {reason}: {detail}")
        if counts.skipped > show_skipped:
            console.print(f"  … and {counts.skipped - show_skipped} more: tiller imports {result.run_id}")
    if result.status == "cancelled":
        console.print("[yellow]Cancelled.[/] Everything counted above is saved; run the same command to resume.")
    print_identities(db)


def print_identities(db) -> None:
    from app.mail.summary import identity_summaries, totals

    rows = identity_summaries(db)
    t = totals(db)
    table = Table(title="Your identities (senders Tiller can learn)")
    table.add_column("address", no_wrap=True)
    table.add_column("origin")
    for col in ("sent", "trainable", "replies", "fwd-only", "first", "last"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        table.add_row(
            r.address, r.origin, str(r.messages), str(r.training_candidates), str(r.replies), str(r.pure_forwards),
            (r.first_date or "")[:10], (r.last_date or "")[:10],
        )
    console.print(table)
    console.print(
        f"{t['messages']} messages stored: {t['own']} written by you, {t['context']} kept as context; "
        f"{t['training_candidates']} training candidates."
    )
    if not rows:
        console.print("No identity found: tell Tiller your address with [bold]tiller identities add ADDRESS[/].")


@cli.command("imports")
@click.argument("run_id", required=False, type=int)
def imports_command(run_id: int | None) -> None:
    """List import runs, or show one run's skipped items with their reasons."""
    from app.mail.importer import skipped_items

    db = _open_db()
    if run_id is None:
        table = Table(title="Import runs")
        for col in ("run", "source", "status", "seen", "stored", "duplicates", "already", "skipped", "started"):
            table.add_column(col)
        for row in db.execute(
            "SELECT r.id, s.location, r.status, r.seen, r.stored, r.duplicates, r.already_imported, r.skipped, "
            "r.started_at FROM import_runs r JOIN sources s ON s.id = r.source_id ORDER BY r.id"
        ):
            table.add_row(*[str(v) for v in row])
        console.print(table)
        return
    items = skipped_items(db, run_id)
    if not items:
        console.print(f"Run {run_id} skipped nothing.")
    for location, key, reason, detail in items:
        console.print(f"{os.path.join(location, key)}: {reason}: {detail}")


@cli.group("identities", invoke_without_command=True)
@click.pass_context
def identities_group(ctx) -> None:
    """Your email addresses (the senders whose style Tiller learns)."""
    if ctx.invoked_subcommand is None:
        print_identities(_open_db())


@identities_group.command("add")
@click.argument("address")
def identities_add(address: str) -> None:
    """Mark ADDRESS as yours: its messages become training candidates."""
    from app.mail.identity import add_configured, assign_identities

    db = _open_db()
    try:
        with db.conn:
            add_configured(db, address)
            assign_identities(db)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    print_identities(db)


@identities_group.command("remove")
@click.argument("address")
def identities_remove(address: str) -> None:
    """ADDRESS is not yours (a delegate, a shared address): its mail becomes context only."""
    from app.mail.identity import reject

    db = _open_db()
    with db.conn:
        if not reject(db, address):
            raise click.ClickException(f"{address} is not among your identities (see: tiller identities)")
    print_identities(db)


# -- the main job on embedded defaults ------------------------------------------------------------


def find_sample_mail() -> Path | None:
    """The sample of real mail: ``$TILLER_SAMPLE_MAIL``, else ``shared/data/enron/maildir`` beside
    or above the working directory or this checkout (it is never shipped inside the package)."""
    override = os.environ.get("TILLER_SAMPLE_MAIL")
    if override:
        return Path(override)
    here = Path(__file__).resolve().parent.parent
    for base in (Path.cwd(), here):
        for parent in (base, *base.parents):
            for candidate in (parent / "shared/data/enron/maildir", parent / "../shared/data/enron/maildir"):
                if candidate.is_dir():
                    return candidate.resolve()
    return None


@cli.command("demo")
def demo_command() -> None:
    """Run the main job on the embedded defaults: import the sample of real mail and summarize it."""
    from app.mail.sources import open_source

    sample = find_sample_mail()
    if sample is None:
        raise click.ClickException(
            "sample mail not found: set TILLER_SAMPLE_MAIL to a Maildir folder (e.g. ../shared/data/enron/maildir)"
        )
    db = _open_db()
    result = run_import(db, open_source(sample), show_skipped=5)
    if result.status != "completed":
        sys.exit(130)


def main() -> None:
    cli(prog_name="tiller")


if __name__ == "__main__":
    main()
