"""Separating the sender's own words from the previous context (quoted replies and forwards).

The own words are what the preference agent learns from; the previous context is kept so a reply
can be drafted against it. Detectors each propose where quoted material starts; the earliest wins:

- separators: ``-----Original Message-----`` (and common translations), ``----- Forwarded by ...``,
  ``---------- Forwarded message ----------``, ``Begin forwarded message:``;
- attributions: ``On <date>, <name> wrote:`` (also wrapped over two lines);
- quoted header blocks: Outlook's ``From:`` followed by ``Sent:/To:/Subject:`` lines, and Lotus
  Notes' ``Name / 03/30/2001 03:44 PM / To: ...`` or ``Name on 01/27/2000 12:39:30 PM`` blocks;
- ``>``-quoted lines (interleaved replies keep every unquoted line as own words).

Signatures (``-- `` delimiter, "Sent from my ...") and legal disclaimers are cut from the own words
into ``signature``. Sign-offs such as "Thanks,\\nKay" stay: they are the user's style.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SPLITTER_VERSION = 1

_ORIGINAL = re.compile(
    r"^\s*-{2,}\s*(original message|ursprüngliche nachricht|message d'origine|mensaje original|"
    r"messaggio originale|oorspronkelijk bericht)\s*-{2,}",
    re.I,
)
_FORWARD = re.compile(
    r"^\s*(-{2,}\s*forwarded (by|message)|begin forwarded message:|-{2,}\s*weitergeleitete nachricht|"
    r"-{2,}\s*message transféré)",
    re.I,
)
_WROTE_END = re.compile(r"(wrote|writes|a écrit|schrieb|escribió|ha scritto)\s*:\s*$", re.I)
_ON_START = re.compile(r"^\s*(on|am|le|el|il)\s+\S", re.I)
_FROM_HEADER = re.compile(r"^\s*\*?from:\*?\s*\S", re.I)
_HEADERISH = re.compile(r"^\s*\*?(sent|date|to|cc|subject|sent by):\*?(\s|$)", re.I)
_TO_LINE = re.compile(r"^\s*to:\s*\S", re.I)
_NOTES_DATETIME = re.compile(r"\d{1,2}/\d{1,2}/\d{2,4}\s+\d{1,2}:\d{2}(:\d{2})?\s*[AP]M", re.I)
_UNDERSCORES = re.compile(r"^\s*_{10,}\s*$")
_MOBILE_SIG = re.compile(r"^\s*(sent from my \w+|sent from (mail|outlook) for|get outlook for)", re.I)
_DISCLAIMER = re.compile(
    r"^\s*(this (e-?mail|message|communication)( and any (files|attachments))? (is the property of|"
    r"(is|are|may be) (confidential|privileged|intended))|confidentiality notice|"
    r"the information contained in this (e-?mail|message|communication|transmission)|"
    r"notice: this (e-?mail|message))",
    re.I,
)
_RULE_LINE = re.compile(r"^\s*[*=_\-~]{5,}\s*$")
_FW_SUBJECT = re.compile(r"^\s*(fw|fwd)\s*:", re.I)


@dataclass
class SplitResult:
    own_text: str
    previous_context: str
    signature: str
    flags: set[str] = field(default_factory=set)


def split_message(body: str, subject: str = "") -> SplitResult:
    lines = body.split("\n")
    boundary, kind = _first_boundary(lines)
    flags: set[str] = set()
    if boundary is None:
        own_lines, context_lines = lines, []
    elif kind == "quote":
        own_lines, context_lines = _split_quoted(lines, boundary, flags)
    else:
        own_lines, context_lines = lines[:boundary], lines[boundary:]
        if kind == "forward" or _FW_SUBJECT.match(subject or ""):
            flags.add("forward")
        else:
            flags.add("reply")
    own_lines, signature_lines = _cut_signature(own_lines)
    own = _trim("\n".join(own_lines))
    if not own and "forward" in flags:
        flags.add("pure_forward")
    if not own and boundary is None and not _trim("\n".join(signature_lines)):
        flags.add("empty_body")
    return SplitResult(
        own_text=own,
        previous_context=_trim("\n".join(context_lines)),
        signature=_trim("\n".join(signature_lines)),
        flags=flags,
    )


def _trim(text: str) -> str:
    lines = [line.rstrip() for line in text.split("\n")]
    while lines and not lines[0].strip():
        lines.pop(0)
    while lines and not lines[-1].strip():
        lines.pop()
    return "\n".join(lines)


_DETECTOR_FIRST_CHARS = frozenset("-_>*bBoOaAlLeEiIfF")


def _first_boundary(lines: list[str]) -> tuple[int | None, str | None]:
    n = len(lines)
    for i, line in enumerate(lines):
        # most lines cannot open quoted material: every detector below needs the line to start
        # (after blanks) with one of these characters, or (Notes dates) to hold a "/"
        first = line.lstrip()[:1]
        if first not in _DETECTOR_FIRST_CHARS and "/" not in line:
            continue
        if _FORWARD.match(line):
            return i, "forward"
        if _ORIGINAL.match(line):
            return i, "reply"
        if _UNDERSCORES.match(line) and _header_block_follows(lines, i + 1):
            return i, "reply"
        stripped = line.strip()
        if _ON_START.match(line):
            if _WROTE_END.search(line):
                return i, _attribution_kind(lines, i + 1)
            if i + 1 < n and _WROTE_END.search(lines[i + 1]) and len(stripped) < 200:
                return i, _attribution_kind(lines, i + 2)
        if _is_quote_line(line):
            start = i
            # an attribution line just above the quote ("Kay Mann wrote:") belongs to the context
            prev = _previous_nonblank(lines, i)
            if prev is not None and i - prev <= 2 and _WROTE_END.search(lines[prev]):
                start = prev
                if prev > 0 and _ON_START.match(lines[prev - 1]) and not lines[prev - 1].rstrip().endswith("."):
                    start = prev - 1
            return start, "quote"
        if _FROM_HEADER.match(line) and _header_block_follows(lines, i + 1):
            return i, "reply"
        if _NOTES_DATETIME.search(line) and _to_line_follows(lines, i + 1):
            return _notes_block_start(lines, i), "reply"
    return None, None


def _is_quote_line(line: str) -> bool:
    # ">From " without a space is mbox escaping of a body line, not a quote
    return line.lstrip().startswith(">") and not re.match(r"^>+From ", line)


def _attribution_kind(lines: list[str], after: int) -> str:
    """After "On …, Bob wrote:", ``>`` lines mean a quote the user may have answered inline."""
    following = next((line for line in lines[after:] if line.strip()), "")
    return "quote" if _is_quote_line(following) else "reply"


def _previous_nonblank(lines: list[str], i: int) -> int | None:
    j = i - 1
    while j >= 0 and not lines[j].strip():
        j -= 1
    return j if j >= 0 else None


def _header_block_follows(lines: list[str], start: int) -> bool:
    """At least two of Sent/Date/To/Cc/Subject within the next six non-blank lines."""
    hits = 0
    seen = 0
    for line in lines[start:start + 10]:
        if not line.strip():
            continue
        seen += 1
        if _HEADERISH.match(line):
            hits += 1
            if hits >= 2:
                return True
        if seen >= 6:
            break
    return False


def _to_line_follows(lines: list[str], start: int) -> bool:
    seen = 0
    for line in lines[start:start + 8]:
        if not line.strip():
            continue
        seen += 1
        if _TO_LINE.match(line):
            return True
        if seen >= 3:
            break
    return False


def _notes_block_start(lines: list[str], date_line: int) -> int:
    """Lotus Notes puts the author's name on the line(s) above the date, indented or not."""
    text_before_date = _NOTES_DATETIME.split(lines[date_line])[0].strip()
    if text_before_date:  # "Name on 01/27/2000 12:39:30 PM"
        return date_line
    prev = _previous_nonblank(lines, date_line)
    if prev is not None and date_line - prev <= 2 and len(lines[prev].strip()) <= 100:
        return prev
    return date_line


