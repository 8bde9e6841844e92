"""How far a draft is from what the user sent: the edit distance (the online metric) and the
similarity that matches a sent email to the draft it came from.

Both work on lower-cased word tokens (punctuation marks are tokens too, so "Thanks," -> "Thanks."
costs one), which is what a user changes: whole words, not characters.
"""

from __future__ import annotations

import re

from app.rulecheck import content_words

_TOKEN = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?|[^\sa-z0-9]", re.I)
MAX_TOKENS = 1500  # an email's first 1,500 tokens: the quadratic distance stays under ~0.3 s


def tokens(text: str) -> list[str]:
    return [t.lower() for t in _TOKEN.findall(text or "")][:MAX_TOKENS]


def edit_distance(draft: str, final: str) -> float:
    """Word-level Levenshtein distance over the longer text's length: 0 unchanged, 1 all rewritten."""
    a, b = tokens(draft), tokens(final)
    if not a and not b:
        return 0.0
    if not a or not b:
        return 1.0
    if len(a) < len(b):
        a, b = b, a
    previous = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        current = [i]
        for j, y in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x != y)))
        previous = current
    return previous[-1] / len(a)


def content_similarity(draft: str, sent: str) -> float:
    """Dice overlap of the content words (no stop words): a sent email that is the draft, however
    reworded, shares its names, numbers and topic words; another email of the same week rarely does."""
    a, b = content_words(draft), content_words(sent)
    if not a or not b:
        return 0.0
    return 2 * len(a & b) / (len(a) + len(b))
