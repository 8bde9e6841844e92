"""``tiller models`` and ``check``: the model files and the health of the data folder."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from app import paths
from app.cli.common import _open_db, cli, console
from app.console_text import cells, esc
from app.errors import EXIT_STORE

# -- models -------------------------------------------------------------------------------------------


@cli.group("models", invoke_without_command=True)
@click.option("--verify", is_flag=True, help="Also check each file's sha256 (a few seconds per GB).")
@click.pass_context
def models_group(ctx, verify: bool) -> None:
    """The models Tiller knows: the embedded ones and any GGUF you added, and which one plays which role."""
    if ctx.invoked_subcommand is not None:
        return
    from app.model_files import ROLES, ModelInfo, list_models, model_for_role

    db = _open_db()
    in_use = {model_for_role(db, role): role for role in ROLES}
    table = Table(title="Models (a role marked * is in use)")
    # the file goes under the table, a line each: a path squeezed into a ninth column pushed the
    # short facts (the license) out of a 120-column table
    columns = [c for c in ModelInfo.TABLE_COLUMNS if c != "file"]
    for col in columns:
        table.add_column(col)
    files = []
    for m in list_models(db, verify=verify):
        row = dict(zip(ModelInfo.TABLE_COLUMNS, m.table_row(m.name in in_use)))
        table.add_row(*cells(*(row[c] for c in columns)))
        files.append((m.name, row["file"]))
    console.print(table)
    for name, where in files:
        console.print(f"  {esc(name)}: {esc(where)}", soft_wrap=True)
    console.print(
        "Add a GGUF you have: tiller models add FILE.gguf --role drafting; switch: tiller models use ROLE NAME"
    )


@models_group.command("add")
@click.argument("path", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--role", type=click.Choice(["drafting", "agent-base"]), default="drafting", show_default=True)
@click.option("--name", help="A name for it (default: the file name).")
@click.option("--use", "use_now", is_flag=True, help="Also use it for its role now.")
def models_add(path: Path, role: str, name: str | None, use_now: bool) -> None:
    """Register a GGUF model file you already have (its header is read, its sha256 recorded)."""
    from app.model_files import register_model, use_model

    db = _open_db()
    try:
        with console.status("Reading the model and computing its sha256…"):
            info = register_model(db, path, role, name)
        if use_now:
            use_model(db, role, info.name)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    template = "with a chat template" if info.chat_template else "no chat template: prompted completion-style"
    console.print(
        f"Added [bold]{esc(info.name)}[/] ({esc(info.architecture)}, {esc(info.quantization or '?')}, "
        f"{template}) for the role {role}" + (" and using it now." if use_now else ".")
    )


@models_group.command("use")
@click.argument("role", type=click.Choice(["drafting", "agent-base"]))
@click.argument("name")
def models_use(role: str, name: str) -> None:
    """Use model NAME for ROLE (drafting: the local large model; agent-base: what the agent is trained on)."""
    from app.model_files import use_model

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
    from app.model_files import remove_model

    db = _open_db()
    try:
        removed = remove_model(db, name)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    if not removed:
        raise click.ClickException(f"no added model named {name!r} (see: tiller models)")
    console.print(f"Forgot {esc(name)}; its file was left in place.")


@cli.command("check")
@click.option(
    "--restore",
    is_flag=True,
    help="Put the automatic backup of the database back when the database is damaged (the current file is kept "
    "beside it). Refused while an import runs.",
)
@click.option(
    "--force",
    is_flag=True,
    help="With --restore: restore even a database that passes its integrity check (undoes everything since the "
    "backup, taken before the last import or upgrade).",
)
def check_command(restore: bool, force: bool) -> None:
    """Check the database (PRAGMA integrity_check) and every model and adapter file against its
    recorded size and sha256; say what to do about anything wrong."""
    from app.check import check_database, run_checks
    from app.store.backup import restore_backup

    if force and not restore:
        raise click.UsageError("--force goes with --restore")
    if restore:
        db_path = paths.database_path()
        try:
            source, kept = restore_backup(db_path, force=force)
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
