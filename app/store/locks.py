"""A lock between processes that use the same store: imports take turns.

SQLite already lets only one writer in at a time; this lock makes a whole import one turn, so two
imports of the same or overlapping mailboxes (the GUI and the CLI, two terminals) never race on
"is this source known yet?" and the second finds the first one's work already done. Waiting is
cancellable and says who holds the lock. The operating system drops the lock when its process
dies, so a killed import never leaves a stale lock behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from app.jobs import Cancelled, CancelToken

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
    import msvcrt


class StoreLock:
    """``with StoreLock(path).held(cancel, on_wait):`` blocks until no other process holds it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    def _try(self, fd: int) -> bool:
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            else:  # pragma: no cover - Windows
                msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False

    def holder(self) -> str:
        try:
            return self.path.read_text(encoding="utf-8", errors="replace").strip() or "another process"
        except OSError:
            return "another process"

    def try_acquire(self) -> bool:
        """Take the lock if it is free; False when another process holds it."""
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if not self._try(self._fd):
            return False
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"pid {os.getpid()}".encode())
        return True

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            except OSError:
                pass
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None

    @contextmanager
    def held(
        self, cancel: CancelToken | None = None, on_wait: Callable[[str], None] | None = None, poll_s: float = 0.2
    ) -> Iterator[None]:
        """Blocks until the lock is free (Cancelled if ``cancel`` is set meanwhile)."""
        cancel = cancel or CancelToken()
        told = False
        try:
            while not self.try_acquire():
                if not told and on_wait is not None:
                    on_wait(self.holder())
                    told = True
                if cancel.wait(poll_s):
                    raise Cancelled("cancelled while waiting for another import to finish")
            yield
        finally:
            self.release()


def import_lock(db_path: Path) -> StoreLock:
    return StoreLock(Path(f"{db_path}.import-lock"))
