"""SQLite storage (sqlite-utils, WAL) with versioned migrations."""

from app.store.db import open_database

__all__ = ["open_database"]
