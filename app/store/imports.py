"""The import's tables (sources, import_runs, source_items, and the messages it inserts), written in
batches by :class:`app.mail.importer.MailImport` on the connection it holds a transaction on.

The per-message statements are the import's hot path: each is one prepared statement on the raw
``sqlite3`` connection (SQLite caches it), with no row objects in between.
"""

from __future__ import annotations

import os
from typing import NamedTuple

from sqlite_utils import Database

from app import __version__
from app.clock import utc_now

# Columns of ``messages`` that depend only on the message's bytes, in the importer's INSERT order.
MESSAGE_COLUMNS = (
    "message_id",
    "content_key",
    "date",
    "date_raw",
    "from_addr",
    "from_name",
    "to_addrs",
    "cc_addrs",
    "subject",
    "in_reply_to",
    "references_",
    "body_text",
    "own_text",
    "previous_context",
    "signature",
    "flags",
    "attachments",
    "attachment_count",
    "parser_version",
)

_INSERT_MESSAGE = (
    f"INSERT OR IGNORE INTO messages (source_id, item_key, folder, is_sent_folder, {', '.join(MESSAGE_COLUMNS)}, "
    f"identity_id, imported_at) VALUES ({', '.join('?' * (len(MESSAGE_COLUMNS) + 6))})"
)


# -- sources and runs ------------------------------------------------------------------------------


def source_id(db: Database, kind: str, location: str) -> int:
    """The id of source (kind, location), added when new; one statement, so a source another
    process adds at the same moment is not added twice."""
    db.execute("INSERT OR IGNORE INTO sources (kind, location, added_at) VALUES (?, ?, ?)", [kind, location, utc_now()])
    return db.execute("SELECT id FROM sources WHERE kind = ? AND location = ?", [kind, location]).fetchone()[0]


def touch_source(conn, source_id: int) -> None:
    conn.execute("UPDATE sources SET last_import_at = ? WHERE id = ?", [utc_now(), source_id])


def has_items(db: Database, source_id: int) -> bool:
    """Whether an earlier run recorded any item of this source (a new source cannot hold done items)."""
    return db.execute("SELECT 1 FROM source_items WHERE source_id = ? LIMIT 1", [source_id]).fetchone() is not None


def fail_running_runs(conn) -> None:
    """Mark runs still 'running' as failed: called holding the import lock, when none can be running."""
    conn.execute(
        "UPDATE import_runs SET status = 'failed', finished_at = ?, "
        "error = coalesce(error, 'interrupted: the process ended before the import finished') "
        "WHERE status = 'running'",
        [utc_now()],
    )


def start_run(db: Database, source_id: int) -> int:
    return (
        db["import_runs"]
        .insert({"source_id": source_id, "started_at": utc_now(), "status": "running", "app_version": __version__})
        .last_pk
    )


def save_run_counts(conn, run_id: int, counts, status: str) -> None:
    """The run's counters (an ``ImportCounts``) and status; finished unless still running."""
    conn.execute(
        "UPDATE import_runs SET seen=?, stored=?, duplicates=?, skipped=?, already_imported=?, warnings=?, "
        "status=?, finished_at=? WHERE id=?",
        [
            counts.seen,
            counts.stored,
            counts.duplicates,
            counts.skipped,
            counts.already_imported,
            counts.warnings,
            status,
            None if status == "running" else utc_now(),
            run_id,
        ],
    )


def end_run(conn, run_id: int, status: str, error: str) -> None:
    conn.execute(
        "UPDATE import_runs SET status = ?, finished_at = ?, error = ? WHERE id = ?", [status, utc_now(), error, run_id]
    )


# -- items -----------------------------------------------------------------------------------------


def finished_item_keys(conn, source_id: int) -> frozenset[str]:
    """Keys of the source's items stored or found duplicate by earlier runs (one query, not one per item)."""
    rows = conn.execute(
        "SELECT item_key FROM source_items WHERE source_id = ? AND status IN ('stored', 'duplicate')", [source_id]
    )
    return frozenset(r[0] for r in rows)


