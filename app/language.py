"""Which language a reply is written in: the thread's, else the intent's.

A reply to a German message is written in German, whatever language the user typed the intent
in; without a thread, the intent's language is the reply's. The language becomes one rule for the
large model ("Language: German (the thread's language).") and the rule check reads the draft's
language against it (app/rulecheck.py), so a draft in the wrong language is shown as a broken rule
and asked for once more like any other.

Detection is py3langid (a maintained fork of langid.py: a naive Bayes model over byte n-grams,
4.5 MB, 0.1 ms a text once loaded). It was compared with lingua and langdetect on the hand-written
thread messages of tests/data/thread_languages.jsonl and 550 real English Enron emails
(``benchmarks/language_detect.py``; results in docs/benchmarks/language.md): as accurate as
lingua's high-accuracy mode on these short texts, 20x faster and 20x smaller, and no English
email was called another language at the confidence Tiller acts on. Short texts are where any
detector guesses ("Danke!" reads as Danish), so a language is only acted on above
:data:`MIN_CONFIDENCE` and with a few words of prose; below that Tiller adds no language rule and
the large model follows the intent, as it did before.

English threads with English intents get no rule at all: that is what every drafting prompt
already produces, and it keeps the evaluation's prompts unchanged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

MIN_CONFIDENCE = 0.8  # normalised probability; below it the language is not acted on
MIN_LETTERS = 12  # letters of prose (quotes, links, addresses and numbers taken out)

# the names a large model is given; a language outside the table is named by its code
NAMES = {
    "af": "Afrikaans", "ar": "Arabic", "bg": "Bulgarian", "bn": "Bengali", "ca": "Catalan", "cs": "Czech",
    "cy": "Welsh", "da": "Danish", "de": "German", "el": "Greek", "en": "English", "eo": "Esperanto",
    "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French",
    "ga": "Irish", "gl": "Galician", "he": "Hebrew", "hi": "Hindi", "hr": "Croatian", "hu": "Hungarian",
    "id": "Indonesian", "is": "Icelandic", "it": "Italian", "ja": "Japanese", "ko": "Korean",
    "lt": "Lithuanian", "lv": "Latvian", "mk": "Macedonian", "ms": "Malay", "mt": "Maltese", "nl": "Dutch",
    "nn": "Norwegian", "no": "Norwegian", "pl": "Polish", "pt": "Portuguese", "ro": "Romanian",
    "ru": "Russian", "sk": "Slovak", "sl": "Slovenian", "sq": "Albanian", "sr": "Serbian", "sv": "Swedish",
    "sw": "Swahili", "ta": "Tamil", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "uk": "Ukrainian",
    "ur": "Urdu", "vi": "Vietnamese", "zh": "Chinese",
}  # fmt: skip
CODES = {name.lower(): code for code, name in NAMES.items() if code != "nn"}  # "Norwegian" -> no

_QUOTED = re.compile(r"^\s*>.*$", re.M)
_NOISE = re.compile(r"https?://\S+|www\.\S+|\S+@\S+|[\d.,:/%$€£-]*\d[\d.,:/%$€£-]*")
_LETTER = re.compile(r"[^\W\d_]")


@dataclass(frozen=True)
class Language:
    code: str  # ISO 639-1 where there is one
    confidence: float

    @property
    def name(self) -> str:
        return NAMES.get(self.code, self.code)


@lru_cache(maxsize=1)
def _identifier():
    # loading the model takes half a second: once, on first use, never at import
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def prose(text: str) -> str:
    """The text a language is read from: no quoted lines, links, addresses or numbers."""
    return _NOISE.sub(" ", _QUOTED.sub(" ", text or ""))


def guess(text: str) -> Language | None:
    """The most likely language, however unsure (None for text without enough letters)."""
    clean = prose(text)
    if len(_LETTER.findall(clean)) < MIN_LETTERS:
        return None
    code, probability = _identifier().classify(clean)
    return Language("no" if code == "nn" else code, float(probability))


def detect(text: str) -> Language | None:
    """The language of ``text`` when it can be told with confidence, else None."""
    found = guess(text)
    return found if found is not None and found.confidence >= MIN_CONFIDENCE else None


@dataclass(frozen=True)
class ReplyLanguage:
    language: Language
    source: Literal["thread", "intent", "asked"]

    def rule(self) -> str:
        why = {"thread": "the thread's language", "intent": "the language of the request", "asked": "as asked"}
        return f"Language: {self.language.name} ({why[self.source]})."


def reply_language(intent: str, thread: str | None = None, asked: str | None = None) -> ReplyLanguage | None:
    """The language the reply is written in, or None when there is nothing to say: an English
    reply to an English request (the default of every prompt), or a language that cannot be told."""
    if asked:
        return ReplyLanguage(Language(_code(asked), 1.0), "asked")
    said = detect(intent)
    in_thread = detect(thread) if thread else None
    target = in_thread or said
    if target is None:
        return None
    if target.code == "en" and (said is None or said.code == "en"):
        return None
    return ReplyLanguage(target, "thread" if in_thread else "intent")


_RULE = re.compile(r"^Language:\s*([^\W\d_][\w ]*?)\s*(?:\(|\.|$)", re.I)


def rule_language(rule: str) -> str | None:
    """The language code a "Language: ..." rule asks for, or None for any other rule."""
    m = _RULE.match(rule.strip())
    return _code(m.group(1)) if m else None


def _code(name_or_code: str) -> str:
    """ "German", "german" or "de" -> "de"; a code outside the table stays as given."""
    key = name_or_code.strip().lower()
    return CODES.get(key, key)
