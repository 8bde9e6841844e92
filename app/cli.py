"""The ``tiller`` command line. Subcommands are thin: the work lives in the core modules."""

from __future__ import annotations

import os
import re
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app import __version__, paths
from app.errors import EXIT_CANCELLED, EXIT_STORE
from app.agent.train_options import training_options
from app.jobs import CancelToken
from app.plain import cells, esc

# Piped output (CI logs, `| less`) would otherwise be squeezed into rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True)


_DEBUG = {"on": False}


@click.group()
@click.version_option(__version__, prog_name="tiller")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
def cli(debug: bool) -> None:
    """Tiller drafts email in your own style, on your own machine.

    Exit codes: 0 done, 1 error (explained in one line), 2 usage error, 3 the data store cannot be
    used (damaged, read-only, disk full, TILLER_HOME wrong), 130 cancelled (work so far is saved).
    """
    _DEBUG["on"] = debug


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
@click.argument("path")
@click.option("--kind", type=click.Choice(["maildir", "mbox", "mbox-folder", "eml"]), help="Source type (detected when omitted).")
@click.option("--me", "my_addresses", multiple=True, metavar="ADDRESS", help="One of your addresses (repeatable). Inferred from Sent folders when omitted.")
@click.option("--show-skipped", default=20, show_default=True, help="How many skipped items to list by path and reason.")
def import_command(path: str, kind: str | None, my_addresses: tuple[str, ...], show_skipped: int) -> None:
    """Import a mailbox: a Maildir tree, an mbox file, a folder of mbox files, or a folder of .eml files.

    Re-importing the same source adds nothing; an interrupted import resumes where it stopped.
    """
    from app.mail.identity import normalize_address
    from app.mail.sources import SourceError, open_source

    if not path.strip():
        raise click.UsageError("PATH is empty: name the mailbox folder or file (use . for this folder)")
    try:
        my_addresses = tuple(normalize_address(a) for a in my_addresses)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--me") from None

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

    console.print(f"Importing [bold]{esc(source.location)}[/] ({source.kind}) into {esc(paths.database_path())}")
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
            told_waiting = False
            for progress in job.run():
                if progress.message.startswith("waiting for another import") and not told_waiting:
                    err_console.print(f"[yellow]{esc(progress.message)}[/]; this one starts when it ends (Ctrl-C to stop waiting).")
                    told_waiting = True
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
        table.add_row(*cells(f"  skipped: {reason}", n))
    table.add_row("stored with warnings", str(counts.warnings))
    rate = counts.seen / result.elapsed_s if result.elapsed_s else 0
    table.add_row("time", f"{result.elapsed_s:.1f} s ({rate:.0f} msg/s)")
    console.print(table)
    if not counts.adds_up():  # an internal error: never expected, but never hidden either
        err_console.print("[red]internal error: counts do not add up[/]")
    if show_skipped and counts.skipped:
        for location, key, reason, detail in skipped_items(db, result.run_id, limit=show_skipped):
            console.print(f"  [yellow]skipped[/] {esc(os.path.join(location, key))}: {esc(reason)}: {esc(detail)}")
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
        table.add_row(*cells(
            r.address, r.origin, r.messages, r.training_candidates, r.replies, r.pure_forwards,
            (r.first_date or "")[:10], (r.last_date or "")[:10],
        ))
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
            table.add_row(*cells(*row))
        console.print(table)
        return
    items = skipped_items(db, run_id)
    if not items:
        console.print(f"Run {run_id} skipped nothing.")
    for location, key, reason, detail in items:
        console.print(f"{esc(os.path.join(location, key))}: {esc(reason)}: {esc(detail)}")


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


# -- large-model backends, keys, privacy ledger ---------------------------------------------------


def _backend_error(exc: Exception) -> click.ClickException:
    return click.ClickException(str(exc))


@cli.group("backends", invoke_without_command=True)
@click.pass_context
def backends_group(ctx) -> None:
    """The large models that write your drafts: Claude, Gemini, OpenAI-compatible servers, local."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(backends_list)


@backends_group.command("list")
def backends_list() -> None:
    """Show configured backends, the default, and where each one's key comes from."""
    from app.backends.config import default_endpoint_name, key_status, list_endpoints
    from app.backends.registry import provider_class

    db = _open_db()
    default = default_endpoint_name(db)
    table = Table(title="Backends (the large model that writes the email)")
    for col in ("", "name", "provider", "model", "endpoint", "key", "leaves this computer"):
        table.add_column(col)
    for ep in list_endpoints(db):
        cls = provider_class(ep.provider)
        table.add_row(*cells(
            "*" if ep.name == default else "", ep.name, ep.provider, ep.model or cls.default_model or "",
            ep.base_url or cls.default_base_url or ("in-process" if not cls.leaves_machine else "provider default"),
            key_status(ep), "yes" if cls.leaves_machine else "no",
        ))
    console.print(table)
    console.print("* = default. Add one: tiller backends add NAME --provider anthropic|gemini|openai_compat|local")


