"""Reading tagged model answers (``<intent>…</intent>``) robustly.

Models wrap answers in code fences, change tag case, forget the closing tag at the end, or repeat
a block after "thinking out loud". The rules here: tags are case-insensitive; the *last* complete
block wins; an unclosed final block runs to the end of the answer; an empty block is no answer.
"""

from __future__ import annotations

import re


class MalformedAnswer(ValueError):
    """The answer lacks the expected tagged block (or it is empty). ``raw`` keeps the whole text."""

    def __init__(self, message: str, raw: str):
        super().__init__(message)
        self.raw = raw


def _strip_fences(text: str) -> str:
    return re.sub(r"```[a-zA-Z]*\n?", "", text)


def extract_tag(text: str, tag: str, *, required: bool = True) -> str | None:
    clean = _strip_fences(text)
    blocks = re.findall(rf"<\s*{tag}\s*>(.*?)<\s*/\s*{tag}\s*>", clean, flags=re.S | re.I)
    blocks = [b.strip() for b in blocks if b.strip()]
    if blocks:
        return blocks[-1]
    opened = list(re.finditer(rf"<\s*{tag}\s*>", clean, flags=re.I))
    if opened:
        tail = clean[opened[-1].end() :]
        tail = re.split(r"<\s*/?\s*[a-zA-Z_]+\s*>", tail, maxsplit=1)[0].strip()  # up to the next tag, if any
        if tail:
            return tail
    if required:
        raise MalformedAnswer(f"no <{tag}> block in the answer", text)
    return None


_BULLET = re.compile(r"^\s*(?:[-*•‣▪–]|\d{1,2}[.)])\s+")


def bullets(block: str) -> list[str]:
    """Lines of a list block, bullet markers removed; wrapped continuation lines are joined."""
    items: list[str] = []
    for line in block.splitlines():
        if not line.strip():
            continue
        if _BULLET.match(line) or not items:
            items.append(_BULLET.sub("", line).strip())
        else:
            items[-1] += " " + line.strip()
    return [i for i in items if i]


def copied_run(text: str, source: str, run: int) -> str | None:
    """The first run of ``run`` consecutive words ``text`` shares with ``source`` (lower-cased,
    punctuation ignored), if any: how an answer that carries the email's own sentences is found."""
    a, b = re.findall(r"[a-z0-9']+", text.lower()), re.findall(r"[a-z0-9']+", source.lower())
    grams = {tuple(b[i : i + run]) for i in range(len(b) - run + 1)}
    for i in range(len(a) - run + 1):
        if tuple(a[i : i + run]) in grams:
            return " ".join(a[i : i + run])
    return None
