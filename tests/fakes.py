"""A scripted large model for fast tests of the logic around a model (simonw/llm's MockModel):
``ScriptedProvider.enqueue("answer", ...)``; each request takes the next answer, streamed in
word-sized pieces, and is recorded in ``ScriptedProvider.requests``. It goes through the real
client (options, retries, the Finished contract), so only the model itself is scripted."""

from __future__ import annotations

import re
from typing import ClassVar

from app.backends.base import EndpointConfig, Finished, Provider, TextDelta
from app.backends.registry import register

SCRIPTED = EndpointConfig("scripted", "scripted", "script")


@register
class ScriptedProvider(Provider):
    id = "scripted"
    label = "answers from a script (tests)"
    needs_key = False
    leaves_machine = False
    default_model = "script"
    answers: ClassVar[list[str]] = []
    requests: ClassVar[list] = []

    @classmethod
    def enqueue(cls, *answers: str) -> None:
        cls.answers.extend(answers)

    @classmethod
    def reset(cls) -> None:
        cls.answers.clear()
        cls.requests.clear()

    def stream_once(self, request, options, cancel):
        self.requests.append(request)
        if not self.answers:
            raise AssertionError("the scripted model was asked more often than answers were enqueued")
        text = self.answers.pop(0)
        for piece in re.findall(r"\S+\s*|\s+", text):
            yield TextDelta(piece)
        yield Finished("stop", model="script")

    def complete_once(self, request, options, cancel):
        pieces = [e.text for e in self.stream_once(request, options, cancel) if isinstance(e, TextDelta)]
        return "".join(pieces), Finished("stop", model="script")


def scripted_claude(prompt_text: str) -> str:
    """Tagged answers the way a large model gives them, chosen by which prompt was sent."""
    if "<intent>" in prompt_text and "Put the email" in prompt_text:
        return (
            "<email>\nDear colleague,\n\nI hope this finds you well. "
            + "Some words. " * 40
            + "\n\nBest regards,\nAssistant\n</email>"
        )
    if "<generic_email>" in prompt_text:
        return (
            "<thinking>The real one is shorter.</thinking>\n<rules>\n- Keep it short.\n- Skip the greeting.\n</rules>"
        )
    if "write the core content as short first-person bullet points" in prompt_text:
        return "<scratchpad>Thinking.</scratchpad>\n<intent>\n- I will be out\n- ask about the coop\n</intent>"
    if "Here is an email this person wrote" in prompt_text:  # R1 / R2
        return "<thinking>Terse.</thinking>\n<rules>\n- Be terse.\n</rules>"
    if "in that plain, professional style:" in prompt_text:  # a plain rewrite: the email, dressed up
        email = prompt_text.split("in that plain, professional style:", 1)[1].strip()
        return f"Dear colleague,\n\nI hope you are well. {email}\n\nBest regards,\nKay"
    return "I am not sure what you want."


def echoing_claude(prompt_text: str, invent_when_odd: bool = False) -> str:
    """Distillation answers that keep the email's content (for the voice stage's pairs): the intent is
    the email's own text, the zero-shot email says the intent plainly. ``invent_when_odd``: for about
    half the emails the zero-shot email invents a time and a place instead (what the content guard
    must keep out of training)."""
    if "write the core content as short first-person bullet points" in prompt_text:
        email = re.search(r"<email>\n(.*?)\n</email>", prompt_text, re.S).group(1)
        return "<scratchpad>x</scratchpad>\n<intent>\n- " + email.replace("\n", " ") + "\n</intent>"
    if "<intent>" in prompt_text and "Put the email" in prompt_text:
        intent = re.search(r"<intent>\n- (.*?)\n</intent>", prompt_text, re.S).group(1)
        if invent_when_odd and len(intent) % 2:
            return "<email>\nThe meeting is at 7 PM in the Ocean Energy Conference Center.\n</email>"
        return f"<email>\n{intent}\n</email>"
    if "<generic_email>" in prompt_text:  # R3: a rule that agrees with any email
        return "<thinking>The same content.</thinking>\n<rules>\n- Say it plainly.\n</rules>"
    return scripted_claude(prompt_text)
