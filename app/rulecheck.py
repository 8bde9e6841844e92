"""Does a draft keep its rules? Check every checkable rule, repair what is safe to repair, say so.

A small drafting model (and sometimes a large one) writes "Dear Sylvia," under a "No greeting"
rule and ends with "Best regards, [Your Name]". Each rule the agent gave is read into a check:

- length (about N words), greeting or none, sign-off text and signing name, contractions or none,
  the lower-case habit, exclamation marks, sentence length;
- and, whatever the rules, no "[Your Name]"-style placeholder, no "Here is the email" preamble and
  no "Subject:" line in the body, nor a last line remarking that the draft meets "the specified" rules.

A broken rule is repaired deterministically where that cannot change what the email says (drop or
replace the greeting and sign-off lines, put the signing name where a placeholder was, lower-case
sentence starts, expand or contract contractions, "!" -> "."); otherwise (length, sentence length)
it is left for one re-ask that names the broken rules (:func:`reask_request`). Nothing is repaired
silently: every rule ends as kept, repaired, broken or not checkable, with a note, and the
original draft stays available.

The rule wording is the measured-rules wording (written and read in app/rule_grammar.py), which is also what the agent learns
to write; free-form rules (from a cloud model's R3 distillation) that match no pattern are
reported as not checkable rather than guessed at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from app.language import MIN_CONFIDENCE, guess, rule_language
from app.measured_style import VALEDICTION as _VALEDICTION
from app.measured_style import find_greeting, find_signoff, measure, sentences, words
from app.rule_grammar import MeasuredRule, parse_rule, signing_name, unbulleted

CheckStatus = Literal["kept", "repaired", "broken", "not checkable"]
KEPT: CheckStatus = "kept"
REPAIRED: CheckStatus = "repaired"
BROKEN: CheckStatus = "broken"
UNCHECKED: CheckStatus = "not checkable"

_PLACEHOLDER = re.compile(
    r"\[(?:your|my|sender'?s?|recipient'?s?)?\s*(?:full\s+)?(?:name|title|position|company|"
    r"contact information|phone(?: number)?|email)\]|<your name>",
    re.I,
)
_PREAMBLE = re.compile(
    r"^(?:sure[!,.]?\s*)?(?:here(?:'s| is) (?:a |the |an |your )?(?:draft|email|reply|response|"
    r"message|version)[^\n]*|certainly[!,.][^\n]*)$",
    re.I,
)
# A closing remark on how the draft follows its instructions, which a small instruct model adds after
# the email: "This meets the specified length (10 words), no greeting, ..." (the demo's local model,
# 2026-12-06). Only a last line that speaks of the specifications, instructions or rules themselves:
# "This meets the deadline Sylvia asked for." and "The draft follows the requirements of the lender."
# are an email's.
_RULES_REMARK = re.compile(
    r"^(?:this|the above|the (?:email|draft|response|message|reply))(?: (?:email|draft|response|message|reply))?"
    r" (?:meets|follows|adheres to|satisfies|complies with|keeps to|respects|fulfil?ls)\b.*"
    r"\b(?:the specified|(?:your|the) specifications|the (?:given|provided)|(?:your|the) instructions|the rules|"
    r"the guidelines)\b.*$",
    re.I,
)
_SUBJECT_LINE = re.compile(r"^\s*subject\s*:.*$", re.I)
_NAME_LINE = re.compile(r"^[A-Z][A-Za-z.'’-]{0,20}(?: [A-Z][A-Za-z.'’-]{0,20}){0,2}\s*$")
_CONTRACTION = re.compile(r"\b[A-Za-z]+['’](?:s|t|re|ve|ll|d|m)\b", re.I)
_EXPAND = [
    (r"\bcan['’]t\b", "cannot"),
    (r"\bwon['’]t\b", "will not"),
    (r"\bshan['’]t\b", "shall not"),
    (r"\b(\w+)n['’]t\b", r"\1 not"),
    (r"\bI['’]m\b", "I am"),
    (r"\b(\w+)['’]re\b", r"\1 are"),
    (r"\b(\w+)['’]ve\b", r"\1 have"),
    (r"\b(\w+)['’]ll\b", r"\1 will"),
    (r"(?i)\b(it|that|there|here|what|who)['’]s\b", r"\1 is"),
    (r"\b(I|you|we|they|he|she)['’]d\b", r"\1 would"),
]
_CONTRACT = [
    (r"\bI am\b", "I'm"),
    (r"\bdo not\b", "don't"),
    (r"\bdoes not\b", "doesn't"),
    (r"\bdid not\b", "didn't"),
    (r"\bcannot\b", "can't"),
    (r"\bwill not\b", "won't"),
    (r"\bis not\b", "isn't"),
    (r"\bare not\b", "aren't"),
    (r"\b(I|you|we|they) will\b", r"\1'll"),
    (r"(?i)\b(it|that|there) is\b", r"\1's"),
    (r"\blet us\b", "let's"),
    (r"\b(I|you|we|they) have\b(?= (?:been|had|got|done|sent|seen|made))", r"\1've"),
]


@dataclass
class RuleCheck:
    rule: str
    status: CheckStatus
    note: str = ""


@dataclass
class CheckedDraft:
    original: str
    text: str  # after deterministic repairs
    checks: list[RuleCheck] = field(default_factory=list)
    reasked: bool = False

    @property
    def broken(self) -> list[RuleCheck]:
        return [c for c in self.checks if c.status == BROKEN]

    @property
    def checkable(self) -> list[RuleCheck]:
        return [c for c in self.checks if c.status != UNCHECKED]

    def kept_share(self) -> float:
        checkable = self.checkable
        return sum(c.status != BROKEN for c in checkable) / len(checkable) if checkable else 1.0


# -- the text's parts --------------------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    return text.strip("\n").split("\n")


def _strip_blank_edges(lines: list[str]) -> list[str]:
    while lines and not lines[0].strip():
        lines = lines[1:]
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def _tail_block(lines: list[str], known_name: str | None = None) -> int:
    """Index where the closing block starts: the valediction, placeholder and name lines at the end
    (walking back, a bare name counts only below any valediction: "Thanks," / "Kay")."""
    i = len(lines)
    seen_valediction = False
    while i > 0:
        line = lines[i - 1].strip()
        if not line:
            i -= 1
        elif _VALEDICTION.match(line) and len(line.split()) <= 5:
            seen_valediction = True
            i -= 1
        elif _PLACEHOLDER.fullmatch(line) or (
            not seen_valediction
            and i > 1
            and (line == known_name or (_NAME_LINE.match(line) and len(line.split()) <= 3))
        ):
            i -= 1
        else:
            break
    return i


def _body_words(text: str) -> int:
    return len(words(text))


# -- rules read into checks --------------------------------------------------------------------------


def length_bounds(n: int) -> tuple[int, int]:
    """Words a draft may have for "about n words": generous for short emails, where a greeting
    or one more clause is a large share."""
    return max(1, round(n * 0.5) - 2), round(n * 1.5) + 2


def check_draft(
    draft: str, rules: list[str], *, recipient: str | None = None, sender_name: str | None = None
) -> CheckedDraft:
    """Check ``draft`` against ``rules`` and repair what is safe; see the module docstring."""
    result = CheckedDraft(original=draft, text=draft)
    name = signing_name(rules) or sender_name
    _universal(result, name)
    # repairs first, measurements (length, sentence length) on the repaired text; report in rule order
    ordered = [unbulleted(r) for r in rules if unbulleted(r)]
    forms = {r: parse_rule(r) for r in ordered}
    measured = [r for r in ordered if (f := forms[r]) is not None and f.kind in ("length", "sentences")]
    found = {}
    for rule in [r for r in ordered if r not in measured] + measured:
        found[rule] = _check_one(result, rule, forms[rule])
    result.checks.extend(found[r] for r in dict.fromkeys(ordered))
    # spaces at a line's end are invisible in the draft and odd in a plain-text email (a Markdown
    # line break: the embedded model wrote "Thanks,  " above "Kay")
    lines = [line.rstrip() for line in _lines(result.text)]
    result.text = "\n".join(_strip_blank_edges(lines)).strip() + "\n"
    return result


def _universal(result: CheckedDraft, name: str | None) -> None:
    """What no email should hold, whatever its rules: a preamble, a Subject line, placeholders."""
    lines = _strip_blank_edges(_lines(result.text))
    notes = []
    while lines and (_PREAMBLE.match(lines[0].strip()) or _SUBJECT_LINE.match(lines[0])):
        notes.append(f"removed {lines[0].strip()[:40]!r}")
        lines = _strip_blank_edges(lines[1:])
    while lines and _RULES_REMARK.match(lines[-1].strip()):
        notes.append(f"removed {lines[-1].strip()[:40]!r}")
        lines = _strip_blank_edges(lines[:-1])
    fixed = []
    for line in lines:
        if _PLACEHOLDER.search(line):
            replaced = _PLACEHOLDER.sub(name, line) if name and _PLACEHOLDER.fullmatch(line.strip()) else None
            if replaced is not None:
                fixed.append(replaced)
                notes.append(f"placeholder {line.strip()!r} -> {name!r}")
            elif _PLACEHOLDER.fullmatch(line.strip()):
                notes.append(f"removed placeholder {line.strip()!r}")
            else:
                stripped = _PLACEHOLDER.sub("", line).rstrip(" ,")
                fixed.append(stripped)
                notes.append(f"removed placeholder from {line.strip()[:40]!r}")
            continue
        fixed.append(line)
    result.text = "\n".join(fixed)
    status = REPAIRED if notes else KEPT
    result.checks.append(RuleCheck("No placeholders, preamble or Subject line in the email", status, "; ".join(notes)))


def _check_one(result: CheckedDraft, rule: str, form: MeasuredRule | None) -> RuleCheck:
    text = result.text
    kind = form.kind if form is not None else None
    if form is not None and kind == "length":
        n = form.words or 0
        low, high = length_bounds(n)
        have = _body_words(text)
        ok = low <= have <= high
        return RuleCheck(rule, KEPT if ok else BROKEN, f"{have} words (about {n} asked: {low}-{high} accepted)")
    if form is not None and kind == "greeting":
        wanted = (form.text or "").strip()
        greeting, _ = find_greeting(text)
        if greeting and greeting.rstrip(",:!. ").lower() == wanted.rstrip(",:!. ").lower():
            return RuleCheck(rule, KEPT)
        lines = _strip_blank_edges(_lines(text))
        if greeting and lines and lines[0].strip().startswith(greeting):
            rest = lines[0].strip()[len(greeting) :].strip()
            lines = ([wanted, ""] + ([rest] if rest else []) + lines[1:]) if rest else [wanted] + lines[1:]
        else:
            lines = [wanted, ""] + lines
        result.text = "\n".join(lines)
        return RuleCheck(rule, REPAIRED, f"greeting {greeting!r} -> {wanted!r}" if greeting else f"added {wanted!r}")
    if kind == "no_greeting":
        greeting, _ = find_greeting(text)
        if not greeting:
            return RuleCheck(rule, KEPT)
        lines = _strip_blank_edges(_lines(text))
        first = lines[0].strip()
        rest = first[len(greeting) :].strip() if first.startswith(greeting) else ""
        lines = _strip_blank_edges(([rest[:1].upper() + rest[1:]] if rest else []) + lines[1:])
        result.text = "\n".join(lines)
        return RuleCheck(rule, REPAIRED, f"removed the greeting {greeting!r}")
    if form is not None and form.aspect == "signoff":
        return _closing(result, rule, form.closing())
    if kind == "contractions":
        if _CONTRACTION.search(text) or _body_words(text) < 25:
            return RuleCheck(rule, KEPT)
        new = _apply(text, _CONTRACT)
        if _CONTRACTION.search(new):
            result.text = new
            return RuleCheck(rule, REPAIRED, "contracted (I am -> I'm, do not -> don't, ...)")
        return RuleCheck(rule, BROKEN, "no contraction, and no phrase that can be contracted safely")
    if kind == "no_contractions":
        if not _CONTRACTION.search(text):
            return RuleCheck(rule, KEPT)
        result.text = _apply(text, _EXPAND)
        left = _CONTRACTION.findall(result.text)
        # possessives ("Kay's") look like contractions and are not repaired
        left = [c for c in left if not c.lower().endswith(("'s", "’s"))]
        return RuleCheck(
            rule, REPAIRED if not left else BROKEN, "expanded contractions" + (f"; left: {left}" if left else "")
        )
    if kind == "lower_case":
        if measure(text).lowercase_start_ratio >= 0.6:  # the threshold the rule was measured with
            return RuleCheck(rule, KEPT)
        # only the body: a greeting's or signature's name keeps its capital
        lines = _lines(text)
        first = 1 if find_greeting(text)[0] and lines and lines[0].strip() == find_greeting(text)[0] else 0
        body_start = sum(len(ln) + 1 for ln in lines[:first])
        body_end = sum(len(ln) + 1 for ln in lines[: _tail_block(lines)])
        starts = [s for s in _sentence_starts(text) if body_start <= s < body_end]
        upper = [s for s in starts if text[s].isupper() and not _keeps_capital(text, s)]
        if not upper:
            return RuleCheck(rule, KEPT)
        chars = list(text)
        for s in upper:
            chars[s] = chars[s].lower()
        result.text = "".join(chars)
        return RuleCheck(rule, REPAIRED, f"lower-cased {len(upper)} sentence start(s)")
    if kind == "plain_punctuation":
        if "!" not in text:
            return RuleCheck(rule, KEPT)
        result.text = text.replace("!", ".")
        return RuleCheck(rule, REPAIRED, "'!' -> '.'")
    if (code := rule_language(rule)) is not None:
        return _language(text, rule, code)
    if form is not None and kind == "sentences":
        n = form.words or 0
        profile = measure(text)  # sentences of the body, without greeting and closing, as measured
        if not profile.sentences:
            return RuleCheck(rule, KEPT)
        avg = profile.avg_sentence_words
        low, high = max(0.0, n * 0.5 - 3), n * 1.8 + 4
        ok = low <= avg <= high
        # the band is said, as for length: "kept" beside 17 words a sentence for "about 8" read as a wrong verdict
        detail = f"about {avg:.0f} words per sentence (about {n} asked: {low:.0f}-{high:.0f} accepted)"
        return RuleCheck(rule, KEPT if ok else BROKEN, detail)
    return RuleCheck(rule, UNCHECKED)


def _language(text: str, rule: str, wanted: str) -> RuleCheck:
    """A draft in another language than the thread's is broken (never repaired: only the model can
    write it again); one too short to tell is not checkable rather than guessed at."""
    found = guess(text)
    if found is None:
        return RuleCheck(rule, UNCHECKED, "too little text to tell its language")
    if found.code == wanted:
        return RuleCheck(rule, KEPT)
    if found.confidence >= MIN_CONFIDENCE:
        return RuleCheck(rule, BROKEN, f"the draft is in {found.name}")
    return RuleCheck(rule, UNCHECKED, f"cannot tell its language for sure ({found.name}?)")


_INLINE_CLOSING = re.compile(
    r"(?<=[.!?])\s+((?:thanks(?: again| so much| a lot| in advance)?|thank you|many thanks|regards|best regards|"
    r"kind regards|best|cheers|sincerely|take care|talk soon)[,.!]?(?:\s+[A-Z][A-Za-z.'’-]{0,20})?)\s*$",
    re.I,
)


def _split_inline_closing(lines: list[str]) -> list[str]:
    """ "... by Friday. Thanks, Kay" -> the sentence, then "Thanks," and "Kay" on lines of their own."""
    if not lines:
        return lines
    m = _INLINE_CLOSING.search(lines[-1])
    if not m and len(lines) >= 2 and _NAME_LINE.match(lines[-1].strip()) and len(lines[-1].split()) <= 2:
        # "... by Friday. Thanks," then "Kay": the valediction ends the text's last sentence line
        m2 = _INLINE_CLOSING.search(lines[-2])
        if m2 and _VALEDICTION.match(m2.group(1)):
            return lines[:-2] + [lines[-2][: m2.start()].rstrip(), "", m2.group(1).strip(), lines[-1].strip()]
    if not m:
        return lines
    closing = m.group(1).split()
    head = lines[-1][: m.start()].rstrip()
    split = (
        [" ".join(closing[:-1]), closing[-1]]
        if len(closing) > 1 and closing[-1][:1].isupper() and _VALEDICTION.match(" ".join(closing[:-1]))
        else [" ".join(closing)]
    )
    return lines[:-1] + [head, ""] + split


def _same_closing(have: list[str], wanted: list[str]) -> bool:
    return [h.rstrip(",.! ").lower() for h in have] == [w.rstrip(",.! ").lower() for w in wanted]


def _closing(result: CheckedDraft, rule: str, wanted: list[str]) -> RuleCheck:
    # detected as the rules were measured (app.measured_style), so a draft measured to comply is left alone;
    # an inline "Thanks." ending a sentence is part of the text, as it is for the sender
    signoff, name = find_signoff(result.text)
    if _same_closing([x for x in (signoff, name) if x], wanted):
        return RuleCheck(rule, KEPT)
    lines = _strip_blank_edges(_lines(result.text))
    if wanted:  # "... by Friday. Thanks, Kay" where the rule wants "Thanks," / "Kay" on lines of their own
        lines = _split_inline_closing(lines)
    start = _tail_block(lines, name)
    have = [ln.strip() for ln in lines[start:] if ln.strip()]
    if _same_closing(have, wanted):
        result.text = "\n".join(lines)
        return RuleCheck(rule, REPAIRED, "put the closing on lines of its own")
    body = _strip_blank_edges(lines[:start])
    if not body:  # the whole text looked like a closing: leave it
        return RuleCheck(rule, BROKEN, "the draft is only a closing")
    result.text = "\n".join(body + ([""] + wanted if wanted else []))
    before = " / ".join(have) if have else "none"
    after = " / ".join(wanted) if wanted else "none"
    return RuleCheck(rule, REPAIRED, f"closing {before!r} -> {after!r}")


def _apply(text: str, pairs) -> str:
    for pattern, repl in pairs:
        text = re.sub(pattern, repl, text)
    return text


def _sentence_starts(text: str) -> list[int]:
    starts = []
    for m in re.finditer(r"(?:^|[.!?]\s+|\n\s*)([A-Za-z])", text):
        starts.append(m.start(1))
    return sorted(set(starts))


def _keeps_capital(text: str, i: int) -> bool:
    word = re.match(r"[A-Za-z'’]+", text[i:])
    return bool(word) and (word.group(0) in ("I", "I'm", "I'll", "I've", "I'd", "OK") or word.group(0).isupper())


def reask_request(broken: list[RuleCheck], draft: str = "") -> str:
    """The follow-up turn that asks the model to fix what could not be repaired safely. A small
    model ignores "about N words" but follows a plain budget, so length is said as numbers."""
    lines, budget = [], None
    for c in broken:
        form = parse_rule(c.rule)
        if form is not None and form.kind == "length" and form.words is not None:
            low, high = length_bounds(form.words)
            have = _body_words(draft) if draft else None
            budget = (low, high, have)
            lines.append(
                f"- Length: between {low} and {high} words in total" + (f" (yours has {have})" if have else "")
            )
        else:
            lines.append(f"- {c.rule} (now: {c.note})" if c.note else f"- {c.rule}")
    ask = "Your email breaks these rules:\n" + "\n".join(lines) + "\n"
    if budget and budget[2] is not None and budget[2] > budget[1]:
        ask += (
            f"Write it again in at most {budget[1]} words: keep only what the request asks for, drop pleasantries, "
            "explanations and repetition. "
        )
    elif budget and budget[2] is not None and budget[2] < budget[0]:
        ask += f"Write it again in at least {budget[0]} words, saying the same things more fully. "
    else:
        ask += "Rewrite the email so that it keeps every rule. "
    return ask + "Keep what it says and every other rule. Answer with the email only."


_STOP = set(
    """a an the and or but if then so to of in on at by for with from as is are was were be been being it its this
that these those i me my we us our you your he she they them their his her not no do does did have has had will would
can could should shall may might must just also please thanks thank hi hello dear regards best let know about up out
get got go going want need all any some more very there here what when where which who how am let's i'm i'll""".split()
)


def content_words(text: str) -> set[str]:
    """The words that carry content (no stop words, no 1-2 letter words), lower-cased."""
    found = (w.lower().strip("'’.") for w in words(text))
    return {w for w in found if w not in _STOP and len(w) > 2}


def unsupported_sentences(draft: str, *sources: str | None) -> list[str]:
    """Sentences whose content words appear nowhere in the intent and details: possibly invented.
    A hint for the user (shown, never repaired): a small model likes to add pleasantries and facts."""
    known = set()
    for source in sources:
        if source:
            known.update(w.lower().strip("'’.") for w in words(source))
    flagged = []
    for sentence in sentences(draft):
        content = content_words(sentence)
        if len(content) >= 3 and not any(w in known or w.rstrip("s") in known for w in content):
            flagged.append(sentence.strip())
    return flagged
