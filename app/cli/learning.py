"""``tiller edits``: the drafts Tiller wrote, what you made of them, what they taught, and forgetting."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from app.cli.common import _open_db, cancel_on_ctrl_c, cli, console, err_console, progress_bar
from app.console_text import cells, esc


def rules_backend_options(command):
    """--rules-backend and its consent flag, for `tiller edits learn` and `agent_training retrain`."""
    command = click.option(
        "--i-consent-to-send-sent-mail",
        "consent_now",
        is_flag=True,
        help="Allow sending your edited drafts and sent emails to --rules-backend (recorded for that backend).",
    )(command)
    return click.option(
        "--rules-backend",
        help="A backend that writes R3 rules from each edited draft and what you sent (default: measured rules only).",
    )(command)


@cli.group("edits", invoke_without_command=True)
@click.option("--from", "sender", help="Only this identity's drafts.")
@click.option("--limit", default=30, show_default=True)
@click.pass_context
def edits_group(ctx, sender, limit) -> None:
    """Drafts Tiller wrote and what you did with them (edited, copied, sent...): they teach the agent.

    Nothing here leaves this computer. `tiller edits forget` removes a draft and what it taught.
    """
    if ctx.invoked_subcommand is not None:
        return
    from app.learning.capture import capture_on
    from app.store import drafts as store

    db = _open_db()
    rows = store.drafts(db, sender, limit)
    if not rows:
        console.print(
            "No drafts stored yet." + ("" if capture_on(db) else " Recording is off: `tiller edits on` turns it on.")
        )
        return
    table = Table(title="Drafts (newest first)")
    for col in ("id", "when (UTC)", "to", "intent", "status", "changed", "sent match"):
        table.add_column(col)
    for d in rows:
        table.add_row(
            *cells(
                d.id,
                d.created_at[:16].replace("T", " "),
                d.recipient or "-",
                d.intent if len(d.intent) <= 40 else d.intent[:39] + "…",
                d.status + (" (picked)" if d.picked else ""),
                f"{d.edit_distance:.0%}" if d.edit_distance is not None else "-",
                f"message {d.sent_message_id} ({d.match_similarity:.2f})" if d.sent_message_id else "-",
            )
        )
    console.print(table)
    for run in store.retrains(db)[:3]:
        console.print(
            f"Retrain of {run.profile} at {run.started_at[:16].replace('T', ' ')}: {run.decision}"
            + (f" ({run.note})" if run.note else ""),
            markup=False,
            highlight=False,
        )
    if not capture_on(db):
        err_console.print("Recording new drafts is off (`tiller edits on`).")


@edits_group.command("show")
@click.argument("draft_id", type=int)
def show_command(draft_id) -> None:
    """One draft: its intent, the agent's rules and those used, the draft, your final text, the history."""
    from app.store import drafts as store

    db = _open_db()
    d = store.draft(db, draft_id)
    if d is None:
        raise click.ClickException(f"no draft {draft_id} (`tiller edits` lists them)")
    console.print(
        f"Draft {d.id}, {d.created_at} · from {d.identity or 'any identity'} · to {d.recipient or '-'}", markup=False
    )
    console.print(f"Intent: {d.intent}", markup=False, highlight=False)
    console.rule("Rules used" + (" (learned from your edits marked *)" if d.scoped_rules else ""))
    for r in d.rules:
        console.print(f"{'*' if r in d.scoped_rules else '-'} {r}", markup=False, highlight=False)
    console.rule(f"Draft ({d.backend or '-'}, {d.model or '-'})")
    console.print(d.text.rstrip(), markup=False, highlight=False)
    if d.final_text is not None:
        where = f"sent: message {d.sent_message_id}" if d.final_source == "sent" else "edited"
        console.rule(f"What you made of it ({where}; {d.edit_distance:.0%} of the words changed)")
        console.print(d.final_text.rstrip(), markup=False, highlight=False)
    console.rule("History")
    for at, action, _detail in store.events(db, d.id):
        console.print(f"{at}  {action}", markup=False)


@edits_group.command("forget")
@click.argument("draft_ids", type=int, nargs=-1)
@click.option("--all", "forget_all", is_flag=True, help="Forget every stored draft (of --from, when given).")
@click.option("--from", "sender", help="With --all: only this identity's drafts.")
def forget_command(draft_ids, forget_all, sender) -> None:
    """Forget drafts: the rows, their history, their matches, and what they taught (scoped rules are
    relearned at once; an agent retrained on them is retrained without them), in the database and in
    every copy Tiller keeps of it (the automatic backup, files set aside by a restore).

    What was already sent to a cloud model stays listed in the privacy ledger (`tiller ledger`):
    that is a record of what left this computer, kept so you can see it."""
    from app.learning.capture import forget_drafts
    from app.store import drafts as store

    if bool(draft_ids) == forget_all:
        raise click.UsageError("name the drafts to forget (ids from `tiller edits`), or --all")
    db = _open_db()
    ids = store.draft_ids(db, sender) if forget_all else list(draft_ids)
    missing = [i for i in ids if store.draft(db, i) is None]
    if missing:
        raise click.ClickException(f"no draft {', '.join(map(str, missing))} (`tiller edits` lists them)")
    forgotten = forget_drafts(
        db,
        ids,
        on_problem=lambda text: err_console.print(
            f"Could not clean a copy of the database: {text}", style="yellow", markup=False, highlight=False
        ),
    )
    console.print(f"Forgot {forgotten} draft(s); {len(store.scoped_rules(db))} scoped rule(s) remain.")