@backends_group.command("add")
@click.argument("name")
@click.option("--provider", required=True, help="anthropic, gemini, openai_compat or local.")
@click.option("--model", help="Model id (e.g. claude-sonnet-4-5, gemini-2.5-flash), or a GGUF path for local.")
@click.option("--base-url", help="Endpoint URL (required for openai_compat, e.g. http://127.0.0.1:8080/v1).")
@click.option("--option", "option_pairs", multiple=True, metavar="KEY=VALUE", help="Default generation option (repeatable), e.g. temperature=0.7.")
@click.option("--default/--no-default", "make_default", default=False, help="Also make it the default backend.")
def backends_add(name, provider, model, base_url, option_pairs, make_default) -> None:
    """Add (or replace) a named backend. Keys are stored separately: tiller keys set NAME."""
    from app.backends.base import EndpointConfig
    from app.backends.config import key_status, parse_option_pairs, save_endpoint, set_default_endpoint
    from app.backends.errors import ConfigError

    db = _open_db()
    try:
        cfg = EndpointConfig(name=name, provider=provider, model=model, base_url=base_url, options=parse_option_pairs(option_pairs))
        with db.atomic():
            save_endpoint(db, cfg)
            if make_default:
                set_default_endpoint(db, name)
    except ConfigError as exc:
        raise _backend_error(exc) from None
    key = key_status(cfg)
    console.print(f"Saved backend [bold]{esc(name)}[/] ({esc(provider)}). Key: {esc(key)}")
    if key == "missing":
        console.print(f"Store its API key with: tiller keys set {esc(repr(name))}")


@backends_group.command("remove")
@click.argument("name")
@click.option("--keep-key", is_flag=True, help="Leave its key in the keyring.")
def backends_remove(name, keep_key) -> None:
    """Remove a named backend (and its stored key, unless --keep-key)."""
    from app import secrets
    from app.backends.config import remove_endpoint

    db = _open_db()
    with db.atomic():
        removed = remove_endpoint(db, name)
    if not removed:
        raise click.ClickException(f"no configured backend named {name!r} (see: tiller backends list)")
    key_note = ""
    if not keep_key and secrets.delete_key(name):
        key_note = " and its key"
    console.print(f"Removed backend {esc(name)}{key_note}.")


@backends_group.command("default")
@click.argument("name")
def backends_default(name) -> None:
    """Use NAME for drafting from now on (takes effect on the next request, no restart)."""
    from app.backends.config import set_default_endpoint
    from app.backends.errors import ConfigError

    db = _open_db()
    try:
        set_default_endpoint(db, name)
    except ConfigError as exc:
        raise _backend_error(exc) from None
    console.print(f"Default backend: [bold]{esc(name)}[/]")


@backends_group.command("test")
@click.argument("name", required=False)
def backends_test(name) -> None:
    """Round trip to a backend (the default when NAME is omitted): a tiny request, streamed."""
    import time

    from app.backends.client import connectivity_request, generate
    from app.backends.errors import BackendError, Cancelled

    request = connectivity_request()
    with cancel_on_ctrl_c() as token:
        try:
            gen = generate(
                request, name, cancel=token,
                on_retry=lambda n: err_console.print(f"[yellow]{esc(n.error)}; retrying in {n.wait_s:.1f} s[/]"),
            )
            console.print(f"Testing [bold]{esc(gen.endpoint.name)}[/] ({gen.cls.label}, model {esc(gen.endpoint.model or gen.cls.default_model)})")
            started = time.monotonic()
            first = None
            for text in gen:
                first = first or time.monotonic() - started
                console.print(text, end="", markup=False, highlight=False)
            console.print()
        except Cancelled:
            raise click.ClickException("cancelled") from None
        except BackendError as exc:
            raise _backend_error(exc) from None
    c = gen.completion
    console.print(
        f"[green]OK[/] first text after {first or 0:.2f} s, total {c.elapsed_s:.2f} s, finish: {c.finish_reason}, "
        f"attempts: {c.attempts}" + (f", model: {c.model}" if c.model else "")
    )


