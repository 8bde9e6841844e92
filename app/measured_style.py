"""Measured style: facts about how an email is written, computed on the machine with no model.

Used four ways: as the offline rules when no cloud consent is given; appended to LLM-distilled
rules otherwise (they are exact where a model guesses: word counts, the sign-off name); by the
evaluation's style-fidelity metrics; and by the rule check of every draft (app/rulecheck.py),
which is why it lives in the app and the training side imports it from here.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from app.rule_grammar import (
    LOWER_CASE_RULE,
    closing_rule,
    contractions_rule,
    greeting_rule,
    length_rule,
    phrases_rule,
    punctuation_rule,
    sentences_rule,
)

_WORD = re.compile(r"[^\W_](?:[^\W_]|['’.-])*")  # any script: "Prüfung" is one word, not "Pr" and "fung"
_CONTRACTION = re.compile(r"\b[A-Za-z]+['’](?:s|t|re|ve|ll|d|m)\b", re.I)
_GREETING_WORDS = r"hi|hello|hey|dear|good morning|good afternoon|good evening|greetings|howdy|morning|hiya|yo"
_GREETING = re.compile(
    rf"^(?P<word>{_GREETING_WORDS})\b[ ,]*(?P<name>[A-Za-z][\w.'’-]*(?: [A-Z][\w.'’-]*)?)?\s*[,:!.-]*\s*$", re.I
)
_NAME_ONLY_GREETING = re.compile(r"^(?P<name>[A-Z][a-zA-Z.'’-]{1,20}(?: [A-Z][a-zA-Z.'’-]{1,20})?)\s*(?:[,:]|\s-+)\s*$")
# The one lexicon of closing lines: measured here, checked by app/rulecheck.py (two lists that
# differed meant a "Best wishes," measured as no sign-off, or a "Later," the check did not know).
VALEDICTION = re.compile(
    r"^(?:(?:thanks(?: again| so much| a lot| in advance)?|thank you(?: very much| in advance)?|many thanks|thx|tx|"
    r"regards|best regards|kind regards|warm regards|warmest regards|best wishes|best|all the best|cheers|sincerely|"
    r"yours sincerely|sincerely yours|yours truly|respectfully|take care|talk soon|love|yours|rgds)\b[\w ]{0,20}"
    r"|later)[,.!]*$",  # "later" alone: "Later today we meet." is a sentence
    re.I,
)
_VALEDICTION = VALEDICTION
_NAME_LINE = re.compile(r"^[A-Za-z][A-Za-z.'’-]{0,20}(?: [A-Za-z][A-Za-z.'’-]{0,20}){0,2}\s*$")
_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+|\n\s*\n|\n(?=\s*[-*•])")


def words(text: str) -> list[str]:
    return _WORD.findall(text)


def phrase_tokens(text: str) -> str:
    """Lower-case words joined by single spaces, punctuation dropped: the space phrases live in."""
    return " ".join(re.findall(r"[a-z0-9]+(?:['’][a-z]+)?", text.lower()))


@dataclass
class StyleProfile:
    word_count: int
    paragraphs: int
    greeting: str | None  # the greeting line as written ("Hi Sylvia,"), None when there is none
    greeting_name: str | None
    signoff: str | None  # the valediction line ("Thanks,"), None when there is none
    signature_name: str | None  # the name the email is signed with ("Kay")
    contractions: list[str] = field(default_factory=list)
    sentences: int = 0
    avg_sentence_words: float = 0.0
    lowercase_start_ratio: float = 0.0
    exclamations: int = 0
    questions: int = 0
    ellipses: int = 0
    dashes: int = 0
    phrases: list[str] = field(default_factory=list)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().splitlines() if line.strip()]


def find_greeting(text: str) -> tuple[str | None, str | None]:
    lines = _lines(text)
    if not lines:
        return None, None
    first = lines[0]
    m = _GREETING.match(first)
    if m and len(first.split()) <= 5:
        return first, (m.group("name") or None)
    m = _NAME_ONLY_GREETING.match(first)
    if m and len(lines) > 1:
        return first, m.group("name")
    # "Hi Sylvia, the contract is ready." : greeting and content on one line
    m = re.match(rf"^((?:{_GREETING_WORDS})\b[ ,]*([A-Z][\w.'’-]*)?\s*[,:!-])\s+\S", first, re.I)
    if m:
        return m.group(1).strip(), m.group(2)
    return None, None


def find_signoff(text: str, signature: str = "") -> tuple[str | None, str | None]:
    """(valediction line, signing name) from the last lines of the email and its signature block."""
    lines = _lines(text)
    tail = lines[-3:] if lines else []
    signoff = name = None
    for i, line in enumerate(tail):
        if _VALEDICTION.match(line) and len(line.split()) <= 5:
            signoff = line
            rest = tail[i + 1 :]
            if rest and _NAME_LINE.match(rest[0]):
                name = rest[0]
    if name is None and tail and _NAME_LINE.match(tail[-1]) and len(lines) > 1:
        last = tail[-1]
        if not _VALEDICTION.match(last) and len(last.split()) <= 3 and len(last) <= 25:
            name = last
    if name is None and signature.strip():
        sig_lines = _lines(signature)
        if sig_lines and _NAME_LINE.match(sig_lines[0]) and len(sig_lines[0].split()) <= 3:
            name = sig_lines[0]
    return signoff, name


_ABBREVIATION = re.compile(
    r"\b(?:mr|mrs|ms|dr|ft|st|mt|jr|sr|inc|co|corp|ltd|no|vs|etc|e\.g|i\.e|approx|dept|est|[A-Z])\.$", re.I
)


def sentences(text: str) -> list[str]:
    pieces = [s.strip() for s in _SENTENCE_SPLIT.split(text) if s and s.strip()]
    merged: list[str] = []
    for piece in pieces:
        if merged and _ABBREVIATION.search(merged[-1]) and "\n" not in merged[-1][-3:]:
            merged[-1] += " " + piece  # "Ft. Worth", "e.g. this": not a sentence end
        else:
            merged.append(piece)
    return [s for s in merged if words(s)]


def measure(text: str, signature: str = "", sender_phrases: Iterable[str] = ()) -> StyleProfile:
    greeting, greeting_name = find_greeting(text)
    signoff, signature_name = find_signoff(text, signature)
    body_lines = _lines(text)
    if greeting and body_lines and body_lines[0] == greeting:
        body_lines = body_lines[1:]
    for marker in (signature_name, signoff):
        if marker and body_lines and body_lines[-1] == marker:
            body_lines = body_lines[:-1]
    body = "\n".join(body_lines)
    sents = sentences(body) if body else []
    starts = [s.lstrip("\"'(") for s in sents]
    lower = sum(1 for s in starts if s[:1].islower())
    return StyleProfile(
        word_count=len(words(text)),
        paragraphs=len([p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]),
        greeting=greeting,
        greeting_name=greeting_name,
        signoff=signoff,
        signature_name=signature_name,
        contractions=sorted({c.lower().replace("’", "'") for c in _CONTRACTION.findall(text)}),
        sentences=len(sents),
        avg_sentence_words=(sum(len(words(s)) for s in sents) / len(sents)) if sents else 0.0,
        lowercase_start_ratio=(lower / len(starts)) if starts else 0.0,
        exclamations=text.count("!"),
        questions=text.count("?"),
        ellipses=text.count("..."),
        dashes=len(re.findall(r"\s-{1,2}\s", text)),
        phrases=[p for p in sender_phrases if f" {p} " in f" {phrase_tokens(text)} "],
    )


def sender_phrases(texts: Iterable[str], *, min_share: float = 0.03, min_count: int = 3, limit: int = 40) -> list[str]:
    """Word 3-grams and 4-grams that recur across one sender's emails (in at least ``min_share`` of
    them): "let me know", "please call me". Longer phrases win over the shorter ones they contain."""
    docs = [phrase_tokens(t) for t in texts]
    counts: Counter[str] = Counter()
    for doc in docs:
        toks = doc.split()
        grams = {" ".join(toks[i : i + n]) for n in (3, 4) for i in range(len(toks) - n + 1)}
        counts.update(grams)
    threshold = max(min_count, int(min_share * len(docs)))
    frequent = [(g, c) for g, c in counts.items() if c >= threshold and not g.replace(" ", "").isdigit()]
    frequent.sort(key=lambda gc: (-gc[1], -len(gc[0])))
    chosen: list[str] = []
    for gram, _ in frequent:
        if any(gram in longer or longer in gram for longer in chosen):
            continue
        chosen.append(gram)
        if len(chosen) >= limit:
            break
    return chosen


def style_rules(real: StyleProfile, zero_shot: StyleProfile | None = None) -> list[str]:
    """The measured profile as rules a large model can follow (the wording: app/rule_grammar.py)."""
    rules = [
        length_rule(real.word_count, real.paragraphs, zero_shot.word_count if zero_shot else None),
        greeting_rule(real.greeting, real.greeting_name, generic_has_one=bool(zero_shot and zero_shot.greeting)),
        closing_rule(real.signoff, real.signature_name),
    ]
    if real.contractions or real.word_count >= 25:
        rules.append(contractions_rule(real.contractions))
    if real.sentences:
        rules.append(sentences_rule(real.avg_sentence_words))
    if real.sentences >= 2 and real.lowercase_start_ratio >= 0.6:
        rules.append(LOWER_CASE_RULE)
    if real.exclamations or real.ellipses or real.dashes or real.word_count >= 25:
        rules.append(punctuation_rule(real.exclamations, bool(real.ellipses), bool(real.dashes)))
    if real.phrases:
        rules.append(phrases_rule(real.phrases))
    return rules


VOICE_SAMPLE = 60  # the sender's newest emails a voice profile is measured on


def voice_profile(texts: list[str], recipient: str | None = None) -> StyleProfile | None:
    """One profile for a sender from their own emails (newest last): the median length and
    sentence length, and the greeting, sign-off, contractions and case most of them share. The
    rules until an agent is trained (never an untrained model's text). ``recipient`` fills the
    name in a greeting the sender usually writes with one ("Hi Sylvia,")."""
    profiles = [measure(t) for t in [t for t in texts if t.strip()][-VOICE_SAMPLE:]]
    if not profiles:
        return None
    n = len(profiles)

    def median(values):
        ordered = sorted(values)
        return ordered[len(ordered) // 2]

    greetings = Counter((p.greeting or "").split(" ")[0].rstrip(",") for p in profiles if p.greeting)
    greeting = None
    if greetings and sum(greetings.values()) >= n / 2:
        word = greetings.most_common(1)[0][0]
        name = (recipient or "").split("@")[0].split()[0].title() if recipient else ""
        greeting = f"{word} {name}," if name and word.lower() not in ("all", "team", "everyone") else f"{word},"
    closings = Counter((p.signoff, p.signature_name) for p in profiles)
    (signoff, signature), count = closings.most_common(1)[0]
    if count < n * 0.3:
        signoff, signature = None, None
    contractions = Counter(c for p in profiles for c in p.contractions)
    return StyleProfile(
        word_count=median([p.word_count for p in profiles]),
        paragraphs=median([p.paragraphs for p in profiles]),
        greeting=greeting,
        greeting_name=None,
        signoff=signoff,
        signature_name=signature,
        contractions=[c for c, k in contractions.most_common(4) if k >= n * 0.2],
        sentences=median([p.sentences for p in profiles]),
        avg_sentence_words=median([p.avg_sentence_words for p in profiles if p.sentences] or [0.0]),
        lowercase_start_ratio=median([p.lowercase_start_ratio for p in profiles]),
    )
