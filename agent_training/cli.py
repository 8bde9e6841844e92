"""``python -m agent_training``: the training-side commands. ``tiller distill`` (and later
``tiller train``/``eval``) start this as a separate process, so the app never imports it."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import click
from rich.console import Console
from rich.progress import TextColumn

from agent_training.dataset import TEST_SHARE
from agent_training.evaluate import ALL_METHODS
from agent_training.export_report import export_datasets
from app.agent.train_options import stage_option, training_options
from app.cli.common import console, on_ctrl_c, progress_bar
from app.cli.learning import rules_backend_options
from app.console_text import esc
from app.errors import EXIT_CANCELLED
from app.jobs import CancelToken


@click.group()
def cli() -> None:
    """Tiller's training side: distillation, datasets, fine-tuning (evaluation follows)."""


@cli.command("distill")
@click.option("--backend", help="Large model that extracts intents and rules (a configured backend name).")
@click.option(
    "--offline", is_flag=True, help="Keep everything on this computer: extractive intents and measured style rules."
)
@click.option("--limit", type=int, help="Only the first N messages of each sender (quick runs).")
@click.option("--sender", help="Only this identity's messages (an address from `tiller identities`).")
@click.option(
    "--strategy",
    "strategies",
    multiple=True,
    type=click.Choice(["R1", "R2", "R3"]),
    help="Rule strategy (repeatable; default R3).",
)
@click.option(
    "--all-intent-variants",
    is_flag=True,
    help="Extract all three intent variants (0.7/1.0/1.2) instead of one sampled per message.",
)
@click.option(
    "--zero-shot/--no-zero-shot",
    "zero_shot",
    default=None,
    help="Write the zero-shot emails (R3 compares against them). Default: with R3.",
)
@click.option(
    "--plain-rewrites/--no-plain-rewrites",
    "plain_rewrites",
    default=None,
    help="Say each email again in a generic style (what the voice stage learns from). Default: with the zero-shot emails.",
)
@click.option(
    "--voice-only",
    is_flag=True,
    help="Only say emails again in a generic style: more training pairs for the voice stage, one request an email "
    "(no intents or rules). With --limit N: the newest N of each sender (with the local model).",
)
@click.option("--concurrency", default=4, show_default=True, help="Parallel requests to a cloud backend.")
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--newest-first/--oldest-first",
    "newest_first",
    default=None,
    help="Which emails --limit takes and which go first (default: newest first with the local model, which is slow).",
)
@click.option(
    "--i-consent-to-send-sent-mail",
    "consent_now",
    is_flag=True,
    help="Allow sending your sent mail to --backend (recorded for that backend).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    help="Dataset folder (default: <data>/datasets/<sender>/<strategy>).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per progress event on stdout (for the app).")
@click.option(
    "--batch",
    is_flag=True,
    help="Send each stage through the provider's batch service (about half the price; results within 24 h). "
    "Shows the estimated cost first; the app can be closed meanwhile.",
)
@click.option(
    "--status",
    "batch_status",
    is_flag=True,
    help="Look at the submitted batches: collect what finished, submit the next stage, finish the datasets.",
)
@click.option("--wait", is_flag=True, help="With --batch or --status: keep checking until every stage is stored.")
@click.option("--poll-seconds", default=60.0, show_default=True, help="With --wait: seconds between checks.")
@click.option("--yes", is_flag=True, help="With --batch: submit without asking after the estimate.")
def distill_command(
    backend,
    offline,
    limit,
    sender,
    strategies,
    all_intent_variants,
    zero_shot,
    plain_rewrites,
    voice_only,
    concurrency,
    seed,
    newest_first,
    consent_now,
    out_dir,
    as_json,
    batch,
    batch_status,
    wait,
    poll_seconds,
    yes,
) -> None:
    """Turn your sent mail into the agent's training data: intents, zero-shot baselines, rules, datasets.

    Reruns skip finished rows; Ctrl-C stops cleanly and the next run resumes. With --batch each
    stage goes through the provider's batch service; --status collects it later.
    """
    from agent_training.distill import ConsentRequired, Distillation, DistillConfig
    from app.backends.errors import BackendError, ConfigError
    from app.store import open_database

    if offline and backend:
        raise click.UsageError("--offline and --backend exclude each other")
    db = open_database()
    strategies = tuple(strategies) or ("R3",)
    config = DistillConfig(
        backend=None if offline else backend,
        sender=sender,
        limit=limit,
        strategies=strategies,
        all_intent_variants=all_intent_variants,
        zero_shot=zero_shot,
        plain_rewrites=plain_rewrites,
        voice_only=voice_only,
        concurrency=concurrency,
        seed=seed,
        consent_given_now=consent_now,
        newest_first=newest_first,
    )
    if voice_only and (offline or not backend):
        raise click.UsageError("--voice-only needs --backend NAME (a cloud backend, or local on this computer)")
    if voice_only and plain_rewrites is False:
        raise click.UsageError("--voice-only and --no-plain-rewrites exclude each other")
    if batch or batch_status:
        if voice_only:
            raise click.UsageError("--voice-only runs here, not through --batch")
        if offline:
            raise click.UsageError("--batch and --status are for a cloud backend, not --offline")
        from agent_training.batch_cli import batch_distill

        batch_distill(db, config, status=batch_status, wait=wait, poll_s=poll_seconds, yes=yes, out_dir=out_dir)
        return
    token = CancelToken()
    restore_ctrl_c = on_ctrl_c(token, "Stopping after the requests in flight")
    try:
        job = Distillation(db, config, cancel=token)
    except (ConsentRequired, ConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    where = f"through {backend}" if config.backend else "on this computer (offline)"
    if job.small:
        where = f"on this computer with the local model {backend!r} (JSON answers under a grammar; about 17 s per email on 2 cores)"
    order = "newest" if job.newest_first else "first"
    console.print(f"Distilling {esc(where)}" + (f", {order} {limit} per sender" if limit else ""))
    import time as timelib

    began = timelib.monotonic()
    try:
        if as_json:
            import json as jsonlib

            for p in job.run():
                print(
                    jsonlib.dumps(
                        {"phase": "distilling", "message": p.message, "step": p.done, "total_steps": p.total}
                    ),
                    flush=True,
                )
        else:
            with progress_bar(22) as bar:
                tasks = {}
                for p in job.run():
                    if p.message not in tasks:
                        tasks[p.message] = bar.add_task(p.message, total=p.total)
                    bar.update(tasks[p.message], completed=p.done, total=p.total)
    except BackendError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        restore_ctrl_c()
    c = job.counts
    elapsed = timelib.monotonic() - began
    console.print(
        f"intents {c.intents}, baselines {c.baselines}, plain rewrites {c.plain_rewrites}, rules {c.rules}, "
        f"measured {c.measured}; "
        f"already done {c.skipped_done}; failed {c.failed}"
    )
    stages = [k for k in ("intents", "baselines", "plain_rewrites", "rules") if c.asked.get(k)]
    if stages:
        console.print(
            "Yield: "
            + "; ".join(
                f"{k} {getattr(c, k)}/{c.asked[k]} usable ({c.attempts[k] - c.asked[k]} re-asks)" for k in stages
            )
        )
        emails = c.asked["intents"] if c.asked.get("intents") else max(c.asked.values())
        console.print(f"{elapsed:.0f} s for {emails} emails: {elapsed / max(1, emails):.1f} s per email")
    for failure in c.failures[:10]:
        console.print(f"  [yellow]failed[/] {esc(failure)}")
    if token.cancelled:
        console.print("[yellow]Cancelled.[/] Finished rows are saved; rerun the same command to resume.")
        sys.exit(EXIT_CANCELLED)
    export_datasets(db, config, out_dir)


def _pairs(values: tuple[str, ...], what: str) -> dict[str, Path]:
    out = {}
    for value in values:
        key, sep, path = value.partition("=")
        if not sep or not key or not path:
            raise click.BadParameter(f"{value!r}: expected KEY=PATH", param_hint=what)
        out[key.strip().lower() if "@" in key else key.strip()] = Path(path)
    return out


@cli.command("eval")
@click.option(
    "--sender",
    "senders",
    multiple=True,
    help="A sender to evaluate (repeatable; default: every sender with a trained agent).",
)
@click.option("--backend", help="Large model that drafts (default: the default backend).")
@click.option("--judge", help="Judge model (default: --backend).")
@click.option("--small-backend", default="local", show_default=True, help="Small model for the zero-shot baseline.")
@click.option("--limit", default=10, show_default=True, help="Held-out emails per sender.")
@click.option(
    "--held-out-share",
    type=float,
    default=TEST_SHARE,
    show_default=True,
    help="The newest share of each sender's distilled emails that --limit samples from; the rest trains.",
)
@click.option("--few-shot", "few_shot_k", default=3, show_default=True, help="Real emails in the few-shot prompt.")
@click.option(
    "--method",
    "methods",
    multiple=True,
    type=click.Choice(list(ALL_METHODS)),
    help="Methods to run (repeatable; default all).",
)
@click.option(
    "--agent",
    "agents",
    multiple=True,
    help="SENDER=PROFILE_DIR: the agent to use for a sender (default: its own profile).",
)
@click.option("--adapter", "adapters", multiple=True, help="naive_finetune=PROFILE_DIR or r1_agent=PROFILE_DIR.")
@click.option("--no-permutation", is_flag=True, help="Skip the sender-permutation test.")
@click.option("--no-judge", is_flag=True, help="Skip the pairwise judge (metrics only; sends no real email anywhere).")
@click.option("--no-authorship", is_flag=True, help="Skip the authorship score (a model trained here on the mailbox).")
@click.option("--seed", default=0, show_default=True)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Report folder (default: <data>/eval/<seed>).",
)
@click.option(
    "--i-consent-to-send-sent-mail",
    "consent_now",
    is_flag=True,
    help="Allow sending real emails to the judge / few-shot backend.",
)
@click.option(
    "--reproduce",
    is_flag=True,
    help="Make what the comparison needs first: distil the newest emails here, "
    "train the agent, the naive fine-tune, the no-baseline (R1) agent and the voice stage, then evaluate "
    "every method.",
)
@click.option(
    "--distill",
    "distill_count",
    type=int,
    help="With --reproduce: newest emails per sender to distil (default 5 x --limit).",
)
@click.option(
    "--distill-backend",
    default="local",
    show_default=True,
    help="With --reproduce: the model that writes intents and rules.",
)
@click.option(
    "--steps",
    default=30,
    show_default=True,
    help="With --reproduce: training steps per adapter (agent, naive fine-tune, R1 agent, voice stage).",
)
@click.option(
    "--voice-emails",
    default=0,
    show_default=True,
    help="With --reproduce: say up to N more of each sender's older emails plainly (not distilled), "
    "for the voice stage's training pairs.",
)
def eval_command(
    senders,
    backend,
    judge,
    small_backend,
    limit,
    held_out_share,
    few_shot_k,
    methods,
    agents,
    adapters,
    no_permutation,
    no_judge,
    no_authorship,
    seed,
    out_dir,
    consent_now,
    reproduce,
    distill_count,
    distill_backend,
    steps,
    voice_emails,
) -> None:
    """Evaluate the agent against the baselines on held-out mail; writes report.md with tables and plots.

    With --reproduce, trains what the comparison is missing first (about 25 minutes per sender on 2
    cores at --limit 3). Ctrl-C stops; the same command resumes (every model answer is cached in the
    report folder, and training resumes from its checkpoint).
    """
    from agent_training.evaluate import EvalConfig, Evaluation
    from app.agent.profiles import list_profiles
    from app.backends.errors import BackendError, ConfigError
    from app.paths import home
    from app.store import open_database

    db = open_database()
    if not senders and reproduce:
        from app.mail.identity import active_identities

        senders = tuple(active_identities(db))
    if not senders:
        senders = tuple(p.name for p in list_profiles() if p.trained and "@" in p.name)
        if not senders:
            raise click.ClickException(
                "no trained sender agents: train one with `tiller train --sender ADDRESS`, or name --sender"
            )
    try:
        config = EvalConfig(
            senders=[s.lower() for s in senders],
            backend=backend,
            judge=judge,
            small_backend=small_backend,
            limit=limit,
            held_out_share=held_out_share,
            few_shot_k=few_shot_k,
            seed=seed,
            methods=tuple(methods) or ALL_METHODS,
            agents=_pairs(agents, "--agent"),
            adapters=_pairs(adapters, "--adapter"),
            permutation=not no_permutation,
            judge_pairs=not no_judge,
            authorship=not no_authorship,
            out_dir=out_dir or home() / "eval" / f"{'reproduce-' if reproduce else ''}seed-{seed}",
            consent_given_now=consent_now,
        )
        token = CancelToken()
        if reproduce:
            from agent_training.reproduce import ReproduceConfig, Reproduction

            job = Reproduction(
                db,
                ReproduceConfig(
                    config,
                    distill=distill_count,
                    distill_backend=distill_backend,
                    steps=steps,
                    voice_emails=voice_emails,
                ),
                cancel=token,
                log=lambda text: console.print(text, markup=False, highlight=False),
            )
        else:
            job = Evaluation(db, config, cancel=token)
    except (PermissionError, ConfigError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    restore_ctrl_c = on_ctrl_c(token, "Stopping after the answer in progress")
    try:
        with progress_bar(12, TextColumn("{task.fields[note]}")) as bar:
            tasks = {}
            for p in job.run():
                if p.stage not in tasks:
                    tasks[p.stage] = bar.add_task(p.stage, total=p.total, note="")
                bar.update(tasks[p.stage], completed=p.done, total=p.total, note=esc(p.message or ""))
    except (BackendError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        restore_ctrl_c()
    if token.cancelled:
        console.print("[yellow]Cancelled.[/] Answers so far are cached; rerun the same command to resume.")
        sys.exit(EXIT_CANCELLED)
    console.print(f"Report: {esc(job.report_path)}")


@cli.command("train")
@click.option("--sender", help="Train this identity's profile (its own adapter); default: one profile for all senders.")
@training_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per progress event on stdout (for the app).")
@click.option(
    "--control-stdin", is_flag=True, help="Stop cleanly when stdin says 'cancel' or closes (the app's way to cancel)."
)
@stage_option
@click.option(
    "--min-pairs",
    type=int,
    default=0,
    help="With --stage voice: train only when there are at least this many voice pairs (else say so and stop).",
)
def train_command(sender, as_json, control_stdin, dataset, stage, min_pairs, **options) -> None:
    """Fine-tune the preference agent (or its voice stage) on the distilled data and export its GGUF adapter.

    Ctrl-C (or cancel from the app) saves a checkpoint; the same command resumes from it. The new
    adapter replaces the profile's previous one only when it is complete and validated.
    """
    import json as jsonlib

    from agent_training.dataset import default_training_file, default_voice_file
    from agent_training.finetune import Finetune, FinetuneConfig

    err = Console(stderr=True)

    def skip(why: str) -> None:
        print(jsonlib.dumps({"phase": "skipped", "message": why}) if as_json else f"Voice stage not trained: {why}")

    try:
        dataset = dataset or (default_voice_file(sender) if stage == "voice" else default_training_file(sender))
    except FileNotFoundError as exc:
        if stage == "voice" and min_pairs:  # asked for "if there are enough": none is not an error
            skip(f"{exc} (the voice stage trains from {min_pairs} pairs)")
            return
        raise click.ClickException(str(exc)) from None
    if stage == "voice" and min_pairs:
        with open(dataset, encoding="utf-8", errors="replace") as lines:
            pairs = sum(1 for line in lines if line.strip())
        if pairs < min_pairs:
            skip(f"only {pairs} voice pairs in {dataset} (the voice stage trains from {min_pairs})")
            return
    if stage == "voice":
        options = voice_stage_options(options, sender)
    config = FinetuneConfig(dataset=dataset, sender=sender, **options)
    token = CancelToken()
    job = Finetune(config, cancel=token, log=lambda text: err.print(text, markup=False, highlight=False))
    guard_trainer(token, job.emergency_checkpoint, control_stdin)
    restore_ctrl_c = on_ctrl_c(token, "Stopping (a checkpoint of the last finished step is saved)")
    if not as_json:
        what = "the voice stage" if stage == "voice" else "the agent"
        console.print(f"Training {what} on {esc(dataset)}" + (f" (only {esc(sender)})" if sender else ""))
    try:
        if as_json:
            for p in job.run():
                print(p.to_json(), flush=True)
        else:
            with progress_bar(34) as bar:
                task = bar.add_task("loading the base model", total=None)
                for p in job.run():
                    if p.phase == "loading" and p.extra.get("dtype_reason"):
                        console.print(f"Number format: {esc(p.extra['dtype'])} ({esc(p.extra['dtype_reason'])})")
                    if p.phase == "training" and p.message and p.loss is not None:
                        console.print(esc(p.message))
                    if p.phase == "training" and p.total_steps:
                        loss = f"loss {p.loss:.3f}" if p.loss is not None else esc(p.message)
                        bar.update(task, description=f"training ({loss})", completed=p.step, total=p.total_steps)
                    elif p.phase in ("saving", "exporting"):
                        bar.update(task, description=esc(p.message))
    except (FileNotFoundError, ValueError) as exc:
        if as_json:
            print(jsonlib.dumps({"phase": "error", "message": str(exc)}), flush=True)
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:  # a second Ctrl-C: stop now, keeping the last finished step
        stop_now(job)
    finally:
        restore_ctrl_c()
    result = job.result or {}
    if result.get("status") == "cancelled":
        if not as_json:
            console.print(
                f"[yellow]Cancelled[/] at step {result['step']} of {result['total_steps']}; "
                "rerun the same command to resume from the checkpoint."
            )
        sys.exit(EXIT_CANCELLED)
    if not as_json:
        counts = result["examples"]
        console.print(
            f"Trained {result['steps']} steps on {counts['used']} examples "
            f"(skipped: {counts['too_long']} too long, {counts['malformed']} malformed); "
            f"loss {result['first_loss']:.3f} -> {result['final_loss']:.3f}"
        )
        console.print(
            f"Adapter: {esc(result['adapter']['path'])} ({result['adapter']['tensors']} tensors, "
            f"{result['adapter']['bytes'] / 1e6:.1f} MB)"
        )


def stop_now(job) -> NoReturn:
    """A second Ctrl-C: save the last finished step and exit at once (written to the log)."""
    from agent_training.lifeline import checkpoint_outcome, log_forced_stop

    log_forced_stop("at a second Ctrl-C", checkpoint_outcome(job.emergency_checkpoint()))
    sys.exit(EXIT_CANCELLED)


def guard_trainer(token: CancelToken, before_exit, control_stdin: bool) -> None:
    """Any cancel (Ctrl-C, 'cancel' on stdin) stops the trainer within seconds, saving the last
    finished step; with ``control_stdin`` it also stops when the program that started it goes
    away (agent_training/lifeline.py)."""
    from agent_training.lifeline import process_lifeline

    lifeline = process_lifeline().attach(token, before_exit)
    if control_stdin:
        lifeline.watch_stdin()


def voice_stage_options(options: dict, sender: str | None) -> dict:
    """The training options of a voice adapter: what was asked, else the voice stage's own."""
    from agent_training.dataset import VOICE_MAX_LENGTH, VOICE_STEPS
    from app.agent.profiles import VOICE_DIR, profile_dir

    return {
        **options,
        # a draft and the email it becomes: longer than an intent and its rules
        "max_length": options.get("max_length") or VOICE_MAX_LENGTH,
        "max_steps": options.get("max_steps") or VOICE_STEPS,
        "output": options.get("output") or profile_dir(sender) / VOICE_DIR,
    }


@cli.command("retrain")
@click.option("--sender", help="The identity whose agent learns from its edited and sent drafts (default: all).")
@click.option("--steps", type=int, help="Training steps (default: one pass over the data, at most 60).")
@click.option("--threads", type=int, help="CPU threads for training.")
@rules_backend_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per progress event on stdout (for the app).")
@click.option(
    "--control-stdin", is_flag=True, help="Stop cleanly when stdin says 'cancel' or closes (the app's way to cancel)."
)
def retrain_command(sender, steps, threads, rules_backend, consent_now, as_json, control_stdin) -> None:
    """Retrain an agent from the user's edits; the new adapter is kept only if it does no worse.

    See agent_training/retrain.py. Ctrl-C saves a checkpoint; the same command resumes.
    """
    import json as jsonlib

    from agent_training.retrain import Retrain, RetrainConfig
    from app.store.db import open_database

    err = Console(stderr=True)
    token = CancelToken()
    restore_ctrl_c = on_ctrl_c(token, "Stopping (a checkpoint of the last finished step is saved)")
    job = Retrain(
        open_database(),
        RetrainConfig(
            sender=sender, steps=steps, threads=threads, rules_backend=rules_backend, consent_given_now=consent_now
        ),
        cancel=token,
        log=lambda text: err.print(text, markup=False, highlight=False),
    )
    guard_trainer(token, job.emergency_checkpoint, control_stdin)
    try:
        for event in job.run():
            if as_json:
                print(event.to_json(), flush=True)
            elif event.phase in ("loading", "gating", "done") or (event.phase == "training" and event.step % 10 == 0):
                console.print(f"{event.phase} {event.step}/{event.total_steps} {event.message}", markup=False)
    except (FileNotFoundError, ValueError, RuntimeError, PermissionError) as exc:  # PermissionError: no consent
        if as_json:
            print(jsonlib.dumps({"phase": "error", "message": str(exc)}), flush=True)
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:  # a second Ctrl-C: stop now, keeping the last finished step
        stop_now(job)
    finally:
        restore_ctrl_c()
    if (job.result or {}).get("decision") == "cancelled":
        sys.exit(EXIT_CANCELLED)


def main() -> None:
    from agent_training.lifeline import process_lifeline
    from app import logs

    logs.configure()  # a forced stop is written to <data>/logs/tiller.log, where `tiller` writes too
    process_lifeline()  # started by the app: stop when it goes away, whatever the command
    cli(prog_name="python -m agent_training")