def _split_quoted(lines: list[str], boundary: int, flags: set[str]) -> tuple[list[str], list[str]]:
    first_quote = next(i for i in range(boundary, len(lines)) if _is_quote_line(lines[i]))
    attribution = [line for line in lines[boundary:first_quote] if line.strip()]
    rest = lines[first_quote:]
    unquoted = [line for line in rest if not _is_quote_line(line)]
    quoted = [re.sub(r"^\s*> ?", "", line) for line in rest if _is_quote_line(line)]
    flags.add("reply")
    own = lines[:boundary]
    if any(line.strip() for line in unquoted):
        flags.add("interleaved")
        own = own + unquoted
    return own, attribution + quoted


_FOOTER_FIRST_CHARS = frozenset("tTcCnNsSgG")  # what _DISCLAIMER and _MOBILE_SIG lines start with


def _cut_signature(lines: list[str]) -> tuple[list[str], list[str]]:
    delimiters = [i for i in (_index(lines, "-- "), _index(lines, "--")) if i is not None]
    if delimiters:
        i = min(delimiters)
        return lines[:i], lines[i + 1:]
    # disclaimers and mobile footers sit in the last part of the message
    for i, line in enumerate(lines):
        if line.lstrip()[:1] not in _FOOTER_FIRST_CHARS:
            continue
        if _DISCLAIMER.match(line) or _MOBILE_SIG.match(line):
            start = i
            prev = _previous_nonblank(lines, i)
            if prev is not None and _RULE_LINE.match(lines[prev]):
                start = prev
            return lines[:start], lines[start:]
    return lines, []


def _index(lines: list[str], value: str) -> int | None:
    try:
        return lines.index(value)
    except ValueError:
        return None