@edits_group.command("unmatch")
@click.argument("draft_id", type=int)
def unmatch_command(draft_id) -> None:
    """Undo a wrong match between a draft and a sent email (it is never made again)."""
    from app.learning.loop import undo_matches

    if not undo_matches(_open_db(), [draft_id]):
        raise click.ClickException(f"draft {draft_id} is not matched to a sent email")
    console.print(f"Draft {draft_id} is no longer matched; that sent email will not be matched to it again.")


@edits_group.command("rules")
@click.option("--from", "sender", help="Only this identity's rules.")
def rules_command(sender) -> None:
    """The scoped rules your edits taught: for one recipient, one domain, or all your mail."""
    from app.store import drafts as store

    rows = store.scoped_rules(_open_db(), sender)
    if not rows:
        console.print("No scoped rules yet: they come from drafts you edit or send changed.")
        return
    table = Table(title="Rules learned from your edits (they replace the agent's on the same aspect)")
    for col in ("scope", "for", "rule", "from drafts", "your emails keeping it"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            *cells(
                r.scope,
                r.scope_value or "all your mail",
                r.rule,
                ", ".join(map(str, r.evidence)),
                f"{r.verified_kept} of {r.verified_on}" if r.verified_on else "no emails to check against",
            )
        )
    console.print(table)


@edits_group.command("progress")
@click.option("--from", "sender", help="Only this identity's drafts.")
def progress_command(sender) -> None:
    """How much you still change Tiller's drafts, per week (word edit distance, draft -> what you sent)."""
    from app.store import drafts as store

    weeks = store.weekly_edit_distance(_open_db(), sender)
    if not weeks:
        console.print("Nothing measured yet: it needs drafts you edited or sent.")
        return
    table = Table(title="Share of a draft's words you changed (lower is better)")
    for col in ("week", "drafts", "changed", ""):
        table.add_column(col)
    for week, n, mean in weeks:
        table.add_row(*cells(week, n, f"{mean:.0%}", "█" * max(1, round(mean * 30))))
    console.print(table)


@edits_group.command("on")
def on_command() -> None:
    """Record drafts and what you do with them (the default)."""
    from app.learning.capture import set_capture

    set_capture(_open_db(), True)
    console.print("Recording drafts: on.")


@edits_group.command("off")
def off_command() -> None:
    """Stop recording drafts (what is stored stays until you forget it)."""
    from app.learning.capture import set_capture

    set_capture(_open_db(), False)
    console.print("Recording drafts: off. Stored drafts stay until `tiller edits forget`.")


@edits_group.command("learn")
@click.option("--from", "sender", help="The identity whose agent retrains (default: all identities' profile).")
@click.option("--retrain", "retrain_now", is_flag=True, help="Retrain the agent now, whatever the count of new edits.")
@click.option("--steps", type=int, help="With --retrain: training steps (default: one pass, at most 60).")
@rules_backend_options
def learn_command(sender, retrain_now, steps, rules_backend, consent_now) -> None:
    """Relearn the scoped rules now, and retrain the agent when enough edits came in (or --retrain).

    The retrain runs here with a progress bar (Ctrl-C saves a checkpoint; rerun to resume); the
    new adapter is kept only if it does no worse on your newest edits.
    """
    from app.learning import retrain
    from app.learning.loop import after_edit

    db = _open_db()
    learned = after_edit(db)
    console.print(f"{learned.scoped_rules} scoped rule(s) from your edits (`tiller edits rules`).")
    waiting = retrain.new_pairs(db, sender)
    if not retrain_now and not retrain.due(db, sender):
        console.print(
            f"{waiting} new edited or sent draft(s) since the last retrain; the agent retrains after "
            f"{retrain.RETRAIN_AFTER} (or now with --retrain)."
        )
        return
    from app.agent.trainer import TrainerProcess
    from app.errors import EXIT_CANCELLED

    trainer = TrainerProcess.start_command(
        retrain.retrain_arguments(
            sender, steps, control_stdin=True, rules_backend=rules_backend, consent_now=consent_now
        )
    )
    with cancel_on_ctrl_c() as token:
        token.on_cancel(trainer.cancel)
        with progress_bar(40) as bar:
            task = bar.add_task("retraining from your edits", total=None)
            for event in trainer.events():
                if event.phase == "training" and event.total_steps:
                    loss = f", loss {event.loss:.3f}" if event.loss is not None else ""
                    bar.update(task, description=f"training{loss}", completed=event.step, total=event.total_steps)
                elif event.phase == "rules" and event.total_steps:
                    bar.update(task, description=esc(event.message)[:40], completed=event.step, total=event.total_steps)
                elif event.phase in ("loading", "saving", "exporting", "gating"):
                    bar.update(task, description=esc(event.message or event.phase)[:40])
                elif event.phase == "error":
                    raise click.ClickException(event.message)
    if trainer.returncode == EXIT_CANCELLED:
        console.print("[yellow]Retraining stopped[/]; a checkpoint was saved. Run the same command to resume.")
        sys.exit(EXIT_CANCELLED)
    if trainer.returncode != 0:
        raise click.ClickException(f"retraining failed: {trainer.error_text()}")
    last = trainer.last
    console.print(esc(last.message if last else "retrained"))
