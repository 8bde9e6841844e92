"""Importing a mail source into the database, as a resumable, cancellable generator.

Each item of the source ends in exactly one bucket: stored, duplicate, skipped (with a reason), or
already imported by an earlier run, so ``seen`` always equals the sum of the four. Work is
committed in batches; a batch is one transaction holding its messages, their per-item outcomes and
the run's counters, so an interrupted import leaves the database consistent and a rerun carries on
from the first item not yet committed.
"""

from __future__ import annotations

import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import sqlite_utils

from app.clock import utc_now
from app.jobs import CancelToken, Progress
from app.mail.charsets import storable_text
from app.mail.decode_workers import Decoded, DecodingPool, Rejected, decode_item, default_workers
from app.mail.identity import IdentitiesAtInsert, add_configured, settle_leftover_guesses
from app.mail.sources import MailSource, RawItem
from app.store import imports as store
from app.store.backup import take_backup
from app.store.db import begin_immediate, commit, roll_back
from app.store.imports import MESSAGE_COLUMNS
from app.store.locks import StoreLock, import_lock

_FROM_ADDR, _FROM_NAME = MESSAGE_COLUMNS.index("from_addr"), MESSAGE_COLUMNS.index("from_name")


_now = utc_now


@dataclass
class ImportCounts:
    seen: int = 0
    stored: int = 0
    duplicates: int = 0
    skipped: int = 0
    already_imported: int = 0
    warnings: int = 0  # stored messages decoded with a fallback or flagged (a subset of stored)
    skip_reasons: Counter = field(default_factory=Counter)

    def adds_up(self) -> bool:
        return self.seen == self.stored + self.duplicates + self.skipped + self.already_imported


@dataclass
class ImportProgress(Progress):
    counts: ImportCounts = field(default_factory=ImportCounts)


@dataclass
class ImportResult:
    run_id: int
    source_id: int
    status: Literal["completed", "cancelled"]
    counts: ImportCounts
    new_identities: list[str]
    elapsed_s: float
    # what learning made of the run (app.ops.imports.ImportOperation fills these in; the importer
    # itself only stores mail)
    drafts_matched: list[tuple[int, int, float]] = field(default_factory=list)  # (draft, message, similarity)
    edits_replaced: list[int] = field(default_factory=list)  # drafts whose own edit the sent version replaced


