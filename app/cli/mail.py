"""``tiller import``, ``imports`` and ``identities``: reading mailboxes in, and who you are."""

from __future__ import annotations

import sys

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app import paths
from app.cli.common import _open_db, cancel_on_ctrl_c, cli, console, err_console
from app.console_text import cells, esc
from app.errors import EXIT_CANCELLED

# -- import ---------------------------------------------------------------------------------------


@cli.command("import")
@click.argument("path")
@click.option(
    "--kind", type=click.Choice(["maildir", "mbox", "mbox-folder", "eml"]), help="Source type (detected when omitted)."
)
@click.option(
    "--me",
    "my_addresses",
    multiple=True,
    metavar="ADDRESS",
    help="One of your addresses (repeatable). Inferred from Sent folders when omitted.",
)
@click.option(
    "--show-skipped", default=20, show_default=True, help="How many skipped items to list by path and reason."
)
def import_command(path: str, kind: str | None, my_addresses: tuple[str, ...], show_skipped: int) -> None:
    """Import a mailbox: a Maildir tree, an mbox file, a folder of mbox files, a folder of .eml
    files, or imap:NAME, the Sent folder of a mail account (see: tiller accounts add).

    Re-importing the same source adds nothing (from IMAP it fetches only what is new); an
    interrupted import resumes where it stopped.
    """
    from app.mail.identity import normalize_address
    from app.mail.sources import SourceError, open_source

    if not path.strip():
        raise click.UsageError("PATH is empty: name the mailbox folder or file (use . for this folder)")
    try:
        my_addresses = tuple(normalize_address(a) for a in my_addresses)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--me") from None

    if path.startswith("imap:"):
        db = _open_db()
        source = _imap_source(db, path.removeprefix("imap:"))
    else:
        try:
            source = open_source(path, kind)
        except SourceError as exc:
            raise click.ClickException(str(exc)) from exc
        db = _open_db()
    result = run_import(db, source, my_addresses, show_skipped)
    if result.status != "completed":
        sys.exit(EXIT_CANCELLED)
    if result.counts.seen == 0 and source.kind != "imap":  # an IMAP account with nothing new is fine
        raise click.ClickException(
            f"{path}: no {source.kind} messages found there, so nothing was imported "
            "(is it the mailbox folder or file, and the right --kind?)"
        )


def _imap_source(db, name: str):
    """The account's source, logged in and planned (nothing is written when that fails)."""
    from app.mail.accounts import AccountError, imap_source
    from app.mail.imap import ImapError

    try:
        source = imap_source(db, name)
    except (ImapError, AccountError) as exc:
        raise click.ClickException(str(exc)) from None
    for risk in source.account.unsafe:
        err_console.print(f"[red]Unsafe:[/] {esc(risk)}.")
    return source


def run_import(db, source, my_addresses=(), show_skipped: int = 20):
    from app.ops.imports import ImportOperation

    console.print(f"Importing [bold]{esc(source.location)}[/] ({source.kind}) into {esc(paths.database_path())}")
    with cancel_on_ctrl_c() as token:
        job = ImportOperation(db, source, my_addresses=my_addresses, cancel=token)
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
            told_waiting = False
            for progress in job.run():
                if progress.message.startswith("waiting for another import") and not told_waiting:
                    err_console.print(
                        f"[yellow]{esc(progress.message)}[/]; this one starts when it ends (Ctrl-C to stop waiting)."
                    )
                    told_waiting = True
                bar.update(task, completed=progress.done, total=progress.total, rate=progress.rate)
    print_import_summary(db, job.result, show_skipped)
    return job.result


