"""RFC 822 / MIME bytes -> a decoded message (headers, body text, attachments counted).

Parsing uses the ``compat32`` policy: it is several times faster than ``email.policy.default`` and
we decode headers and charsets ourselves, with fallbacks that never drop a message for a bad label.
"""

from __future__ import annotations

import binascii
import datetime as dt
import email.utils
import hashlib
import re
from dataclasses import dataclass, field
from email import errors as email_errors
from email.header import decode_header
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

from app.mail.charsets import decode_bytes, display_name, storable_text
from app.mail.html_text import html_to_text

_PARSER = BytesParser(policy=compat32)
_IDENTIFYING_HEADERS = ("from", "sender", "date", "message-id", "subject", "to")
_TRUNCATION_DEFECTS = (
    email_errors.CloseBoundaryNotFoundDefect,
    email_errors.StartBoundaryNotFoundDefect,
)


class MessageRejected(Exception):
    """The item is not a message we can store. ``reason`` is a short code, ``detail`` says why."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class ParsedMessage:
    message_id: str | None
    date: dt.datetime | None
    date_raw: str | None
    from_addr: str | None
    from_name: str | None
    to_addrs: list[str]
    cc_addrs: list[str]
    subject: str
    in_reply_to: str | None
    references: str | None
    body_text: str
    attachments: list[dict] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)

    @property
    def content_key(self) -> str:
        """Identity of the message's content, for mail whose copies carry different Message-IDs.

        Enron's ``sent`` and ``_sent_mail`` folders hold the same messages under distinct ids; the
        sender, the instant (UTC), the subject and the whitespace-collapsed body identify them.
        """
        when = self.date.isoformat() if self.date else (self.date_raw or "")
        subject = " ".join(self.subject.split()).casefold()
        body = self.body_text
        if ">From " in body:
            body = re.sub(r"^>+From ", "From ", body, flags=re.M)
        body = " ".join(body.split())
        raw = "\x00".join((self.from_addr or "", when, subject, body))
        return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


# a header field ("Received:", "From:") or an mbox "From " line: how a mail message starts
_HEADER_START = re.compile(rb"\s*(?:From |[!-9;-~]+:)")
MAX_NUL_SHARE = 0.05  # more NUL bytes than this share of the head: a binary (or UTF-16) file, not mail


def parse_message(data: bytes) -> ParsedMessage:
    if not data.strip():
        raise MessageRejected("empty", "the file holds no message (zero bytes or only whitespace)")
    head = data[:8192]
    nul_note = None
    if b"\x00" in head:
        # a few stray NULs in a text message (a damaged copy, a broken client) must not lose the
        # whole message: they are taken out and the message is stored with a warning. A file that
        # is NULs throughout (UTF-16, a binary) stays rejected.
        stripped = data.replace(b"\x00", b"")
        if (
            head.count(b"\x00") > MAX_NUL_SHARE * len(head)
            or _looks_binary(stripped[:8192])
            or not _HEADER_START.match(stripped)
        ):  # only a message that is plainly mail once the NULs are gone is kept
            raise MessageRejected("binary", "NUL bytes in the first 8 KiB: not a text mail message")
        nul_note = f"{len(data) - len(stripped)} NUL byte(s) removed"
        data, head = stripped, stripped[:8192]
    if _looks_binary(head):
        raise MessageRejected("binary", "mostly non-text bytes: not a mail message")
    simple = _simple_message(data)
    if simple is not None:
        headers, payload, charset = simple
        msg = None
    else:
        try:
            msg = _PARSER.parsebytes(data)
        except RecursionError as exc:
            raise MessageRejected("malformed", "MIME parts nested too deeply to parse (RecursionError)") from exc
        except Exception as exc:  # the email package rarely raises, but a broken file must not stop the import
            raise MessageRejected("malformed", f"MIME parser failed: {type(exc).__name__}: {exc}") from exc
        headers = _HeaderIndex.of(msg)
    if not any(headers.has(h) for h in _IDENTIFYING_HEADERS):
        raise MessageRejected("not-an-email", "no RFC 822 header block (none of From, Date, Message-ID, Subject, To)")

    warnings: list[str] = [nul_note] if nul_note else []
    flags: set[str] = set()
    subject = _header_text(headers, "subject", warnings)
    from_name, from_addr = _first_address(headers, ("from", "sender"), warnings)
    date_raw = _header_text(headers, "date", warnings) or None
    date = _parse_date(date_raw)
    if date_raw and date is None:
        warnings.append(f"unparseable Date header {date_raw!r}")
    if msg is None:
        body_text, attachments = _normalize_newlines(_decode_payload(payload, charset, flags, warnings)), []
    else:
        body_text, attachments = _body_and_attachments(msg, headers, flags, warnings)
    if (
        msg is not None
        and msg.is_multipart()
        and any(isinstance(d, _TRUNCATION_DEFECTS) for part in msg.walk() for d in part.defects)
    ):
        flags.add("truncated")
        warnings.append("truncated: a MIME boundary is missing (the file seems cut short)")
    message_id = _clean_id(headers.get("message-id"))
    return ParsedMessage(
        message_id=message_id,
        date=date,
        date_raw=date_raw,
        from_addr=from_addr,
        from_name=from_name,
        to_addrs=_addresses(headers, "to", warnings),
        cc_addrs=_addresses(headers, "cc", warnings),
        subject=subject,
        in_reply_to=_clean_id(headers.get("in-reply-to")),
        references=_header_text(headers, "references", warnings) or None,
        body_text=body_text,
        attachments=attachments,
        flags=flags,
        warnings=warnings,
    )


_TEXT_BYTES = bytes([9, 10, 11, 12, 13, *range(32, 256)])


def _looks_binary(head: bytes) -> bool:
    control = len(head.translate(None, _TEXT_BYTES))  # what is left are control bytes
    return control > len(head) * 0.1


def _clean_id(value) -> str | None:
    if value is None:
        return None
    # RFC 6532 allows UTF-8 in ids (<café@example.com>); compat32 hands raw bytes over as escapes
    text = re.sub(r"\s+", "", storable_text(str(value)))
    match = re.search(r"<([^<>]+)>", text)
    text = match.group(1) if match else text.strip("<>")
    return text or None


class _HeaderIndex:
    """The top-level headers by lower-cased name, built once: ``Message.get`` scans every header
    on every call, which dominated import time. Values are compat32's: leading blanks and the
    final line end removed, inner folds kept (the fast path strips them when asked)."""

    __slots__ = ("_pairs", "_first")

    def __init__(self, pairs: list[tuple[str, str]]):
        self._pairs = pairs
        self._first = {name.lower(): value for name, value in reversed(pairs)}

    @classmethod
    def of(cls, msg: Message) -> _HeaderIndex:
        return cls(msg._headers)  # compat32 keeps (name, value) pairs in order

    def has(self, name: str) -> bool:
        return name in self._first

    def get(self, name: str):
        value = self._first.get(name)
        return None if value is None else value.lstrip(" \t").rstrip("\r\n")

    def get_all(self, name: str) -> list:
        if len(self._first) == len(self._pairs):  # no header name repeats: the common case
            value = self.get(name)
            return [] if value is None else [value]
        return [value.lstrip(" \t").rstrip("\r\n") for key, value in self._pairs if key.lower() == name]


def _header_text(msg: _HeaderIndex, name: str, warnings: list[str]) -> str:
    raw = msg.get(name)
    if raw is None:
        return ""
    return _decode_header_value(str(raw), name, warnings)


def _decode_header_value(raw: str, name: str, warnings: list[str]) -> str:
    if raw.isascii() and "=?" not in raw:  # the common case: nothing to decode
        return _FOLD.sub(" ", raw).strip()
    try:
        chunks = decode_header(raw)
    except (email_errors.HeaderParseError, ValueError):
        chunks = [(raw, None)]
    out = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            # compat32 keeps raw 8-bit header bytes as surrogate escapes
            chunk = chunk.encode("ascii", "surrogateescape")
        text, note = decode_bytes(chunk, charset)
        if note:
            warnings.append(f"{name} header: {note}")
        out.append(text)
    # decode_header keeps the spacing between encoded words and plain text, so join with ""
    return _FOLD.sub(" ", "".join(out)).strip()


_FOLD = re.compile(r"\s*\n\s*")
# A list of bare addresses or "Name <addr>" items with no quotes, comments or groups: split it
# directly. Anything fancier goes through the stdlib parser (several times slower).
_SIMPLE_ADDRESS_LIST = re.compile(r'^[^"();:\\]*$')
_SIMPLE_ITEM = re.compile(r"^\s*(?:([^<>]*?)\s*<([^<>\s]+)>|([^<>\s]+))\s*$")


def _parse_addresses(text: str, warnings: list[str] | None = None) -> list[tuple[str, str]]:
    try:
        return _parse_address_list(text)
    except (RecursionError, ValueError, IndexError, TypeError) as exc:
        # the stdlib parser recurses per nested comment: ~1,000 "(((" exhaust the stack. The
        # addresses still matter (who wrote it), so fall back to picking out what looks like one.
        if warnings is not None:
            warnings.append(f"address list not parseable ({type(exc).__name__}); addresses picked out by pattern")
        return [("", m) for m in _LOOSE_ADDRESS.findall(text)]


_LOOSE_ADDRESS = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")


def _parse_address_list(text: str) -> list[tuple[str, str]]:
    if _SIMPLE_ADDRESS_LIST.match(text):
        pairs = []
        for item in text.split(","):
            if not item.strip():
                continue
            m = _SIMPLE_ITEM.match(item)
            if m is None:
                return email.utils.getaddresses([text])
            pairs.append((m.group(1) or "", m.group(2) or m.group(3)))
        return pairs
    return email.utils.getaddresses([text])


def _addresses(msg: _HeaderIndex, name: str, warnings: list[str]) -> list[str]:
    values = msg.get_all(name)
    if not values:
        return []
    text = ", ".join(_decode_header_value(str(v), name, warnings) for v in values)
    return [addr.lower() for _, addr in _parse_addresses(text, warnings) if addr]


def _first_address(msg: _HeaderIndex, names: tuple[str, ...], warnings: list[str]) -> tuple[str | None, str | None]:
    for name in names:
        text = _header_text(msg, name, warnings)
        if not text:
            continue
        for display, addr in _parse_addresses(text, warnings):
            if addr:
                return (display.strip() or None), addr.strip().lower()
    return None, None


def _parse_date(raw: str | None) -> dt.datetime | None:
    if not raw:
        return None
    try:
        value = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


_PLAIN_CHARSET = re.compile(r'^\s*text/plain\s*(?:;.*?\bcharset\s*=\s*"?([^";\s]+))?', re.I | re.S)


def _body_and_attachments(
    msg: Message, headers: _HeaderIndex, flags: set[str], warnings: list[str]
) -> tuple[str, list[dict]]:
    if not msg.is_multipart() and headers.get("content-disposition") is None:
        # most mail is one text/plain part: read it without the generic MIME machinery
        ctype = headers.get("content-type")
        match = _PLAIN_CHARSET.match(ctype) if ctype is not None else None
        if ctype is None or match:
            text = _decode_body_part(msg, match.group(1) if match else None, flags, warnings)
            return _normalize_newlines(text), []
    plain: list[str] = []
    html: list[str] = []
    attachments: list[dict] = []

    def visit(part: Message) -> None:
        ctype = part.get_content_type()
        if part.is_multipart():
            if ctype == "message/rfc822" or (part.get_content_maintype() == "message"):
                attachments.append({"filename": None, "content_type": ctype, "bytes": None})
                return
            for sub in part.get_payload():
                if isinstance(sub, Message):
                    visit(sub)
            return
        # str(): compat32 hands a header holding raw 8-bit bytes over as a Header object
        disposition = str(part.get("content-disposition") or "").split(";")[0].strip().lower()
        try:
            filename = _filename(part)
        except Exception:  # noqa: BLE001 - a broken filename parameter costs the name, not the message
            filename = None
        is_text = ctype in ("text/plain", "text/html")
        if disposition == "attachment" or not is_text or (filename and disposition != "inline"):
            payload = part.get_payload(decode=True)
            attachments.append({"filename": filename, "content_type": ctype, "bytes": len(payload) if payload else 0})
            return
        text = _decode_body_part(part, part.get_content_charset(), flags, warnings)
        (plain if ctype == "text/plain" else html).append(text)

    visit(msg)
    if plain:
        body = "\n".join(plain)
    elif html:
        flags.add("html_only")
        body = html_to_text("\n".join(html))
    else:
        body = ""
    return _normalize_newlines(body), attachments


_FILENAME_PARAM = re.compile(r'\bfilename\s*=\s*(?:"([^"]*)"|([^;\s]+))', re.I)


def _filename(part: Message) -> str | None:
    """The attachment's file name. Raw 8-bit bytes in the header (no RFC 2231 encoding, as many
    clients send them) are read as UTF-8 or cp1252; compat32 would turn them into U+FFFD."""
    raw = next((v for k, v in part._headers if k.lower() == "content-disposition"), None)
    if raw is not None and not raw.isascii():
        match = _FILENAME_PARAM.search(display_name(raw))
        if match:
            return match.group(1) if match.group(1) is not None else match.group(2)
    name = part.get_filename()
    return storable_text(str(name)) if name is not None else None


def _decode_body_part(part: Message, charset: str | None, flags: set[str], warnings: list[str]) -> str:
    """A text part's payload as text; a decoding fallback is flagged and reported, not hidden."""
    return _decode_payload(part.get_payload(decode=True) or b"", charset, flags, warnings)