class MailImport:
    """``for progress in MailImport(db, source).run(): ...`` then read ``.result``."""

    def __init__(
        self,
        db: sqlite_utils.Database,
        source: MailSource,
        *,
        my_addresses: Iterable[str] = (),
        cancel: CancelToken | None = None,
        batch_size: int = 250,
        progress_every: int = 50,
        workers: int | None = None,
    ):
        self.db = db
        self.source = source
        self.my_addresses = list(my_addresses)
        self.cancel = cancel or CancelToken()
        self.batch_size = batch_size
        self.progress_every = progress_every
        self.workers = workers  # decoding processes; None: by size and CPUs, 0: decode inline
        self.result: ImportResult | None = None

    def run(self) -> Iterator[ImportProgress]:
        """Imports take turns (one store lock across processes): waiting for another import is
        shown as progress and can be cancelled."""
        started = time.monotonic()
        lock = _lock_for(self.db)
        if lock is not None:
            waiting = ImportProgress(done=0, total=None, started=started)
            while not lock.try_acquire():
                waiting.message = f"waiting for another import to finish ({lock.holder()})"
                yield waiting
                if self.cancel.wait(0.2):
                    self.result = ImportResult(0, 0, "cancelled", ImportCounts(), [], time.monotonic() - started)
                    lock.release()
                    return
        try:
            yield from self._run(started)
        finally:
            if lock is not None:
                lock.release()

    def _run(self, started: float) -> Iterator[ImportProgress]:
        db, conn = self.db, self.db.conn
        path = store.database_file(db)
        if path:
            take_backup(conn, Path(path))  # before any write: `tiller check --restore` undoes an import
        with db.atomic():
            # holding the lock, no other import is running: a run still marked running was killed
            store.fail_running_runs(conn)
            for address in self.my_addresses:
                add_configured(db, address)
            settle_leftover_guesses(db)
        # addresses given for this import say who the user is; only without them do we guess
        self._identities = IdentitiesAtInsert(db, guess=not self.my_addresses)
        source_id = self._source_id()
        # a source imported before may hold items done already; a new one cannot, so skip the lookup
        self._resuming = store.has_items(db, source_id)
        run_id = store.start_run(db, source_id)
        counts = ImportCounts()
        self._now = _now()  # imported_at, refreshed per batch (a clock read per message is waste)
        progress = ImportProgress(done=0, total=self.source.estimate(), started=started, counts=counts)
        yield progress
        workers = default_workers(progress.total) if self.workers is None else self.workers
        pool = DecodingPool(workers) if workers > 0 else None
        status = "completed"
        in_batch = 0
        begin_immediate(conn)
        # a source that waits on a network (IMAP) is cut at once on cancel, not at its next item
        stop_source = self.cancel.on_cancel(self.source.interrupt) if hasattr(self.source, "interrupt") else None
        try:
            for item, decoded in self._decoded_items(source_id, pool):
                if self.cancel.cancelled:
                    status = "cancelled"
                    break
                self._import_item(item, decoded, source_id, run_id, counts)
                in_batch += 1
                if in_batch >= self.batch_size:
                    self._now = _now()
                    self._save_counts(run_id, counts, "running")
                    commit(conn)
                    begin_immediate(conn)
                    in_batch = 0
                if counts.seen % self.progress_every == 0:
                    progress.done, progress.message = counts.seen, item.key
                    yield progress
            if self.cancel.cancelled:  # the source stopped early because it was interrupted
                status = "cancelled"
            self._save_counts(run_id, counts, status)
            store.touch_source(conn, source_id)
            commit(conn)
        except BaseException as exc:
            # the open batch is rolled back: its items were not recorded, so a rerun redoes them
            roll_back(conn)
            try:
                self._mark_interrupted(run_id, exc)
            except sqlite3.Error:  # the disk is still full: the next import marks this run failed
                pass
            try:  # the batches already committed keep their messages: say whose they are
                with db.atomic():
                    self._identities.settle(source_id)
            except Exception:  # noqa: BLE001 - the next import settles what is left (settle_leftover_guesses)
                pass
            raise
        finally:
            if stop_source is not None:
                stop_source()
            if pool is not None:
                pool.close()
        with db.atomic():
            new_identities = self._identities.settle(source_id)
        progress.done = counts.seen
        progress.message = status
        yield progress
        self.result = ImportResult(
            run_id=run_id,
            source_id=source_id,
            status=status,
            counts=counts,
            new_identities=new_identities,
            elapsed_s=time.monotonic() - started,
        )

    # -- one item -----------------------------------------------------------------------------

    def _decoded_items(
        self, source_id: int, pool: DecodingPool | None
    ) -> Iterator[tuple[RawItem, Decoded | Rejected | None]]:
        """(item, decoded) in source order; decoded is None for items imported by an earlier run."""
        done_keys = self._finished_keys(source_id) if self._resuming else frozenset()
        items = self.source.iter_items()
        if pool is not None:
            yield from pool.decode(items, skip=lambda item: item.key in done_keys)
            return
        for item in items:
            yield item, (None if item.key in done_keys else decode_item(item))

    def _finished_keys(self, source_id: int) -> frozenset[str]:
        # only a resumed import holds these keys in memory
        return store.finished_item_keys(self.db.conn, source_id)

    def _import_item(
        self, item: RawItem, decoded: Decoded | Rejected | None, source_id: int, run_id: int, counts
    ) -> None:
        conn = self.db.conn
        counts.seen += 1
        if decoded is None:
            counts.already_imported += 1
            return
        if isinstance(decoded, Rejected):
            self._skip(source_id, run_id, item, decoded.reason, decoded.detail, counts)
            return
        # one statement for the common case; the unique indexes on message_id and content_key
        # turn a duplicate into a no-op, and only then do we look up which message it duplicates
        values = decoded.values
        is_sent = item.is_sent_folder
        identity_id = self._identities.of(item.folder, is_sent, values[_FROM_ADDR], values[_FROM_NAME])
        try:
            row_id = store.insert_message(
                conn, (source_id, item.key, item.folder, int(is_sent), *values, identity_id, self._now)
            )
        except (
            UnicodeError,
            ValueError,
            OverflowError,
            sqlite3.InterfaceError,
            sqlite3.DataError,
            sqlite3.IntegrityError,
        ) as exc:
            # a value this one message carries that SQLite refuses; a full disk or a locked
            # database (OperationalError) is not the message's fault and stops the import instead
            self._skip(source_id, run_id, item, "unstorable", f"{type(exc).__name__}: {exc}", counts)
            return
        warning = decoded.warning
        if row_id is None and decoded.message_id and not store.has_content(conn, decoded.content_key):
            # the Message-ID is taken, but by a message with other content (another sender, another
            # body): a forged or broken id, not a copy. It is stored without the id, with a warning,
            # instead of being dropped as a duplicate.
            without_id = (None, *values[1:])
            row_id = store.insert_message(
                conn, (source_id, item.key, item.folder, int(is_sent), *without_id, identity_id, self._now)
            )
            reuse = f"Message-ID {decoded.message_id} also names another stored message: stored without it"
            warning = f"{warning}; {reuse}" if warning else reuse
        if row_id is None:
            existing = store.duplicated_message(conn, decoded.message_id, decoded.content_key)
            counts.duplicates += 1
            self._record(source_id, item.key, run_id, "duplicate", existing, None, None)
            return
        counts.stored += 1
        if warning:
            counts.warnings += 1
        self._record(source_id, item.key, run_id, "stored", row_id, "warning" if warning else None, warning)

    def _skip(self, source_id, run_id, item: RawItem, reason: str, detail: str, counts: ImportCounts) -> None:
        counts.skipped += 1
        counts.skip_reasons[reason] += 1
        self._record(source_id, item.key, run_id, "skipped", None, reason, detail)

    def _record(self, source_id, key, run_id, status, message_ref, reason, detail) -> None:
        store.record_item(self.db.conn, source_id, key, run_id, status, message_ref, reason, detail)

    # -- bookkeeping --------------------------------------------------------------------------

    def _source_id(self) -> int:
        return store.source_id(self.db, self.source.kind, storable_text(self.source.location))

    def _save_counts(self, run_id: int, counts: ImportCounts, status: str) -> None:
        store.save_run_counts(self.db.conn, run_id, counts, status)

    def _mark_interrupted(self, run_id: int, exc: BaseException) -> None:
        reason = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"failed: {type(exc).__name__}: {exc}"
        with self.db.atomic():
            store.end_run(
                self.db.conn, run_id, "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed", reason
            )


def _lock_for(db: sqlite_utils.Database) -> StoreLock | None:
    """The import lock of the database file ``db`` is open on; None for an in-memory database."""
    path = store.database_file(db)
    return import_lock(Path(path)) if path else None
