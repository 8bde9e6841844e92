"""``tiller accounts``: mail accounts on an IMAP server (read-only, save-to-Drafts when allowed)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table

from app.cli.common import _open_db, cli, console, err_console
from app.console_text import cells, esc

# -- mail accounts (IMAP) -------------------------------------------------------------------------


@cli.group("accounts", invoke_without_command=True)
@click.pass_context
def accounts_group(ctx) -> None:
    """Mail accounts on an IMAP server (import their Sent folder with: tiller import imap:NAME).

    Tiller only reads: folders are opened read-only, messages fetched without marking them read,
    nothing is moved or deleted. The one exception is yours to allow: `tiller accounts set NAME
    --save-drafts on` lets Tiller add drafts to the Drafts folder (and delete only its own).
    The password stays in the OS keyring.
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(accounts_list)


@accounts_group.command("list")
def accounts_list() -> None:
    """The accounts, their server and folders."""
    from app.mail.accounts import list_accounts

    rows = list_accounts(_open_db())
    if not rows:
        console.print("No accounts yet. Add one: tiller accounts add NAME --imap HOST --user USER")
        return
    table = Table("name", "server", "user", "security", "sent folder", "context folders", "saves drafts")
    for acc in rows:
        security = acc.security + ("" if acc.verify_tls else ", certificate not verified")
        table.add_row(
            *cells(
                acc.name,
                f"{acc.host}:{acc.effective_port}",
                acc.user,
                security + (" (UNSAFE)" if acc.unsafe else ""),
                acc.sent_folder or "(found on the server)",
                ", ".join(acc.context_folders) or "-",
                (f"yes, to {acc.drafts_folder}" if acc.drafts_folder else "yes") if acc.save_drafts else "no",
            )
        )
    console.print(table)


def _read_secret(label: str, from_stdin: bool) -> str:
    if from_stdin or not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt(label, hide_input=True)


