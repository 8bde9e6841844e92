"""The preference agent's prompt template: the exact text it is trained on and prompted with.

Gemma 3 270M is a base model without a chat template, so the agent gets a plain, fixed layout; the
training target (the rules, one per line) follows ``RULES_HEADER``. Changing this layout changes
what a trained adapter expects: bump ``AGENT_TEMPLATE_VERSION`` and retrain.
"""

from __future__ import annotations

AGENT_TEMPLATE_VERSION = 1
RULES_HEADER = "### Preference rules\n"
RULES_END = "### End\n"  # trained after the rules, so generation stops by itself
STOP = ["### End", "\n###"]
MAX_CONTEXT_CHARS = 800  # the previous email is context, not the point: keep prompts short


def agent_prompt(
    intent: str, *, recipient: str | None = None, subject: str | None = None, previous_context: str | None = None
) -> str:
    lines = ["### Email to write"]
    if recipient:
        lines.append(f"To: {recipient.strip()}")
    if subject:
        lines.append(f"Subject: {subject.strip()}")
    if previous_context and previous_context.strip():
        context = previous_context.strip()
        if len(context) > MAX_CONTEXT_CHARS:
            context = context[:MAX_CONTEXT_CHARS].rsplit(" ", 1)[0] + " …"
        lines.append("Replying to:\n" + context)
    lines.append("Intent:\n" + intent.strip())
    return "\n".join(lines) + "\n" + RULES_HEADER


def format_rules(rules: list[str]) -> str:
    return "\n".join(f"- {r.strip()}" for r in rules if r.strip()) + "\n"


def parse_rules(text: str) -> list[str]:
    """Rules from generated text: one per line, bullets stripped, stopping at the end marker."""
    rules = []
    for line in text.split(RULES_END.strip(), 1)[0].splitlines():
        line = line.strip()
        if line.startswith("###"):
            break
        line = line.lstrip("-*• ").strip()
        if line and line not in rules:
            rules.append(line)
    return rules


# The voice stage (issue 2/5): the large model's draft -> the same email in the user's words.
VOICE_HEADER = "### My email\n"


# The ranking's style tags (app/ranking/premium.py) that the voice stage learns to follow: each is
# measured on a training pair (the real email against the generic one), so the tags the user's
# rankings prefer steer the rewrite as well as the large model's draft.
VOICE_STYLE_TAGS = ("Brief", "Thorough", "Professional", "Amateurish")
VOICE_STYLE_PREFIX = "Style: "


def voice_prompt(
    draft: str, *, recipient: str | None = None, subject: str | None = None, style: tuple[str, ...] = ()
) -> str:
    """The voice adapter's prompt: the draft to say again in the user's words, in the ``style``
    tags given (of :data:`VOICE_STYLE_TAGS`; others are left out). Trained on (generic email -> the
    real email) pairs, generated up to :data:`RULES_END`."""
    lines = ["### Rewrite in my words"]
    if recipient:
        lines.append(f"To: {recipient.strip()}")
    if subject:
        lines.append(f"Subject: {subject.strip()}")
    style = tuple(t for t in style if t in VOICE_STYLE_TAGS)
    if style:
        lines.append(VOICE_STYLE_PREFIX + ", ".join(style))
    lines.append("Draft:\n" + draft.strip())
    return "\n".join(lines) + "\n" + VOICE_HEADER
