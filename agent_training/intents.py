"""Intents: what each sent email says, as first-person bullet points, without its style.

With a large model (``intents`` prompt, scratchpad then ``<intent>``): three variants at
temperatures 0.7 / 1.0 / 1.2 simulate different users writing their intents; one variant is
sampled per example (deterministically from the message id and seed). Offline, the intent is
extractive: the email's content sentences, greeting and sign-off removed, as bullets.
"""

from __future__ import annotations

import hashlib
import re

from app.backends.base import GenerationRequest
from app.prompts import load_prompt
from agent_training.messages import SentMessage
from agent_training.parsing import MalformedAnswer, bullets, extract_tag
from app.style import find_greeting, find_signoff, sentences

PROMPT = "intents"
TEMPERATURES = (0.7, 1.0, 1.2)
OFFLINE_VERSION = "intent-extractive.v1"
MAX_EMAIL_CHARS = 6000


def sampled_variant(message_id: int, seed: int = 0) -> int:
    digest = hashlib.sha256(f"{seed}:{message_id}".encode()).digest()
    return digest[0] % len(TEMPERATURES)


def _clip(text: str, limit: int = MAX_EMAIL_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + "\n[…]"


def intent_request(msg: SentMessage, temperature: float | None) -> tuple[GenerationRequest, str]:
    prompt = load_prompt(PROMPT)
    system, user = prompt.render(
        sender=msg.sender, recipients=msg.recipients or "(unknown)", subject=msg.subject or "(none)",
        previous=_clip(msg.previous_context, 2000) or "(none: a new email)", email=_clip(msg.own_text),
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
