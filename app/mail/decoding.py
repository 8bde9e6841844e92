"""Raw items -> rows ready to store, inline or in worker processes.

Decoding (reading the file, MIME, splitting, the content key, JSON columns) is ~70% of import
time and independent per message, so large imports spread it over worker processes while the
importer's process only writes to SQLite. Results come back in source order and only a bounded
number of chunks is in flight, so memory stays flat on any mailbox size and an interrupted import
loses nothing that was committed.
"""

from __future__ import annotations

import json
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from app.mail.decode import MessageRejected, parse_message
from app.mail.sources import RawItem
from app.mail.split import SPLITTER_VERSION, split_message

# Columns of ``messages`` that depend only on the message's bytes, in the importer's INSERT order.
MESSAGE_COLUMNS = (
    "message_id", "content_key", "date", "date_raw", "from_addr", "from_name", "to_addrs", "cc_addrs", "subject",
    "in_reply_to", "references_", "body_text", "own_text", "previous_context", "signature", "flags",
    "attachments", "attachment_count", "parser_version",
)


class Decoded(NamedTuple):
    """One message ready to store: its column values and the warnings met while decoding it.
    (Named tuples: workers pickle thousands of these a second, and tuples are the cheapest.)"""

    values: tuple  # in MESSAGE_COLUMNS order
    warning: str | None

    @property
    def message_id(self) -> str | None:
        return self.values[0]

    @property
    def content_key(self) -> str:
        return self.values[1]


class Rejected(NamedTuple):
    reason: str
    detail: str


def decode_item(item: RawItem) -> Decoded | Rejected:
    data, error = item.read()
    if error is not None:
        return Rejected("unreadable", error)
    try:
        parsed = parse_message(data)
    except MessageRejected as rejected:
        return Rejected(rejected.reason, rejected.detail)
    split = split_message(parsed.body_text, parsed.subject)
    values = (
        parsed.message_id, parsed.content_key, parsed.date.isoformat() if parsed.date else None, parsed.date_raw,
        parsed.from_addr, parsed.from_name, json.dumps(parsed.to_addrs), json.dumps(parsed.cc_addrs), parsed.subject,
        parsed.in_reply_to, parsed.references, parsed.body_text, split.own_text, split.previous_context,
        split.signature, json.dumps(sorted(parsed.flags | split.flags)), json.dumps(parsed.attachments),
        len(parsed.attachments), SPLITTER_VERSION,
    )
    return Decoded(values, "; ".join(parsed.warnings) if parsed.warnings else None)


def _decode_chunk(work: list[tuple[str | None, bytes | None, str | None] | None]) -> list[Decoded | Rejected | None]:
    """In a worker: (path, data, error) per item, None for one to pass over; files are read here."""
    return [None if entry is None else decode_item(RawItem(key="", folder="", path=entry[0], data=entry[1], error=entry[2]))
            for entry in work]


