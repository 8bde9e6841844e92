"""Zero-shot baselines: the large model writes the email from the intent alone, knowing nothing
about the user. The gap between this and the real email is what R3 rules describe.

Plain rewrites: the model says the real email again in a generic assistant's style, from the email
itself. Same facts, another voice: the voice stage learns (plain rewrite -> real email), which a
zero-shot email that invents a time and a place cannot teach (the content guard refuses most of
those pairs: 16 of 100 were kept on the 7 Enron senders with the local model).

A small model on this computer gets the ``baseline_small`` prompt and answers with the email
itself (no tags for it to forget); a preamble or "Subject:" line it adds anyway is cut off."""

from __future__ import annotations

import re

from agent_training.messages import SentMessage
from agent_training.parsing import MalformedAnswer, extract_tag
from app.backends.base import GenerationRequest
from app.prompts import load_prompt
from app.rulecheck import check_draft

PROMPT = "baseline"
SMALL_PROMPT = "baseline_small"
PLAIN_PROMPT = "plain_rewrite"


def baseline_request(msg: SentMessage, intent: str) -> tuple[GenerationRequest, str]:
    prompt = load_prompt(PROMPT)
    system, user = prompt.render(
        recipients=msg.recipients or "(unknown)",
        subject=msg.subject or "(none)",
        previous=msg.previous_context[:2000] or "(none: a new email)",
        intent=intent,
    )
    return GenerationRequest.simple(system, user, purpose="distill", max_tokens=1000), prompt.id


def parse_baseline(raw: str) -> str:
    return extract_tag(raw, "email")


def small_baseline_request(msg: SentMessage, intent: str) -> tuple[GenerationRequest, str]:
    prompt = load_prompt(SMALL_PROMPT)
    system, user = prompt.render(
        recipients=msg.recipients or "(unknown)", subject=msg.subject or "(none)", intent=intent
    )
    return GenerationRequest.simple(system, user, purpose="distill", max_tokens=300), prompt.id


def plain_rewrite_request(msg: SentMessage) -> tuple[GenerationRequest, str]:
    prompt = load_prompt(PLAIN_PROMPT)
    system, user = prompt.render(
        recipients=msg.recipients or "(unknown)", subject=msg.subject or "(none)", email=msg.own_text.strip()
    )
    # as long as the email and a greeting and sign-off more
    budget = 120 + len(msg.own_text) // 2
    return GenerationRequest.simple(system, user, purpose="distill", max_tokens=min(budget, 1000)), prompt.id


def parse_small_baseline(raw: str) -> str:
    # the rule check's deterministic clean-up with no rules: only the universal repairs (a
    # "Here is the email" preamble, a Subject: line, a "[Your Name]" placeholder) apply
    text = check_draft(raw, []).text.strip()
    if not re.search(r"\w", text):  # "Thanks, Kay" is an email; nothing at all is not
        raise MalformedAnswer("the zero-shot email is empty", raw)
    return text
