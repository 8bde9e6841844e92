"""The ``tiller`` command line, a module per area, each imported when one of its commands runs.
Commands are thin: each parses its options, calls the core, and renders the result; the work lives
in the core modules."""

from __future__ import annotations

import sys

import click

# a command's module is imported when the command runs (app.cli.common.COMMAND_MODULES)
from app.cli.common import _DEBUG, cli, err_console
from app.errors import EXIT_CANCELLED


def main(argv: list[str] | None = None) -> None:
    """The entry point: one line for any error (see ``app.errors``), the traceback in the log or
    with --debug."""
    from app.errors import one_line

    args = list(sys.argv[1:] if argv is None else argv)
    from app import logs

    logs.configure()
    undecodable = not_text_argument(args)
    if undecodable:
        err_console.print(f"Error: {undecodable}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
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


def not_text_argument(args: list[str]) -> str | None:
    """A sentence for the first argument that holds bytes that are not UTF-8 (Python keeps them as
    lone surrogates, and they failed deep inside as "'utf-8' codec can't encode character
    '\\udcff'..."), unless it names an existing file: file names may be in any encoding."""
    import os

    for n, arg in enumerate(args, 1):
        bad = next((i for i, ch in enumerate(arg) if "\udc80" <= ch <= "\udcff"), None)
        if bad is None or os.path.lexists(arg):
            continue
        shown = arg.encode("utf-8", "surrogateescape").decode("ascii", "backslashreplace")
        byte = ord(arg[bad]) - 0xDC00
        return (
            f"argument {n} ({shown}) is not UTF-8 text (byte 0x{byte:02x} at position {bad + 1}): set your "
            "terminal to UTF-8, or pass the text in UTF-8"
        )
    return None


if __name__ == "__main__":
    main()
