"""Run core work off the GUI thread and hand its progress back to the GUI thread.

The core's long work is a generator yielding progress and cancelled by a :class:`CancelToken`
(as in the CLI). :class:`Job` runs such a function in a Python thread and puts every yielded item,
the result and any error on a queue; a timer on the GUI thread drains it and emits the Qt signals
there. (Emitting Python objects through queued cross-thread signals crashed PySide6 6.12 with
"deallocating None" under load, and a queue also lets a fast producer be drained in batches.)
The GUI never blocks on work, and work never touches a widget.

SQLite connections belong to the thread that opened them, so job functions open their own.
"""

from __future__ import annotations

import queue
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from app.jobs import Cancelled, CancelToken


class Job(QObject):
    """``Job(fn)``: ``fn(token)`` returns an iterator (or a plain value). Signals:
    ``sig_progress(item)`` per yielded item, ``sig_succeeded(result)`` with the iterator's return
    value (or the plain value; also after a cancel that the work handled itself, e.g. an import
    returning its partial counts), ``sig_failed(message)``, ``sig_cancelled()`` (the work raised
    Cancelled), and always ``sig_ended()`` last. ``fn`` runs on a worker thread: it must never touch
    widgets; the signals are emitted on the GUI thread."""

    sig_progress = Signal(object)
    sig_succeeded = Signal(object)
    sig_failed = Signal(str)
    sig_cancelled = Signal()
    sig_ended = Signal()

    def __init__(
        self, fn: Callable[[CancelToken], Iterator[Any] | Any], name: str = "job", parent: QObject | None = None
    ) -> None:
        super().__init__(parent)
        self.fn = fn
        self.name = name
        self.token = CancelToken()
        self._thread: threading.Thread | None = None
        self._events: queue.SimpleQueue = queue.SimpleQueue()
        self._finished = False
        self._timer = QTimer(self)
        self._timer.setInterval(15)
        self._timer.timeout.connect(self._drain)

    def start(self) -> Job:
        self._timer.start()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"tiller-{self.name}")
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.token.cancel()

    @property
    def running(self) -> bool:
        """True until the GUI has seen the job end (not just until the thread exits)."""
        return self._thread is not None and not self._finished

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    def _run(self) -> None:  # the worker thread: never touches Qt
        put = self._events.put
        try:
            out = self.fn(self.token)
            if isinstance(out, Iterator):
                while True:
                    try:
                        item = next(out)
                    except StopIteration as stop:
                        out = stop.value
                        break
                    put(("progress", item))
            # work that stops cleanly on cancel (an import) returns its partial result: deliver it
            put(("succeeded", out))
        except Cancelled:
            put(("cancelled", None))
        except Exception as exc:  # one sentence for the user (app.errors, as in the CLI); traceback logged
            from app.errors import one_line

            traceback.print_exc()
            put(("failed", one_line(exc, context=f"gui job {self.name}").message))
        finally:
            put(("ended", None))

    def _drain(self) -> None:  # the GUI thread
        while True:
            try:
                kind, value = self._events.get_nowait()
            except queue.Empty:
                return
            if kind == "progress":
                self.sig_progress.emit(value)
            elif kind == "succeeded":
                self.sig_succeeded.emit(value)
            elif kind == "failed":
                self.sig_failed.emit(value)
            elif kind == "cancelled":
                self.sig_cancelled.emit()
            else:
                self._finished = True
                self._timer.stop()
                self.sig_ended.emit()
                return


@contextmanager
def database():
    """A connection of the calling thread's own, closed afterwards (pages open one per action)."""
    from app.store import open_database

    db = open_database()
    try:
        yield db
    finally:
        db.conn.close()
