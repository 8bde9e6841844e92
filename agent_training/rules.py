"""Preference rules, the agent's training targets.

Three strategies from the paper, all through the large model, plus measured rules computed here:
  R1  rules from the real email alone
  R2  R1 with a <thinking> scratchpad before the rules
  R3  rules from the difference between the zero-shot baseline and the real email, with thinking
      (the default, and the paper's best)
  measured  exact style facts (length, greeting, sign-off name, ...) from :mod:`app.measured_style`
With a small model on this computer, R3 uses the ``rules_r3_small`` prompt: the answer is JSON
(a one-sentence comparison, then the rules) decoded under llama.cpp's grammar, so it always parses.
Its v2 leaves greeting, sign-off and length to the measured lines (exact, and appended to every
target): a 1.5B model got those wrong often enough to contradict them, and they cost decode time.
The thinking is stored but only the rules are targets. A rule that copies a long run of the real
email is dropped (recorded in ``dropped``): rules say how to write, they do not carry the email.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache

from agent_training.messages import SentMessage
from agent_training.parsing import MalformedAnswer, bullets, copied_run, extract_tag
from app.backends.base import GenerationRequest
from app.measured_style import measure, style_rules
from app.prompts import load_prompt
from app.rule_grammar import rule_aspect

STRATEGIES = ("R1", "R2", "R3")
MEASURED = "measured"
MEASURED_VERSION = "style-measured.v1"
MAX_QUOTED_RUN = 10  # consecutive words shared with the real email that make a rule a quote
SMALL_R3_PROMPT = "rules_r3_small"
SMALL_R1_PROMPT = "rules_r1_small"  # R1 (no zero-shot baseline) for the paper's no-baseline agent
SMALL_MAX_EMAIL_CHARS = 2500
RULES_SCHEMA = {
    "type": "object",
    "properties": {
        "differences": {"type": "string", "maxLength": 200},  # a short thinking budget
        "rules": {
            "type": "array",
            "minItems": 2,
            "maxItems": 5,
            "items": {"type": "string", "minLength": 8, "maxLength": 140},
        },
    },
    "required": ["differences", "rules"],
}
# R1 sees only the real email: a one-sentence description of its style instead of a comparison
R1_RULES_SCHEMA = {
    "type": "object",
    "properties": {"notes": RULES_SCHEMA["properties"]["differences"], "rules": RULES_SCHEMA["properties"]["rules"]},
    "required": ["notes", "rules"],
}


def rules_request(
    strategy: str, msg: SentMessage, intent: str | None = None, baseline: str | None = None
) -> tuple[GenerationRequest, str]:
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown rule strategy {strategy!r} (have {', '.join(STRATEGIES)})")
    prompt = load_prompt(f"rules_{strategy.lower()}")
    if strategy == "R3" and (not intent or not baseline):
        raise ValueError("R3 rules need the intent and the zero-shot baseline")
    system, user = prompt.render(
        recipients=msg.recipients or "(unknown)",
        subject=msg.subject or "(none)",
        email=msg.own_text[:6000],
        intent=intent or "",
        baseline=baseline or "",
    )
    return GenerationRequest.simple(system, user, purpose="distill", max_tokens=1200), prompt.id


def small_r3_request(msg: SentMessage, baseline: str) -> tuple[GenerationRequest, str]:
    """R3 for a small model: the generic and the real email side by side (the intent is in both)."""
    prompt = load_prompt(SMALL_R3_PROMPT)
    system, user = prompt.render(
        baseline=baseline[:SMALL_MAX_EMAIL_CHARS], email=msg.own_text.strip()[:SMALL_MAX_EMAIL_CHARS]
    )
    return GenerationRequest.simple(
        system, user, purpose="distill", max_tokens=400, json_schema=RULES_SCHEMA
    ), prompt.id


def small_r1_request(msg: SentMessage) -> tuple[GenerationRequest, str]:
    """R1 for a small model: rules from the real email alone (the paper's no-baseline ablation)."""
    prompt = load_prompt(SMALL_R1_PROMPT)
    system, user = prompt.render(email=msg.own_text.strip()[:SMALL_MAX_EMAIL_CHARS])
    return GenerationRequest.simple(
        system, user, purpose="distill", max_tokens=400, json_schema=R1_RULES_SCHEMA
    ), prompt.id


def parse_small_rules(raw: str, email: str, baseline: str | None = None) -> tuple[list[str], str, list[str]]:
    """(rules, thinking, dropped) from a JSON answer; quoting rules are dropped as in :func:`parse_rules`."""
    try:
        answer = json.loads(raw)
        items, thinking = answer["rules"], str(answer.get("differences") or answer.get("notes") or "")
    except (ValueError, KeyError, TypeError):
        raise MalformedAnswer("the answer is not JSON with a list of rules (cut off?)", raw) from None
    items = [re.sub(r"\s+", " ", r).strip(" -•") for r in items if isinstance(r, str)]
    items = list(dict.fromkeys(r for r in items if r))  # a small model repeats itself
    # "under N words": a template, not a rule (a small model copies the shape of an instruction)
    # a rule at the schema's length cap was cut off by the grammar mid-sentence ("Use personal ... Be")
    cap = RULES_SCHEMA["properties"]["rules"]["items"]["maxLength"]
    kept = [r for r in items if not quotes_email(r, email) and not _PLACEHOLDER_NUMBER.search(r) and len(r) < cap - 1]
    dropped = [r for r in items if r not in kept]
    if not kept:
        raise MalformedAnswer("no usable rules (none given, or all of them quote the email)", raw)
    refuse_fragments(kept, raw)
    kept, contradicting = drop_contradictions(kept, email, baseline, raw)
    return kept, thinking, dropped + contradicting


# Words a piece of a sentence starts or ends with: a small model emitted one rule as several
# ("Use more formal language (e. g., " / "instead of" / ")"), 4 of 10 sets on senders no one tuned for
_CONTINUATION_START = re.compile(
    r"^(?:instead of|and|or|but|than|rather than|such as|like|e\.\s?g\.|i\.\s?e\.)\b", re.I
)
_DANGLING_END = re.compile(
    r"(?:[(\[{“\"',:;]|\be\.\s?g\.,?|\bi\.\s?e\.,?|\b(?:of|to|and|or|with|the|a|an|as|than|like|instead))\s*$", re.I
)


def fragment_reason(rule: str) -> str | None:
    """Why ``rule`` is a piece of a sentence rather than a whole instruction, or None."""
    text = rule.strip()
    if len(re.findall(r"[A-Za-z]+", text)) < 2:
        return "fewer than two words"
    if text[:1].islower() and _CONTINUATION_START.match(text):
        return "it continues another line"
    if text.count("(") != text.count(")") or text.count("[") != text.count("]"):
        return "its brackets do not close"
    if text.count('"') % 2 or text.count("“") != text.count("”"):
        return "its quotes do not close"
    if _DANGLING_END.search(text):
        return "it stops mid-sentence"
    return None


def refuse_fragments(rules: list[str], raw: str) -> None:
    """A rule set with a piece of a sentence in it is asked for again (or fails), never trained on:
    the pieces around it are not whole instructions either."""
    for rule in rules:
        why = fragment_reason(rule)
        if why:
            raise MalformedAnswer(f"rule {rule!r} is not a whole instruction ({why})", raw)


# -- direction: a rule must agree with the difference it claims -------------------------------------
# Where the model wrote "the real email is less formal" and then the rule "Use more formal language",
# the rule teaches the opposite of the user. Length, formality, greeting, sign-off, case and
# exclamation marks are measurable, so a rule about them is checked against the real email (and,
# for a comparison, against the zero-shot email it was distilled from).
_SHORTER = re.compile(r"\b(shorter|concise|brief|briefer|keep (it|the email|emails) short|fewer words|terse)\b", re.I)
_LONGER = re.compile(r"\b(longer|more detail(ed|s)?|elaborate|expand|more context|more thorough)\b", re.I)
_MORE_FORMAL = re.compile(
    r"\b(more formal|formal (tone|language|register|style|writing)|(be|sound|stay|remain) formal|more professional"
    r"|professional tone)\b",
    re.I,
)
# "avoid overly formal language" asks for less formality, though it names "formal language"
_NEGATED_FORMAL = re.compile(
    r"\b(avoid|not|no|never|without|less|overly|too|instead of|rather than)\b[^.]*\bformal", re.I
)
_LESS_FORMAL = re.compile(r"\b(less formal|informal|casual|relaxed|conversational)\b", re.I)
_NO_GREETING = re.compile(
    r"\b(no|not|never|skip|without|omit|drop|avoid)\b[^.]*\bgreeting|\bstart (directly|right)\b", re.I
)
# "Start with a warm greeting": up to two words between the article and the greeting (read by hand
# on the local model's rules, 2026-12-05)
_GREETING = re.compile(
    r"\b(start|open|begin)\w* with (a |an )?(\w+ ){0,2}(greeting|salutation|[\"'“]?(hi|hello|hey|dear)\b)"
    r"|\b(include|add|use)\b[^.]*\b(greeting|salutation)\b",
    re.I,
)
_NO_SIGNOFF = re.compile(r"\b(no|not|never|skip|without|omit|drop|avoid)\b[^.]*\b(sign-?off|closing|valediction)", re.I)
_SIGNOFF = re.compile(
    r"\b(sign|close)\w*( off)? with\b|\b(end|finish)\w* with (a |an )?(\w+ ){0,2}(sign-?off|closing)"
    r"|\b(include|add|use)\b[^.]*\b(sign-?off|closing)\b",
    re.I,
)
# sentence length, compared like the email's length ("Shorten sentences" where the real email's
# sentences are longer than the zero-shot's was kept before)
_SHORTER_SENTENCES = re.compile(
    r"\b(short(er|en)?|concise|brief)\b[^.]*\bsentences?\b|\bsentences?\b[^.]*\b(short(er)?|concise|brief)\b", re.I
)
# "Avoid long sentences" asks for shorter ones, though it names long sentences
_NEGATED_LONG_SENTENCES = re.compile(
    r"\b(avoid|don'?t|do not|no|never|not)\b[^.]*\blong(er)?\b[^.]*\bsentences?\b", re.I
)
_LONGER_SENTENCES = re.compile(r"\b(long(er)?|full(er)?)\b[^.]*\bsentences?\b|\bsentences?\b[^.]*\blong(er)?\b", re.I)
_LOWERCASE = re.compile(r"\b(lower-?case|no capitals?|without capitals?)\b", re.I)
_CAPITALS = re.compile(
    r"\b(proper (capitali[sz]ation|grammar|punctuation)|capitali[sz]e (the )?(first|sentences)|correct grammar)\b", re.I
)
_NO_EXCLAIM = re.compile(r"\b(no|avoid|without|never use)\b[^.]*\bexclamation", re.I)
_EXCLAIM = re.compile(r"\b(use|add|include)\b[^.]*\bexclamation", re.I)
_FORMAL_OPENING = re.compile(r"^\s*(dear|good (morning|afternoon|evening))\b", re.I | re.M)
_FORMAL_CLOSING = re.compile(r"^\s*(best regards|kind regards|regards|sincerely|respectfully|yours)\b", re.I | re.M)
# the formulae of a polite, complete assistant's email, and the words of a terse, casual one (read on
# the local model's zero-shot emails and the 7 senders' real ones, 2026-12-05/06)
_POLITE_FORMULAE = re.compile(
    r"\b(i hope (this|you)|please (find|let me know|do not hesitate|feel free)|do not hesitate|i would like to|"
    r"kindly|thank you for (your|the)|i am writing|looking forward to|at your earliest|should you have)\b",
    re.I,
)
_CASUAL_WORDS = re.compile(
    r"\b(cool|yeah|yep|nope|hey|thx|pls|plz|ok|okay|gonna|wanna|lol|btw|fyi|awesome|yippee+|sounds good|no worries)\b",
    re.I,
)


@lru_cache(maxsize=64)
def _measured(text: str):
    """``measure(text)``, once per text: every rule of a set is checked against the same two emails."""
    return measure(text)


def formality(text: str) -> float:
    """A formality score for comparing two emails (never read alone): a formal opening and closing
    and the polite formulae of a complete email count up; contractions, lower-case sentence starts
    (by their share), "!", casual words ("cool", "pls") and the bare few words of a note with neither
    greeting nor sign-off count down. The first version counted only opening, closing, contractions,
    lower case and "!", and rated "Cool. Enjoy the travel." above a zero-shot email full of
    contractions and "!", so "Use a more formal tone" passed for it."""
    profile = _measured(text)
    score = float(bool(_FORMAL_OPENING.search(text))) + float(bool(_FORMAL_CLOSING.search(text)))
    score += 0.5 * min(3, len(_POLITE_FORMULAE.findall(text)))
    score -= float(bool(profile.contractions)) + profile.lowercase_start_ratio
    score -= 0.5 * float(profile.exclamations > 0) + float(bool(_CASUAL_WORDS.search(text)))
    if profile.word_count <= 12 and not profile.greeting and not profile.signoff:
        score -= 0.5
    return score


def direction_conflict(rule: str, email: str, baseline: str | None = None) -> str | None:
    """Why ``rule`` points away from the real ``email`` (and from how it differs from ``baseline``,
    the zero-shot email), or None when it agrees or is not measurable."""
    real = _measured(email)
    if _NO_GREETING.search(rule) and real.greeting:
        return f"the real email opens with {real.greeting!r}"
    if _GREETING.search(rule) and not _NO_GREETING.search(rule) and not real.greeting:
        return "the real email has no greeting"
    if _NO_SIGNOFF.search(rule) and real.signoff:
        return f"the real email signs off with {real.signoff!r}"
    if _SIGNOFF.search(rule) and not _NO_SIGNOFF.search(rule) and not real.signoff and not real.signature_name:
        return "the real email has no sign-off"
    if _LOWERCASE.search(rule) and real.lowercase_start_ratio < 0.5:
        return "the real email starts its sentences with capitals"
    if _CAPITALS.search(rule) and real.lowercase_start_ratio >= 0.5:
        return "the real email starts its sentences in lower case"
    if _NO_EXCLAIM.search(rule) and real.exclamations:
        return "the real email uses exclamation marks"
    if _EXCLAIM.search(rule) and not _NO_EXCLAIM.search(rule) and not real.exclamations:
        return "the real email has no exclamation mark"
    if baseline:
        generic = _measured(baseline)
        mine_s, theirs_s = real.avg_sentence_words, generic.avg_sentence_words
        shorter_s = _SHORTER_SENTENCES.search(rule) or _NEGATED_LONG_SENTENCES.search(rule)
        if shorter_s and mine_s > 1.1 * theirs_s and theirs_s:
            return f"the real email's sentences are longer ({mine_s:.0f} words against {theirs_s:.0f})"
        if _LONGER_SENTENCES.search(rule) and not shorter_s and mine_s < 0.9 * theirs_s:
            return f"the real email's sentences are shorter ({mine_s:.0f} words against {theirs_s:.0f})"
        about_sentences = _SHORTER_SENTENCES.search(rule) or _LONGER_SENTENCES.search(rule)
        if _SHORTER.search(rule) and not about_sentences and real.word_count > 1.1 * generic.word_count:
            return f"the real email is longer ({real.word_count} words against {generic.word_count})"
        if _LONGER.search(rule) and not about_sentences and real.word_count < 0.9 * generic.word_count:
            return f"the real email is shorter ({real.word_count} words against {generic.word_count})"
        mine, theirs = formality(email), formality(baseline)
        less = bool(_LESS_FORMAL.search(rule) or _NEGATED_FORMAL.search(rule))
        if _MORE_FORMAL.search(rule) and not less and mine < theirs:
            return "the real email is less formal than the zero-shot one"
        if less and not (_MORE_FORMAL.search(rule) and not _NEGATED_FORMAL.search(rule)) and mine > theirs:
            return "the real email is more formal than the zero-shot one"
    return None


# A style rule says how to write, never what: "Mention enjoying travel" for "Cool. Enjoy the travel."
# is the email's content, which the agent must not learn to add to every email. Read by hand on the
# local model's rules (3 of 12 sets held one, 2026-12-05): a rule that starts by asking to say
# something and names a word of the real email that is not about style.
_SAY_SOMETHING = re.compile(
    r"^(mention|include|ask|tell|explain|say|state|provide|give|share|discuss|describe|express|offer|"
    r"suggest|request|invite|confirm|remind|note|refer)\b",
    re.I,
)
_STYLE_WORDS = frozenset(
    """greeting salutation closing sign signoff sign-off name names tone sentence sentences word words
    paragraph paragraphs punctuation grammar capital capitals formal informal casual polite politeness
    brief short shorter concise detail details question questions thanks thank exclamation contraction
    contractions emoji language direct directly first recipient recipients email emails message messages
    line lines bullet bullets list subject signature style voice reader context point points example
    examples personal touch friendly warm professional clear clearly simple specific request
    information response reply call action about from with that this your yourself their there what
    when soon possible more some have will would could should been into also other others just very
    only each every""".split()
)


def content_rule(rule: str, email: str) -> str | None:
    """Why ``rule`` asks for the email's content rather than a way of writing, or None."""
    if not _SAY_SOMETHING.match(rule.strip()):
        return None
    email_words = {w.lower() for w in re.findall(r"[^\W\d_]{4,}", email)}
    named = [
        w
        for w in re.findall(r"[^\W\d_]{4,}", rule)
        if w.lower() in email_words and w.lower() not in _STYLE_WORDS and not _SAY_SOMETHING.match(w)
    ]
    return f"it names the email's content ({', '.join(dict.fromkeys(w.lower() for w in named))})" if named else None


def drop_contradictions(rules: list[str], email: str, baseline: str | None, raw: str) -> tuple[list[str], list[str]]:
    """(kept, dropped): a rule pointing away from the real email is dropped with its reason; a set in
    which most rules do is asked for again (MalformedAnswer): the model misread the difference."""
    kept, dropped = [], []
    for rule in rules:
        why = direction_conflict(rule, email, baseline)
        content = None if why else content_rule(rule, email)
        if why:
            dropped.append(f"{rule} (contradicts: {why})")
        elif content:
            dropped.append(f"{rule} (not a style rule: {content})")
        else:
            kept.append(rule)
    if not kept or len(dropped) > len(kept):
        raise MalformedAnswer(
            f"{len(dropped)} of {len(rules)} rules point away from the real email: {dropped[:2]}", raw
        )
    return kept, dropped


_PLACEHOLDER_NUMBER = re.compile(r"\b[NX]\b(?=\s+(?:words?|sentences?|lines?|paragraphs?|characters?))")


def quotes_email(rule: str, email: str, max_run: int = MAX_QUOTED_RUN) -> bool:
    """Whether ``rule`` shares a run of ``max_run`` consecutive words with ``email``."""
    return copied_run(rule, email, max_run) is not None


def parse_rules(raw: str, email: str, baseline: str | None = None) -> tuple[list[str], str, list[str]]:
    """(rules, thinking, dropped). Raises MalformedAnswer when no usable rule is left."""
    items = bullets(extract_tag(raw, "rules"))
    kept = [r for r in items if not quotes_email(r, email)]
    dropped = [r for r in items if r not in kept]
    if not kept:
        raise MalformedAnswer("no usable rules (none given, or all of them quote the email)", raw)
    refuse_fragments(kept, raw)
    kept, contradicting = drop_contradictions(kept, email, baseline, raw)
    return kept, extract_tag(raw, "thinking", required=False) or "", dropped + contradicting


# Topics the measured rules state exactly, from the real email's own text. When measured lines are
# appended to LLM rules (the training target), an LLM line on a topic the measured lines cover is
# dropped: a small model's R3 answer sometimes says "Open with 'Hi Sylvia,'" for an email that has
# no greeting, and a target saying both teaches the agent to contradict itself.
# topic: (the aspects of a measured line on it (app.measured_style.RULE_ASPECTS), an LLM line on it)
_MEASURED_TOPICS = {
    "greeting": (
        {"greeting"},
        re.compile(
            r"\b(?:greet\w*|salutation|opening line|open(?:s|ing)? with|(?:start|begin)s?(?:ing)? with (?:a |an |the )?"
            r"[\"“']?(?:hi|hello|hey|dear|good morning)\b|address(?:es|ing)? (?:the recipient|them|him|her) (?:as|by))",
            re.I,
        ),
    ),
    "sign-off": (
        {"signoff"},
        re.compile(
            r"\b(?:sign(?:s|ed|ing)?[- ]?off|sign(?:s|ed|ing)? (?:with|as)|closing|valediction|signature|"
            r"(?:end|close|finish)(?:s|ing)? (?:the email |the message )?with (?:a |the |his |her |their |your )?"
            r"(?:[\"“']|name\b|initials|first name|full name|thanks|regards|best\b|cheers))",
            re.I,
        ),
    ),
    "length": (
        {"length", "sentences"},
        re.compile(r"\b\d+\s*(?:(?:-|to)\s*\d+\s*)?words?\b|\bword count\b|\bparagraphs?\b", re.I),
    ),
    "contractions": ({"contractions"}, re.compile(r"\bcontraction", re.I)),
    "exclamation marks": ({"punctuation"}, re.compile(r"\bexclamation", re.I)),
    "lower case": (
        {"case"},
        re.compile(r"\b(?:lower[- ]?case|capital(?:s|ize|ise|ization)?)\b", re.I),
    ),
}


def rule_lines(text: str) -> list[str]:
    return [line.strip().lstrip("-•* ").strip() for line in text.splitlines() if line.strip().lstrip("-•* ").strip()]


def merge_with_measured(llm_rules: str, measured: str) -> tuple[str, list[str]]:
    """``llm_rules`` then the ``measured`` lines, as one ``- rule`` list, without LLM lines on a topic the
    measured lines state exactly (greeting, sign-off, length, contractions, exclamation marks, case).
    Returns (merged, dropped LLM lines)."""
    measured_lines = rule_lines(measured)
    stated = {rule_aspect(line) for line in measured_lines}
    covered = {topic for topic, (aspects, _) in _MEASURED_TOPICS.items() if aspects & stated}
    kept, dropped = [], []
    for line in rule_lines(llm_rules):
        on_covered = any(_MEASURED_TOPICS[topic][1].search(line) for topic in covered)
        (dropped if on_covered else kept).append(line)
    return "\n".join(f"- {line}" for line in [*kept, *measured_lines]), dropped


def measured_rules(msg: SentMessage, phrases: list[str], baseline: str | None = None) -> list[str]:
    real = measure(msg.own_text, msg.signature, phrases)
    zero = measure(baseline) if baseline else None
    return style_rules(real, zero)