def default_workers(expected_items: int | None) -> int:
    """0 (decode inline) for small imports, where starting processes costs more than it saves,
    on one CPU, and in a frozen bundle (no Python to start the worker module with)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cpus < 2 or getattr(sys, "frozen", False) or (expected_items is not None and expected_items < 2000):
        return 0
    return min(cpus, 4)


class DecodingPool:
    """``for item, decoded in pool.decode(items, skip)``: in source order, decoded by ``workers``
    processes with at most ``3 * workers`` chunks in flight; decoded is None for skipped items.

    Workers are plain ``python -m app.mail.decoding`` processes fed pickled chunks over their
    stdin, not multiprocessing children: those re-import the caller's ``__main__`` (any script
    without a main guard would run again) and must not be forked from a process with threads (the
    GUI imports on a thread). Chunk k goes to worker k mod n and each worker answers in order, so
    results come back in source order by construction. A worker that dies is not fatal: its chunks
    are decoded here instead.
    """

    def __init__(self, workers: int, chunk_size: int = 128):
        self.chunk_size = chunk_size
        app_root = str(Path(__file__).resolve().parents[2])  # so a checkout that is not installed works too
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (app_root, os.environ.get("PYTHONPATH")) if p))
        self._workers = [_Worker(env) for _ in range(workers)]

    def decode(
        self, items: Iterable[RawItem], skip: Callable[[RawItem], bool] = lambda item: False
    ) -> Iterator[tuple[RawItem, Decoded | Rejected | None]]:
        pending: deque[tuple[int, list[RawItem], list]] = deque()
        max_in_flight = len(self._workers) * 3
        sent = 0
        chunk: list[RawItem] = []
        for item in items:
            chunk.append(item)
            if len(chunk) >= self.chunk_size:
                pending.append(self._submit(sent, chunk, skip))
                sent += 1
                chunk = []
                while len(pending) >= max_in_flight:
                    yield from self._collect(pending.popleft())
        if chunk:
            pending.append(self._submit(sent, chunk, skip))
        while pending:
            yield from self._collect(pending.popleft())

    def _submit(self, number: int, chunk: list[RawItem], skip) -> tuple[int, list[RawItem], list]:
        work = [None if skip(item) else (item.path, item.data, item.error) for item in chunk]
        worker = number % len(self._workers)
        self._workers[worker].send(work)
        return worker, chunk, work

    def _collect(self, entry: tuple[int, list[RawItem], list]) -> Iterator[tuple[RawItem, Decoded | Rejected | None]]:
        worker, chunk, work = entry
        results = self._workers[worker].receive()
        if results is None:  # the worker died (or never started): decode its chunk here
            results = _decode_chunk(work)
        yield from zip(chunk, results)

    def close(self) -> None:
        for worker in self._workers:  # all are told to stop first, so they exit side by side
            worker.stop()
        for worker in self._workers:
            worker.wait()

    def __enter__(self) -> DecodingPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _Worker:
    """One decoding process. Requests are written by a feeder thread: writing a large request
    while the worker blocks writing a large answer nobody reads yet would deadlock."""

    def __init__(self, env: dict[str, str]):
        self.alive = True
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", __name__], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
            )
        except OSError:
            self.alive = False
            return
        self._requests: queue.SimpleQueue = queue.SimpleQueue()
        self._feeder = threading.Thread(target=self._feed, name="tiller-decode-feeder", daemon=True)
        self._feeder.start()

    def send(self, work: list) -> None:
        if self.alive:
            self._requests.put(work)

    def _feed(self) -> None:
        pipe = self.process.stdin
        while (work := self._requests.get()) is not None:
            try:
                _write_frame(pipe, work)
            except (OSError, ValueError):  # the worker is gone; receive() notices
                return
        try:
            pipe.close()
        except OSError:
            pass

    def receive(self) -> list | None:
        if not self.alive:
            return None
        try:
            return _read_frame(self.process.stdout)
        except (OSError, EOFError, pickle.UnpicklingError):
            self.alive = False
            return None

    def stop(self) -> None:
        if not hasattr(self, "process"):
            return
        self._requests.put(None)  # the feeder closes stdin: the worker's loop ends
        try:
            self.process.stdout.close()  # a worker still writing an answer gets EPIPE and exits
        except OSError:
            pass

    def wait(self) -> None:
        if not hasattr(self, "process"):
            return
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _write_frame(pipe, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    pipe.write(len(data).to_bytes(8, "little") + data)
    pipe.flush()


def _read_frame(pipe):
    header = pipe.read(8)
    if len(header) < 8:
        raise EOFError("decoding worker closed its output")
    size = int.from_bytes(header, "little")
    data = pipe.read(size)
    if len(data) < size:
        raise EOFError("decoding worker's answer was cut short")
    return pickle.loads(data)


def _serve() -> None:
    """The worker's loop: a chunk in on stdin, its results out on stdout, until stdin closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the importer's (it rolls back its batch)
    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # a stray print must not corrupt the frames
    while True:
        try:
            work = _read_frame(requests)
        except EOFError:
            return
        try:
            _write_frame(answers, _decode_chunk(work))
        except BrokenPipeError:  # the importer stopped reading (cancelled or done)
            return


if __name__ == "__main__":
    # run the imported module's loop, so what we pickle names app.mail.decoding, not __main__
    from app.mail import decoding

    decoding._serve()