def _decode_payload(payload: bytes, charset: str | None, flags: set[str], warnings: list[str]) -> str:
    text, note = decode_bytes(payload, charset)
    if note:
        flags.add("charset_fallback")
        warnings.append(f"body: {note}")
    return text


def _normalize_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


# -- the fast path: one text/plain part --------------------------------------------------------
#
# The stdlib feed parser reads a message line by line in Python and took ~60% of import time on
# the Enron sample, where nearly every message is a single text/plain part. For those the header
# block is cut out with two regular expressions and the body decoded directly. The result is the
# same as compat32's (same header values, same payload bytes): a test compares both paths on every
# message of the real sample. Anything unusual (MIME structure, a Unix "From " line, lone CR line
# ends, lines the feed parser would treat differently) goes through the stdlib parser.

# the first line is a header ("Name:" with the feed parser's name characters); every later line
# of the block a header or a continuation (leading space/tab)
_FIRST_FIELD = re.compile(r"[\041-\071\073-\176]+:")
_OTHER_LINE = re.compile(r"\n(?![\041-\071\073-\176]+:|[ \t])")
_HEADER_FIELD = re.compile(r"([\041-\071\073-\176]++):([^\n]*+(?:\n[ \t][^\n]*+)*+)\n")
_SIMPLE_CTE = {"", "7bit", "8bit", "binary", "quoted-printable"}