def insert_message(conn, values: tuple) -> int | None:
    """Insert one decoded message (``source_id, item_key, folder, is_sent_folder``, the
    ``MESSAGE_COLUMNS``, ``identity_id, imported_at``); its row id, or None when the unique indexes
    on message_id and content_key made it a duplicate (a no-op)."""
    cursor = conn.execute(_INSERT_MESSAGE, values)
    return cursor.lastrowid if cursor.rowcount else None


def has_content(conn, content_key: str) -> bool:
    """Whether a stored message has this content identity (sender, date, subject, body)."""
    return conn.execute("SELECT 1 FROM messages WHERE content_key = ? LIMIT 1", [content_key]).fetchone() is not None


def duplicated_message(conn, message_id: str | None, content_key: str) -> int:
    """The stored message a duplicate duplicates: by Message-ID first, else by content."""
    return conn.execute(
        "SELECT id FROM messages WHERE message_id = ? OR content_key = ? ORDER BY message_id = ? DESC LIMIT 1",
        [message_id, content_key, message_id],
    ).fetchone()[0]


def record_item(conn, source_id, key, run_id, status, message_ref, reason, detail) -> None:
    """What became of one item of a source (stored, duplicate or skipped, with why)."""
    conn.execute(
        "INSERT OR REPLACE INTO source_items (source_id, item_key, run_id, status, message_ref, reason, detail) "
        "VALUES (?,?,?,?,?,?,?)",
        [source_id, key, run_id, status, message_ref, reason, detail],
    )


class SkippedItem(NamedTuple):
    location: str
    key: str
    reason: str
    detail: str

    @property
    def where(self) -> str:
        """The item as the user finds it: a file path, or an IMAP URL (always with "/")."""
        if self.location.startswith("imap://"):
            return f"{self.location}/{self.key}"
        return os.path.join(self.location, self.key)


def skipped_items(db: Database, run_id: int, limit: int | None = None) -> list[SkippedItem]:
    """What a run skipped (source location, item key, reason, detail), in import order."""
    sql = (
        "SELECT s.location, i.item_key, i.reason, i.detail FROM source_items i JOIN sources s ON s.id = i.source_id "
        "WHERE i.run_id = ? AND i.status = 'skipped' ORDER BY i.rowid"
    )
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [SkippedItem(*r) for r in db.execute(sql, [run_id])]


def database_file(db: Database) -> str | None:
    """The file ``db`` is open on; None for an in-memory database."""
    row = db.execute("PRAGMA database_list").fetchone()
    return row[2] if row and row[2] else None


# skips that can go away on a rerun (a server glitch, a message gone while read); a message over the
# size cap stays over it
RETRYABLE_SKIPS = ("malformed", "unreadable")


def retryable_uids(db: Database, kind: str, location: str, key_prefix: str) -> list[int]:
    """UIDs an earlier import skipped for a reason that a rerun may not meet again (they are below
    the highest recorded UID, so planning from it alone would never ask for them again: 20 of 30
    messages were lost for good after a server recovered)."""
    rows = db.execute(
        "SELECT i.item_key FROM source_items i JOIN sources s ON s.id = i.source_id "
        f"WHERE s.kind = ? AND s.location = ? AND substr(i.item_key, 1, ?) = ? AND i.status = 'skipped' "
        f"AND i.reason IN ({', '.join('?' * len(RETRYABLE_SKIPS))})",
        [kind, location, len(key_prefix), key_prefix, *RETRYABLE_SKIPS],
    )
    tails = (key[len(key_prefix) :] for (key,) in rows)
    return sorted(int(t) for t in tails if t.isascii() and t.isdigit())


def highest_uid(db: Database, kind: str, location: str, key_prefix: str) -> int:
    """The highest IMAP UID an earlier import recorded (stored, duplicate or skipped) under
    ``key_prefix`` (a folder and its UIDVALIDITY) of source (kind, location); 0 when none. Every
    outcome is committed with its batch, so this is where a rerun carries on."""
    rows = db.execute(
        "SELECT i.item_key FROM source_items i JOIN sources s ON s.id = i.source_id "
        "WHERE s.kind = ? AND s.location = ? AND substr(i.item_key, 1, ?) = ?",
        [kind, location, len(key_prefix), key_prefix],
    )
    best = 0
    for (key,) in rows:
        tail = key[len(key_prefix) :]
        if tail.isascii() and tail.isdigit():
            best = max(best, int(tail))
    return best
