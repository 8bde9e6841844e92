"""``tiller backends``, ``keys`` and ``ledger``: the large models, their keys, and what was sent."""

from __future__ import annotations

import sys

import click
from rich.table import Table

from app.cli.common import _open_db, cancel_on_ctrl_c, cli, console, err_console
from app.console_text import cells, esc

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
        table.add_row(
            *cells(
                "*" if ep.name == default else "",
                ep.name,
                ep.provider,
                ep.model or cls.default_model or "",
                ep.base_url or cls.default_base_url or ("in-process" if not cls.leaves_machine else "provider default"),
                key_status(ep),
                "yes" if cls.leaves_machine else "no",
            )
        )
    console.print(table)
    console.print("* = default. Add one: tiller backends add NAME --provider anthropic|gemini|openai_compat|local")


@backends_group.command("add")
@click.argument("name")
@click.option("--provider", required=True, help="anthropic, gemini, openai_compat or local.")
@click.option("--model", help="Model id (e.g. claude-sonnet-4-5, gemini-2.5-flash), or a GGUF path for local.")
@click.option("--base-url", help="Endpoint URL (required for openai_compat, e.g. http://127.0.0.1:8080/v1).")
@click.option(
    "--option",
    "option_pairs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Default generation option (repeatable), e.g. temperature=0.7.",
)
@click.option("--default/--no-default", "make_default", default=False, help="Also make it the default backend.")
def backends_add(name, provider, model, base_url, option_pairs, make_default) -> None:
    """Add (or replace) a named backend. Keys are stored separately: tiller keys set NAME."""
    from app.backends.base import EndpointConfig
    from app.backends.config import parse_option_pairs
    from app.backends.errors import ConfigError
    from app.ops.backends import add_backend

    db = _open_db()
    try:
        cfg = EndpointConfig(
            name=name, provider=provider, model=model, base_url=base_url, options=parse_option_pairs(option_pairs)
        )
        key = add_backend(db, cfg, make_default=make_default)
    except ConfigError as exc:
        raise _backend_error(exc) from None
    console.print(f"Saved backend [bold]{esc(name)}[/] ({esc(provider)}). Key: {esc(key)}")
    if key == "missing":
        console.print(f"Store its API key with: tiller keys set {esc(repr(name))}")


@backends_group.command("remove")
@click.argument("name")
@click.option("--keep-key", is_flag=True, help="Leave its key in the keyring.")
def backends_remove(name, keep_key) -> None:
    """Remove a named backend (and its stored key, unless --keep-key)."""
    from app.backends.errors import ConfigError
    from app.ops.backends import remove_backend

    try:
        removed, key_removed = remove_backend(_open_db(), name, keep_key=keep_key)
    except ConfigError as exc:
        raise _backend_error(exc) from None
    if not removed:
        raise click.ClickException(f"no configured backend named {name!r} (see: tiller backends list)")
    console.print(f"Removed backend {esc(name)}{' and its key' if key_removed else ''}.")


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
                request,
                name,
                cancel=token,
                on_retry=lambda n: err_console.print(f"[yellow]{esc(n.error)}; retrying in {n.wait_s:.1f} s[/]"),
            )
            console.print(
                f"Testing [bold]{esc(gen.endpoint.name)}[/] ({gen.cls.label}, model {esc(gen.endpoint.model or gen.cls.default_model)})"
            )
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
    from app.backends.config import get_endpoint
    from app.backends.errors import ConfigError

    try:  # a key for a backend that does not exist would sit in the keyring, used by nothing
        get_endpoint(_open_db(), name)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
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
        for key in (
            "id",
            "started_at",
            "finished_at",
            "backend",
            "provider",
            "model",
            "purpose",
            "method",
            "url",
            "request_bytes",
            "response_status",
            "response_bytes",
            "duration_ms",
            "outcome",
            "error",
        ):
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
        table.add_row(
            *cells(
                e["id"],
                e["started_at"][:19].replace("T", " "),
                e["backend"],
                e["purpose"],
                e["url"],
                f"{e['request_bytes']} B",
                e["response_status"] or "-",
                f"{e['response_bytes'] or 0} B",
                e["outcome"],
            )
        )
    console.print(table)
    console.print("Full payload of one request: tiller ledger --show ID")
