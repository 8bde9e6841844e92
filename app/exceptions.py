"""The root of the errors Tiller explains: every failure a user can act on is a :class:`TillerError`
whose message is one line saying what is wrong and what to do, and which carries its exit code.
The CLI and the desktop app show such a message as it is (app/errors.py), so no code matches on
message text to decide what an error means.

A base module: it imports nothing of Tiller's, so every layer may raise these.
"""

from __future__ import annotations

EXIT_ERROR = 1
EXIT_STORE = 3


class TillerError(Exception):
    """An error the user can act on; ``str(exc)`` is the one line they are shown."""

    exit_code = EXIT_ERROR


class StoreError(TillerError):
    """The data store cannot be used (damaged, read-only, full, TILLER_HOME wrong)."""

    exit_code = EXIT_STORE


class DatabaseTooNew(StoreError):
    """The database was written by a newer Tiller (a schema version this one does not know)."""
