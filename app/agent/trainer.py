"""Start the trainer as its own process and follow it: the app never imports ``agent_training``.

``python -m agent_training train --json --control-stdin`` prints one JSON object per progress event
on stdout and stops cleanly (saving a checkpoint) when its stdin says ``cancel`` or closes, so a
crashed app never leaves a trainer running on its own. When it finishes, the profile's new
``adapter.gguf`` is already in place; the next agent request loads it (the runtime keys on the
file's timestamp).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Literal

TrainerPhase = Literal[
    "loading", "training", "saving", "exporting", "done", "cancelled", "error", "skipped", "distilling"
]


@dataclass
class TrainerEvent:
    """One progress line between the trainer process and the app (the trainer yields these and
    prints them with :meth:`to_json`; the app reads them back with :meth:`from_line`)."""

    phase: TrainerPhase
    step: int = 0
    total_steps: int = 0
    loss: float | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = None
    message: str = ""
    extra: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({k: v for k, v in asdict(self).items() if v not in (None, {}, "")} | {"phase": self.phase})

    @classmethod
    def from_line(cls, line: str) -> TrainerEvent | None:
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            return None
        if not isinstance(data, dict) or "phase" not in data:
            return None
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


def train_arguments(
    *, sender: str | None = None, steps: int | None = None, stage: str = "agent", min_pairs: int = 0, **options
) -> list[str]:
    """Command-line arguments for ``agent_training train`` from training options by field name
    (app/agent/train_options.py; ``steps`` is ``max_steps``). An unknown option is an error."""
    from app.agent.train_options import TRAINING_OPTIONS, trainer_arguments

    known = {opt.field for opt in TRAINING_OPTIONS}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"unknown training option(s) {unknown}; known: {sorted(known)}")
    args = ["train", "--json", "--control-stdin"]
    if sender:
        args += ["--sender", sender]
    if stage != "agent":
        args += ["--stage", stage]  # voice: the draft -> the user's words
    if min_pairs:
        args += ["--min-pairs", str(min_pairs)]
    return args + trainer_arguments({"max_steps": steps, **options})


def trainer_python() -> str:
    """The Python that runs the training side: ``$TILLER_TRAINER_PYTHON``, else this interpreter.
    A desktop bundle leaves torch out, so there it must be set (to a Python with tiller installed)."""
    import os

    configured = os.environ.get("TILLER_TRAINER_PYTHON")
    if configured:
        return configured
    if getattr(sys, "frozen", False):
        raise RuntimeError(
            "training runs in a separate Python with tiller installed (pip install tiller): "
            "set TILLER_TRAINER_PYTHON to it, e.g. ~/tiller-venv/bin/python"
        )
    return sys.executable


# how long a trainer whose control pipe was closed may take to save and exit before it is killed
# (it gives itself 3 s, agent_training/lifeline.py)
STOP_GRACE_S = 8.0


def child_environment(env: dict | None = None) -> dict:
    """The environment of a training-side process: it watches this process and stops when it goes
    away (``TILLER_PARENT_PID``, read by agent_training/lifeline.py)."""
    import os

    return {**(env if env is not None else os.environ), "TILLER_PARENT_PID": str(os.getpid())}


def spawn(
    args: list[str],
    *,
    attach: Literal["pipe", "terminal", "detached"],
    log: Path | None = None,
    python: str | None = None,
    env: dict | None = None,
) -> subprocess.Popen:
    """The one place the training side is started: ``python -m agent_training ARGS``.

    - ``pipe``: the app follows it (JSON lines on stdout, ``cancel`` on stdin) and it watches the
      app, stopping when the app goes away;
    - ``terminal``: it shares this terminal, so Ctrl-C reaches both; it watches this process too;
    - ``detached``: a job the user asked to go on after this program ends (the demo's longer run,
      a retrain from edits): its own session, no pipe, no parent to watch (a background job by
      request, not an orphan by accident), its output appended to ``log``.
    """
    import os

    command = [python or trainer_python(), "-m", "agent_training", *args]
    if attach == "pipe":
        return subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
            env=child_environment(env),
        )
    if attach == "terminal":
        return subprocess.Popen(command, env=child_environment(env))
    if log is None:
        raise ValueError("a detached training-side process needs a log file")
    base = env if env is not None else os.environ
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in base.items() if k != "TILLER_PARENT_PID"},
            start_new_session=True,  # a closed terminal or window does not stop it
        )


def start_background_training(log: Path, *, python: str | None = None, **kwargs) -> subprocess.Popen:
    """A training run the user asked to go on after this program ends (the demo's longer run). The
    adapter it makes replaces the profile's only when complete, as always; ``kill PID`` stops it
    and saves a checkpoint."""
    args = [a for a in train_arguments(**kwargs) if a != "--control-stdin"]
    return spawn(args, attach="detached", log=log, python=python)


class TrainerProcess:
    """``for event in TrainerProcess.start(sender=...).events(): ...``; ``cancel()`` from any thread."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.stderr_tail: list[str] = []
        self.last: TrainerEvent | None = None
        self._stdin_lock = threading.Lock()
        self._stderr_thread = threading.Thread(target=self._drain_stderr, daemon=True, name="trainer-stderr")
        self._stderr_thread.start()

    @classmethod
    def start(cls, *, python: str | None = None, env: dict | None = None, **kwargs) -> TrainerProcess:
        return cls.start_command(train_arguments(**kwargs), python=python, env=env)

    @classmethod
    def start_command(cls, args: list[str], *, python: str | None = None, env: dict | None = None) -> TrainerProcess:
        """Any ``agent_training`` command that prints JSON progress lines (``distill --json``)."""
        return cls(spawn(args, attach="pipe", python=python, env=env))

    def stop(self, grace_s: float = STOP_GRACE_S) -> int | None:
        """End the trainer now: close its control pipe (it saves the last finished step and exits
        within seconds, agent_training/lifeline.py), and kill it if it is still there after
        ``grace_s``. Returns its exit code."""
        if self.proc.poll() is not None:
            return self.proc.returncode
        with self._stdin_lock:
            try:
                if self.proc.stdin:
                    self.proc.stdin.close()
            except OSError:
                pass
        try:
            return self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            from app import logs

            logs.get("trainer").warning(
                "trainer %d did not exit within %.0f s of its control pipe closing: killed "
                "(a checkpoint it had not finished writing is lost; the one before it is kept)",
                self.proc.pid,
                grace_s,
            )
            self.proc.kill()
            return self.proc.wait()

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_tail = (self.stderr_tail + [line.rstrip("\n")])[-40:]

    def events(self) -> Iterator[TrainerEvent]:
        """Progress events until the trainer exits; then :attr:`returncode` says how it ended
        (0 done, 130 cancelled with a checkpoint, else failed: see :meth:`error_text`)."""
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            event = TrainerEvent.from_line(line)
            if event is not None:
                self.last = event
                yield event
        self.proc.wait()
        self._stderr_thread.join(timeout=5)

    def cancel(self) -> None:
        """Ask the trainer to stop after its current step (it saves a checkpoint to resume from)."""
        with self._stdin_lock:
            try:
                if self.proc.stdin and not self.proc.stdin.closed:
                    self.proc.stdin.write("cancel\n")
                    self.proc.stdin.flush()
            except (BrokenPipeError, OSError):
                pass

    def interrupt(self) -> None:
        """Ctrl-C for commands without --control-stdin (distill): they stop cleanly on SIGINT."""
        import signal

        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)

    def wait(self, timeout: float | None = None) -> int:
        return self.proc.wait(timeout)

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode

    def error_text(self) -> str:
        if self.last is not None and self.last.phase == "error":
            return self.last.message
        lines = [line for line in self.stderr_tail if line.strip()]
        return lines[-1] if lines else f"the trainer exited with code {self.proc.returncode}"
