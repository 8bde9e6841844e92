"""A Tiller draft saved in the user's own mail client: APPENDed to the account's Drafts folder,
threaded under the message it answers, never sent.

The one write Tiller makes on a mail server, and only when the user turned it on for the account
(``tiller accounts set NAME --save-drafts on``): an APPEND to the Drafts folder, and the deletion
of a draft Tiller appended itself when the same reply is drafted again (found by Tiller's own
header, ``X-Tiller-Draft``, and deleted by UID with UID EXPUNGE, so a message the user marked
deleted elsewhere is never expunged with it). With the scope off nothing connects at all.

The message threads in every client: ``In-Reply-To`` and ``References`` from the original,
``Re:`` once (not "Re: Re:"), the user's address as From, a ``Message-ID`` of Tiller's own,
``\\Draft`` and ``\\Seen`` flags. The APPEND is in the privacy ledger like every request that
leaves the machine: to which server and folder, and the message as sent.
"""

from __future__ import annotations

import hashlib
import re
import time
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, getaddresses, make_msgid
from pathlib import Path

from app.mail.imap import (
    ImapAccount,
    ImapError,
    _server_text,
    close_client,
    connect,
    find_special_folder,
    list_folders,
)
from app.store.messages import Original

TILLER_HEADER = "X-Tiller-Draft"
MESSAGE_ID_DOMAIN = "tiller.draft"  # Message-IDs Tiller makes; never a real host
# The Drafts folder by name when no folder carries the \Drafts flag (RFC 6154): what clients and
# providers call it in the languages people use.
DRAFTS_NAMES = {
    "drafts",
    "draft",
    "[gmail]/drafts",
    "[google mail]/drafts",
    "inbox.drafts",
    "inbox/drafts",
    "entwürfe",
    "brouillons",
    "borradores",
    "bozze",
    "concepten",
    "rascunhos",
    "utkast",
    "kladder",
    "luonnokset",
    "szkice",
    "koncepty",
    "piszkozatok",
    "черновики",
    "下書き",
    "草稿",
    "임시 보관함",
}
_RE = re.compile(r"^\s*((re|aw|sv|vs|antw|réf|rif|ref)\s*(\[\d+\])?\s*:\s*)+", re.I)


class DraftsOff(ImapError):
    """The account does not allow Tiller to save drafts (the user has not turned it on)."""


def require_drafts_scope(account: ImapAccount) -> None:
    """DraftsOff, saying how to turn it on, unless the user let Tiller save drafts to ``account``."""
    if not account.save_drafts:
        raise DraftsOff(
            f"account {account.name!r} does not let Tiller save drafts; turn it on with "
            f"`tiller accounts set {account.name} --save-drafts on` (Tiller then only adds drafts to the Drafts "
            "folder, and deletes only drafts it added itself)"
        )


def find_drafts_folder(folders: list[tuple[tuple, str, str]]) -> str | None:
    """The folder flagged \\Drafts, else the first with a usual Drafts name (any language)."""
    return find_special_folder(folders, b"\\Drafts", DRAFTS_NAMES)


def reply_subject(subject: str | None) -> str:
    """``Re: <subject>`` once, however many reply prefixes (in whatever language) it had."""
    rest = _RE.sub("", subject or "").strip()
    return f"Re: {rest}" if rest else "Re:"


def reply_defaults(
    from_addr: str | None, original_subject: str | None, recipient: str | None, subject: str | None
) -> tuple[str | None, str | None]:
    """The recipient and subject of a reply, where the user gave none: the sender of the message
    answered, and its subject with one ``Re:``. The CLI, the desktop app and MCP all use it."""
    return recipient or from_addr, subject or (reply_subject(original_subject) if original_subject else None)


def draft_key(account: str, original_id: str | None, intent: str) -> str:
    """What makes "the same reply": the account, the message answered (or the intent, for a new
    email). Drafting it again replaces Tiller's earlier draft of it."""
    what = original_id or "new:" + intent.strip().lower()
    return hashlib.sha256(f"{account}\n{what}".encode()).hexdigest()[:24]


def draft_message(
    body: str,
    *,
    from_addr: str,
    to: str | None,
    subject: str | None,
    original: Original | None,
    key: str,
    quote: bool = True,
    signature: str | None = None,
    now: float | None = None,
) -> bytes:
    """The draft as an RFC 5322 message (UTF-8, CRLF line ends)."""
    msg = EmailMessage()
    msg["From"] = from_addr
    to = to or (original.from_addr if original else None)
    if to:
        msg["To"] = ", ".join(formataddr(pair) for pair in getaddresses([to]) if pair[1]) or to
    msg["Subject"] = reply_subject(original.subject) if original else (subject or "")
    msg["Date"] = format_datetime(_local(now))
    msg["Message-ID"] = make_msgid(idstring=uuid.uuid4().hex[:8], domain=MESSAGE_ID_DOMAIN)
    if original and original.message_id:
        parent = original.message_id.strip()
        msg["In-Reply-To"] = parent
        chain = (original.references or "").split()
        msg["References"] = " ".join([*chain[-20:], parent] if parent not in chain else chain[-20:])
    msg[TILLER_HEADER] = key
    text = body.rstrip()
    if signature and signature.strip() and not _ends_with(text, signature):
        text += "\n\n" + signature.strip()  # one signature at most: not when the draft already ends with it
    if quote and original and original.text.strip():
        who = original.from_addr or "you"
        when = f"On {original.date}, " if original.date else ""
        quoted = "\n".join("> " + line if line else ">" for line in original.text.strip().splitlines())
        text += f"\n\n{when}{who} wrote:\n{quoted}"
    msg.set_content(text + "\n")
    return msg.as_bytes(policy=msg.policy.clone(linesep="\r\n"))


