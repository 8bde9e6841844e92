"""The measured-style rule lines: how each is written and how it is read, in one module.

A measured profile (app/measured_style.py) becomes rule lines a large model can follow ("No greeting: start
directly with the content.", 'Sign-off: "Thanks," then "Kay" on its own line.'); the agent learns to
write the same lines; the rule check (app/rulecheck.py) reads them back to check and repair a draft;
the scoped rules learned from edits (app/learning/scoped.py) and the retrain's targets replace them
aspect by aspect. Before this module the writing lived in the measured style and the reading in twelve
regular expressions in rulecheck.py plus string slicing in scoped.py, so a changed wording would
have left drafts unchecked without a test noticing; tests/test_rulecheck.py now renders every
form from real mail and reads it back.

Two levels of reading:

- :func:`rule_aspect`: what a line is about, by how it starts ("Greeting: ..." -> "greeting"), for
  replacing one rule by another on the same aspect;
- :func:`parse_rule`: the whole form with its values (the greeting's text, the signing name, the
  word count), for checking; None for a free-form rule (a cloud model's R3 rules), which the check
  reports as not checkable rather than guessing at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Aspect = Literal["greeting", "signoff", "contractions", "case", "punctuation", "length", "sentences"]
RuleKind = Literal[
    "length",
    "greeting",
    "no_greeting",
    "signoff_and_name",
    "signoff_only",
    "name_only",
    "no_signoff",
    "contractions",
    "no_contractions",
    "lower_case",
    "punctuation",
    "plain_punctuation",
    "sentences",
]


@dataclass(frozen=True)
class MeasuredRule:
    """One measured-style rule line, read: its kind and the values it carries."""

    kind: RuleKind
    words: int | None = None  # length: about N words; sentences: about N words each
    paragraphs: int | None = None  # length: in N paragraphs
    text: str | None = None  # the greeting line, or the sign-off line ("Thanks,")
    name: str | None = None  # the signing name

    @property
    def aspect(self) -> Aspect:
        return KIND_ASPECT[self.kind]

    def closing(self) -> list[str]:
        """The lines a closing rule wants at the end of the email (sign-off, name), in order."""
        return [x for x in (self.text, self.name) if x] if self.aspect == "signoff" else []


KIND_ASPECT: dict[RuleKind, Aspect] = {
    "length": "length",
    "greeting": "greeting",
    "no_greeting": "greeting",
    "signoff_and_name": "signoff",
    "signoff_only": "signoff",
    "name_only": "signoff",
    "no_signoff": "signoff",
    "contractions": "contractions",
    "no_contractions": "contractions",
    "lower_case": "case",
    "punctuation": "punctuation",
    "plain_punctuation": "punctuation",
    "sentences": "sentences",
}


# -- writing ---------------------------------------------------------------------------------------


def about(n: int) -> int:
    """A word count as the rules say it: exact under 20, else to the nearest 5."""
    if n < 20:
        return n
    return int(round(n / 5.0) * 5)


def word_count(n: int) -> str:
    return f"{n} word" if n == 1 else f"{n} words"


def about_words(n: int) -> str:
    """A word count as the length rules say it: 7 -> "7 words", 43 -> "45 words"."""
    return word_count(about(n))


def length_rule(words: int, paragraphs: int | None = None, generic_words: int | None = None) -> str:
    """'Length: about 45 words in 2 paragraphs (much shorter than a generic draft of 120 words).'
    ``words`` is said as :func:`about` says it; ``generic_words`` (a zero-shot draft's) adds the
    comparison when the two differ by a third or more."""
    rule = f"Length: about {about_words(words)}"
    if paragraphs is not None:
        rule += f" in {paragraphs} paragraph{'s' if paragraphs != 1 else ''}"
    if generic_words:
        ratio = words / generic_words
        if ratio < 0.67:
            rule += f" (much shorter than a generic draft of {about(generic_words)} words)"
        elif ratio > 1.5:
            rule += f" (longer than a generic draft of {about(generic_words)} words)"
    return rule + "."


def greeting_rule(greeting: str | None, addressed_as: str | None = None, *, generic_has_one: bool = False) -> str:
    """'Greeting: "Hi Sylvia," (addresses the recipient as Sylvia).', or the no-greeting line."""
    if not greeting:
        return (
            "No greeting: start directly with the content"
            + (" (a generic draft would open with one)" if generic_has_one else "")
            + "."
        )
    return f'Greeting: "{greeting}"' + (f" (addresses the recipient as {addressed_as})" if addressed_as else "") + "."


def closing_rule(signoff: str | None, name: str | None) -> str:
    """The closing as one of four lines: sign-off and name, sign-off alone, name alone, neither."""
    if signoff and name:
        return f'Sign-off: "{signoff}" then "{name}" on its own line.'
    if signoff:
        return f'Sign-off: "{signoff}" with no name after it.'
    if name:
        return f'No closing phrase; sign with just "{name}".'
    return "No sign-off and no name at the end."


def contractions_rule(examples: list[str] | None) -> str:
    """'Uses contractions (I'm, don't).' for a sender who writes them; 'No contractions.' else."""
    if examples:
        return "Uses contractions (" + ", ".join(examples[:4]) + ")."
    return "No contractions."


def sentences_rule(average_words: float) -> str:
    size = "short" if average_words < 12 else "medium-length" if average_words < 22 else "long"
    return f"Sentences: {size}, about {word_count(round(average_words))} each."


LOWER_CASE_RULE = "Writes in lower case: sentences start without a capital letter."
PLAIN_PUNCTUATION_RULE = "Punctuation: plain, no exclamation marks."


def punctuation_rule(exclamations: int = 0, ellipses: bool = False, dashes: bool = False) -> str:
    """The marks a sender uses, or the plain-punctuation line when none."""
    marks = []
    if exclamations:
        marks.append(f"{exclamations} exclamation mark{'s' if exclamations > 1 else ''}")
    if ellipses:
        marks.append("ellipses (...)")
    if dashes:
        marks.append("dashes ( - ) between thoughts")
    return "Punctuation: " + ", ".join(marks) + "." if marks else PLAIN_PUNCTUATION_RULE


def phrases_rule(phrases: list[str]) -> str:
    """The sender's recurring phrases (a hint for the large model; nothing checks it)."""
    return "Uses this sender's recurring phrases: " + "; ".join(f'"{p}"' for p in phrases[:3]) + "."


# -- reading ---------------------------------------------------------------------------------------

# What a line is about, by how it starts.
ASPECT_PREFIXES: dict[Aspect, re.Pattern] = {
    "greeting": re.compile(r"^(?:greeting:|no greeting\b)", re.I),
    "signoff": re.compile(r"^(?:sign-?off:|no closing phrase|no sign-?off\b)", re.I),
    "contractions": re.compile(r"^(?:uses contractions|no contractions)\b", re.I),
    "case": re.compile(r"^writes in lower case\b", re.I),
    "punctuation": re.compile(r"^punctuation:", re.I),
    "length": re.compile(r"^length:", re.I),
    "sentences": re.compile(r"^sentences:", re.I),
}

# The whole forms, each with the values it carries (named groups), in the order they are tried.
_FORMS: list[tuple[RuleKind, re.Pattern]] = [
    (
        "length",
        re.compile(r"^length:\s*about\s+(?P<words>\d+)\s+words?\b(?:\s+in\s+(?P<paragraphs>\d+)\s+para)?", re.I),
    ),
    ("greeting", re.compile(r'^greeting:\s*"(?P<text>[^"]+)"', re.I)),
    ("no_greeting", re.compile(r"^no greeting\b", re.I)),
    ("signoff_and_name", re.compile(r'^sign-?off:\s*"(?P<text>[^"]+)"\s*then\s*"(?P<name>[^"]+)"', re.I)),
    ("signoff_only", re.compile(r'^sign-?off:\s*"(?P<text>[^"]+)"\s*with no name', re.I)),
    ("name_only", re.compile(r'^no closing phrase;\s*sign with just\s*"(?P<name>[^"]+)"', re.I)),
    ("no_signoff", re.compile(r"^no sign-?off and no name", re.I)),
    ("contractions", re.compile(r"^uses contractions\b", re.I)),
    ("no_contractions", re.compile(r"^no contractions\b", re.I)),
    ("lower_case", re.compile(r"^writes in lower case\b", re.I)),
    ("plain_punctuation", re.compile(r"^punctuation:\s*plain, no exclamation", re.I)),
    ("punctuation", re.compile(r"^punctuation:", re.I)),
    ("sentences", re.compile(r"^sentences:\s*\w[\w-]*,\s*about\s+(?P<words>\d+)\s+words?\b", re.I)),
]

_BULLET = re.compile(r"^\s*[-*•]\s*")


def unbulleted(rule: str) -> str:
    """A rule line without its list bullet ("- Keep it short." -> "Keep it short.")."""
    return _BULLET.sub("", rule).strip()


def rule_aspect(rule: str) -> Aspect | None:
    """The aspect of a measured-style rule line ("- No greeting: ..." -> "greeting"), None for a
    free-form rule."""
    text = unbulleted(rule)
    for aspect, pattern in ASPECT_PREFIXES.items():
        if pattern.match(text):
            return aspect
    return None


def parse_rule(rule: str) -> MeasuredRule | None:
    """The measured-style form of ``rule`` with its values, or None when it is free-form."""
    text = unbulleted(rule)
    for kind, pattern in _FORMS:
        m = pattern.match(text)
        if m is None:
            continue
        values = m.groupdict()
        return MeasuredRule(
            kind,
            words=int(values["words"]) if values.get("words") else None,
            paragraphs=int(values["paragraphs"]) if values.get("paragraphs") else None,
            text=values.get("text"),
            name=values.get("name"),
        )
    return None


def signing_name(rules: list[str]) -> str | None:
    """The name the rules sign with (a closing rule's name), if any."""
    for rule in rules:
        parsed = parse_rule(rule)
        if parsed is not None and parsed.name:
            return parsed.name
    return None


# -- reading the agent's rules for sense -----------------------------------------------------------

MIN_EMAIL_WORDS = 5  # "Thanks, Kay" is an email; an intent needs more words than that
MIN_SENTENCE_WORDS = 3  # no one's sentences average fewer ("Thanks." is one of many)


def implausible(rule: str, intent: str) -> str | None:
    """Why a measured-form rule the agent wrote cannot be meant for ``intent``, or None.

    A briefly trained agent sometimes writes "Length: about 1 word." or "Sentences: short, about 1
    word each." (seen on the demo's 50-step run); the large model then writes a two-line email and
    the check says it broke the rule. The floor is half the intent's words: an email says at least
    what the intent asks, in fewer words only so far."""
    parsed = parse_rule(rule)
    if parsed is None or parsed.words is None:
        return None
    if parsed.kind == "length":
        intent_words = len(intent.split())
        if parsed.words < max(MIN_EMAIL_WORDS, intent_words // 2):
            return f"an email of about {word_count(parsed.words)} cannot say an intent of {word_count(intent_words)}"
    elif parsed.kind == "sentences" and parsed.words < MIN_SENTENCE_WORDS:
        return f"sentences of about {word_count(parsed.words)} each are not a way anyone writes"
    return None
