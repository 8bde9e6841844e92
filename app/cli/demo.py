"""``tiller demo`` (the main job on the embedded defaults) and ``tiller gui``."""

from __future__ import annotations

import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import click
from rich.table import Table

from app import paths
from app.cli.common import _open_db, cli, console
from app.cli.drafting import draft_command
from app.cli.mail import run_import
from app.cli.training import run_trainer, run_training_command
from app.console_text import esc
from app.errors import EXIT_CANCELLED


@cli.command("gui")
def gui_command() -> None:
    """Open the desktop app."""
    try:
        from app.gui.window import main as gui_main
    except ImportError as exc:
        raise click.ClickException(f"the desktop app needs the gui extra: pip install 'tiller[gui]' ({exc})") from None
    sys.exit(gui_main([sys.argv[0]]))


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


DEMO_SENDER = "kay.mann@enron.com"  # the sample's Kay Mann: short emails, a clear sign-off
DEMO_INTENT = "Tell Sylvia the NG Energy contract is ready for legal review and ask her to send comments by Friday."
DEMO_STEPS = 60
DEMO_LOCAL_EMAILS = 3
# The first personal draft should come within 8 minutes of the install on a 2-core laptop without
# native bf16; training gets 4 of them, and the trainer fits its steps to that (it says how many).
DEMO_TRAINING_MINUTES = 4.0
# After the first draft, the voice stage: the local model says this many of the sender's newest
# emails plainly (4.5-5.1 s each for Kay Mann's on 2 cores), and the content guard keeps the pairs
# that carry every fact: 22 of 43 (2026-12-06, AMD EPYC); the stage trains from 20
# (app/ops/training.py: MIN_VOICE_PAIRS), so 52 leaves room for a machine whose answers differ.
DEMO_VOICE_EMAILS = 52
DEMO_VOICE_MINUTES = 2.0


def pick_demo_sender(db) -> str | None:
    """Kay Mann when the sample has her, else the identity with the most training candidates."""
    from app.store.messages import senders_by_mail

    addresses = senders_by_mail(db)
    if DEMO_SENDER in addresses:
        return DEMO_SENDER
    return addresses[0] if addresses else None


