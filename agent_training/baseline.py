"""Zero-shot baselines: the large model writes the email from the intent alone, knowing nothing
about the user. The gap between this and the real email is what R3 rules describe."""

from __future__ import annotations

from app.backends.base import GenerationRequest
from app.prompts import load_prompt
from agent_training.messages import SentMessage
from agent_training.parsing import extract_tag


PROMPT = "baseline"


def baseline_request(msg: SentMessage, intent: str) -> tuple[GenerationRequest, str]:
    prompt = load_prompt(PROMPT)
    system, user = prompt.render(
        recipients=msg.recipients or "(unknown)", subject=msg.subject or "(none)",
        previous=msg.previous_context[:2000] or "(none: a new email)", intent=intent,
    )
    return GenerationRequest.simple(system, user, purpose="distill", max_tokens=1000), prompt.id


def parse_baseline(raw: str) -> str:
    return extract_tag(raw, "email")
