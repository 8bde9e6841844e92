"""The ledger table, through short-lived connections of its own: the provider SDKs' threads record
requests without sharing the app's connection. What goes in (redacted URLs, headers and bodies)
is decided by :mod:`app.backends.ledger`; this module only stores and reads rows."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from app.clock import utc_now


def _now() -> str:
    return utc_now("milliseconds")


class LedgerTable:
    def __init__(self, db_path: Path):
        self.db_path = db_path
        from app.store.db import open_database  # applies migrations once; rows below use plain sqlite3

        open_database(self.db_path).conn.close()

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(str(self.db_path), timeout=30, isolation_level=None)
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def insert_sent(
        self,
        *,
        backend: str,
        provider: str,
        model: str | None,
        purpose: str,
        method: str,
        url: str,
        request_headers: str,
        request_bytes: int,
        request_payload: str,
    ) -> int:
        """A row for a request about to leave, outcome 'sent'; its id."""
        conn = self._connect()
        try:
            cur = conn.execute(
                "INSERT INTO ledger (started_at, backend, provider, model, purpose, method, url, request_headers,"
                " request_bytes, request_payload, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'sent')",
                (
                    _now(),
                    backend,
                    provider,
                    model,
                    purpose,
                    method,
                    url,
                    request_headers,
                    request_bytes,
                    request_payload,
                ),
            )
            assert cur.lastrowid is not None  # an INSERT always sets it
            return cur.lastrowid
        finally:
            conn.close()

    def finish(
        self,
        row_id: int,
        *,
        status: int | None,
        response_bytes: int,
        duration_s: float,
        outcome: str,
        error: str | None = None,
    ) -> None:
        conn = self._connect()
        try:
            conn.execute(
                "UPDATE ledger SET finished_at = ?, response_status = ?, response_bytes = ?, duration_ms = ?,"
                " outcome = ?, error = ? WHERE id = ?",
                (_now(), status, response_bytes, int(duration_s * 1000), outcome, error, row_id),
            )
        finally:
            conn.close()

    def entries(self, *, limit: int = 50, backend: str | None = None, since_id: int = 0) -> list[dict]:
        """The newest rows first (after ``since_id``, of ``backend``), each as a dict of its columns."""
        conn = self._connect()
        conn.row_factory = sqlite3.Row
        try:
            sql = "SELECT * FROM ledger WHERE id > ?"
            args: list = [since_id]
            if backend:
                sql += " AND backend = ?"
                args.append(backend)
            sql += " ORDER BY id DESC LIMIT ?"
            args.append(limit)
            return [dict(r) for r in conn.execute(sql, args)]
        finally:
            conn.close()

    def entry(self, entry_id: int) -> dict | None:
        conn = self._connect()
        conn.row_factory = sqlite3.Row
        try:
            row = conn.execute("SELECT * FROM ledger WHERE id = ?", [entry_id]).fetchone()
            return dict(row) if row else None
        finally:
            conn.close()

    def last_id(self) -> int:
        conn = self._connect()
        try:
            return conn.execute("SELECT COALESCE(MAX(id), 0) FROM ledger").fetchone()[0]
        finally:
            conn.close()