def _ends_with(text: str, signature: str) -> bool:
    squash = lambda s: re.sub(r"\s+", " ", s).strip().lower()  # noqa: E731
    return squash(text).endswith(squash(signature))


def _local(now: float | None):
    from datetime import datetime

    return datetime.fromtimestamp(now if now is not None else time.time()).astimezone()


@dataclass(frozen=True)
class SavedDraft:
    folder: str
    replaced: int  # Tiller's earlier drafts of the same reply deleted
    kept_old: int  # earlier drafts left (the server cannot delete by UID)
    ledger_id: int | None

    def sentence(self, account: str, threaded: bool) -> str:
        """What the user is told: where it went, and what became of Tiller's earlier draft."""
        note = "; replaced Tiller's earlier draft of it" if self.replaced else ""
        if self.kept_old:
            note = "; Tiller's earlier draft of it stays (the server cannot delete by UID)"
        return f"Saved to {account} in {self.folder}" + (" as a threaded reply" if threaded else "") + note + "."


def save_draft(
    account: ImapAccount, secret: str, message: bytes, key: str, *, db_path: Path | None = None
) -> SavedDraft:
    """APPEND ``message`` to the account's Drafts folder and delete Tiller's earlier draft with the
    same ``key``. Raises :class:`DraftsOff` before connecting when the account does not allow it,
    and ImapError with one line naming the account and folder when the server refuses."""
    require_drafts_scope(account)
    from imapclient.exceptions import IMAPClientError

    from app.backends.ledger import Ledger, finish_not_http

    ledger = Ledger(db_path)
    client = connect(account, secret)
    try:
        folders = list_folders(client)
        folder = account.drafts_folder or find_drafts_folder(folders)
        if folder is None:
            names = ", ".join(name for _, _, name in folders[:20])
            raise ImapError(
                f"account {account.name!r}: no Drafts folder found (none flagged \\Drafts, none with a usual name; "
                f"folders: {names}); name it with `tiller accounts set {account.name} --drafts-folder NAME`"
            )
        ledger_id = ledger.insert_sent(
            backend=account.name,
            provider="imap",
            model=None,
            purpose="save-draft",
            method="APPEND",
            url=f"{account.location}/{folder}",
            request_headers="{}",
            request_bytes=len(message),
            request_payload=message.decode("utf-8", "replace"),
        )
        started = time.monotonic()
        error = None
        try:
            client.select_folder(folder)
            earlier = client.search(["HEADER", TILLER_HEADER, key])
            client.append(folder, message, flags=(b"\\Draft", b"\\Seen"))
        except IMAPClientError as exc:
            error = _server_text(exc)
        finish_not_http(ledger, ledger_id, started, error)
        if error is not None:
            raise ImapError(
                f"account {account.name!r}: the server refused to save the draft in {folder!r} ({error[:200]})"
            )
        replaced = kept = 0
        if earlier:
            if client.has_capability("UIDPLUS"):
                client.add_flags(earlier, [b"\\Deleted"])
                client.uid_expunge(earlier)  # these UIDs only, never another message marked deleted
                replaced = len(earlier)
            else:
                kept = len(earlier)
        return SavedDraft(folder, replaced, kept, ledger_id)
    finally:
        close_client(client)


def drafts_account(db, name: str | None = None) -> ImapAccount:
    """The account a draft is saved to: ``name``, else the one account that lets Tiller save
    drafts. Raises (one line, saying what to do) before anything is drafted or sent: AccountError
    for an unknown name, DraftsOff when the account has not allowed it or none/several do."""
    from app.mail.accounts import get_account, list_accounts

    if name:
        account = get_account(db, name)
    else:
        allowed = [a for a in list_accounts(db) if a.save_drafts]
        if len(allowed) != 1:
            which = ", ".join(a.name for a in allowed) or "none"
            raise DraftsOff(
                f"name the account to save to (accounts that let Tiller save drafts: {which}; "
                "turn it on with `tiller accounts set NAME --save-drafts on`)"
            )
        account = allowed[0]
    require_drafts_scope(account)
    return account


def save_reply(
    account: ImapAccount,
    text: str,
    *,
    intent: str,
    sender: str | None = None,
    recipient: str | None = None,
    subject: str | None = None,
    original: Original | None = None,
    db_path: Path | None = None,
) -> SavedDraft:
    """Save ``text`` as a draft on ``account``: threaded under ``original`` when it answers one,
    replacing Tiller's earlier draft of the same reply. What the CLI, the desktop app and the MCP
    server all call. From is ``sender``, else the account's login when it is an address."""
    from app.mail.accounts import account_secret

    from_addr = sender or (account.user if "@" in account.user else None)
    if not from_addr:
        raise ImapError(f"say which address the draft is from ({account.user!r}, the login, is no address)")
    key = draft_key(account.name, original.message_id if original else None, intent)
    message = draft_message(text, from_addr=from_addr, to=recipient, subject=subject, original=original, key=key)
    return save_draft(account, account_secret(account), message, key, db_path=db_path)
