"""``tiller distill``, ``eval``, ``train`` and ``agents``: the training side runs as its own process
(the app never imports ``agent_training``)."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from app.agent.train_options import stage_option, training_options
from app.cli.common import _open_db, cancel_on_ctrl_c, cli, console, progress_bar
from app.console_text import cells, esc
from app.errors import EXIT_CANCELLED
from app.ops.training import MIN_VOICE_PAIRS, voice_pairs_exist

# -- training side (a separate process: the app never imports agent_training) ----------------------


def run_training_command(args: list[str]) -> int:
    """Run ``python -m agent_training ARGS`` in its own process with this terminal; Ctrl-C reaches
    it (same process group) and it stops cleanly on its own."""
    from app.agent.trainer import spawn

    proc = spawn(args, attach="terminal")
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue  # the child got the same SIGINT and is stopping; wait for it


@cli.command(
    "distill", context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, add_help_option=False
)
@click.pass_context
def distill_command(ctx) -> None:
    """Build the agent's training data from your sent mail (see: tiller distill --help)."""
    sys.exit(run_training_command(["distill", *ctx.args]))


@cli.command("eval", context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, add_help_option=False)
@click.pass_context
def eval_command(ctx) -> None:
    """Evaluate the agent against the baselines on held-out mail (see: tiller eval --help)."""
    sys.exit(run_training_command(["eval", *ctx.args]))


# -- the preference agent: training (a separate process), profiles, drafting ----------------------


def run_trainer(sender: str | None, **options) -> dict | None:
    """Start ``agent_training train`` as its own process and show its progress; Ctrl-C asks it to
    stop at a step boundary (it saves a checkpoint; the same command resumes). Returns the last
    event's fields when it finished, None when cancelled."""
    import time as _time

    from app.ops.training import start_trainer

    trainer = start_trainer(sender=sender, **options)  # on the agent-base role's model unless base_gguf is given
    summary: dict = {}
    try:
        with cancel_on_ctrl_c("Stopping the training (a checkpoint of the last finished step is saved)") as token:
            token.on_cancel(trainer.cancel)
            with progress_bar(40) as bar:
                task = bar.add_task("loading the base model", total=None)
                started = _time.monotonic()
                for event in trainer.events():
                    _show_training_event(event, bar, task, summary, started)
    finally:
        trainer.stop()  # a second Ctrl-C or an error here: the trainer must not run on without us
    code = trainer.returncode
    if code == EXIT_CANCELLED or (trainer.last and trainer.last.phase == "cancelled"):
        console.print("[yellow]Training stopped[/]; a checkpoint was saved. Run the same command to resume.")
        return None
    if code != 0:
        raise click.ClickException(f"training failed: {trainer.error_text()}")
    return (trainer.last.__dict__ if trainer.last else {}) | {"summary": summary}


def _show_training_event(event, bar, task, summary: dict, started: float) -> None:
    """One trainer event on the progress bar; what the run chose (number format, time budget) is
    printed once and kept in ``summary``."""
    import time as _time

    if event.phase == "loading":
        if event.extra.get("dtype_reason"):
            summary.update(dtype=event.extra["dtype"], dtype_reason=event.extra["dtype_reason"])
            console.print(f"Number format: {esc(event.extra['dtype'])} ({esc(event.extra['dtype_reason'])})")
        bar.update(task, description=esc(event.message or "loading"))
    elif event.phase == "training" and event.total_steps:
        if event.loss is None:
            counts = event.extra.get("counts", {})
            resumed = event.extra.get("resumed_at")
            summary["load_s"] = event.extra.get("load_s")
            console.print(
                f"{counts.get('used', '?')} training examples"
                + (f" ({counts.get('too_long')} too long, skipped)" if counts.get("too_long") else "")
                + (f"; resuming at step {resumed}" if resumed else "")
                + (f"; model loaded in {event.extra['load_s']:.0f} s" if event.extra.get("load_s") is not None else "")
            )
        else:
            summary.update(
                steps=event.step,
                total_steps=event.total_steps,
                s_per_step=event.extra.get("s_per_step"),
                cores_busy=event.extra.get("cores_busy"),
            )
            if event.message:
                console.print(esc(event.message))
        desc = f"training, loss {event.loss:.3f}" if event.loss is not None else "training"
        if event.tokens_per_s:
            desc += f", {event.tokens_per_s:.0f} tok/s"
        bar.update(task, description=desc, completed=event.step, total=event.total_steps)
    elif event.phase in ("saving", "exporting"):
        bar.update(task, description=esc(event.message))
    elif event.phase == "done":
        bar.update(task, description=f"done in {_time.monotonic() - started:.0f} s")


