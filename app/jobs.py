"""Long work as generators that yield progress, cancelled by a flag checked between yields.

The same generator drives the CLI's rich progress bar and the GUI's worker thread; the core never
imports Qt and never blocks on the UI.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


class CancelToken:
    """Set from any thread (a signal handler, a GUI button); the job stops at its next check."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()


@dataclass
class Progress:
    done: int
    total: int | None
    message: str = ""
    started: float = 0.0

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0
