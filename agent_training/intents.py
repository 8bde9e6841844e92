"""Intents: what each sent email says, as first-person bullet points, without its style.

With a large model (``intents`` prompt, scratchpad then ``<intent>``): three variants at
temperatures 0.7 / 1.0 / 1.2 simulate different users writing their intents; one variant is
sampled per example (deterministically from the message id and seed). With a small model on this
computer (``intents_small`` prompt): the same, but the answer is JSON decoded under llama.cpp's
grammar (so it always parses), the email comes last (the instructions stay a cached prompt
prefix), and an intent that shares no content word with its email, or copies a run of its words,
is refused and asked again. The fast offline mode is extractive: the email's content sentences,
greeting and sign-off removed, as bullets (it hands the agent the email's own words; the local
model's abstractive intents are what the paper's method needs).
"""

from __future__ import annotations

import hashlib
import json
import re

from agent_training.messages import SentMessage
from agent_training.parsing import MalformedAnswer, bullets, copied_run, extract_tag
from app.backends.base import GenerationRequest
from app.measured_style import find_greeting, find_signoff, sentences
from app.prompts import load_prompt
from app.rulecheck import content_words

PROMPT = "intents"
TEMPERATURES = (0.7, 1.0, 1.2)
OFFLINE_VERSION = "intent-extractive.v1"
MAX_EMAIL_CHARS = 6000

SMALL_PROMPT = "intents_small"
SMALL_MAX_EMAIL_CHARS = 2500  # a 2,048-token context holds prompt, email and answer
MAX_COPIED_RUN = 8  # consecutive words shared with the email that make a note a copied sentence
INTENT_SCHEMA = {
    "type": "object",
    "properties": {
        "points": {
            "type": "array",
            "minItems": 1,
            "maxItems": 6,
            "items": {"type": "string", "minLength": 2, "maxLength": 160},
        }
    },
    "required": ["points"],
}


def sampled_variant(message_id: int, seed: int = 0) -> int:
    digest = hashlib.sha256(f"{seed}:{message_id}".encode()).digest()
    return digest[0] % len(TEMPERATURES)


def _clip(text: str, limit: int = MAX_EMAIL_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + "\n[…]"


def intent_request(msg: SentMessage, temperature: float | None) -> tuple[GenerationRequest, str]:
    prompt = load_prompt(PROMPT)
    system, user = prompt.render(
        sender=msg.sender,
        recipients=msg.recipients or "(unknown)",
        subject=msg.subject or "(none)",
        previous=_clip(msg.previous_context, 2000) or "(none: a new email)",
        email=_clip(msg.own_text),
    )
    options = {"max_tokens": 800}
    if temperature is not None:
        options["temperature"] = temperature
    return GenerationRequest.simple(system, user, purpose="distill", **options), prompt.id


def parse_intent(raw: str) -> tuple[str, str]:
    block = extract_tag(raw, "intent")
    items = bullets(block)
    if not items:
        raise MalformedAnswer("the <intent> block has no bullet points", raw)
    scratchpad = extract_tag(raw, "scratchpad", required=False) or ""
    return "\n".join(f"- {i}" for i in items), scratchpad


def small_intent_request(msg: SentMessage, temperature: float | None) -> tuple[GenerationRequest, str]:
    prompt = load_prompt(SMALL_PROMPT)
    system, user = prompt.render(
        recipients=msg.recipients or "(unknown)",
        subject=msg.subject or "(none)",
        email=_clip(msg.own_text.strip(), SMALL_MAX_EMAIL_CHARS),
    )
    options = {"max_tokens": 220, "json_schema": INTENT_SCHEMA}
    if temperature is not None:
        options["temperature"] = temperature
    return GenerationRequest.simple(system, user, purpose="distill", **options), prompt.id


_METADATA = re.compile(
    r"^(?:to|from|cc|subject|date)\s*:\s*\S+(?:\s+\S+){0,3}$|^\S+@\S+$|^subject(?: line)?\s*:|"
    r"^[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:com|org|net|edu|gov)$",
    re.I,
)


def copied_intent(text: str, email: str) -> str | None:
    """The run of words an intent copies from its email, if any (a copied sentence, not an intent)."""
    return copied_run(text, email, MAX_COPIED_RUN)


def parse_small_intent(raw: str, email: str) -> tuple[str, str]:
    """The notes of a JSON answer as bullets; refuses an intent that is not about its email (no
    content word in common: e.g. an example or instruction echoed back) or that copies it."""
    try:
        points = json.loads(raw)["points"]
    except (ValueError, KeyError, TypeError):
        raise MalformedAnswer("the answer is not JSON with a list of points (cut off?)", raw) from None
    items = [re.sub(r"\s+", " ", str(p)).strip(" -•") for p in points if isinstance(p, str)]
    items = [i for i in items if i and not _METADATA.match(i)]  # "To: kim@...": the header, not the content
    if not items:
        raise MalformedAnswer("no points in the answer", raw)
    text = "\n".join(f"- {i}" for i in items)
    in_email = content_words(email)
    if in_email and not content_words(text) & in_email:  # ("Thanks." has no content word to share)
        raise MalformedAnswer(
            "the intent shares no content word with its email (the notes must be about this email)", raw
        )
    copied = copied_intent(text, email)
    if copied:
        raise MalformedAnswer(
            f"the intent copies the email ({copied!r}): say what it tells or asks in your own, shorter words", raw
        )
    return text, ""


def offline_intent(msg: SentMessage) -> str:
    """The email's own content, greeting/sign-off/signing name removed, one sentence per bullet."""
    text = msg.own_text.strip()
    lines = [line for line in text.splitlines()]
    greeting, _ = find_greeting(text)
    signoff, name = find_signoff(text, msg.signature)
    kept = [line for line in lines if line.strip() and line.strip() not in {greeting, signoff, name}]
    body = "\n".join(kept)
    items = [re.sub(r"\s+", " ", s).strip() for s in sentences(body)]
    items = [s for s in items if s]
    if not items:
        items = [re.sub(r"\s+", " ", text)]
    return "\n".join(f"- {s}" for s in items)
