"""The accounts table: the user's IMAP accounts (never their passwords: those are in the keyring).

Rows go in and out as dicts of the account's fields; app/mail/accounts.py makes them
:class:`app.mail.imap.ImapAccount` objects (the store imports nothing above it)."""

from __future__ import annotations

import json

from sqlite_utils import Database

from app.clock import utc_now

_COLUMNS = "name, host, port, user, security, auth, ca_file, verify_tls, sent_folder, context_folders, save_drafts, drafts_folder"


def _account(row) -> dict:
    name, host, port, user, security, auth, ca_file, verify, sent, context, save_drafts, drafts_folder = row
    return dict(
        name=name,
        host=host,
        user=user,
        port=port,
        security=security,
        auth=auth,
        ca_file=ca_file,
        verify_tls=bool(verify),
        sent_folder=sent,
        context_folders=tuple(json.loads(context or "[]")),
        save_drafts=bool(save_drafts),
        drafts_folder=drafts_folder,
    )


def accounts(db: Database) -> list[dict]:
    return [_account(r) for r in db.execute(f"SELECT {_COLUMNS} FROM accounts ORDER BY name")]


def account(db: Database, name: str) -> dict | None:
    row = db.execute(f"SELECT {_COLUMNS} FROM accounts WHERE name = ?", [name]).fetchone()
    return _account(row) if row else None


def save_account(db: Database, acc: dict) -> None:
    """Insert or replace ``acc`` (the account's fields), keeping the first ``created_at``."""
    existing = db.execute("SELECT created_at FROM accounts WHERE name = ?", [acc["name"]]).fetchone()
    now = utc_now()
    db.table("accounts").upsert(
        {
            "name": acc["name"],
            "kind": "imap",
            "host": acc["host"],
            "port": acc["port"],
            "user": acc["user"],
            "security": acc["security"],
            "auth": acc["auth"],
            "ca_file": acc["ca_file"],
            "verify_tls": int(acc["verify_tls"]),
            "sent_folder": acc["sent_folder"],
            "context_folders": json.dumps(list(acc["context_folders"])),
            "save_drafts": int(acc["save_drafts"]),
            "drafts_folder": acc["drafts_folder"],
            "created_at": existing[0] if existing else now,
            "updated_at": now,
        },
        pk="name",
    )


def delete_account(db: Database, name: str) -> bool:
    return db.execute("DELETE FROM accounts WHERE name = ?", [name]).rowcount > 0