@accounts_group.command("add")
@click.argument("name")
@click.option("--imap", "host", required=True, metavar="HOST", help="The IMAP server, e.g. imap.fastmail.com.")
@click.option("--user", required=True, help="The login (usually your address).")
@click.option("--port", type=int, help="Default 993 (TLS), 143 with --starttls.")
@click.option("--starttls", is_flag=True, help="Plain connection upgraded with STARTTLS (port 143).")
@click.option(
    "--plaintext-unsafe",
    is_flag=True,
    help="UNSAFE: no encryption at all; the password and your mail cross the network readable.",
)
@click.option(
    "--tls-ca", type=click.Path(exists=True, dir_okay=False), help="Trust this certificate (self-signed server)."
)
@click.option("--no-verify-tls", is_flag=True, help="UNSAFE: accept any certificate (prefer --tls-ca).")
@click.option("--xoauth2", is_flag=True, help="Log in with an OAuth2 access token you paste (Gmail, Microsoft 365).")
@click.option("--sent-folder", help="The folder holding your sent mail (default: flagged \\Sent, else by name).")
@click.option(
    "--context-folder", "context_folders", multiple=True, help="Also import this folder as context (repeatable)."
)
@click.option("--password-stdin", is_flag=True, help="Read the password (or token) from stdin instead of a prompt.")
def accounts_add(
    name,
    host,
    user,
    port,
    starttls,
    plaintext_unsafe,
    tls_ca,
    no_verify_tls,
    xoauth2,
    sent_folder,
    context_folders,
    password_stdin,
) -> None:
    """Add (or replace) IMAP account NAME: logs in and looks at the folders first, then stores
    the settings in Tiller's database and the password in the OS keyring."""
    from app import secrets
    from app.mail.accounts import AccountError, add_account
    from app.mail.imap import ImapAccount, ImapError

    if starttls and plaintext_unsafe:
        raise click.UsageError("--starttls and --plaintext-unsafe contradict each other: pick one")
    try:
        account = ImapAccount(
            name=name,
            host=host,
            user=user,
            port=port,
            security="starttls" if starttls else "plaintext" if plaintext_unsafe else "tls",
            auth="xoauth2" if xoauth2 else "password",
            ca_file=str(Path(tls_ca).resolve()) if tls_ca else None,
            verify_tls=not no_verify_tls,
            sent_folder=sent_folder,
            context_folders=tuple(context_folders),
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    for risk in account.unsafe:
        err_console.print(f"[red]Unsafe:[/] {esc(risk)}.")
    secret = _read_secret("Access token" if xoauth2 else f"Password for {user}", password_stdin)
    try:
        check = add_account(_open_db(), account, secret)
    except (ImapError, AccountError, secrets.KeyringUnavailable) as exc:
        raise click.ClickException(str(exc)) from None
    console.print(f"Added [bold]{esc(name)}[/] ({esc(account.location)}); password in the keyring.")
    _print_check(check)
    console.print(f"Import it with: tiller import imap:{esc(name)}")


def _print_check(check) -> None:
    console.print(f"  sent mail: {esc(check.sent_folder or '(none found: pass --sent-folder)')}")
    console.print(f"  folders: {esc(', '.join(check.folders))}")
    for skipped in check.skipped_folders:
        console.print(f"  folder {esc(skipped)}")


@accounts_group.command("test")
@click.argument("name")
def accounts_test(name) -> None:
    """Log in to account NAME and list its folders (reads nothing else)."""
    from app.mail.accounts import AccountError, account_secret, get_account, probe
    from app.mail.imap import ImapError

    try:
        account = get_account(_open_db(), name)
        check = probe(account, account_secret(account))
    except (ImapError, AccountError) as exc:
        raise click.ClickException(str(exc)) from None
    console.print(f"{esc(name)}: login ok at {esc(account.location)}")
    _print_check(check)


@accounts_group.command("set")
@click.argument("name")
@click.option(
    "--save-drafts",
    type=click.Choice(["on", "off"]),
    help="Let Tiller add drafts to this account's Drafts folder (tiller draft --save); off by default.",
)
@click.option("--drafts-folder", help="The Drafts folder (default: flagged \\Drafts, else a usual name).")
@click.option("--yes", is_flag=True, help="Turn it on without being asked.")
def accounts_set(name, save_drafts, drafts_folder, yes) -> None:
    """Change what Tiller may do with account NAME: today, whether it may save drafts there."""
    from app.mail.accounts import DRAFTS_SCOPE, AccountError, get_account, set_drafts

    db = _open_db()
    try:
        current = get_account(db, name)
    except AccountError as exc:
        raise click.ClickException(str(exc)) from None
    if save_drafts is None and drafts_folder is None:
        raise click.UsageError("nothing to set: give --save-drafts on|off or --drafts-folder NAME")
    on = current.save_drafts if save_drafts is None else save_drafts == "on"
    if on and not current.save_drafts:
        console.print(esc(DRAFTS_SCOPE))
        if not yes:
            if not sys.stdin.isatty():
                raise click.ClickException("add --yes to turn it on without being asked (no terminal to ask on)")
            if not click.confirm(f"Let Tiller save drafts to {name}?", default=False):
                raise click.ClickException("nothing changed")
    account = set_drafts(db, name, on, drafts_folder)
    folder = account.drafts_folder or "found on the server"
    console.print(f"{esc(name)}: saving drafts {'on' if on else 'off'} (Drafts folder: {esc(folder)})")


@accounts_group.command("remove")
@click.argument("name")
def accounts_remove(name) -> None:
    """Forget account NAME and its password; the mail imported from it stays."""
    from app import secrets
    from app.mail.accounts import remove_account

    try:
        removed = remove_account(_open_db(), name)
    except secrets.KeyringUnavailable as exc:
        raise click.ClickException(str(exc)) from None
    if not removed:
        raise click.ClickException(f"no account named {name!r}")
    console.print(f"Removed {esc(name)} (its mail stays imported).")
