"""The voice stage at drafting time: the large model's draft, said again in the user's words by the
profile's voice adapter on this computer, and kept only when the content guard finds every fact of
the draft in it (app/content_guard.py). Nothing here leaves the machine.

The adapter was trained on (zero-shot email -> the real email) pairs (agent_training/dataset.py),
with the prompt of :func:`app.agent.template.voice_prompt`, and decodes greedily.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.agent.agent import PreferenceAgent
from app.agent.profiles import VOICE_DIR, AgentProfile, profile_at
from app.agent.runtime import RUNTIME, LlamaRuntime, ModelSpec
from app.agent.template import STOP, voice_prompt
from app.content_guard import GuardVerdict, check_rewrite, names_in
from app.jobs import CancelToken


@dataclass(frozen=True)
class VoiceResult:
    text: str  # what the draft becomes: the rewrite when the guard kept it, else the draft
    rewrite: str  # what the voice adapter wrote
    draft: str  # the large model's draft
    verdict: GuardVerdict

    @property
    def kept(self) -> bool:
        return self.verdict.kept


class VoiceRewriter:
    def __init__(self, profile: AgentProfile, *, runtime: LlamaRuntime = RUNTIME, n_ctx: int = 2048):
        if profile.voice_adapter is None:
            raise ValueError(f"profile {profile.name} has no voice adapter (tiller train --stage voice)")
        self.profile = profile
        # the voice folder is a profile of its own: its adapter and the base its training.json names,
        # resolved (and a missing base reported) as the agent's is
        self.model = PreferenceAgent(
            profile_at(profile.directory / VOICE_DIR, profile.name), runtime=runtime, n_ctx=n_ctx
        )
        self.runtime = runtime

    def spec(self) -> ModelSpec:
        return self.model.spec()

    @property
    def follows_style(self) -> bool:
        """Whether this voice adapter was trained on prompts with style tags."""
        record = self.model.profile.record
        return bool(record and record.examples.get("with_style_tags"))

    def rewrite(
        self,
        draft: str,
        *,
        intent: str = "",
        sender: str | None = None,
        recipient: str | None = None,
        subject: str | None = None,
        style: tuple[str, ...] = (),
        cancel: CancelToken | None = None,
    ) -> VoiceResult:
        """``style``: the draft's tags (the ranking's choice); only an adapter trained with style
        tags is given them, since to one that never saw a "Style:" line it is noise."""
        style = style if self.follows_style else ()
        prompt = voice_prompt(draft, recipient=recipient, subject=subject, style=style)
        # an email said again is about as long as the draft: room for half as much again
        budget = 64 + int(len(draft) / 3)
        pieces = [
            text
            for text, _ in self.runtime.stream(
                self.spec(), prompt, max_tokens=budget, temperature=0.0, stop=STOP, cancel=cancel
            )
        ]
        rewrite = "".join(pieces).strip()
        if rewrite:
            verdict = check_rewrite(draft, rewrite, intent, allowed=names_in(sender, recipient))
        else:
            verdict = GuardVerdict(False, ("the whole draft",), ())
        return VoiceResult(rewrite if verdict.kept else draft, rewrite, draft, verdict)