@cli.command("train")
@click.option("--sender", help="Train this identity's own agent profile (default: one profile for all your addresses).")
@click.option("--all-senders", is_flag=True, help="One profile trained on all your identities together.")
@stage_option
@click.option(
    "--no-voice", is_flag=True, help="Train the agent alone, not the voice stage after it (when there are voice pairs)."
)
@training_options
def train_command(sender, all_senders, stage, no_voice, **options) -> None:
    """Fine-tune the on-device preference agent (and its voice stage, when there are voice pairs) on your
    distilled data (its own process)."""

    if sender and all_senders:
        raise click.UsageError("--sender and --all-senders exclude each other")
    if not sender and not all_senders:
        from app.mail.identity import active_identities

        mine = active_identities(_open_db())
        if len(mine) == 1:
            sender = mine[0]
        elif len(mine) > 1:
            raise click.UsageError(
                f"you have {len(mine)} identities ({', '.join(mine[:4])}{', …' if len(mine) > 4 else ''}): each writes "
                "in its own voice, so pick one with --sender ADDRESS (one profile each), or --all-senders"
            )

    _train_stage(sender, stage, options)
    if stage == "agent" and not no_voice and not options["output"] and not options["dataset"] and voice_pairs_exist():
        console.print("Your distilled data has voice pairs: training the voice stage too (--no-voice skips it).")
        # the agent's --steps are not the voice stage's: 60 steps on 20 pairs would learn them by
        # heart; the voice stage trains the steps it was evaluated with (agent_training VOICE_STEPS)
        _train_stage(sender, "voice", {**options, "max_steps": None}, min_pairs=MIN_VOICE_PAIRS)


def _train_stage(sender: str | None, stage: str, options: dict, min_pairs: int = 0) -> None:
    from app.agent.profiles import VOICE_DIR, load_profile, profile_at

    result = run_trainer(sender, stage=stage, min_pairs=min_pairs, **options)
    if result is None:
        sys.exit(EXIT_CANCELLED)
    if result.get("phase") == "skipped":
        console.print(f"Voice stage not trained: {esc(result.get('message'))}")
        return
    if options["output"]:  # a profile folder of its own (the evaluation's baselines), not the sender's
        profile = profile_at(options["output"], sender or "all")
    elif stage == "voice":
        profile = profile_at(load_profile(sender).directory / VOICE_DIR, sender or "all")
    else:
        profile = load_profile(sender)
    record = profile.record
    if record is None:
        raise click.ClickException(f"{profile.directory}: the trainer finished but wrote no training record")
    loss = (
        f"loss {record.first_loss:.3f} -> {record.final_loss:.3f}"
        if record.first_loss is not None and record.final_loss is not None
        else "no loss recorded"
    )
    what = "Voice stage of" if stage == "voice" else "Agent profile"
    console.print(
        f"{what} [bold]{esc(profile.name)}[/]: {record.steps} steps on {record.examples_used} examples, "
        f"{loss}; adapter {esc(profile.adapter)}"
    )


@cli.command("agents")
def agents_command() -> None:
    """List the trained agent profiles (one adapter per sender)."""
    from app.agent.profiles import list_profiles

    profiles = list_profiles()
    if not profiles:
        console.print("No trained agent yet: run `tiller distill` then `tiller train`.")
        return
    table = Table(title="Agent profiles")
    for col in ("profile", "trained (UTC)", "steps", "examples", "loss", "adapter", "voice stage"):
        table.add_column(col)
    for p in profiles:
        r = p.record
        table.add_row(
            *cells(
                p.name,
                (r.finished_at or "")[:16].replace("T", " "),
                r.steps,
                r.examples_used,
                f"{r.first_loss or 0:.2f} -> {r.final_loss or 0:.2f}",
                p.adapter if p.adapter else "missing",
                ("on" if p.voice_on else "off") if p.voice_adapter else "not trained",
            )
        )
    console.print(table)


@cli.command("voice")
@click.argument("state", type=click.Choice(["on", "off", "status"]), default="status")
@click.option("--sender", help="The identity whose profile it is (default: the all-senders profile).")
def voice_command(state, sender) -> None:
    """Switch the voice stage of a profile on or off (each draft can still ask with --voice/--no-voice)."""
    from app.agent.profiles import find_profile

    profile = find_profile(sender)
    if profile.voice_adapter is None:
        raise click.ClickException(
            f"profile {profile.name} has no voice stage yet: `tiller train --stage voice` trains it "
            "(from zero-shot emails that `tiller distill --backend NAME` writes)"
        )
    if state != "status":
        profile.set_voice(state == "on")
    console.print(f"Voice stage of {esc(profile.name)}: {'on' if profile.voice_on else 'off'}")
