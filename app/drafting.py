"""Drafting: intent + details + the agent's rules -> the large model -> a draft, streamed.

Only what is in :class:`DraftInput` is sent: the intent, the details the user typed or picked
(recipient, subject, the email being answered), the rules and any style tags. The user's sent mail
is never put in a drafting request; the privacy test plants sentinels in imported mail to keep it so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.backends.base import EndpointConfig, GenerationRequest
from app.backends.client import Generation, generate
from app.jobs import CancelToken
from app.prompts import load_prompt


@dataclass(frozen=True)
class DraftInput:
    intent: str
    recipient: str | None = None
    subject: str | None = None
    previous_email: str | None = None
    rules: tuple[str, ...] = ()
    tags: tuple[str, ...] = field(default=())

    def __post_init__(self):
        if not self.intent.strip():
            raise ValueError("the intent is empty: say what the email should tell the recipient")


# One answer's token limit for a draft, everywhere (CLI, Compose page, compose operation, evaluation):
# the GUI and this module said 1024, the rest 768
DRAFT_MAX_TOKENS = 768


def build_request(inp: DraftInput, max_tokens: int = DRAFT_MAX_TOKENS) -> GenerationRequest:
    prompt = load_prompt("draft")
    details = []
    if inp.recipient:
        details.append(f"<recipient>{inp.recipient.strip()}</recipient>\n")
    if inp.subject:
        details.append(f"<subject>{inp.subject.strip()}</subject>\n")
    if inp.previous_email:
        details.append(f"<email_being_answered>\n{inp.previous_email.strip()}\n</email_being_answered>\n")
    rules = [r.strip() for r in inp.rules if r.strip()]
    rules += [f"Style: {t.strip()}" for t in inp.tags if t.strip()]
    system, user = prompt.render(
        details="\n".join(details) + ("\n" if details else ""),
        intent=inp.intent.strip(),
        rules="\n".join(f"- {r}" for r in rules) or "- (no rules: write a clear, natural email)",
    )
    return GenerationRequest.simple(system, user, purpose="draft", max_tokens=max_tokens)


def draft(
    inp: DraftInput,
    backend: str | EndpointConfig | None = None,
    *,
    cancel: CancelToken | None = None,
    max_tokens: int = DRAFT_MAX_TOKENS,
    **kwargs,
) -> Generation:
    """Start a streamed draft on ``backend`` (the default when None); iterate it for the text."""
    return generate(build_request(inp, max_tokens=max_tokens), backend, cancel=cancel, **kwargs)
