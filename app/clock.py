"""One clock format for everything Tiller stores: UTC, ISO 8601, with an explicit offset."""

from __future__ import annotations

import datetime as dt


def utc_now(timespec: str = "seconds") -> str:
    """Now in UTC as ISO 8601 (``2026-12-02T05:30:00+00:00``); ``timespec="milliseconds"`` where
    order within a second matters (the privacy ledger)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec=timespec)