@cli.command("demo")
@click.option("--steps", default=DEMO_STEPS, show_default=True, help="Training steps for the brief agent run.")
@click.option("--intent", default=DEMO_INTENT, show_default=True)
@click.option(
    "--local-emails",
    default=DEMO_LOCAL_EMAILS,
    show_default=True,
    help="How many of the sender's newest emails the local model distills (0 skips that stage).",
)
@click.option(
    "--training-minutes",
    type=float,
    default=DEMO_TRAINING_MINUTES,
    show_default=True,
    help="Time budget for training, loading included: the steps are cut to fit this computer's measured speed "
    "(0: no budget, all --steps).",
)
@click.option(
    "--then-train-longer",
    is_flag=True,
    help="When the time budget cut the training, go on with all --steps in the background after the demo "
    "(its own process; the better adapter replaces the demo's when it is complete).",
)
@click.option(
    "--voice-emails",
    default=DEMO_VOICE_EMAILS,
    show_default=True,
    help="After the first draft, the voice stage: how many of the sender's newest emails the local model says "
    "plainly to train it (0 skips the stage; it trains from 20 pairs the content guard keeps).",
)
@click.option(
    "--voice-minutes",
    type=float,
    default=DEMO_VOICE_MINUTES,
    show_default=True,
    help="Time budget for training the voice stage, loading included (0: no budget).",
)
def demo_command(
    steps: int,
    intent: str,
    local_emails: int,
    training_minutes: float,
    then_train_longer: bool,
    voice_emails: int,
    voice_minutes: float,
) -> None:
    """Run the main job on the embedded defaults, all on this computer: import the sample of real
    mail, distill it (measured rules for all, then the paper's method with the local model for a
    few newest emails), train the agent briefly, and draft an email with its rules (the embedded
    instruct model stands in for the large model, and the rule check shows every rule). Then the
    voice stage: a second adapter that says the large model's draft again in the sender's words,
    trained and used on the same intent (--voice-emails 0 skips it)."""
    from app.mail.sources import open_source

    sample = find_sample_mail()
    if sample is None:
        raise click.ClickException(
            "sample mail not found: set TILLER_SAMPLE_MAIL to a Maildir folder (e.g. ../shared/data/enron/maildir)"
        )
    clock = StageClock()
    db = _open_db()
    stages = 6 if voice_emails else 5
    console.rule(f"1/{stages} Importing the sample mailbox")
    with clock.stage("import"):
        result = run_import(db, open_source(sample), show_skipped=5)
    if result.status != "completed":
        sys.exit(EXIT_CANCELLED)
    sender = pick_demo_sender(db)
    console.rule(
        f"2/{stages} Training data in a minute: extractive intents and measured style rules (on this computer)"
    )
    with clock.stage("offline distillation"):
        code = run_training_command(["distill", "--offline"])
    if code:
        sys.exit(code)
    if local_emails and sender:
        console.rule(
            f"3/{stages} The paper's distillation with the local model: {sender}'s {local_emails} newest emails"
        )
        console.print(
            "Abstractive intent, zero-shot email and R3 rules per email, by the embedded instruct model on "
            "this computer (nothing is sent anywhere). `tiller distill --backend local` does a whole mailbox "
            "in the background; the demo trains on the measured rules so it stays short."
        )
        with clock.stage(f"local distillation ({local_emails} emails)"):
            code = run_training_command(
                # no plain rewrites yet: they feed the voice stage, which needs 20 pairs and more
                # (about 15 s an email on 2 cores); stage 6 makes them after the first draft
                [
                    "distill",
                    "--backend",
                    "local",
                    "--sender",
                    sender,
                    "--limit",
                    str(local_emails),
                    "--no-plain-rewrites",
                ]
            )
        if code:
            sys.exit(code)
    budget = f", at most {training_minutes:g} minutes" if training_minutes else ""
    console.rule(f"4/{stages} Training the preference agent for {esc(sender or 'all senders')} ({steps} steps{budget})")
    measured = paths.home() / "datasets" / "all" / "measured" / "train.jsonl"
    with clock.stage("training"):
        trained = run_trainer(  # on the model in the agent-base role (app/ops/training.py)
            sender,
            steps=steps,
            dataset=measured if measured.is_file() else None,
            time_budget_s=training_minutes * 60 if training_minutes else None,
        )
    if trained is None:
        sys.exit(EXIT_CANCELLED)
    console.rule(f"5/{stages} Drafting with the agent's rules (the embedded instruct model, with the rule check)")
    console.print(f"[bold]Intent:[/] {esc(intent)}")
    ctx = click.get_current_context()
    draft_args = dict(
        intent=intent,
        recipient="Sylvia",
        subject="NG Energy contract",
        reply_file=None,
        sender=sender,
        backend="local",
        show_rules=True,
        rules_file=None,
        no_agent=False,
        max_tokens=200,
    )
    with clock.stage("rules, draft and check"):
        ctx.invoke(draft_command, **draft_args, voice=False)
    summary = trained.get("summary") or {}
    show_timings(clock, summary)
    if voice_emails and sender:
        voice_stage(ctx, clock, sender, voice_emails, voice_minutes, draft_args)
    done = summary.get("total_steps") or summary.get("steps") or steps
    if training_minutes and done < steps:
        longer = f"tiller train --sender {sender} --steps {steps}" if sender else f"tiller train --steps {steps}"
        minutes = (steps * (summary.get("s_per_step") or 0)) / 60
        about = f" (about {minutes:.0f} minutes on this computer)" if minutes else ""
        if not then_train_longer:
            console.print(esc(f"The budget trained {done} of {steps} steps. The full run{about}: {longer}"))
            console.print("(or run the demo with --then-train-longer to start it in the background)")
        else:
            from app.ops.training import start_longer_training

            log = paths.logs_dir() / "train-longer.log"
            proc = start_longer_training(
                log,
                db=db,
                sender=sender,
                steps=steps,
                dataset=measured if measured.is_file() else None,
            )
            console.print(
                esc(
                    f"The full run ({steps} steps{about}) goes on in the background as process {proc.pid}; "
                    f"progress in {log}. Its adapter replaces the demo's when it is complete; `kill {proc.pid}` "
                    f"stops it at once; `kill -INT {proc.pid}` keeps a checkpoint of the last finished step (`"
                    + longer
                    + "` resumes)."
                )
            )


