"""The content guard: a rewrite may change how an email sounds, never what it says.

A voice rewrite (issue 2/5) turns the large model's draft into the user's voice on this computer.
A small model that rewrites can also drop a number or invent a date, and a draft that says the
wrong time is worse than one that sounds generic. So the facts of the draft (names, numbers and
amounts, dates and times, URLs and addresses) and the intent's content words that made it into
the draft must all be in the rewrite, and the rewrite must bring no fact that is in neither the
draft nor the intent. Otherwise the rewrite is discarded and the draft kept, with the reason.

What is *not* content: the greeting and sign-off lines (how someone opens and closes is voice:
"Hi Sylvia," becoming no greeting at all is the point of the rewrite), and names the caller
allows (the user's own name in a sign-off, the recipient's). The same extraction measures an
evaluation's content fidelity: the share of the intent's facts a draft kept, and what it invented.
Plain Python, no model: it runs on every draft, in microseconds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_URL = re.compile(r"\b(?:https?://|www\.)\S+|\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b", re.I)
_NUMBER = re.compile(r"(?<![\w.])[$€£]?\d[\d,]*(?:\.\d+)?(?::\d\d)?%?(?![\w])")
_WORD = re.compile(r"[^\W\d_](?:[^\W\d_]|['’-])*")  # letters of any script: "Prüfung", "José"
_MONTHS = {
    m[:3]: m for m in ("january february march april may june july august september october november december".split())
}
_WEEKDAYS = {d[:3]: d for d in "monday tuesday wednesday thursday friday saturday sunday".split()}
_RELATIVE_DAYS = {"today", "tomorrow", "yesterday", "tonight", "noon", "midnight"}
_NUMBER_WORDS = {
    w: str(i) for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve".split())
}
# Words that start sentences with a capital without being names, and greeting/closing words; the
# contractions, sentence adverbs and interjections are how someone sounds ("Geez, we've ..."), not
# facts: as names they refused 3 of Kay Mann's 28 voice pairs in the demo (2026-12-06).
_COMMON = set(
    """a about above after again all also am an and any are as at back be because been before being below
    best both but by can could dear did do does doing done down during each few for from further get got
    had has have having he hello her here hers hey hi him his how i if in into is it its just kind let
    like many may me more most my no nor not now of off on once only or other our ours out over own
    please regards same she should sincerely so some such than thank thanks that the their theirs them
    then there these they this those through to too under until up very was we were what when where
    which while who whom why will with would yes yet you your yours cheers ok okay sorry sure great good
    fine attached enclosed fyi re fw fwd note also however anyway sounds looks happy glad hope just
    let's i'm i'll i've i'd we're we'll you're it's that's there's here's don't can't won't
    warm warmest talk speak see meet call send review confirm pm
    we've they're they've they'll you've you'll you'd he's she's isn't aren't wasn't weren't doesn't
    didn't haven't hasn't hadn't wouldn't couldn't shouldn't what's who's where's
    additionally actually apparently basically besides finally first fortunately unfortunately
    hopefully maybe perhaps probably otherwise meanwhile instead although though unless whether since
    everything anything something nothing everyone anyone someone nobody
    geez gee wow oh ah ugh oops yeah yep nope hmm haha lol well alas whew phew""".split()
)
_GREETING = re.compile(r"^\s*(hi|hello|hey|dear|good (morning|afternoon|evening)|greetings)\b", re.I)
_CLOSING = re.compile(
    r"^\s*(best|regards|kind regards|best regards|warm regards|cheers|thanks|thank you|many thanks|sincerely|"
    r"yours|talk soon|take care|all the best|thx|ttyl|gracias|merci|danke|ciao|later)\b[\s,!.]*",
    re.I,
)


@dataclass(frozen=True)
class Facts:
    numbers: frozenset[str]
    dates: frozenset[str]
    names: frozenset[str]  # lower-case
    links: frozenset[str]  # URLs and email addresses, lower-case

    def all(self) -> frozenset[str]:
        return self.numbers | self.dates | self.names | self.links


def _norm_word(word: str) -> str:
    """Lower case, straight apostrophes, no possessive: "Paula's" and "paula" are one name."""
    word = word.lower().replace("’", "'").strip("'-")
    return word[:-2] if word.endswith("'s") else word


def _is_date_word(low: str) -> bool:
    return (low[:3] in _MONTHS and low not in ("may", "mar")) or low[:3] in _WEEKDAYS or low in _RELATIVE_DAYS


def _norm_number(token: str) -> str:
    token = token.lstrip("$€£").rstrip("%").replace(",", "")
    if re.fullmatch(r"\d+\.0+", token):
        token = token.split(".")[0]
    return token


def body_lines(text: str) -> list[str]:
    """The lines that carry content: without a greeting line and the closing block (a closing
    word and the short lines after it: the sign-off and the name)."""
    lines = text.strip().splitlines()
    while lines and not lines[0].strip():
        lines.pop(0)
    if lines and _GREETING.match(lines[0]) and len(lines[0].split()) <= 4:
        lines = lines[1:]
    for index in range(len(lines) - 1, max(-1, len(lines) - 5), -1):
        line = lines[index].strip()
        if _CLOSING.fullmatch(line) or (_CLOSING.match(line) and len(line.split()) <= 3):
            if all(len(rest.split()) <= 3 for rest in lines[index + 1 :]):
                return lines[:index]
    return lines


def facts(text: str, *, content_only: bool = True) -> Facts:
    """The facts of ``text``: of its content lines (``content_only``) or of all of it."""
    body = "\n".join(body_lines(text)) if content_only else text
    links = {m.group(0).rstrip(".,;:)").lower() for m in _URL.finditer(body)}
    rest = _URL.sub(" ", body)
    numbers = {_norm_number(m.group(0)) for m in _NUMBER.finditer(rest)}
    dates: set[str] = set()
    names: set[str] = set()
    sentence_start = True
    for match in _WORD.finditer(rest):
        word = match.group(0).strip("'’-")
        low = _norm_word(word)
        before = rest[max(0, match.start() - 2) : match.start()]
        if re.search(r"[.!?:\n]\s*$", before) or match.start() == 0:
            sentence_start = True
        if low[:3] in _MONTHS and (low in _MONTHS.values() or len(low) == 3 or low == "sept"):
            if low != "may" or word == "May":
                dates.add(_MONTHS[low[:3]])
        elif low[:3] in _WEEKDAYS and (low in _WEEKDAYS.values() or len(low) in (3, 4)):
            dates.add(_WEEKDAYS[low[:3]])
        elif low in _RELATIVE_DAYS:
            dates.add(low)
        elif low in _NUMBER_WORDS:
            numbers.add(_NUMBER_WORDS[low])
        elif word[:1].isupper() and low not in _COMMON and len(word) > 1:
            # a capitalized word inside a sentence is a name; at a sentence's start only when it
            # is not a common word (checked above) and looks like one (not all capitals)
            if not sentence_start or not word.isupper():
                names.add(low)
        sentence_start = False
    return Facts(frozenset(numbers), frozenset(dates), frozenset(names), frozenset(links))


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s", "ly"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 4:
            return word[: -len(suffix)]
    return word


def content_words(text: str) -> frozenset[str]:
    """Stems of the words of four letters or more that are not common words."""
    # dates and number words are compared as facts (normalized: "Fri" is "friday"), not as words
    words = (_norm_word(w) for w in _WORD.findall(text))
    return frozenset(
        _stem(w) for w in words if len(w) >= 4 and w not in _COMMON and w not in _NUMBER_WORDS and not _is_date_word(w)
    )


@dataclass(frozen=True)
class GuardVerdict:
    kept: bool
    dropped: tuple[str, ...]  # what the draft said that the rewrite lost
    invented: tuple[str, ...]  # what the rewrite says that neither the draft nor the intent said

    @property
    def reason(self) -> str:
        if self.kept:
            return "the rewrite keeps every fact of the draft"
        parts = []
        if self.dropped:
            parts.append("dropped " + ", ".join(self.dropped[:5]))
        if self.invented:
            parts.append("added " + ", ".join(self.invented[:5]))
        return "the rewrite " + " and ".join(parts) + ": the draft is kept"


def check_rewrite(draft: str, rewrite: str, intent: str = "", allowed: tuple[str, ...] = ()) -> GuardVerdict:
    """Whether ``rewrite`` says what ``draft`` says. ``allowed``: names the rewrite may add or
    drop (the user's own name, the recipient's)."""
    allow = {_norm_word(a) for name in allowed for a in _WORD.findall(name)}
    before, after = facts(draft), facts(rewrite)
    everything_after = facts(rewrite, content_only=False).all() | _words_lower(rewrite)
    dropped = sorted(f for f in before.all() - allow if f not in everything_after)
    intent_words = content_words(intent)
    draft_words = content_words("\n".join(body_lines(draft)))
    rewrite_words = content_words(rewrite)
    dropped += sorted(w for w in (intent_words & draft_words) - rewrite_words if w not in allow)
    known = facts(draft, content_only=False).all() | facts(intent, content_only=False).all() | allow
    known |= _words_lower(draft) | _words_lower(intent)
    invented = sorted(f for f in after.all() if f not in known)
    return GuardVerdict(not dropped and not invented, tuple(dropped), tuple(invented))


def _words_lower(text: str) -> set[str]:
    return {_norm_word(w) for w in _WORD.findall(text)}


@dataclass(frozen=True)
class Fidelity:
    """How much of the intent a draft carries (evaluation): the share of the intent's facts and
    content words in the draft, and the facts the draft has that the intent does not."""

    share: float
    missing: tuple[str, ...]
    invented: tuple[str, ...]


def content_fidelity(intent: str, draft: str, allowed: tuple[str, ...] = ()) -> Fidelity:
    allow = {_norm_word(a) for name in allowed for a in _WORD.findall(name)}
    wanted = (facts(intent, content_only=False).all() | content_words(intent)) - allow
    have = facts(draft, content_only=False).all() | content_words(draft) | _words_lower(draft)
    missing = sorted(w for w in wanted if w not in have)
    known = facts(intent, content_only=False).all() | _words_lower(intent) | allow
    invented = sorted(f for f in facts(draft).all() if f not in known)
    share = 1.0 if not wanted else 1 - len(missing) / len(wanted)
    return Fidelity(share, tuple(missing), tuple(invented))


def names_in(*addresses: str | None) -> tuple[str, ...]:
    """Name-like pieces of addresses ("Kay Mann <kay.mann@enron.com>" -> kay, mann): a rewrite may
    add or drop them (a greeting, a signature) without changing what the email says."""
    out = []
    for address in addresses:
        for part in re.split(r"[,;]", address or ""):
            local = part.split("@")[0] if "@" in part else part
            out += [w for w in re.split(r"[^A-Za-z]+", local.split("<")[-1]) if len(w) > 1]
            if "<" in part:
                out += [w for w in re.split(r"[^A-Za-z]+", part.split("<")[0]) if len(w) > 1]
    return tuple(dict.fromkeys(out))
