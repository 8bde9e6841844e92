"""Where Tiller keeps the user's data.

The platform's user data dir (platformdirs), or ``$TILLER_HOME`` when set: tests always set it to a
temporary directory so they never touch a real profile.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "Tiller"


def home() -> Path:
    """The data directory, created on first use."""
    override = os.environ.get("TILLER_HOME")
    path = Path(override).expanduser() if override else Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        from app.exceptions import StoreError

        where = "TILLER_HOME" if override else "Tiller's data folder"
        raise StoreError(
            f"{where} is {str(path)!r}, which is not a folder: point it at a folder (it is created if missing)."
        ) from None
    return path


def database_path() -> Path:
    return home() / "tiller.db"


def logs_dir() -> Path:
    """``<data>/logs``: tracebacks, the app's log, the background runs' output (not created here)."""
    return home() / "logs"