def voice_stage(ctx, clock: StageClock, sender: str, emails: int, minutes: float, draft_args: dict) -> None:
    """Stage 6: plain rewrites of the sender's newest emails by the local model, the voice adapter
    trained on (plain rewrite -> the real email), and the intent drafted again through it: what
    ``tiller draft`` does by default once a profile has a voice stage."""
    from app.ops.training import MIN_VOICE_PAIRS

    console.rule(
        f"6/6 The voice stage: {esc(sender)}'s {emails} newest emails said plainly, and an adapter that learns the way back"
    )
    console.print(
        "The local model says each email again in a generic assistant's voice; a second small adapter learns "
        "to turn such text into the sender's own words. At drafting it rewrites the large model's draft on this "
        "computer, and a rewrite that drops or adds a name, number, date or content word is not used (the draft "
        "above was made without it)."
    )
    began = time.monotonic()
    with clock.stage(f"plain rewrites ({emails} emails)"):
        code = run_training_command(
            ["distill", "--backend", "local", "--voice-only", "--sender", sender, "--limit", str(emails)]
        )
    if code:
        sys.exit(code)
    with clock.stage("voice training"):
        trained = run_trainer(
            sender, stage="voice", min_pairs=MIN_VOICE_PAIRS, time_budget_s=minutes * 60 if minutes else None
        )
    if trained is None:
        sys.exit(EXIT_CANCELLED)
    if trained.get("phase") == "skipped":
        console.print(esc(f"Voice stage not trained: {trained.get('message')}"), highlight=False)
        console.print(
            esc(f"More of your emails said plainly make more pairs: tiller demo --voice-emails {emails + 12}"),
            highlight=False,
        )
        return
    with clock.stage("draft with the voice stage"):
        ctx.invoke(draft_command, **draft_args, voice=True)
    console.print(
        esc(
            f"A draft in {sender}'s voice {clock.total:.0f} s after the start: the voice stage took "
            f"{time.monotonic() - began:.0f} s after the first draft. `tiller draft` uses it from now on; "
            "`tiller voice off` switches it off, `tiller draft --no-voice` leaves it out of one draft."
        ),
        highlight=False,
    )


class StageClock:
    """Wall-clock seconds per named stage, in order."""

    def __init__(self) -> None:
        self.stages: list[tuple[str, float]] = []

    @contextmanager
    def stage(self, name: str):
        began = time.monotonic()
        try:
            yield
        finally:
            self.stages.append((name, time.monotonic() - began))

    @property
    def total(self) -> float:
        return sum(seconds for _, seconds in self.stages)


def show_timings(clock: StageClock, training: dict) -> None:
    """The headline number, time to a first personal draft, per stage, with the CPU it ran on."""
    from app.hardware import cpu_summary

    table = Table(title="Time to a first personal draft", title_justify="left")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for name, seconds in clock.stages:
        table.add_row(name, f"{seconds:.0f}")
    table.add_row("total", f"{clock.total:.0f}", style="bold")
    console.print(table)
    details = []
    if training.get("dtype"):
        details.append(f"training in {training['dtype']} ({training.get('dtype_reason', '')})")
    if training.get("steps"):
        details.append(f"{training['steps']} steps at {training.get('s_per_step') or 0:.1f} s")
    if training.get("cores_busy"):
        details.append(f"{training['cores_busy']:.1f} cores busy")
    if training.get("load_s") is not None:
        details.append(f"model loaded in {training['load_s']:.0f} s")
    console.print(esc(f"On {cpu_summary()}" + (": " + "; ".join(details) if details else "")), highlight=False)
