"""Tiller's log: ``<data>/logs/tiller.log``, rotated at 1 MB (3 kept), for what a user may need to
read later and no command prints: a background retrain that could not start, a learning step that
was skipped. Everything logs to the ``tiller`` logger; the CLI and the desktop app call
:func:`configure` once at start, and the desktop app also shows warnings in its status bar
(app/gui/window.py). Tracebacks of errors stay in ``errors.log`` (app/errors.py).

The log never holds a key or a password (they are never put in a message), and holds mail text
only where a message quotes it, which none does.
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

LOGGER = "tiller"
MAX_BYTES = 1_000_000
BACKUPS = 3


def log_file() -> Path:
    from app import paths

    return paths.logs_dir() / "tiller.log"


class _DataFolderHandler(logging.Handler):
    """Writes to the log file, opened at the first record: configuring logging creates no folder
    (``tiller --help`` must not), and a data folder that cannot hold it loses the record, not the
    command."""

    def __init__(self) -> None:
        super().__init__()
        self._file: logging.Handler | None = None
        self._failed = False

    def emit(self, record: logging.LogRecord) -> None:
        if self._file is not None and Path(self._file.baseFilename) != log_file():  # TILLER_HOME changed
            self._file.close()
            self._file = None
        if self._file is None and not self._failed:
            try:
                path = log_file()
                path.parent.mkdir(parents=True, exist_ok=True)
                self._file = logging.handlers.RotatingFileHandler(
                    path, maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8"
                )
                self._file.setFormatter(self.formatter)
            except Exception:  # noqa: BLE001 - a broken data folder is reported by the command itself
                self._failed = True
        if self._file is not None:
            self._file.emit(record)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        super().close()


def configure(level: int = logging.INFO) -> None:
    """Send the ``tiller`` logger to the log file (once; again is a no-op)."""
    logger = logging.getLogger(LOGGER)
    if any(isinstance(h, _DataFolderHandler) for h in logger.handlers):
        return
    handler = _DataFolderHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)


def get(name: str = "") -> logging.Logger:
    """``tiller`` or one of its children (``get("learning")`` -> ``tiller.learning``)."""
    return logging.getLogger(f"{LOGGER}.{name}" if name else LOGGER)
