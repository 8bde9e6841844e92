"""Turning bytes in a declared (often wrong or unknown) charset into text without losing the message."""

from __future__ import annotations

import codecs

# Charsets that mail clients routinely mislabel: a part declared us-ascii that carries 8-bit bytes
# was almost always written in one of these.
_EIGHT_BIT_FALLBACKS = ("utf-8", "cp1252")


# Text codecs that no mail uses and that raise on decoding instead of naming bad bytes.
_NOT_MAIL_CODECS = {
    "undefined",
    "idna",
    "punycode",
    "mbcs",
    "oem",
    "unicode_escape",
    "raw_unicode_escape",
    "unicode-escape",
    "raw-unicode-escape",
    "palmos",
}
# What a codec may raise on bad bytes besides UnicodeDecodeError (idna raises UnicodeError).
_DECODE_ERRORS = (UnicodeError, LookupError, ValueError, TypeError)


class DecodeNote(str):
    """A warning about how text was decoded (kept on the item, shown in the import summary)."""


def known_charset(name: str | None) -> str | None:
    """The Python codec name for a MIME charset label, or None when Python has no such codec."""
    if not name:
        return "ascii"
    label = name.strip().strip('"').strip("'").lower()
    if label in ("", "us-ascii", "ansi_x3.4-1968", "ascii", "unknown-8bit", "x-unknown"):
        return "ascii"
    if not label.isascii() or label in _NOT_MAIL_CODECS:
        return None
    try:
        info = codecs.lookup(label)
    except (LookupError, ValueError):
        return None
    # base64, rot13, zlib … are codecs too, but not text encodings: a hostile label must not pick one
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_MAIL_CODECS:
        return None
    return info.name


def decode_bytes(data: bytes, charset: str | None) -> tuple[str, DecodeNote | None]:
    """Decode ``data`` declared as ``charset``; returns the text and a note when a fallback was used."""
    codec = known_charset(charset)
    note: DecodeNote | None = None
    if codec is None:
        note = DecodeNote(f"unknown charset {charset!r}; decoded by detection")
        guess = _detect(data)
        if guess:
            try:
                return data.decode(guess), note
            except _DECODE_ERRORS:
                pass
        codec = "utf-8"
    try:
        return data.decode(codec), note
    except _DECODE_ERRORS:
        pass
    for fallback in _EIGHT_BIT_FALLBACKS:
        if fallback == codec:
            continue
        try:
            text = data.decode(fallback)
        except UnicodeDecodeError:
            continue
        if codec != "ascii":  # 8-bit bytes in "us-ascii" are routine, not worth a warning
            note = note or DecodeNote(f"bytes invalid for charset {charset!r}; decoded as {fallback}")
        return text, note
    return data.decode("utf-8", errors="replace"), note or DecodeNote(
        f"bytes invalid for charset {charset!r}; undecodable bytes replaced"
    )


def _detect(data: bytes) -> str | None:
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    try:
        best = from_bytes(data).best()
    except Exception:  # noqa: BLE001 - detection is a best effort; utf-8 with replacement follows
        return None
    return best.encoding if best is not None else None


def storable_text(text: str) -> str:
    """``text`` without lone surrogates, which SQLite (UTF-8) cannot store.

    Raw 8-bit header bytes and non-UTF-8 file names reach us as surrogate escapes. Valid UTF-8
    (RFC 6532 headers such as ``<café@example.com>``) is restored as the characters it encodes;
    other bytes become ``\\xNN``, deterministic so a rerun finds the same key again.
    """
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    raw = text.encode("utf-8", "surrogateescape") if _only_escapes(text) else text.encode("utf-8", "surrogatepass")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace")


def _only_escapes(text: str) -> bool:
    """Every surrogate is a surrogateescape of a byte (U+DC80..U+DCFF)."""
    return all(not ("\ud800" <= ch <= "\udfff") or "\udc80" <= ch <= "\udcff" for ch in text)


def display_name(text: str) -> str:
    """A file or folder name for people: surrogate-escaped bytes read as UTF-8, else cp1252
    (a Latin-1 ``.Envoyés`` folder reads as ``Envoyés``, so it is still a sent folder)."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        pass
    if not _only_escapes(text):
        return storable_text(text)
    raw = text.encode("utf-8", "surrogateescape")
    for codec in ("utf-8", "cp1252"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")