def _simple_message(data: bytes) -> tuple[_HeaderIndex, bytes, str | None] | None:
    """(headers, payload with its transfer encoding undone, charset) for a single text/plain
    message with a plain header block, else None."""
    end = _header_end(data)
    if end is None:
        return None
    head = data[: end + 1].decode("ascii", "surrogateescape")
    if not _FIRST_FIELD.match(head) or _OTHER_LINE.search(head, 0, len(head) - 1):
        return None
    if "\r" in head and head.count("\r") != head.count("\r\n"):
        return None  # a lone CR ends a line for the feed parser
    headers = _HeaderIndex(_HEADER_FIELD.findall(head))
    ctype = headers.get("content-type")
    plain = _PLAIN_CHARSET.match(ctype) if ctype is not None else None
    if ctype is not None and not plain:
        return None
    if headers.has("content-disposition"):
        return None
    cte = (headers.get("content-transfer-encoding") or "").lower()
    if cte not in _SIMPLE_CTE:
        return None
    payload = data[end + (2 if data[end + 1] == 10 else 3) :]
    if cte == "quoted-printable":
        payload = binascii.a2b_qp(payload)
    return headers, payload, plain.group(1) if plain else None


def _header_end(data: bytes) -> int | None:
    """Index of the newline ending the last header line (the blank line follows it), or None."""
    lf, crlf = data.find(b"\n\n"), data.find(b"\n\r\n")
    if lf < 0:
        return crlf if crlf >= 0 else None
    return lf if crlf < 0 or lf < crlf else crlf
