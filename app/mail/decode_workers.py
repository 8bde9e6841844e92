"""Raw items -> rows ready to store, inline or in worker processes.

Decoding (reading the file, MIME, splitting, the content key, JSON columns) is ~70% of import
time and independent per message, so large imports spread it over worker processes, and the
importer's process decodes too whenever it would otherwise wait for them. Results come back in source order and only a bounded
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

from app.mail.charsets import storable_text
from app.mail.decode import MessageRejected, parse_message
from app.mail.sources import RawItem
from app.mail.split import SPLITTER_VERSION, split_message
from app.store.imports import MESSAGE_COLUMNS  # noqa: F401 - the order ``values`` are in


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
    """One item's row, or why it is skipped. Never raises for a message: whatever a hostile or
    broken file does to the parser (a codec error, a RecursionError, a MemoryError on a bomb)
    skips that one item, counted with its exception type, and the import goes on."""
    try:
        data, error = item.read()
        if error is not None:
            return Rejected(item.error_reason or "unreadable", error)
        return _decode(data, item.note)
    except MessageRejected as rejected:
        return Rejected(rejected.reason, rejected.detail)
    except RecursionError:
        return Rejected("malformed", "RecursionError: nested too deeply to parse")
    except MemoryError:
        return Rejected("too-large", "MemoryError: decoding it needs more memory than is free")
    except Exception as exc:  # noqa: BLE001 - the contract: one message never stops an import
        return Rejected("malformed", f"{type(exc).__name__}: {storable_text(str(exc))[:300]}")


def _decode(data: bytes, note: str | None) -> Decoded:
    parsed = parse_message(data)
    if note:
        parsed.warnings.insert(0, note)
    split = split_message(parsed.body_text, parsed.subject)
    values = (
        parsed.message_id,
        parsed.content_key,
        parsed.date.isoformat() if parsed.date else None,
        parsed.date_raw,
        parsed.from_addr,
        parsed.from_name,
        json.dumps(parsed.to_addrs),
        json.dumps(parsed.cc_addrs),
        parsed.subject,
        parsed.in_reply_to,
        parsed.references,
        parsed.body_text,
        split.own_text,
        split.previous_context,
        split.signature,
        json.dumps(sorted(parsed.flags | split.flags)),
        json.dumps(parsed.attachments),
        len(parsed.attachments),
        SPLITTER_VERSION,
    )
    # the last guard before SQLite, which cannot store lone surrogates (raw 8-bit header bytes)
    values = tuple(storable_text(v) if isinstance(v, str) else v for v in values)
    return Decoded(values, storable_text("; ".join(parsed.warnings)) if parsed.warnings else None)


def _decode_chunk(work: list[tuple[str | None, bytes | None, str | None] | None]) -> list[Decoded | Rejected | None]:
    """In a worker: (path, data, error) per item, None for one to pass over; files are read here."""
    return [
        None
        if entry is None
        else decode_item(
            RawItem(
                key="", folder="", path=entry[0], data=entry[1], error=entry[2], note=entry[3], error_reason=entry[4]
            )
        )
        for entry in work
    ]


def default_workers(expected_items: int | None) -> int:
    """One worker per CPU beside the importer's own (it decodes too, whenever it would wait), at
    most 3: the single SQLite writer caps what more would bring. 0 (decode inline) for small
    imports, where starting processes costs more than it saves, on one CPU, and in a frozen bundle
    (no Python to start the worker module with)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cpus < 2 or getattr(sys, "frozen", False) or (expected_items is not None and expected_items < 2000):
        return 0
    return min(cpus - 1, 3)


