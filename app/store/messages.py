"""Typed queries over stored messages, for the GUI and the CLI (no SQL outside ``app/store``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlite_utils import Database


@dataclass(frozen=True)
class MessageListing:
    id: int
    date: str | None
    sender: str | None
    subject: str | None


@dataclass(frozen=True)
class MessageText:
    sender: str | None
    subject: str | None
    own_text: str | None


def search_messages(db: Database, text: str, limit: int = 200) -> list[MessageListing]:
    """Newest first, the messages whose subject or sender contains ``text`` (any case)."""
    pattern = f"%{text}%"
    rows = db.execute(
        "SELECT id, date, from_addr, subject FROM messages WHERE subject LIKE ? OR from_addr LIKE ?"
        " ORDER BY date DESC LIMIT ?",
        [pattern, pattern, limit],
    ).fetchall()
    return [MessageListing(*row) for row in rows]


def message_text(db: Database, message_id: int) -> MessageText | None:
    row = db.execute("SELECT from_addr, subject, own_text FROM messages WHERE id = ?", [message_id]).fetchone()
    return MessageText(*row) if row else None


def has_mail(db: Database) -> bool:
    return db.execute("SELECT EXISTS (SELECT 1 FROM messages)").fetchone()[0] == 1


@dataclass(frozen=True)
class ImportRunRow:
    id: int
    location: str
    status: str
    seen: int | None
    stored: int | None
    duplicates: int | None
    already_imported: int | None
    skipped: int | None
    started_at: str | None


def import_runs(db: Database) -> list[ImportRunRow]:
    """Every import run, oldest first, with its source's location."""
    rows = db.execute(
        "SELECT r.id, s.location, r.status, r.seen, r.stored, r.duplicates, r.already_imported, r.skipped, "
        "r.started_at FROM import_runs r JOIN sources s ON s.id = r.source_id ORDER BY r.id"
    ).fetchall()
    return [ImportRunRow(*row) for row in rows]


def senders_by_mail(db: Database) -> list[str]:
    """The user's identities (not rejected), the one with the most stored messages first."""
    rows = db.execute(
        "SELECT from_addr, COUNT(*) n FROM messages WHERE from_addr IN (SELECT address FROM identities WHERE origin != 'rejected')"
        " GROUP BY from_addr ORDER BY n DESC"
    ).fetchall()
    return [r[0] for r in rows]


def own_texts(db: Database, sender: str) -> list[str]:
    """Every non-empty "own words" text of ``sender``, in storage order."""
    return [r[0] for r in db.execute("SELECT own_text FROM messages WHERE from_addr = ? AND own_text != ''", [sender])]


# A message the agent can learn from: written by one of the user's identities, with words of its
# own, and not a bare forward.
TRAINING_CANDIDATE_SQL = "identity_id IS NOT NULL AND own_text != '' AND flags NOT LIKE '%\"pure_forward\"%'"


@dataclass(frozen=True)
class CandidateRow:
    id: int
    sender: str
    to_addrs: str | None
    subject: str | None
    date: str | None
    own_text: str | None
    previous_context: str | None
    signature: str | None


def training_candidates(db: Database, sender: str | None = None, *, newest_first: bool = False) -> list[CandidateRow]:
    """Every training candidate (of ``sender``), by sender, then oldest first (newest first when
    asked); undated messages last either way."""
    where = TRAINING_CANDIDATE_SQL
    args: list = []
    if sender:
        where += " AND from_addr = ?"
        args.append(sender.lower())
    order = "DESC" if newest_first else ""
    rows = db.execute(
        f"SELECT id, from_addr, to_addrs, subject, date, own_text, previous_context, signature FROM messages "
        f"WHERE {where} ORDER BY from_addr, date IS NULL, date {order}, id {order}",
        args,
    ).fetchall()
    return [CandidateRow(*r) for r in rows]


@dataclass(frozen=True)
class ReplyContext:
    to_addrs: str | None
    subject: str | None
    previous_context: str | None


def reply_contexts(db: Database, message_ids: list[int]) -> dict[int, ReplyContext]:
    """message id -> its recipients (JSON list), subject and the message it answers."""
    if not message_ids:
        return {}
    rows = db.execute(
        f"SELECT id, to_addrs, subject, previous_context FROM messages WHERE id IN ({','.join('?' * len(message_ids))})",
        list(message_ids),
    )
    return {r[0]: ReplyContext(*r[1:]) for r in rows}


def own_text_counts(db: Database) -> dict[str, int]:
    """sender -> how many stored messages hold words of their own."""
    return dict(
        db.execute(
            "SELECT from_addr, count(*) FROM messages WHERE own_text IS NOT NULL AND own_text != '' GROUP BY from_addr"
        ).fetchall()
    )


def dated_own_texts(db: Database, sender: str, before: str | None = None) -> list[tuple[str, str]]:
    """(date, own text) of ``sender``'s dated messages, oldest first, one per distinct content
    (a message stored from two folders counts once), dated before ``before`` when given."""
    args = [sender.lower()]
    where = "from_addr = ? AND own_text IS NOT NULL AND date IS NOT NULL"
    if before:
        where += " AND date < ?"
        args.append(before)
    rows = db.execute(f"SELECT date, own_text FROM messages WHERE {where} GROUP BY content_key ORDER BY date, id", args)
    return [(d, t) for d, t in rows]


@dataclass(frozen=True)
class StoredBody:
    id: int
    body_text: str | None
    subject: str | None
    own_text: str | None
    flags: str | None  # JSON list


def split_before(db: Database, version: int) -> list[StoredBody]:
    """Messages split by a splitter older than ``version`` (or never split)."""
    rows = db.execute(
        "SELECT id, body_text, subject, own_text, flags FROM messages WHERE parser_version IS NULL OR parser_version < ?",
        [version],
    ).fetchall()
    return [StoredBody(*r) for r in rows]


def save_split(
    conn, message_id: int, own_text: str, previous_context: str, signature: str, flags_json: str, version: int
) -> None:
    conn.execute(
        "UPDATE messages SET own_text = ?, previous_context = ?, signature = ?, flags = ?, parser_version = ?"
        " WHERE id = ?",
        [own_text, previous_context, signature, flags_json, version, message_id],
    )


@dataclass(frozen=True)
class Original:
    """The message a reply answers, as stored: its threading headers and its text."""

    message_id: str | None
    references: str | None
    subject: str | None
    from_addr: str | None
    date: str | None = None
    text: str = ""


def reply_original(db: Database, message_id: int) -> Original | None:
    row = db.execute(
        "SELECT message_id, references_, subject, from_addr, date, COALESCE(own_text, body_text, '')"
        " FROM messages WHERE id = ?",
        [message_id],
    ).fetchone()
    return Original(*row) if row else None


def received_messages(db: Database, limit: int = 30, text: str | None = None) -> list[MessageListing]:
    """Newest first, messages none of the user's identities wrote (what there is to reply to)."""
    sql = "SELECT id, date, from_addr, subject FROM messages WHERE identity_id IS NULL"
    params: list = []
    if text:
        sql += " AND (subject LIKE ? OR from_addr LIKE ?)"
        params += [f"%{text}%", f"%{text}%"]
    rows = db.execute(sql + " ORDER BY date DESC LIMIT ?", [*params, limit]).fetchall()
    return [MessageListing(*row) for row in rows]
