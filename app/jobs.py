"""Long work as generators that yield progress, cancelled by a flag checked between yields.

The same generator drives the CLI's rich progress bar and the GUI's worker thread; the core never
imports Qt and never blocks on the UI.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


class Cancelled(Exception):
    """Raised by work that was asked to stop (a cancelled request or stream)."""


class CancelToken:
    """Set from any thread (a signal handler, a GUI button); the job stops at its next check.

    Work that blocks (a network read) registers a callback with :meth:`on_cancel` that unblocks it,
    e.g. by closing the stream; callbacks run on the cancelling thread.
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._callbacks: list = []

    def cancel(self) -> None:
        with self._lock:
            self._event.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback()
            except Exception:  # an unblocking callback must never stop the others
                pass

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds, waking at once when cancelled; True if cancelled."""
        return self._event.wait(timeout)

    def raise_if_cancelled(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled")

    def on_cancel(self, callback):
        """Run ``callback`` when cancelled (at once if already cancelled). Returns a function that
        unregisters it, for when the blocking work finished first."""
        with self._lock:
            if not self._event.is_set():
                self._callbacks.append(callback)
                return lambda: self._discard(callback)
        callback()
        return lambda: None

    def _discard(self, callback) -> None:
        with self._lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)


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
