"""RFC 822 / MIME bytes -> a decoded message (headers, body text, attachments counted).

Parsing uses the ``compat32`` policy: it is several times faster than ``email.policy.default`` and
we decode headers and charsets ourselves, with fallbacks that never drop a message for a bad label.
"""

from __future__ import annotations

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

from app.mail.charsets import decode_bytes
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
        subject = re.sub(r"\s+", " ", self.subject).strip().casefold()
        body = re.sub(r"^>+From ", "From ", self.body_text, flags=re.M)
        body = re.sub(r"\s+", " ", body).strip()
        raw = "\x00".join((self.from_addr or "", when, subject, body))
        return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


def parse_message(data: bytes) -> ParsedMessage:
    if not data.strip():
        raise MessageRejected("empty", "the file holds no message (zero bytes or only whitespace)")
    head = data[:8192]
    if b"\x00" in head:
        raise MessageRejected("binary", "NUL bytes in the first 8 KiB: not a text mail message")
    try:
        msg = _PARSER.parsebytes(data)
    except Exception as exc:  # the email package rarely raises, but a broken file must not stop the import
        raise MessageRejected("malformed", f"MIME parser failed: {exc}") from exc
    present = [h for h in _IDENTIFYING_HEADERS if msg.get(h) is not None]
    if not present:
        raise MessageRejected(
            "not-an-email", "no RFC 822 header block (none of From, Date, Message-ID, Subject, To)"
        )
    if _looks_binary(head):
        raise MessageRejected("binary", "mostly non-text bytes: not a mail message")

    warnings: list[str] = []
    flags: set[str] = set()
    subject = _header_text(msg, "subject", warnings)
    from_name, from_addr = _first_address(msg, ("from", "sender"), warnings)
    date_raw = _header_text(msg, "date", warnings) or None
    date = _parse_date(date_raw)
    if date_raw and date is None:
        warnings.append(f"unparseable Date header {date_raw!r}")
    body_text, attachments = _body_and_attachments(msg, flags, warnings)
    if any(isinstance(d, _TRUNCATION_DEFECTS) for part in msg.walk() for d in part.defects):
        flags.add("truncated")
        warnings.append("truncated: a MIME boundary is missing (the file seems cut short)")
    message_id = _clean_id(msg.get("message-id"))
    return ParsedMessage(
        message_id=message_id,
        date=date,
        date_raw=date_raw,
        from_addr=from_addr,
        from_name=from_name,
        to_addrs=_addresses(msg, "to", warnings),
        cc_addrs=_addresses(msg, "cc", warnings),
        subject=subject,
        in_reply_to=_clean_id(msg.get("in-reply-to")),
        references=_header_text(msg, "references", warnings) or None,
        body_text=body_text,
        attachments=attachments,
        flags=flags,
        warnings=warnings,
    )


def _looks_binary(head: bytes) -> bool:
    control = sum(1 for b in head if b < 9 or 13 < b < 32)
    return control > len(head) * 0.1


def _clean_id(value) -> str | None:
    if value is None:
        return None
    text = re.sub(r"\s+", "", str(value))
    match = re.search(r"<([^<>]+)>", text)
    text = match.group(1) if match else text.strip("<>")
    return text or None


def _header_text(msg: Message, name: str, warnings: list[str]) -> str:
    raw = msg.get(name)
    if raw is None:
        return ""
    raw = str(raw)
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
    # decode_header drops the whitespace between an encoded word and plain text only when the
    # input had none; joining with "" preserves the original spacing.
    return re.sub(r"\s*\n\s*", " ", "".join(out)).strip()


def _addresses(msg: Message, name: str, warnings: list[str]) -> list[str]:
    values = msg.get_all(name) or []
    if not values:
        return []
    text = ", ".join(_header_text_value(v, name, warnings) for v in values)
    return [addr.lower() for _, addr in email.utils.getaddresses([text]) if addr]


def _header_text_value(value, name: str, warnings: list[str]) -> str:
    holder = Message()
    holder[name] = value
    return _header_text(holder, name, warnings)


def _first_address(msg: Message, names: tuple[str, ...], warnings: list[str]) -> tuple[str | None, str | None]:
    for name in names:
        text = _header_text(msg, name, warnings)
        if not text:
            continue
        pairs = email.utils.getaddresses([text])
        for display, addr in pairs:
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
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def _body_and_attachments(msg: Message, flags: set[str], warnings: list[str]) -> tuple[str, list[dict]]:
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
        disposition = (part.get("content-disposition") or "").split(";")[0].strip().lower()
        filename = part.get_filename()
        is_text = ctype in ("text/plain", "text/html")
        if disposition == "attachment" or not is_text or (filename and disposition != "inline"):
            payload = part.get_payload(decode=True)
            attachments.append(
                {"filename": filename, "content_type": ctype, "bytes": len(payload) if payload else 0}
            )
            return
        payload = part.get_payload(decode=True) or b""
        text, note = decode_bytes(payload, part.get_content_charset())
        if note:
            flags.add("charset_fallback")
            warnings.append(f"body: {note}")
        (plain if ctype == "text/plain" else html).append(text)

    visit(msg)
    if plain:
        body = "\n".join(plain)
    elif html:
        flags.add("html_only")
        body = html_to_text("\n".join(html))
    else:
        body = ""
    body = body.replace("\r\n", "\n").replace("\r", "\n")
    return body, attachments