@cli.group("keys", invoke_without_command=True)
@click.pass_context
def keys_group(ctx) -> None:
    """API keys, kept only in the OS keyring (never in Tiller's files)."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(keys_list)


@keys_group.command("list")
def keys_list() -> None:
    """Where each backend's key comes from (keyring, environment) without showing it."""
    from app import secrets
    from app.backends.config import key_status, list_endpoints

    db = _open_db()
    table = Table(title=f"API keys (keyring: {secrets.keyring_name()})")
    table.add_column("backend")
    table.add_column("provider")
    table.add_column("key from")
    for ep in list_endpoints(db):
        table.add_row(*cells(ep.name, ep.provider, key_status(ep)))
    console.print(table)


@keys_group.command("set")
@click.argument("name")
def keys_set(name) -> None:
    """Store the API key for backend NAME in the OS keyring (typed hidden, or piped on stdin).

    The key is never accepted as an argument: it would land in your shell history.
    """
    from app import secrets

    if sys.stdin.isatty():
        value = click.prompt(f"API key for {name}", hide_input=True)
    else:
        value = sys.stdin.readline()
    try:
        secrets.set_key(name, value)
    except (ValueError, secrets.KeyringUnavailable) as exc:
        raise click.ClickException(str(exc)) from None
    console.print(f"Stored the key for [bold]{esc(name)}[/] in the keyring ({esc(secrets.keyring_name())}).")


@keys_group.command("delete")
@click.argument("name")
def keys_delete(name) -> None:
    """Remove the stored key of backend NAME from the keyring."""
    from app import secrets

    try:
        deleted = secrets.delete_key(name)
    except secrets.KeyringUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    if not deleted:
        raise click.ClickException(f"no key stored for {name!r}")
    console.print(f"Deleted the key for {esc(name)}.")


@cli.command("ledger")
@click.option("--limit", default=20, show_default=True, help="How many recent requests to list.")
@click.option("--backend", help="Only requests to this backend.")
@click.option("--show", "show_id", type=int, help="Print one request in full: headers and the payload as sent.")
def ledger_command(limit, backend, show_id) -> None:
    """The privacy ledger: every request that left this computer, with what it carried."""
    import json

    from app.backends.ledger import Ledger

    ledger = Ledger()
    if show_id is not None:
        e = ledger.entry(show_id)
        if e is None:
            raise click.ClickException(f"no ledger entry {show_id}")
        for key in ("id", "started_at", "finished_at", "backend", "provider", "model", "purpose", "method", "url",
                    "request_bytes", "response_status", "response_bytes", "duration_ms", "outcome", "error"):
            console.print(f"[bold]{key}[/]: {esc(e[key])}", markup=True, highlight=False)
        console.print("[bold]headers[/] (authorization never recorded):")
        console.print_json(e["request_headers"])
        console.print("[bold]payload as sent[/]:")
        try:
            console.print_json(e["request_payload"])
        except json.JSONDecodeError:
            console.print(e["request_payload"], markup=False)
        return
    entries = ledger.entries(limit=limit, backend=backend)
    if not entries:
        console.print("Nothing has left this computer." if not backend else f"No requests to {esc(backend)}.")
        return
    table = Table(title="Privacy ledger: requests that left this computer (newest first)")
    for col in ("id", "time (UTC)", "backend", "purpose", "endpoint", "sent", "status", "received", "outcome"):
        table.add_column(col)
    for e in entries:
        table.add_row(*cells(
            e["id"], e["started_at"][:19].replace("T", " "), e["backend"], e["purpose"], e["url"],
            f"{e['request_bytes']} B", e["response_status"] or "-", f"{e['response_bytes'] or 0} B", e["outcome"],
        ))
    console.print(table)
    console.print("Full payload of one request: tiller ledger --show ID")


# -- training side (a separate process: the app never imports agent_training) ----------------------


def run_training_command(args: list[str]) -> int:
    """Run ``python -m agent_training ARGS`` in its own process with this terminal; Ctrl-C reaches
    it (same process group) and it stops cleanly on its own."""
    import subprocess

    proc = subprocess.Popen([sys.executable, "-m", "agent_training", *args])
    while True:
        try:
            return proc.wait()
        except KeyboardInterrupt:
            continue  # the child got the same SIGINT and is stopping; wait for it


