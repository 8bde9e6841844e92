"""IMAP accounts as a mail source: the Sent folder (and any folders the user picks as context)
of a server, imported incrementally, read-only.

- Read-only towards the server: folders are opened with EXAMINE (``select_folder(readonly=True)``)
  and messages fetched with ``BODY.PEEK[]``, so no \\Seen flag is set; nothing is moved or deleted.
- Incremental: an item's key is ``FOLDER;UIDVALIDITY=V/;UID=U`` (the RFC 5092 IMAP URL form), and
  the importer records every item's outcome in the same transaction as its message, so the next
  run asks only for UIDs above the highest one recorded for (folder, UIDVALIDITY). A changed
  UIDVALIDITY has no recorded UIDs: the folder is read again and the importer's de-duplication
  (Message-ID, then content) keeps anything from being stored twice.
- Bounded memory: message sizes come first (``RFC822.SIZE``); a message over the per-message limit
  is counted and skipped without being downloaded; the rest are fetched in batches of at most
  ``BATCH_MESSAGES`` messages and ``BATCH_BYTES`` bytes.
- A dropped connection is reopened (up to ``reconnects`` times in a row without a message
  arriving) and the folder carries on after the last UID handed to the importer; when the
  reconnects run out the import stops with the error, and a rerun resumes from the last committed
  UID. A message that fails twice is asked for alone, and skipped as unreadable when it fails
  alone too: the import carries on past it, and the next import asks for it again.
- TLS with certificate verification by default (port 993); STARTTLS on 143 when asked; plain text
  only with the explicit ``plaintext`` security, which the CLI and GUI call unsafe. A server with a
  self-signed certificate is trusted by giving its certificate (``ca_file``), not by turning
  verification off (possible, and called unsafe).
- The password (or an XOAUTH2 access token) lives in the OS keyring as ``imap:NAME``
  (:mod:`app.secrets`), never in the database, a log or an error message.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from app.exceptions import TillerError
from app.mail.sources import MAX_MESSAGE_BYTES, RawItem

SECURITIES = ("tls", "starttls", "plaintext")
AUTHS = ("password", "xoauth2")
DEFAULT_PORTS = {"tls": 993, "starttls": 143, "plaintext": 143}
BATCH_MESSAGES = 100
BATCH_BYTES = 16 * 2**20
TIMEOUT_S = 60.0

# Sent folders by name, when the server does not flag one \Sent (RFC 6154): the last component of
# the folder name, compared case-insensitively. Names used by Gmail, Outlook/Exchange, Apple Mail,
# Thunderbird, Dovecot and Courier setups in the languages their users most often run them in.
SENT_NAMES = {
    "sent",
    "sent items",
    "sent messages",
    "sent mail",
    "[gmail]/sent mail",
    "gesendet",
    "gesendete elemente",
    "gesendete objekte",
    "envoyés",
    "éléments envoyés",
    "messages envoyés",
    "enviados",
    "elementos enviados",
    "itens enviados",
    "inviati",
    "posta inviata",
    "elementi inviati",
    "verzonden",
    "verzonden items",
    "skickat",
    "skickade objekt",
    "sendt",
    "sendte elementer",
    "sendt post",
    "lähetetyt",
    "wysłane",
    "elementy wysłane",
    "odeslané",
    "odoslané",
    "elküldött",
    "trimise",
    "gönderilmiş",
    "gönderilen",
    "отправленные",
    "надіслані",
    "απεσταλμένα",
    "已发送",
    "已傳送",
    "寄件備份",
    "送信済み",
    "送信済みアイテム",
    "보낸편지함",
    "보낸 편지함",
}


class ImapError(TillerError):
    """The account cannot be used as it is; the message names the fix."""


@dataclass(frozen=True)
class ImapAccount:
    name: str
    host: str
    user: str
    port: int | None = None  # None: the security's usual port (993 TLS, 143 STARTTLS)
    security: str = "tls"  # tls | starttls | plaintext (unsafe: the password crosses the network readable)
    auth: str = "password"  # password (or an app password) | xoauth2 (an access token the user pastes)
    ca_file: str | None = None  # trust this certificate (a server with a self-signed one)
    verify_tls: bool = True  # False only when the user asks for it, named unsafe wherever it shows
    sent_folder: str | None = None  # None: found by the \Sent flag, else by name
    context_folders: tuple[str, ...] = ()  # imported as context for replies (e.g. INBOX)
    # the one write Tiller may make, when the user turned it on: APPEND drafts to the Drafts folder
    # (and delete only drafts it appended itself); off by default (app/mail/imap_drafts.py)
    save_drafts: bool = False
    drafts_folder: str | None = None  # None: found by the \Drafts flag, else by a usual name

    def __post_init__(self):
        if self.security not in SECURITIES:
            raise ValueError(f"account {self.name!r}: security must be one of {', '.join(SECURITIES)}")
        if self.auth not in AUTHS:
            raise ValueError(f"account {self.name!r}: auth must be one of {', '.join(AUTHS)}")
        if not self.host.strip() or not self.user.strip():
            raise ValueError(f"account {self.name!r}: host and user are required")

    @property
    def effective_port(self) -> int:
        return self.port or DEFAULT_PORTS[self.security]

    @property
    def secret_name(self) -> str:
        """The keyring entry holding the password or token."""
        return f"imap:{self.name}"

    @property
    def location(self) -> str:
        return f"imap://{self.user}@{self.host}:{self.effective_port}"

    @property
    def unsafe(self) -> list[str]:
        """What about this account puts the password or the mail at risk, in words."""
        out = []
        if self.security == "plaintext":
            out.append("plain-text IMAP: the password and the mail cross the network unencrypted")
        if self.security != "plaintext" and not self.verify_tls:
            out.append("TLS certificate not verified: anyone on the network path can pose as the server")
        return out


def folder_prefix(folder: str, uidvalidity: int) -> str:
    """What every item key of one folder (at one UIDVALIDITY) starts with."""
    return f"{folder};UIDVALIDITY={uidvalidity}/;UID="


def item_key(folder: str, uidvalidity: int, uid: int) -> str:
    return f"{folder_prefix(folder, uidvalidity)}{uid}"


def _tls_context(account: ImapAccount) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=account.ca_file) if account.ca_file else ssl.create_default_context()
    if not account.verify_tls:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def connect(account: ImapAccount, secret: str, *, timeout: float = TIMEOUT_S):
    """A logged-in ``IMAPClient``, or ImapError saying what to do."""
    from imapclient import IMAPClient
    from imapclient.exceptions import IMAPClientError, LoginError

    where = f"{account.host}:{account.effective_port}"
    try:
        client = IMAPClient(
            account.host,
            port=account.effective_port,
            ssl=account.security == "tls",
            ssl_context=_tls_context(account) if account.security == "tls" else None,
            timeout=timeout,
        )
        if account.security == "starttls":
            client.starttls(_tls_context(account))
    except ssl.SSLCertVerificationError as exc:
        raise ImapError(
            f"{where}: the server's TLS certificate is not trusted ({exc.verify_message}); for your own server "
            "with a self-signed certificate give it with --tls-ca FILE (or, unsafe, --no-verify-tls)"
        ) from None
    except ssl.SSLError as exc:
        raise ImapError(
            f"{where}: TLS failed ({exc.reason or exc}); is this the right port for {account.security}?"
        ) from None
    except OSError as exc:  # no such host, refused, timed out
        raise ImapError(f"{where}: cannot connect ({type(exc).__name__}: {exc})") from None
    except IMAPClientError as exc:
        raise ImapError(f"{where}: {exc}") from None
    guard_connection(client)
    try:
        if account.auth == "xoauth2":
            client.oauth2_login(account.user, secret)
        else:
            client.login(account.user, secret)
    except LoginError as exc:
        close_client(client)
        said = redact_secret(_server_text(exc), secret)
        hint = (
            "the access token may have expired: paste a new one with `tiller accounts add` (XOAUTH2)"
            if account.auth == "xoauth2"
            else "check the user name and password; Gmail, Outlook/Microsoft 365, iCloud and Fastmail with "
            "two-step sign-in want an app password (or --xoauth2 with an access token)"
        )
        raise ImapError(f"{where}: login refused for {account.user} ({said}); {hint}") from None
    except (IMAPClientError, OSError) as exc:
        close_client(client)
        said = redact_secret(_server_text(exc), secret)
        raise ImapError(f"{where}: login failed ({type(exc).__name__}: {said})") from None
    return client


# Every command must finish within this many seconds, plus the time its literals take at
# MIN_BYTES_PER_S: a server trickling one byte every few seconds never trips the socket's
# per-read timeout, and held an import (and its Ctrl-C) for minutes.
COMMAND_DEADLINE_S = 120.0
MIN_BYTES_PER_S = 20_000


class LiteralTooLarge(Exception):
    """The server announced a literal over the cap (``size``): nothing of it was read."""

    def __init__(self, size: int, cap: int):
        super().__init__(f"the server announced {size:,} bytes, over the {cap:,}-byte limit")
        self.size, self.cap = size, cap


def guard_connection(client, literal_cap: int | None = None) -> None:
    """Bound what the server can make this client do: no literal over ``literal_cap`` bytes is
    read (default: the one-message limit plus headroom; a server that announced a few KB and sent
    400 MB grew the importer to 461 MB), every command has a deadline, and reads return on any data
    so a trickle is seen. ``client.interrupt()``-style cancel: :func:`interrupt_connection`."""
    import time as _time
    import types

    imap = client._imap
    cap = literal_cap if literal_cap is not None else MAX_MESSAGE_BYTES + (1 << 20)
    state = {"deadline": _time.monotonic() + COMMAND_DEADLINE_S, "cap": cap}
    client.tiller_guard = state  # ImapSource sets its own one-message cap here
    original_command = imap._command

    def command(self, *args, **kwargs):
        state["deadline"] = _time.monotonic() + COMMAND_DEADLINE_S
        return original_command(*args, **kwargs)

    def check_deadline() -> None:
        if _time.monotonic() > state["deadline"]:
            raise TimeoutError("the server did not finish its answer in time (it sends too slowly)")

    def read(size: int) -> bytes:
        if size > state["cap"]:
            raise LiteralTooLarge(size, state["cap"])
        state["deadline"] += size / MIN_BYTES_PER_S
        parts, left = [], size
        while left > 0:
            check_deadline()
            chunk = imap.file.read1(min(left, 1 << 16))
            if not chunk:
                raise EOFError("the server closed the connection in the middle of a message")
            parts.append(chunk)
            left -= len(chunk)
        return b"".join(parts)

    def readline() -> bytes:
        line = bytearray()
        while True:
            check_deadline()
            ahead = imap.file.peek(1)
            if not ahead:
                return bytes(line)
            end = ahead.find(b"\n")
            take = imap.file.read1(len(ahead) if end < 0 else end + 1)
            line += take
            if end >= 0:
                return bytes(line)
            if len(line) > 1 << 20:  # imaplib's own line limit
                raise imap.error("got more than 1,048,576 bytes in one line")

    # a bound method, as imaplib expects: AUTHENTICATE tells its literal callback from bytes by
    # comparing its type with type(self._command) (XOAUTH2 failed with a plain function here)
    imap._command = types.MethodType(command, imap)
    imap.read = read
    imap.readline = readline


def interrupt_connection(client) -> None:
    """Make a blocked read return at once (a cancel from another thread)."""
    import socket

    try:
        client._imap.sock.shutdown(socket.SHUT_RDWR)
    except (OSError, AttributeError):
        pass


def redact_secret(text: str, secret: str) -> str:
    """``text`` with the password or token taken out: some servers echo it in their NO/BAD/BYE
    answer to LOGIN (also base64-encoded, as in an XOAUTH2 exchange), and that answer reaches the
    console, the log and the GUI."""
    import base64

    if not secret:
        return text
    forms = {secret, secret.strip()}
    for form in list(forms):
        forms.add(base64.b64encode(form.encode()).decode())
    for form in sorted((f for f in forms if len(f) >= 3), key=len, reverse=True):
        text = text.replace(form, "[password removed]")
    return text


def _server_text(exc: Exception) -> str:
    text = str(exc)
    if text.startswith("b'") or text.startswith('b"'):
        text = text[2:-1]
    return text.strip() or type(exc).__name__


def close_client(client, *, mid_answer: bool = False) -> None:
    """Log out, or drop the connection when logging out fails. ``mid_answer``: the connection
    failed in the middle of the server's answer (a deadline, a literal over the cap, a cut), so it
    is dropped at once: a LOGOUT would first wait on the rest of that answer, one more command
    deadline for every failed attempt on a server that trickles."""
    if not mid_answer:
        try:
            client.logout()
            return
        except Exception:  # noqa: BLE001 - the connection is going either way
            pass
    try:
        client.shutdown()
    except Exception:  # noqa: BLE001
        pass


@dataclass
class FolderPlan:
    name: str
    sent: bool
    uidvalidity: int = 0
    uids: list[int] = field(default_factory=list)  # new since the last import, ascending


def find_special_folder(folders: list[tuple[tuple, str, str]], flag: bytes, names) -> str | None:
    """The folder carrying the RFC 6154 ``flag`` (``\\Sent``, ``\\Drafts``), else the first whose
    name (whole, or its last part) is one of ``names`` (lower case)."""
    for flags, _, name in folders:
        if any(f.lower() == flag.lower() for f in flags):
            return name
    for _, delimiter, name in folders:
        last = name.rsplit(delimiter, 1)[-1] if delimiter else name
        if name.lower() in names or last.lower() in names:
            return name
    return None


def find_sent_folder(folders: list[tuple[tuple, str, str]]) -> str | None:
    """The folder flagged \\Sent (RFC 6154), else the first whose name is a known Sent name."""
    return find_special_folder(folders, b"\\Sent", SENT_NAMES)


def account_folders(account: ImapAccount, folders: list[tuple[tuple, str, str]]) -> tuple[list[str], str | None]:
    """(every folder's name, the Sent folder or None when none is recognisable); ImapError when a
    folder the account names (its Sent folder, a context folder) is not on the server."""
    names = [name for _, _, name in folders]
    sent = account.sent_folder or find_sent_folder(folders)
    missing = [f for f in (account.sent_folder, *account.context_folders) if f and f not in names]
    if missing:
        raise ImapError(
            f"{account.location}: no folder named {', '.join(map(repr, missing))} (folders: {_listing(names)})"
        )
    return names, sent


def _listing(names: list[str]) -> str:
    return ", ".join(names[:20]) + (", ..." if len(names) > 20 else "")


def list_folders(client, skipped: list[str] | None = None) -> list[tuple[tuple, str, str]]:
    """(flags, delimiter, name) of every folder; names decoded from modified UTF-7. A name that is
    not valid modified UTF-7 (``&ZZZ-invalid``) is left out, and shown escaped in ``skipped``: one
    such folder made every command on the account fail."""
    from imapclient.exceptions import IMAPClientError
    from imapclient.imap_utf7 import decode as decode_utf7

    out = []
    encoding = client.folder_encode
    client.folder_encode = False  # the names as sent, decoded here one at a time
    try:
        listing = client.list_folders()
    except (IMAPClientError, ValueError) as exc:  # imapclient's "LIST => unexpected response"
        raise ImapError(f"the server's list of folders made no sense ({_server_text(exc)[:200]})") from None
    finally:
        client.folder_encode = encoding
    for flags, delimiter, raw in listing:
        if isinstance(delimiter, bytes):
            delimiter = delimiter.decode("ascii", "replace")
        raw_bytes = raw if isinstance(raw, bytes) else str(raw).encode("utf-8", "surrogateescape")
        try:
            name = decode_utf7(raw_bytes) if encoding else raw_bytes.decode("ascii")
        except (UnicodeError, ValueError):
            if skipped is not None:
                skipped.append(f"{raw_bytes.decode('ascii', 'backslashreplace')!r}: not valid modified UTF-7, skipped")
            continue
        out.append((tuple(flags), delimiter or "", name))
    return out


class ImapSource:
    """A :class:`app.mail.sources.MailSource` over an IMAP account. ``open()`` connects, logs in
    and plans (before the import writes anything: a wrong password or an untrusted certificate
    fails here). ``last_uid(folder, uidvalidity)`` says what earlier imports recorded."""

    kind = "imap"

    def __init__(
        self,
        account: ImapAccount,
        secret: str,
        *,
        last_uid: Callable[[str, int], int] = lambda folder, uidvalidity: 0,
        retry_uids: Callable[[str, int], list[int]] = lambda folder, uidvalidity: [],
        reconnects: int = 3,
        timeout: float = TIMEOUT_S,
        batch_messages: int = BATCH_MESSAGES,
        batch_bytes: int = BATCH_BYTES,
        max_message_bytes: int = MAX_MESSAGE_BYTES,
    ):
        self.account = account
        self._secret = secret
        self.location = account.location
        self.last_uid = last_uid
        self.retry_uids = retry_uids
        self.reconnects = reconnects
        self.timeout = timeout
        self.batch_messages = batch_messages
        self.batch_bytes = batch_bytes
        self.max_message_bytes = max_message_bytes
        self.client = None
        self.plan: list[FolderPlan] | None = None
        self.reconnected = 0  # how many times a dropped connection was reopened
        self.interrupted = False

    def __repr__(self) -> str:  # the secret never shows in a traceback
        return f"ImapSource({self.account.name!r}, {self.location!r})"

    # -- connection and plan -------------------------------------------------------------------

    def _connect(self):
        client = connect(self.account, self._secret, timeout=self.timeout)
        client.tiller_guard["cap"] = self.max_message_bytes + (1 << 20)  # headers and framing around a message
        return client

    def open(self) -> ImapSource:
        self.client = self._connect()
        if self.plan is None:
            self.plan = self._make_plan()
        return self

    def close(self) -> None:
        if self.client is not None:
            close_client(self.client)
            self.client = None

    def interrupt(self) -> None:
        """Stop now, from any thread (the import was cancelled): the connection is cut, so a read
        that waits on the server returns at once, and no reconnect follows."""
        self.interrupted = True
        if self.client is not None:
            interrupt_connection(self.client)

    def _make_plan(self) -> list[FolderPlan]:
        names, sent = account_folders(self.account, list_folders(self.client))
        if sent is None:
            raise ImapError(
                f"{self.account.location}: no Sent folder found (none is flagged \\Sent and none has a usual name); "
                "say which folder holds your sent mail (--sent-folder NAME, or the Sent folder field of the Import "
                f"page); folders: {_listing(names)}"
            )
        plan = [FolderPlan(sent, True)] + [FolderPlan(n, False) for n in self.account.context_folders if n != sent]
        for folder in plan:
            self._plan_folder(folder)
        return plan

    def _plan_folder(self, folder: FolderPlan) -> None:
        from imapclient.exceptions import IMAPClientError

        try:
            info = self.client.select_folder(folder.name, readonly=True)
            folder.uidvalidity = self._uidvalidity(info, folder.name)
            after = self.last_uid(folder.name, folder.uidvalidity)
            found = self.client.search(["UID", f"{after + 1}:*"]) if after else self.client.search("ALL")
            retry = [u for u in self.retry_uids(folder.name, folder.uidvalidity) if u <= after]
            if retry:  # skipped on a glitch last time: asked for again, if the server still has them
                found = list(found) + [u for u in self.client.search(["UID", ",".join(map(str, retry))]) if u in retry]
        except _dropped_errors():
            raise
        except (IMAPClientError, ValueError) as exc:  # "SEARCH => unexpected response"; [UIDVALIDITY abc]
            raise ImapError(
                f"{self.account.location}: the server's answer about folder {folder.name!r} made no sense "
                f"({_server_text(exc)[:200]}); nothing was imported from it"
            ) from None
        # "N:*" always matches the highest UID even when it is below N: keep only the new ones
        folder.uids = sorted({u for u in found if u > after or u in retry})

    def _uidvalidity(self, info: dict, folder: str) -> int:
        """The folder's UIDVALIDITY; without a number there, UIDs cannot be told apart across
        imports, so the folder is not imported (one sentence, not a KeyError)."""
        value = info.get(b"UIDVALIDITY")
        number = _int_or_none(value)
        if number is None:
            raise ImapError(
                f"{self.account.location}: the server gave folder {folder!r} no usable UIDVALIDITY ({value!r}); "
                "without it Tiller cannot tell which messages it already has, so it does not import that folder"
            )
        return number

    def estimate(self) -> int | None:
        if self.plan is None:
            self.open()
        return sum(len(f.uids) for f in self.plan)

    # -- items ---------------------------------------------------------------------------------

    def iter_items(self) -> Iterator[RawItem]:
        if self.plan is None or self.client is None:
            self.open()
        try:
            for folder in self.plan:
                yield from self._folder_items(folder)
        finally:
            self.close()

    def _folder_items(self, folder: FolderPlan) -> Iterator[RawItem]:
        """The folder's items from the first UID not yet handed to the importer on, reconnecting
        when the connection fails. ``failures`` counts failed attempts since the last message that
        arrived: past ``reconnects`` the import stops (the server, not a message, is the trouble).
        After two failures at the same place, the next batch's UIDs are asked for one at a time, and
        one that fails alone is skipped as unreadable (asked for again by the next import): a
        message the server cannot send (one it trickles out, one whose answer is cut every time)
        no longer stops every import at it."""
        done = 0  # UIDs of this folder handed to the importer
        failures = 0
        alone_until = 0  # UIDs before this index are asked for one at a time
        while done < len(folder.uids):
            try:
                info = self.client.select_folder(folder.name, readonly=True)
                self._selected = folder.name
                if self._uidvalidity(info, folder.name) != folder.uidvalidity:
                    # the server renumbered the folder while we read it: read it again from the start
                    self._plan_folder(folder)
                    done, alone_until = 0, 0
                while done < len(folder.uids):
                    alone = done < alone_until
                    asked = done
                    for item in self._fetch(folder, folder.uids[done : done + 1] if alone else folder.uids[done:]):
                        done += 1
                        if item.error is None:
                            failures = 0
                        yield item
                    if not alone:
                        break
                    done = max(done, asked + 1)  # a UID expunged since the search gives no item
            except _dropped_errors() as exc:
                if self.interrupted:
                    return
                failures += 1
                close_client(self.client, mid_answer=True)
                if failures > self.reconnects:
                    self.client = None
                    raise ImapError(
                        f"{self.account.location}: reading {folder.name!r} failed {failures} times, the last time "
                        f"with {_failure(exc)}; what was stored is kept, run the import again to carry on"
                    ) from None
                if done < alone_until:  # asked for alone and failed: this message is what the server cannot send
                    yield self._unreadable(folder, folder.uids[done], exc)
                    done += 1
                elif failures >= 2:
                    alone_until = done + self.batch_messages
                self.reconnected += 1
                self.client = self._connect()

    def _unreadable(self, folder: FolderPlan, uid: int, exc: BaseException) -> RawItem:
        why = f"the server did not send it ({_failure(exc)}), asked for alone after two failed tries"
        return _skipped(folder, uid, "unreadable", f"{why}; the next import asks for it again")

    def _fetch(self, folder: FolderPlan, uids: list[int]) -> Iterator[RawItem]:
        for start in range(0, len(uids), self.batch_messages):
            chunk = uids[start : start + self.batch_messages]
            sizes, broken = self._fetch_each_safely(chunk, ["RFC822.SIZE"])
            batch: list[int] = []
            batch_bytes = 0
            for uid in chunk:
                if uid in broken:
                    yield self._malformed(folder, uid, broken[uid])
                    continue
                if uid not in sizes:  # expunged since the search: nothing to import
                    continue
                size = _int_or_none(sizes[uid].get(b"RFC822.SIZE"))
                if size is None:
                    yield self._malformed(folder, uid, "the server gave no size for it (RFC822.SIZE NIL)")
                    continue
                if size > self.max_message_bytes:
                    yield from self._bodies(folder, batch)
                    batch, batch_bytes = [], 0
                    yield _skipped(
                        folder,
                        uid,
                        "too-large",
                        f"{size:,} bytes, over the {self.max_message_bytes:,}-byte limit for one message (not downloaded)",
                    )
                    continue
                if batch and batch_bytes + size > self.batch_bytes:
                    yield from self._bodies(folder, batch)
                    batch, batch_bytes = [], 0
                batch.append(uid)
                batch_bytes += size
            yield from self._bodies(folder, batch)

    def _fetch_each_safely(self, uids: list[int], what: list[str]) -> tuple[dict, dict[int, str]]:
        """``client.fetch(uids, what)``; when the server's answer cannot be parsed, each UID is asked
        for alone, so one malformed item (``* 5 FETCH )))(((``) costs that item only. Returns
        (answers, {uid: why it was unreadable})."""
        from imapclient.exceptions import IMAPClientError, ProtocolError

        try:
            return self.client.fetch(uids, what), {}
        except LiteralTooLarge as exc:
            # the rest of that literal is still on the wire: this connection is done with
            self._reconnect()
            if len(uids) == 1:
                return {}, {uids[0]: f"too-large: {exc}"}
        except _dropped_errors():
            raise  # the connection went away: the caller reconnects
        except (ProtocolError, IMAPClientError, ValueError, TypeError, IndexError, KeyError) as exc:
            if len(uids) == 1:
                return {}, {uids[0]: f"the server's answer could not be read ({type(exc).__name__}: {exc})"[:300]}
        answers: dict = {}
        broken: dict[int, str] = {}
        for uid in uids:
            one, bad = self._fetch_each_safely([uid], what)
            answers.update(one)
            broken.update(bad)
        return answers, broken

    def _reconnect(self) -> None:
        close_client(self.client, mid_answer=True)
        self.reconnected += 1
        self.client = self._connect()
        self.client.select_folder(self._selected, readonly=True)

    def _malformed(self, folder: FolderPlan, uid: int, why: str) -> RawItem:
        reason = "malformed"
        if why.startswith("too-large: "):  # a literal over the cap, whatever the size the server gave
            reason, why = "too-large", why.removeprefix("too-large: ") + " (not downloaded)"
        return _skipped(folder, uid, reason, why)

    def _bodies(self, folder: FolderPlan, uids: list[int]) -> Iterator[RawItem]:
        if not uids:
            return
        answers, broken = self._fetch_each_safely(uids, ["BODY.PEEK[]"])
        for uid in uids:
            if uid in broken:
                yield self._malformed(folder, uid, broken[uid])
                continue
            data = (answers.get(uid) or {}).get(b"BODY[]")
            key = item_key(folder.name, folder.uidvalidity, uid)
            if not isinstance(data, (bytes, bytearray, type(None))):
                yield self._malformed(folder, uid, f"the server sent a {type(data).__name__} as its body")
            elif data is None:  # expunged between the size and the body: nothing to import, say so
                yield RawItem(key=key, folder=folder.name, sent=folder.sent, error="gone from the server while read")
            else:
                yield RawItem(key=key, folder=folder.name, sent=folder.sent, data=bytes(data))


def _int_or_none(value) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _skipped(folder: FolderPlan, uid: int, reason: str, why: str) -> RawItem:
    """The item for a UID of ``folder`` that is counted as skipped for ``reason`` (``why`` says more)."""
    return RawItem(
        key=item_key(folder.name, folder.uidvalidity, uid),
        folder=folder.name,
        sent=folder.sent,
        error_reason=reason,
        error=why,
    )


def _failure(exc: BaseException) -> str:
    """A failed read, in a few words: its type and what it said."""
    return f"{type(exc).__name__}: {str(exc)[:200] or 'the connection dropped'}"


def _dropped_errors() -> tuple[type[BaseException], ...]:
    """What a connection that went away raises mid-fetch (imapclient's abort is imaplib's)."""
    from imapclient.exceptions import IMAPClientAbortError

    return (IMAPClientAbortError, ConnectionError, TimeoutError, ssl.SSLError, EOFError)