class DecodingPool:
    """``for item, decoded in pool.decode(items, skip)``: in source order, decoded by ``workers``
    processes and by the caller itself; decoded is None for skipped items.

    Workers are plain ``python -m app.mail.decode_workers`` processes fed pickled chunks over their
    stdin, not multiprocessing children: those re-import the caller's ``__main__`` (any script
    without a main guard would run again) and must not be forked from a process with threads (the
    GUI imports on a thread). Chunks are taken from the source in order and either sent to the
    least busy worker or, whenever the oldest chunk's answer is not back yet, decoded right here:
    the caller's own idle time becomes decoding time (work stealing), so one worker beside the
    importer keeps two cores busy. Each worker answers in order and the chunks are handed out in
    source order, so results come back in source order by construction. A worker that dies is not
    fatal: its chunks are decoded here instead.
    """

    def __init__(self, workers: int, chunk_size: int = 128, *, steal: bool = True):
        self.chunk_size = chunk_size
        self.steal = steal
        app_root = str(Path(__file__).resolve().parents[2])  # so a checkout that is not installed works too
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (app_root, os.environ.get("PYTHONPATH")) if p))
        self._workers = [_Worker(env) for _ in range(workers)]
        self.stolen = 0  # chunks decoded here, not by a worker (the tests read it)

    def decode(
        self, items: Iterable[RawItem], skip: Callable[[RawItem], bool] = lambda item: False
    ) -> Iterator[tuple[RawItem, Decoded | Rejected | None]]:
        pending: deque[list] = deque()  # [chunk, work, results or None], in source order
        outstanding = [deque() for _ in self._workers]  # per worker, its entries not answered yet, oldest first
        most_pending = _PER_WORKER * len(self._workers) + _MOST_STOLEN  # bounds memory held by stolen chunks
        chunks = self._chunks(items, skip)
        exhausted = False
        while True:
            # take in every answer already back, so a worker gets its next chunk without waiting
            # for its answer's turn to be stored (not stealing: answers are taken in turn, below)
            for worker, entries in zip(self._workers, outstanding) if self.steal else ():
                while entries and worker.ready():
                    self._answer(worker, entries.popleft())
            # keep every live worker supplied: their time is the cheapest
            while not exhausted and (free := self._free_worker(outstanding)) is not None:
                taken = next(chunks, None)
                if taken is None:
                    exhausted = True
                    break
                entry = [*taken, None]
                self._workers[free].send(entry[1])
                outstanding[free].append(entry)
                pending.append(entry)
            if not pending:
                if exhausted:
                    return
            elif pending[0][2] is not None:  # the oldest chunk is decoded: hand it on
                chunk, _, results = pending.popleft()
                yield from zip(chunk, results)
                continue
            if not exhausted and len(pending) < most_pending and (self.steal or not pending):
                # nothing to store yet: decode the next chunk here instead of waiting
                taken = next(chunks, None)
                if taken is None:
                    exhausted = True
                else:
                    self.stolen += 1
                    pending.append([*taken, _decode_chunk(taken[1])])
                continue
            # wait for the oldest chunk: it is the oldest of the worker it went to
            worker = next(w for w, entries in enumerate(outstanding) if entries and entries[0] is pending[0])
            self._answer(self._workers[worker], outstanding[worker].popleft())

    @staticmethod
    def _answer(worker: _Worker, entry: list) -> None:
        results = worker.receive()
        # the worker died (or never started): decode its chunk here
        entry[2] = results if results is not None else _decode_chunk(entry[1])

    def _free_worker(self, outstanding: list[deque]) -> int | None:
        free = [w for w, worker in enumerate(self._workers) if worker.alive and len(outstanding[w]) < _PER_WORKER]
        return min(free, key=lambda w: len(outstanding[w])) if free else None

    def _chunks(self, items: Iterable[RawItem], skip) -> Iterator[tuple[list[RawItem], list]]:
        """(items, work) in source order; work holds what a worker needs per item, None to pass over."""

        def with_work(chunk: list[RawItem]) -> tuple[list[RawItem], list]:
            return chunk, [None if skip(i) else (i.path, i.data, i.error, i.note, i.error_reason) for i in chunk]

        chunk: list[RawItem] = []
        for item in items:
            chunk.append(item)
            if len(chunk) >= self.chunk_size:
                yield with_work(chunk)
                chunk = []
        if chunk:
            yield with_work(chunk)

    def close(self) -> None:
        for worker in self._workers:  # all are told to stop first, so they exit side by side
            worker.stop()
        for worker in self._workers:
            worker.wait()

    def __enter__(self) -> DecodingPool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_PER_WORKER = 3  # chunks in flight per worker: enough that it never waits for the next
# chunks decoded here while the oldest is still out: enough to cover a worker's start-up
# (about 0.1 s, some 8 chunks) and a slow chunk, bounded since they wait in memory (~0.3 MB each)
_MOST_STOLEN = 16


class _Worker:
    """One decoding process, with a thread feeding it requests and a thread reading its answers.
    The reader matters for speed as much as for safety: an answer (~0.3 MB) does not fit a pipe,
    so a worker whose answer nobody reads yet would sit blocked instead of decoding its next
    chunk, and an importer blocked writing a request to it would deadlock."""

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
        self._answers: queue.SimpleQueue = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._feed, name="tiller-decode-feeder", daemon=True),
            threading.Thread(target=self._read, name="tiller-decode-reader", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def send(self, work: list) -> None:
        if self.alive:
            self._requests.put(work)

    def _feed(self) -> None:
        pipe = self.process.stdin
        while (work := self._requests.get()) is not None:
            try:
                _write_frame(pipe, work)
            except (OSError, ValueError):  # the worker is gone; the reader notices
                break
        try:
            pipe.close()  # the worker's loop ends
        except OSError:
            pass

    def _read(self) -> None:
        pipe = self.process.stdout
        while True:
            try:
                self._answers.put(_read_frame(pipe))
            except (OSError, EOFError, ValueError, pickle.UnpicklingError):
                self._answers.put(None)  # the worker ended (or died): no more answers
                return

    def ready(self) -> bool:
        """An answer (or the news that there will be none) is waiting: receive() will not block."""
        return not self.alive or not self._answers.empty()

    def receive(self) -> list | None:
        if not self.alive:
            return None
        answer = self._answers.get()
        if answer is None:
            self.alive = False
        return answer

    def stop(self) -> None:
        if hasattr(self, "process"):
            self._requests.put(None)  # the feeder sends what is queued, then closes stdin: the worker's loop ends

    def wait(self) -> None:
        if not hasattr(self, "process"):
            return
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for thread in self._threads:
            thread.join(timeout=5)
        self.process.stdout.close()


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
    # run the imported module's loop, so what we pickle names app.mail.decode_workers, not __main__
    from app.mail import decode_workers

    decode_workers._serve()
