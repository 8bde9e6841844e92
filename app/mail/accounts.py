"""The user's mail accounts (IMAP): add, test, remove, and open one as an import source.

The account's settings go to the database (:mod:`app.store.accounts`); its password or XOAUTH2
token goes to the OS keyring only (:mod:`app.secrets`, entry ``imap:NAME``). ``add_account``
logs in before it stores anything, so an account that is saved is one that worked.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from app import secrets
from app.exceptions import TillerError
from app.mail.imap import (
    ImapAccount,
    ImapSource,
    account_folders,
    close_client,
    connect,
    folder_prefix,
    list_folders,
)
from app.store import accounts as store
from app.store.imports import highest_uid, retryable_uids

_NAME = re.compile(r"^[\w][\w.@+-]{0,63}$")


class AccountError(TillerError, ValueError):
    """An account that does not exist, or a name that cannot be one."""


@dataclass(frozen=True)
class AccountCheck:
    """What a login to the account found."""

    folders: list[str]
    sent_folder: str | None  # the folder that would be imported as sent mail
    capabilities: list[str]
    skipped_folders: tuple[str, ...] = ()  # names that cannot be decoded, shown escaped


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise AccountError(f"account name {name!r}: use 1-64 letters, digits or . @ + - _ (no spaces)")
    return name


def probe(account: ImapAccount, secret: str) -> AccountCheck:
    """Log in and look (read-only): the folders, and which one holds the sent mail."""
    client = connect(account, secret)
    try:
        skipped: list[str] = []
        names, sent = account_folders(account, list_folders(client, skipped))
        capabilities = sorted(c.decode("ascii", "replace") for c in client.capabilities())
    finally:
        close_client(client)
    return AccountCheck(names, sent, capabilities, tuple(skipped))


def add_account(db, account: ImapAccount, secret: str) -> AccountCheck:
    """Check the login, then store the account (settings in the database, secret in the keyring)."""
    check_name(account.name)
    if not secret:
        raise AccountError(f"account {account.name!r}: the password (or token) is empty")
    check = probe(account, secret)
    secrets.set_key(account.secret_name, secret, strip=False)  # the password that just logged in, as typed
    store.save_account(db, asdict(account))
    return check


def get_account(db, name: str) -> ImapAccount:
    acc = _from_row(store.account(db, name))
    if acc is None:
        known = ", ".join(a["name"] for a in store.accounts(db)) or "none yet"
        raise AccountError(f"no account named {name!r} (accounts: {known}); add one with: tiller accounts add")
    return acc


DRAFTS_SCOPE = (
    "Tiller may then write to this account in one way only: it adds each draft you ask it to save to the "
    "Drafts folder (flagged \\Draft, never sent), and it deletes only a draft it added itself when you save "
    "the same reply again. It moves, marks or deletes nothing else. Each save is in the privacy ledger."
)


def set_drafts(db, name: str, on: bool, folder: str | None = None) -> ImapAccount:
    """Turn saving drafts to the server on or off for account ``name`` (and name its Drafts folder)."""
    from dataclasses import replace

    account = replace(get_account(db, name), save_drafts=on)
    if folder is not None:
        account = replace(account, drafts_folder=folder or None)
    store.save_account(db, asdict(account))
    return account


def list_accounts(db) -> list[ImapAccount]:
    return [ImapAccount(**row) for row in store.accounts(db)]


def remove_account(db, name: str) -> bool:
    """Forget the account and its keyring entry; the mail imported from it stays."""
    acc = _from_row(store.account(db, name))
    if acc is None:
        return False
    secrets.delete_key(acc.secret_name)
    store.delete_account(db, name)
    return True


def account_secret(account: ImapAccount) -> str:
    try:
        found = secrets.stored_secret(account.secret_name)
    except secrets.KeyringUnavailable as exc:
        raise AccountError(f"account {account.name!r}: {exc}") from None
    if not found:
        raise AccountError(
            f"account {account.name!r}: no password in the keyring ({secrets.keyring_name()}); "
            f"store it again with: tiller accounts add {account.name} --imap {account.host} --user {account.user}"
        )
    return found


def imap_source(db, name: str, **options) -> ImapSource:
    """The account as an import source, connected and planned: only UIDs above those earlier
    imports recorded are asked for. Raises ImapError before anything is written when the login,
    the certificate or the folders are wrong."""
    account = get_account(db, name)
    source = ImapSource(
        account,
        account_secret(account),
        last_uid=lambda folder, validity: highest_uid(db, "imap", account.location, folder_prefix(folder, validity)),
        retry_uids=lambda folder, validity: retryable_uids(
            db, "imap", account.location, folder_prefix(folder, validity)
        ),
        **options,
    )
    return source.open()


def _from_row(row: dict | None) -> ImapAccount | None:
    return ImapAccount(**row) if row is not None else None
