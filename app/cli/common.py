"""What every ``tiller`` command shares: the root group, the consoles, Ctrl-C as a cancel token,
the database, and a rich progress bar set up one way."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from contextlib import contextmanager

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app import __version__
from app.jobs import CancelToken

# Piped output (CI logs, `| less`) would otherwise be squeezed into rich's 80-column default.
console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True)


_DEBUG = {"on": False}


# The module that defines each top-level command. A command's module (and what it needs: the
# backends' SDKs, pydantic, httpx, the drafting code) is imported when that command runs, not at
# every start: `tiller import` started in 0.55 s with all of them, 0.2-0.35 s less without.
COMMAND_MODULES = {
    "accounts": "app.cli.accounts",
    "agents": "app.cli.training",
    "backends": "app.cli.backends",
    "check": "app.cli.models",
    "demo": "app.cli.demo",
    "distill": "app.cli.training",
    "draft": "app.cli.drafting",
    "edits": "app.cli.learning",
    "eval": "app.cli.training",
    "gui": "app.cli.demo",
    "identities": "app.cli.mail",
    "import": "app.cli.mail",
    "imports": "app.cli.mail",
    "inbox": "app.cli.mail",
    "keys": "app.cli.backends",
    "ledger": "app.cli.backends",
    "mcp": "app.cli.drafting",
    "models": "app.cli.models",
    "tags": "app.cli.drafting",
    "train": "app.cli.training",
    "voice": "app.cli.training",
}


class CommandsByModule(click.Group):
    """The root group: lists every command, imports a command's module when it is asked for (each
    module adds its commands to ``cli`` when imported)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(COMMAND_MODULES) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            import importlib

            importlib.import_module(COMMAND_MODULES[cmd_name])
        return super().get_command(ctx, cmd_name)


@click.group(cls=CommandsByModule)
@click.version_option(__version__, prog_name="tiller")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
def cli(debug: bool) -> None:
    """Tiller drafts email in your own style, on your own machine.

    Exit codes: 0 done, 1 error (explained in one line), 2 usage error, 3 the data store cannot be
    used (damaged, read-only, disk full, TILLER_HOME wrong), 130 cancelled (work so far is saved).
    """
    _DEBUG["on"] = debug


def on_ctrl_c(token: CancelToken, stopping: str = "Stopping after the current batch") -> Callable[[], None]:
    """From now on, the first Ctrl-C cancels ``token`` (the job stops at a safe point and saves
    what it has), a second one aborts at once. Returns the function that puts the previous
    handler back."""
    previous = signal.getsignal(signal.SIGINT)
    presses = 0

    def handler(signum, frame):
        # Counted before anything else, and the second press takes no lock: Python may run this
        # handler again *inside* the first one (a press arriving while the first is handled), and
        # a second token.cancel() there would wait forever on the lock the first one holds.
        nonlocal presses
        presses += 1
        if presses > 1:
            signal.signal(signal.SIGINT, previous)
            raise KeyboardInterrupt
        token.cancel()
        err_console.print(f"{stopping} (Ctrl-C again to abort)…", style="yellow", markup=False, highlight=False)

    signal.signal(signal.SIGINT, handler)
    return lambda: signal.signal(signal.SIGINT, previous)


@contextmanager
def cancel_on_ctrl_c(stopping: str = "Stopping after the current batch"):
    """A cancel token that Ctrl-C sets while the block runs (see :func:`on_ctrl_c`)."""
    token = CancelToken()
    restore = on_ctrl_c(token, stopping)
    try:
        yield token
    finally:
        restore()


def _open_db():
    from app.store import open_database

    return open_database()


def progress_bar(description_width: int = 40, *extra_columns) -> Progress:
    """The one progress bar of the CLI: description, bar, done/total, elapsed and remaining time."""
    from rich.progress import TimeRemainingColumn

    return Progress(
        TextColumn(f"{{task.description:<{description_width}}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        *extra_columns,
        console=console,
    )
