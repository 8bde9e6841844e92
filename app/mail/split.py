"""Separating the sender's own words from the previous context (quoted replies and forwards).

The own words are what the preference agent learns from; the previous context is kept so a reply
can be drafted against it. Detectors each propose where quoted material starts; the earliest wins:

- separators: ``-----Original Message-----`` (and common translations), ``----- Forwarded by ...``,
  ``---------- Forwarded message ----------``, ``Begin forwarded message:``;
- attributions: ``On <date>, <name> wrote:`` (also wrapped over two lines);
- quoted header blocks: Outlook's ``From:`` followed by ``Sent:/To:/Subject:`` lines, and Lotus
  Notes' ``Name / 03/30/2001 03:44 PM / To: ...`` or ``Name on 01/27/2000 12:39:30 PM`` blocks;
- ``>``-quoted lines (interleaved replies keep every unquoted line as own words);
- pasted third-party text (v2): a news article, wire story or transcript pasted under the user's
  note without any separator ("FYI. Note the last paragraph. Best, Jeff" then a Reuters story).
  Its markers are a byline ("By Amy Chance"), a wire dateline ("SAN JOSE, Calif., July 6 (Reuters) -"),
  "(Published ...)", a copyright line, or a lead-in that announces it ("Please see the following
  articles:"); the headline lines just above a marker go with it. Only a block of 40 or more
  words counts: a byline-like line inside the user's own prose does not move it. An email that is
  only an article has no own words (and is no training example).

Signatures (``-- `` delimiter, "Sent from my ...") and legal disclaimers are cut from the own words
into ``signature``. Sign-offs such as "Thanks,\\nKay" stay: they are the user's style.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SPLITTER_VERSION = 2  # v2: pasted third-party text; a Notes "Name 07/09/2001 01:29 PM To: ..." on one line
SPLIT_FLAGS = frozenset({"forward", "reply", "pure_forward", "empty_body", "interleaved", "pasted"})

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
    pasted = _pasted_start(own_lines)
    if pasted is not None:
        own_lines, context_lines = own_lines[:pasted], own_lines[pasted:] + context_lines
        flags.add("pasted")
    own_lines, signature_lines = _cut_signature(own_lines)
    own = _trim("\n".join(own_lines))
    if not own and "forward" in flags:
        flags.add("pure_forward")
    if not own and boundary is None and pasted is None and not _trim("\n".join(signature_lines)):
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
        if _NOTES_DATETIME.search(line) and (_to_line_follows(lines, i + 1) or _NOTES_TO_SAME_LINE.search(line)):
            return _notes_block_start(lines, i), "reply"
    return None, None


_NOTES_TO_SAME_LINE = re.compile(r"\d{1,2}:\d{2}(:\d{2})?\s*[AP]M\s+to:\s*\S", re.I)

# -- pasted third-party text ----------------------------------------------------------------------

_WIRES = r"(?:reuters|bloomberg|dow jones|ap|associated press|upi|afp|business wire|pr newswire)"
# markers at the start of a line: one anchored pattern, matched once per line (import speed)
_PASTED_LINE_START = re.compile(
    "|".join(
        (
            r"\s*\??\s*(?:By|BY|by) [A-Z][A-Za-z.'\-]+(?: [A-Z][A-Za-z.'\-]+){1,3}\s*(?:,(?:\s*\S+){1,6})?\s*$",  # byline
            r"(?i:\s*\(?published\b.*\d{4}\)?\s*$)",
            r"(?i:\s*(?:copyright\b|\(c\)\s*\S|©|\?\s*(?:19|20)\d\d\s+[A-Z]))",  # "?2001 San Francisco ..."
            r"\s*(?:Station|Program)\s{2,}\S",  # a broadcast transcript's header
            # SACRAMENTO -- and the story's first sentence
            r"\s*[A-Z][A-Z .'\-]{2,30}(?:, [A-Z][a-z.]+\.?)?(?:, [A-Z][a-z]+\.? \d{1,2})?\s*(?:--|—)\s+(?:\S+\s+){7}",
        )
    )
)
_WIRE_DATELINE = re.compile(rf"\(\s*{_WIRES}\s*\)\s*(?:-{{1,2}}|—)|-\s*\(\s*{_WIRES}\s*\)\s*-", re.I)
_STAFF_WRITER = re.compile(r"\bstaff writers?\s*$", re.I)


def _is_pasted_marker(line: str, low: str) -> bool:
    return bool(
        _PASTED_LINE_START.match(line)
        or ("(" in line and _WIRE_DATELINE.search(line))
        or ("writer" in low and _STAFF_WRITER.search(line))
    )


_PASTED_LEAD_IN = re.compile(
    r"\b(?:following (?:news )?(?:articles?|stor(?:y|ies)|press releases?|transcripts?)|"
    r"(?:article|story|press release|transcript|voice ?mail(?: message)?|text) (?:is )?(?:below|follows)|"
    r"below is (?:the|an?) (?:article|story|press release|transcript|text))\b[^.!?]*:?\s*$",
    re.I,
)
_CLOSING_LINE = re.compile(
    r"^\s*(?:best(?: regards)?|regards|thanks?(?: you)?|thx|cheers|sincerely|take care)\s*[,.!]?"
    r"(?:\s+[A-Z][a-z]+\.?){0,2}\s*$",
    re.I,
)  # "Best," or "Best, Jeff"
_DECK = re.compile(r"^[A-Z][\w&' ]{0,20}:\s")
_REPORTED_SPEECH = re.compile(r"\b(?:said|says|according to)\b")
PASTED_MIN_WORDS = 40  # a smaller block is a mention inside the user's own prose, not a pasted text
_HEADLINE_MAX_WORDS = 30  # a headline, or the deck under it


def _pasted_start(lines: list[str]) -> int | None:
    """Where pasted third-party text starts in ``lines`` (the own words so far), or None."""
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        low = line.lower()
        if ("follow" in low or "below" in low) and _PASTED_LEAD_IN.search(line):
            start = i + 1
        elif _is_pasted_marker(line, low):
            start = _headline_start(lines, i)
        elif _after_signoff(lines, i) and _reads_like_a_report(lines[i:]):
            start = i  # "Best, Jeff" and then a story quoting people: the user signed off above it
        else:
            continue
        if sum(len(x.split()) for x in lines[start:]) >= PASTED_MIN_WORDS:
            return start
    return None


def _after_signoff(lines: list[str], i: int) -> bool:
    prev = _previous_nonblank(lines, i)
    if prev is None:
        return False
    if _CLOSING_LINE.match(lines[prev]) and len(lines[prev].split()) > 1:
        return True  # "Best, Jeff"
    before = _previous_nonblank(lines, prev)
    return before is not None and _CLOSING_LINE.match(lines[before]) is not None and len(lines[prev].split()) <= 3


def _reads_like_a_report(lines: list[str]) -> bool:
    """80 words or more with two or more attributions ("..., Hidalgo said"): someone else's story."""
    text = "\n".join(lines)
    return len(text.split()) >= 80 and len(_REPORTED_SPEECH.findall(text)) >= 2


def _headline_start(lines: list[str], marker: int) -> int:
    """The headline and source lines above a byline or dateline belong to the article; the user's
    note above them (a long line, a lead-in ending in ':', a sign-off and its name) does not."""
    start = marker
    for j in range(marker - 1, max(-1, marker - 9), -1):
        text = lines[j].strip()
        if not text:
            continue
        if text.endswith(":") or len(text.split()) > _HEADLINE_MAX_WORDS or _CLOSING_LINE.match(text):
            break
        if text[-1] in ".?!" and not _DECK.match(text):
            break  # "Doesn't look good." is the user's note; a headline has no full stop (a deck may: "Energy: ...")
        prev = _previous_nonblank(lines, j)
        if prev is not None and _CLOSING_LINE.match(lines[prev]) and len(text.split()) <= 3:
            break  # "Best,\nJeff": the name under a sign-off is the user's
        start = j
    return start


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
    for line in lines[start : start + 10]:
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
    for line in lines[start : start + 8]:
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
        return lines[:i], lines[i + 1 :]
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