def print_import_summary(db, result, show_skipped: int = 20) -> None:
    from app.store.imports import skipped_items

    counts = result.counts
    table = Table(title=f"Import run {result.run_id}: {result.status}", show_header=False)
    table.add_row("seen", str(counts.seen))
    table.add_row("stored", str(counts.stored))
    table.add_row("duplicates", str(counts.duplicates))
    table.add_row("already imported", str(counts.already_imported))
    table.add_row("skipped", str(counts.skipped))
    for reason, n in counts.skip_reasons.most_common():
        table.add_row(*cells(f"  skipped: {reason}", n))
    table.add_row("stored with warnings", str(counts.warnings))
    rate = counts.seen / result.elapsed_s if result.elapsed_s else 0
    table.add_row("time", f"{result.elapsed_s:.1f} s ({rate:.0f} msg/s)")
    console.print(table)
    if not counts.adds_up():  # an internal error: never expected, but never hidden either
        err_console.print("[red]internal error: counts do not add up[/]")
    if show_skipped and counts.skipped:
        for item in skipped_items(db, result.run_id, limit=show_skipped):
            console.print(f"  [yellow]skipped[/] {esc(item.where)}: {esc(item.reason)}: {esc(item.detail)}")
        if counts.skipped > show_skipped:
            console.print(f"  … and {counts.skipped - show_skipped} more: tiller imports {result.run_id}")
    if result.drafts_matched:
        console.print(
            f"{len(result.drafts_matched)} sent email(s) matched to Tiller's drafts; they teach the agent "
            "(see `tiller edits`, where a wrong match can be undone)."
        )
    if result.edits_replaced:
        drafts = ", ".join(map(str, result.edits_replaced))
        console.print(
            f"[yellow]The sent version replaced your own edit[/] of draft(s) {esc(drafts)} as what they became; "
            f"if that is wrong: tiller edits unmatch {esc(str(result.edits_replaced[0]))}"
        )
    if result.status == "cancelled":
        console.print("[yellow]Cancelled.[/] Everything counted above is saved; run the same command to resume.")
    print_identities(db)


def print_identities(db) -> None:
    from app.store.summary import identity_summaries, totals

    rows = identity_summaries(db)
    t = totals(db)
    table = Table(title="Your identities (senders Tiller can learn)")
    table.add_column("address", no_wrap=True)
    table.add_column("origin")
    for col in ("sent", "trainable", "replies", "fwd-only", "first", "last"):
        table.add_column(col, justify="right", no_wrap=True)
    for r in rows:
        table.add_row(
            *cells(
                r.address,
                r.origin,
                r.messages,
                r.training_candidates,
                r.replies,
                r.pure_forwards,
                (r.first_date or "")[:10],
                (r.last_date or "")[:10],
            )
        )
    console.print(table)
    console.print(
        f"{t['messages']} messages stored: {t['own']} written by you, {t['context']} kept as context; "
        f"{t['training_candidates']} training candidates."
    )
    if not rows:
        console.print("No identity found: tell Tiller your address with [bold]tiller identities add ADDRESS[/].")


@cli.command("inbox")
@click.option("--limit", default=30, show_default=True, help="How many messages.")
@click.option("--search", "text", help="Only messages whose subject or sender contains this.")
def inbox_command(limit, text) -> None:
    """Received messages you can answer, newest first: `tiller draft "..." --reply-to-message ID`.

    They come from imported folders other than your sent mail (an account's --context-folder INBOX)."""
    from app.store.messages import received_messages

    rows = received_messages(_open_db(), limit, text)
    if not rows:
        console.print(
            "No received mail imported. Import an inbox: `tiller accounts add NAME ... --context-folder INBOX`, "
            "then `tiller import imap:NAME` (or import a Maildir or mbox of received mail)."
        )
        return
    table = Table("id", "date", "from", "subject")
    for row in rows:
        table.add_row(*cells(row.id, (row.date or "")[:16].replace("T", " "), row.sender or "", row.subject or ""))
    console.print(table)


@cli.command("imports")
@click.argument("run_id", required=False, type=int)
def imports_command(run_id: int | None) -> None:
    """List import runs, or show one run's skipped items with their reasons."""
    from app.store.imports import skipped_items
    from app.store.messages import import_runs

    db = _open_db()
    if run_id is None:
        table = Table(title="Import runs")
        for col in ("run", "source", "status", "seen", "stored", "duplicates", "already", "skipped", "started"):
            table.add_column(col)
        for r in import_runs(db):
            table.add_row(
                *cells(
                    r.id,
                    r.location,
                    r.status,
                    r.seen,
                    r.stored,
                    r.duplicates,
                    r.already_imported,
                    r.skipped,
                    r.started_at,
                )
            )
        console.print(table)
        return
    if not any(r.id == run_id for r in import_runs(db)):
        raise click.ClickException(f"no import run {run_id} (tiller imports lists them)")
    items = skipped_items(db, run_id)
    if not items:
        console.print(f"Run {run_id} skipped nothing.")
    for item in items:
        console.print(f"{esc(item.where)}: {esc(item.reason)}: {esc(item.detail)}")


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
        with db.atomic():
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
    with db.atomic():
        if not reject(db, address):
            raise click.ClickException(f"{address} is not among your identities (see: tiller identities)")
    print_identities(db)
