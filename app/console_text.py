"""User-controlled text on a rich console: always shown as text, never read as markup.

Paths, URLs, model and backend names, ledger rows, subjects and email text can hold ``[/x]`` or
``[bold]``; rich would read those as markup (and crash on a closing tag it never opened). Every
value of that kind goes through :func:`esc` inside a markup string, or :func:`cells` into a table.
"""

from __future__ import annotations

from rich.markup import escape
from rich.text import Text


def esc(value: object) -> str:
    """``value`` as text to embed in a markup string."""
    return escape(str(value))


def cells(*values: object) -> list[Text]:
    """Table cells that are plain text whatever they hold."""
    return [value if isinstance(value, Text) else Text("" if value is None else str(value)) for value in values]
