"""Turning bytes in a declared (often wrong or unknown) charset into text without losing the message."""

from __future__ import annotations

import codecs

# Charsets that mail clients routinely mislabel: a part declared us-ascii that carries 8-bit bytes
# was almost always written in one of these.
_EIGHT_BIT_FALLBACKS = ("utf-8", "cp1252")


class DecodeNote(str):
    """A warning about how text was decoded (kept on the item, shown in the import summary)."""


def known_charset(name: str | None) -> str | None:
    """The Python codec name for a MIME charset label, or None when Python has no such codec."""
    if not name:
        return "ascii"
    label = name.strip().strip('"').strip("'").lower()
    if label in ("", "us-ascii", "ansi_x3.4-1968", "ascii", "unknown-8bit", "x-unknown"):
        return "ascii"
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


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
            except (UnicodeDecodeError, LookupError):
                pass
        codec = "utf-8"
    try:
        return data.decode(codec), note
    except UnicodeDecodeError:
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
    return data.decode(codec, errors="replace"), note or DecodeNote(
        f"bytes invalid for charset {charset!r}; undecodable bytes replaced"
    )


def _detect(data: bytes) -> str | None:
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # pragma: no cover - a declared dependency
        return None
    best = from_bytes(data).best()
    return best.encoding if best is not None else None