@cli.command("distill", context_settings={"ignore_unknown_options": True, "allow_extra_args": True}, add_help_option=False)
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

    from rich.progress import TimeRemainingColumn

    from app.agent.trainer import TrainerProcess

    trainer = TrainerProcess.start(sender=sender, **options)
    with cancel_on_ctrl_c() as token:
        token.on_cancel(trainer.cancel)
        with Progress(TextColumn("{task.description:<40}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TimeRemainingColumn(), console=console) as bar:
            task = bar.add_task("loading the base model", total=None)
            started = _time.monotonic()
            for event in trainer.events():
                if event.phase == "loading":
                    bar.update(task, description=esc(event.message or "loading"))
                elif event.phase == "training" and event.total_steps:
                    if event.loss is None:
                        counts = event.extra.get("counts", {})
                        resumed = event.extra.get("resumed_at")
                        console.print(f"{counts.get('used', '?')} training examples"
                                      + (f" ({counts.get('too_long')} too long, skipped)" if counts.get("too_long") else "")
                                      + (f"; resuming at step {resumed}" if resumed else ""))
                    desc = f"training, loss {event.loss:.3f}" if event.loss is not None else "training"
                    if event.tokens_per_s:
                        desc += f", {event.tokens_per_s:.0f} tok/s"
                    bar.update(task, description=desc, completed=event.step, total=event.total_steps)
                elif event.phase in ("saving", "exporting"):
                    bar.update(task, description=esc(event.message))
                elif event.phase == "done":
                    bar.update(task, description=f"done in {_time.monotonic() - started:.0f} s")
    code = trainer.returncode
    if code == 130 or (trainer.last and trainer.last.phase == "cancelled"):
        console.print("[yellow]Training stopped[/]; a checkpoint was saved. Run the same command to resume.")
        return None
    if code != 0:
        raise click.ClickException(f"training failed: {trainer.error_text()}")
    return trainer.last.__dict__ if trainer.last else {}


@cli.command("train")
@click.option("--sender", help="Train this identity's own agent profile (default: one profile for all your addresses).")
@click.option("--all-senders", is_flag=True, help="One profile trained on all your identities together.")
@training_options
def train_command(sender, all_senders, **options) -> None:
    """Fine-tune the on-device preference agent on your distilled data (runs in its own process)."""
    from app.agent.profiles import load_profile

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
                "in its own voice, so pick one with --sender ADDRESS (one profile each), or --all-senders")

    if options["base_gguf"] is None:  # the model chosen for the agent-base role, when it is not the embedded one
        from app.models import DEFAULT_FOR_ROLE, model_for_role, model_path

        db = _open_db()
        chosen = model_for_role(db, "agent-base")
        if chosen != DEFAULT_FOR_ROLE["agent-base"]:
            options["base_gguf"] = str(model_path(db, chosen))
    result = run_trainer(sender, **options)
    if result is None:
        sys.exit(130)
    if options["output"]:  # a profile folder of its own (the evaluation's baselines), not the sender's
        from app.agent.profiles import _profile_at

        profile = _profile_at(options["output"], sender or "all")
    else:
        profile = load_profile(sender)
    info = profile.info
    console.print(f"Agent profile [bold]{esc(profile.name)}[/]: {info.get('steps')} steps on {info['examples']['used']} examples, "
                  f"loss {info.get('first_loss'):.3f} -> {info.get('final_loss'):.3f}; adapter {esc(profile.adapter)}")


@cli.command("agents")
def agents_command() -> None:
    """List the trained agent profiles (one adapter per sender)."""
    from app.agent.profiles import list_profiles

    profiles = list_profiles()
    if not profiles:
        console.print("No trained agent yet: run `tiller distill` then `tiller train`.")
        return
    table = Table(title="Agent profiles")
    for col in ("profile", "trained (UTC)", "steps", "examples", "loss", "adapter"):
        table.add_column(col)
    for p in profiles:
        i = p.info
        table.add_row(*cells(p.name, (i.get("finished_at") or "")[:16].replace("T", " "), i.get("steps"),
                             (i.get("examples") or {}).get("used"),
                             f"{i.get('first_loss', 0):.2f} -> {i.get('final_loss', 0):.2f}",
                             p.adapter if p.adapter else "missing"))
    console.print(table)


MAX_RULES_BYTES = 1 << 20  # a rules file is a few hundred bytes
MAX_REPLY_BYTES = 8 << 20  # the email being answered; the agent cuts it to its context anyway


def read_rules_file(path: Path) -> list[str]:
    from app.agent.template import parse_rules

    from app.files import ReadRefused, read_text_bounded

    try:
        text = read_text_bounded(path, MAX_RULES_BYTES, "rules file")
    except ReadRefused as exc:
        raise click.ClickException(str(exc)) from None
    rules = parse_rules("\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    if not rules:
        raise click.ClickException(f"{path}: no rules in it (one rule per line; lines starting with # are ignored)")
    return rules


@cli.command("draft")
@click.argument("intent")
@click.option("--to", "recipient", help="Recipient (name or address).")
@click.option("--subject")
@click.option("--reply-to", "reply_file", type=click.Path(path_type=Path, dir_okay=False), help="A file with the email you are answering.")
@click.option("--from", "sender", help="Which of your identities writes (picks its agent profile).")
@click.option("--backend", help="Large model that writes the draft (default: the default backend).")
@click.option("--show-rules", is_flag=True, help="Print the agent's rules before the draft.")
@click.option("--rules-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Rules to use instead of the agent's; if the file does not exist, the agent's rules are written there to edit.")
@click.option("--no-agent", is_flag=True, help="Draft without rules (the zero-shot baseline).")
@click.option("--max-tokens", default=768, show_default=True)
@click.option("--candidates", default=1, show_default=True, type=click.IntRange(1, 4),
              help="Write 2-4 drafts, each with other style/topic tags; rank them and Tiller learns which tags you like.")
@click.option("--rank", "ranking", help="With --candidates: your ranking, best first (\"2,1,3\"), or one pick (\"2\"); asked when omitted.")
@click.option("--no-check", is_flag=True, help="Show the model's draft as it is, without checking it against the rules.")
def draft_command(intent, recipient, subject, reply_file, sender, backend, show_rules, rules_file, no_agent, max_tokens,
                  candidates, ranking, no_check) -> None:
    """Draft an email: your intent -> the on-device agent's rules -> the large model, streamed.

    Only the intent, these details, the rules and any style tags are sent to the backend; your mail is not.
    """
    from app.backends.errors import BackendError, Cancelled

    previous = None
    if reply_file:
        from app.files import ReadRefused, read_text_bounded

        try:
            previous = read_text_bounded(reply_file, MAX_REPLY_BYTES, "email to answer", errors="replace")
        except ReadRefused as exc:
            raise click.ClickException(str(exc)) from None
    if not intent.strip():
        raise click.UsageError("the intent is empty: say what the email should tell the recipient")
    from app.compose import ComposeOperation, ComposeRequest

    given = None
    if rules_file and rules_file.exists():
        given = tuple(read_rules_file(rules_file))
        err_console.print(f"Rules from {esc(rules_file)} ({len(given)})")
    tag_sets: tuple[tuple[str, ...], ...] = ((),)
    selector = None
    if candidates > 1:
        from app.ranking.selector import load_selector

        with console.status("Choosing style tags…"):
            selector = load_selector(sender)
            tag_sets = tuple(tuple(t) for t in selector.propose(intent, m=candidates))
    request = ComposeRequest(intent, recipient=recipient, subject=subject, previous_email=previous, sender=sender,
                             backend=backend, rules=given, use_agent=not no_agent, tag_sets=tag_sets,
                             max_tokens=max_tokens, check=not no_check)
    with cancel_on_ctrl_c() as token:
        op = ComposeOperation(request, token, on_retry=lambda n: err_console.print(
            f"[yellow]{esc(n.error)}; retrying in {n.wait_s:.1f} s[/]"))
        try:
            render_compose(op, show_rules=show_rules, rules_file=rules_file if given is None else None)
        except Cancelled:
            raise click.ClickException("cancelled") from None
        except (BackendError, FileNotFoundError, ValueError) as exc:
            raise click.ClickException(str(exc)) from None
    if selector is not None:
        _rank_candidates(intent, selector, [d.tags for d in op.result.drafts], sender, ranking)


def render_compose(op, *, show_rules: bool = False, rules_file: Path | None = None) -> None:
    """Show a compose operation as it runs: rules, streamed drafts, each draft's rule check."""
    from app.compose import DraftChecked, DraftText, Reasking, RulesReady
    from app.rulecheck import BROKEN, KEPT, REPAIRED

    events = op.run()
    with console.status("The agent is writing rules on this computer…" if op.request.use_agent
                        and op.request.rules is None else "Preparing…"):
        first = next(events)
    assert isinstance(first, RulesReady)
    if first.source == "agent" and not first.trained:
        err_console.print("[yellow]No trained agent for this sender: the base model alone writes the rules "
                          "(run `tiller train`).[/]")
    if rules_file is not None and first.source == "agent":
        from app.files import write_atomic

        write_atomic(rules_file, "# One rule per line; edit, then run the same command again.\n"
                     + "\n".join(f"- {r}" for r in first.rules) + "\n")
        err_console.print(f"The agent's rules are in {esc(rules_file)}: edit them and run again to draft with them.")
        show_rules = True
    if show_rules:
        console.rule("Preference rules (made on this computer)" if first.source == "agent" else "Preference rules")
        for r in first.rules:
            console.print(f"- {r}", markup=False, highlight=False)
    several = len(op.request.tag_sets) > 1
    current = None
    for event in events:
        if isinstance(event, DraftText):
            if event.index != current:
                current = event.index
                tags = op.request.tag_sets[event.index]
                console.rule(f"Draft {event.index + 1} · tags: {esc(', '.join(tags))}" if several else "Draft")
            console.print(event.text, end="", markup=False, highlight=False)
        elif isinstance(event, Reasking):
            console.print()
            err_console.print(f"[yellow]The draft broke {len(event.broken)} rule(s) that cannot be repaired safely; "
                              "asking the model once more…[/]")
        elif isinstance(event, DraftChecked):
            console.print()
            checked = event.draft
            if checked.checks:
                styles = {KEPT: "green", REPAIRED: "yellow", BROKEN: "red"}
                console.rule("Rule check" + (f" (draft {event.index + 1})" if several else ""))
                for c in checked.checks:
                    style = styles.get(c.status, "dim")
                    note = f" [dim]({esc(c.note)})[/]" if c.note else ""
                    console.print(f"[{style}]{c.status:>13}[/] {esc(c.rule)}{note}", highlight=False)
                for sentence in event.unsupported:
                    console.print(f"[magenta]{'check':>13}[/] not in your intent? {esc(sentence)}", highlight=False)
                kept = sum(c.status != BROKEN for c in checked.checkable)
                summary = f"{kept} of {len(checked.checkable)} checkable rules kept"
                summary += " after repair" if any(c.status == REPAIRED for c in checked.checks) else ""
                summary += "; re-asked once" if checked.reasked else ""
                err_console.print(esc(summary))
                if checked.text.strip() != checked.original.strip():
                    console.rule("Email (after the rule check; the draft above is the model's original)")
                    console.print(checked.text.rstrip(), markup=False, highlight=False)
            err_console.print(f"[dim]{esc(event.backend or '-')} ({esc(event.model or '-')}), {event.elapsed_s:.1f} s, "
                              f"finish: {esc(event.finish_reason)}[/]")


def parse_ranking(text: str, m: int) -> tuple[list[int], bool]:
    """"2,1,3" -> ([1, 0, 2], False); "2" -> ([1, 0, 2], True): zero-based, best first, and whether
    only the best was picked. Raises ValueError naming what is wrong."""
    parts = [p for p in re.split(r"[\s,>]+", text.strip()) if p]
    if not parts:
        raise ValueError("empty ranking")
    try:
        picked = [int(p) - 1 for p in parts]
    except ValueError:
        raise ValueError(f"{text!r}: give draft numbers, best first, like 2,1,3") from None
    if any(not 0 <= i < m for i in picked) or len(set(picked)) != len(picked):
        raise ValueError(f"{text!r}: each of the numbers 1-{m} at most once")
    best_only = len(picked) == 1
    rest = [i for i in range(m) if i not in picked]
    if not best_only and rest:
        raise ValueError(f"{text!r}: rank all {m} drafts, or pick just one")
    return picked + rest, best_only


def _rank_candidates(intent, selector, tag_sets, sender, ranking) -> None:
    """Ask for (or take) the user's ranking of the drafts shown, and teach the tag selector."""
    from app.ranking.selector import learned_preferences, save_selector

    m = len(tag_sets)
    console.rule()
    if ranking is not None:
        try:
            order, best_only = parse_ranking(ranking, m)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--rank") from None
    elif not sys.stdin.isatty():
        err_console.print("Not ranked (no --rank and no terminal to ask): nothing learned.")
        return
    else:
        while True:
            answer = click.prompt("Rank the drafts best first (e.g. 2,1,3) or pick one (e.g. 2); Enter to skip",
                                  default="", show_default=False)
            if not answer.strip():
                err_console.print("Skipped: nothing learned.")
                return
            try:
                order, best_only = parse_ranking(answer, m)
                break
            except ValueError as exc:
                err_console.print(f"[yellow]{esc(exc)}[/]")
    seconds = selector.update(intent, [list(tag_sets[i]) for i in order], best_only=best_only)
    path = save_selector(selector, sender)
    favoured = ", ".join(t for t, w in learned_preferences(selector, 5) if w > 0) or "(none yet)"
    err_console.print(f"Learned from your {'pick' if best_only else 'ranking'} in {seconds * 1000:.0f} ms "
                      f"({selector.updates} so far, saved to {path}). Favoured tags: {favoured}")


@cli.command("tags")
@click.option("--from", "sender", help="Which of your identities (each learns its own tags).")
@click.option("--reset", is_flag=True, help="Forget what your rankings taught (start over).")
def tags_command(sender, reset) -> None:
    """Show the style/topic tags your draft rankings taught Tiller, or reset them."""
    from app.ranking.selector import learned_preferences, load_selector, reset_selector, state_path

    if reset:
        removed = reset_selector(sender)
        console.print("Forgotten: the next rankings start from scratch." if removed else "Nothing learned yet: nothing to reset.")
        return
    if not state_path(sender).is_file():
        console.print("Nothing learned yet: draft with --candidates 3 and rank the drafts.")
        return
    selector = load_selector(sender)
    table = Table(title=f"Learned tag preferences ({selector.updates} rankings)")
    table.add_column("tag")
    table.add_column("preference", justify="right")
    for tag, weight in learned_preferences(selector, n=len(selector.tags)):
        table.add_row(*cells(tag, f"{weight:+.2f}"))
    console.print(table)


@cli.command("gui")
def gui_command() -> None:
    """Open the desktop app."""
    try:
        from app.gui.window import main as gui_main
    except ImportError as exc:
        raise click.ClickException(f"the desktop app needs PySide6: pip install 'PySide6-Essentials<6.12' ({exc})") from None
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


def pick_demo_sender(db) -> str | None:
    """Kay Mann when the sample has her, else the identity with the most training candidates."""
    rows = db.execute(
        "SELECT from_addr, COUNT(*) n FROM messages WHERE from_addr IN (SELECT address FROM identities WHERE origin != 'rejected')"
        " GROUP BY from_addr ORDER BY n DESC").fetchall()
    addresses = [r[0] for r in rows]
    if DEMO_SENDER in addresses:
        return DEMO_SENDER
    return addresses[0] if addresses else None


@cli.command("demo")
@click.option("--steps", default=DEMO_STEPS, show_default=True, help="Training steps for the brief agent run.")
@click.option("--intent", default=DEMO_INTENT, show_default=True)
@click.option("--local-emails", default=DEMO_LOCAL_EMAILS, show_default=True,
              help="How many of the sender's newest emails the local model distills (0 skips that stage).")
def demo_command(steps: int, intent: str, local_emails: int) -> None:
    """Run the main job on the embedded defaults, all on this computer: import the sample of real
    mail, distill it (measured rules for all, then the paper's method with the local model for a
    few newest emails), train the agent briefly, and draft an email with its rules (the embedded
    instruct model stands in for the large model, and the rule check shows every rule)."""
    from app.mail.sources import open_source

    sample = find_sample_mail()
    if sample is None:
        raise click.ClickException(
            "sample mail not found: set TILLER_SAMPLE_MAIL to a Maildir folder (e.g. ../shared/data/enron/maildir)"
        )
    db = _open_db()
    console.rule("1/5 Importing the sample mailbox")
    result = run_import(db, open_source(sample), show_skipped=5)
    if result.status != "completed":
        sys.exit(130)
    sender = pick_demo_sender(db)
    console.rule("2/5 Training data in a minute: extractive intents and measured style rules (on this computer)")
    code = run_training_command(["distill", "--offline"])
    if code:
        sys.exit(code)
    if local_emails and sender:
        console.rule(f"3/5 The paper's distillation with the local model: {sender}'s {local_emails} newest emails")
        console.print("Abstractive intent, zero-shot email and R3 rules per email, by the embedded instruct model on "
                      "this computer (nothing is sent anywhere). `tiller distill --backend local` does a whole mailbox "
                      "in the background; the demo trains on the measured rules so it stays short.")
        code = run_training_command(["distill", "--backend", "local", "--sender", sender, "--limit", str(local_emails)])
        if code:
            sys.exit(code)
    console.rule(f"4/5 Training the preference agent for {esc(sender or 'all senders')} ({steps} steps)")
    measured = paths.home() / "datasets" / "all" / "measured" / "train.jsonl"
    if run_trainer(sender, steps=steps, dataset=measured if measured.is_file() else None) is None:
        sys.exit(130)
    console.rule("5/5 Drafting with the agent's rules (the embedded instruct model, with the rule check)")
    console.print(f"[bold]Intent:[/] {esc(intent)}")
    ctx = click.get_current_context()
    ctx.invoke(draft_command, intent=intent, recipient="Sylvia", subject="NG Energy contract", reply_file=None,
               sender=sender, backend="local", show_rules=True, rules_file=None, no_agent=False, max_tokens=200)


# -- models -------------------------------------------------------------------------------------------


@cli.group("models", invoke_without_command=True)
@click.option("--verify", is_flag=True, help="Also check each file's sha256 (a few seconds per GB).")
@click.pass_context
def models_group(ctx, verify: bool) -> None:
    """The models Tiller knows: the embedded ones and any GGUF you added, and which one plays which role."""
    if ctx.invoked_subcommand is not None:
        return
    from app.models import ROLES, ModelInfo, list_models, model_for_role

    db = _open_db()
    in_use = {model_for_role(db, role): role for role in ROLES}
    table = Table(title="Models (a role marked * is in use)")
    for col in ModelInfo.TABLE_COLUMNS:
        table.add_column(col)
    for m in list_models(db, verify=verify):
        table.add_row(*cells(*m.table_row(m.name in in_use)))
    console.print(table)
    console.print("Add a GGUF you have: tiller models add FILE.gguf --role drafting; switch: tiller models use ROLE NAME")


@models_group.command("add")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--role", type=click.Choice(["drafting", "agent-base"]), default="drafting", show_default=True)
@click.option("--name", help="A name for it (default: the file name).")
@click.option("--use", "use_now", is_flag=True, help="Also use it for its role now.")
def models_add(path: Path, role: str, name: str | None, use_now: bool) -> None:
    """Register a GGUF model file you already have (its header is read, its sha256 recorded)."""
    from app.models import register_model, use_model

    db = _open_db()
    try:
        with console.status("Reading the model and computing its sha256…"):
            info = register_model(db, path, role, name)
        if use_now:
            use_model(db, role, info.name)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    template = "with a chat template" if info.chat_template else "no chat template: prompted completion-style"
    console.print(f"Added [bold]{esc(info.name)}[/] ({esc(info.architecture)}, {esc(info.quantization or '?')}, "
                  f"{template}) for the role {role}" + (" and using it now." if use_now else "."))


@models_group.command("use")
@click.argument("role", type=click.Choice(["drafting", "agent-base"]))
@click.argument("name")
def models_use(role: str, name: str) -> None:
    """Use model NAME for ROLE (drafting: the local large model; agent-base: what the agent is trained on)."""
    from app.models import use_model

    db = _open_db()
    try:
        use_model(db, role, name)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    console.print(f"The {role} model is now [bold]{esc(name)}[/].")


@models_group.command("remove")
@click.argument("name")
def models_remove(name: str) -> None:
    """Forget a model you added (the file itself is left where it is)."""
    from app.models import remove_model

    db = _open_db()
    try:
        removed = remove_model(db, name)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if not removed:
        raise click.ClickException(f"no added model named {name!r} (see: tiller models)")
    console.print(f"Forgot {esc(name)}; its file was left in place.")


@cli.command("check")
@click.option("--restore", is_flag=True, help="Put the automatic backup of the database back (the current file is kept beside it).")
def check_command(restore: bool) -> None:
    """Check the database (PRAGMA integrity_check) and every model and adapter file against its
    recorded size and sha256; say what to do about anything wrong."""
    from app.check import check_database, run_checks
    from app.store.backup import restore_backup

    if restore:
        db_path = paths.database_path()
        try:
            source, kept = restore_backup(db_path)
        except (FileNotFoundError, RuntimeError) as exc:
            raise click.ClickException(str(exc)) from None
        console.print(f"Restored {esc(db_path)} from {esc(source)}; the previous file is kept as {esc(kept)}.")
        found = check_database(db_path)
        console.print(f"{'ok' if found.ok else 'PROBLEM'}: {esc(found.subject)}: {esc(found.detail)}")
        return
    problems = 0
    for found in run_checks():
        mark = "[green]ok[/]     " if found.ok else "[red]problem[/]"
        console.print(f"{mark} {esc(found.subject)}: {esc(found.detail)}")
        if not found.ok:
            problems += 1
            console.print(f"        what to do: {esc(found.fix)}")
    if problems:
        raise SystemExit(EXIT_STORE)
    console.print("Everything checked is sound.")


def main(argv: list[str] | None = None) -> None:
    """The entry point: one line for any error (see ``app.errors``), the traceback in the log or
    with --debug."""
    from app.errors import one_line

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name="tiller", standalone_mode=False)
    except click.exceptions.Abort:
        err_console.print("Aborted.", markup=False)
        sys.exit(EXIT_CANCELLED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("Cancelled.", markup=False)
        sys.exit(EXIT_CANCELLED)
    except Exception as exc:  # noqa: BLE001 - the one place every error becomes a sentence
        if _DEBUG["on"] or "--debug" in args[:1]:
            raise
        told = one_line(exc, context="tiller " + " ".join(args[:2]))
        err_console.print(f"Error: {told.message}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(told.exit_code)


if __name__ == "__main__":
    main()
