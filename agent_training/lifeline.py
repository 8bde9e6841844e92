"""A trainer process never outlives whoever started it, and a cancel stops it within seconds.

The app (CLI or desktop) starts ``python -m agent_training train --control-stdin`` and keeps its
stdin open. Three ways the trainer learns it must stop:

- stdin says ``cancel`` (the Cancel button, one Ctrl-C in ``tiller train``/``tiller demo``);
- stdin closes: the parent exited, crashed or was killed with ``kill -9`` (the kernel closes the
  pipe's write end with the process);
- its parent process id changes (the parent died and the trainer was re-parented), checked once a
  second: a backstop for a pipe that another process still holds open.

(Linux's ``PR_SET_PDEATHSIG`` was not used: it fires when the *thread* that started the child
ends, and the desktop app starts trainers from worker threads.)

A cancel asks the training loop to stop at its next check (between the pieces of a step, so
usually in about a second). A step on a slow CPU can take minutes, and a cancelled trainer once ran
on at 100% CPU for as long, re-parented to init; so every stop also arms a deadline: when it
passes, the job's ``emergency_checkpoint`` saves the state of the last finished step (the weights
and optimizer do not change until the step's update) and the process exits with code 130.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable

from app.errors import EXIT_CANCELLED

CANCEL_GRACE_S = 10.0  # a cancel the user asked for: time to reach a check and save normally
ORPHAN_GRACE_S = 3.0  # the parent is gone: nobody is waiting for a tidy end
PARENT_POLL_S = 1.0


PARENT_ENV = "TILLER_PARENT_PID"  # set by the app for the training-side processes it starts


class Lifeline:
    """``Lifeline(token).watch_stdin().watch_parent()``; ``before_exit`` runs once, just before a
    forced exit (it must be safe to call from another thread; it returns the step it saved, or
    None). A forced exit is written to the log (app/logs.py). Without a token, a stop interrupts
    the process as Ctrl-C would (every command stops cleanly on SIGINT)."""

    def __init__(self, token=None, before_exit: Callable[[], int | None] | None = None, *, exit=os._exit) -> None:
        self.token = token if token is not None else _SigintToken()
        self.before_exit = before_exit
        self._exit = exit
        self._armed = threading.Lock()
        self._deadline: threading.Timer | None = None
        self.reason = ""

    def attach(self, token, before_exit: Callable[[], int | None] | None = None) -> Lifeline:
        """From now on a stop cancels ``token`` and a forced exit first calls ``before_exit``."""
        self.token, self.before_exit = token, before_exit
        token.on_cancel(lambda: self.stop("cancelled", CANCEL_GRACE_S))
        return self

    def stop(self, reason: str, grace_s: float) -> None:
        """Cancel the token now and exit the process after ``grace_s`` unless it ended by then
        (a shorter grace replaces a longer one already armed)."""
        self.reason = self.reason or reason
        self.token.cancel()
        with self._armed:
            if self._deadline is not None and self._deadline.interval <= grace_s:
                return
            if self._deadline is not None:
                self._deadline.cancel()
            self._deadline = threading.Timer(grace_s, self._force_exit)
            self._deadline.daemon = True
            self._deadline.start()

    def _force_exit(self) -> None:
        outcome = "nothing to save"
        try:
            if self.before_exit is not None:
                outcome = checkpoint_outcome(self.before_exit())
        except Exception as exc:  # the exit must happen whatever the checkpoint does
            outcome = f"could not save a checkpoint: {exc}"
            print(f"could not save a checkpoint before stopping: {exc}", file=sys.stderr, flush=True)
        print(f"stopped: {self.reason}", file=sys.stderr, flush=True)
        log_forced_stop(f"before its step ended ({self.reason})", outcome)
        self._exit(EXIT_CANCELLED)

    def watch_stdin(self, stream=None) -> Lifeline:
        """Stop on a ``cancel`` line (grace for a checkpoint) or at end of file (the parent is gone)."""
        stream = stream if stream is not None else sys.stdin

        def watch() -> None:
            for line in stream:
                if line.strip() == "cancel":
                    self.stop("cancelled", CANCEL_GRACE_S)
            self.stop("the program that started the trainer went away (its control pipe closed)", ORPHAN_GRACE_S)

        threading.Thread(target=watch, daemon=True, name="trainer-stdin").start()
        return self

    def watch_parent(self, poll_s: float = PARENT_POLL_S) -> Lifeline:
        """Stop when the parent process is gone (this process was re-parented). POSIX only."""
        if os.name != "posix":
            return self
        parent = os.getppid()
        stopped = threading.Event()

        def watch() -> None:
            while not stopped.wait(poll_s):
                if os.getppid() != parent:
                    self.stop(f"the program that started this process (pid {parent}) ended", ORPHAN_GRACE_S)
                    return

        threading.Thread(target=watch, daemon=True, name="trainer-parent").start()
        return self


def checkpoint_outcome(step: int | None) -> str:
    """What an emergency checkpoint did, for the log (``step``: the step it saved, or None)."""
    return "nothing to save yet" if step is None else f"the checkpoint of step {step} is saved"


def log_forced_stop(how: str, outcome: str) -> None:
    """A trainer that stopped without waiting for its step says so in ``<data>/logs/tiller.log``."""
    from app import logs

    logs.get("trainer").warning("trainer %d stopped %s; %s", os.getpid(), how, outcome)


class _SigintToken:
    """Stands for a command's own cancel token until one is attached: cancelling interrupts the
    process as Ctrl-C does."""

    def __init__(self) -> None:
        self.cancelled = False

    def cancel(self) -> None:
        import signal

        if not self.cancelled:
            self.cancelled = True
            os.kill(os.getpid(), signal.SIGINT)


_PROCESS_LIFELINE: Lifeline | None = None


def process_lifeline() -> Lifeline:
    """The one lifeline of this process. When the app started it (``TILLER_PARENT_PID`` names this
    process's parent), it already watches the parent."""
    global _PROCESS_LIFELINE
    if _PROCESS_LIFELINE is None:
        _PROCESS_LIFELINE = Lifeline()
        if os.environ.get(PARENT_ENV) == str(os.getppid()):
            _PROCESS_LIFELINE.watch_parent()
    return _PROCESS_LIFELINE
