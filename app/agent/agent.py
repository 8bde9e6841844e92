"""The preference agent at drafting time: intent + metadata -> preference rules, on this computer.

It prompts the base model plus the profile's LoRA adapter with exactly the template it was trained
on (:mod:`app.agent.template`) and decodes greedily, so the same intent gives the same rules. The
prompt's fixed head ("### Email to write", the recipient line) is the same for consecutive requests,
so llama.cpp reuses its evaluated prefix.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.agent.profiles import AgentProfile, find_profile
from app.agent.runtime import RUNTIME, LlamaRuntime, ModelSpec
from app.agent.template import STOP, agent_prompt, parse_rules
from app.jobs import CancelToken
from app.model_files import embedded_base_model

MAX_RULE_TOKENS = 256


@dataclass(frozen=True)
class RulesRequest:
    intent: str
    recipient: str | None = None
    subject: str | None = None
    previous_context: str | None = None

    def __post_init__(self):
        if not self.intent.strip():
            raise ValueError("the intent is empty: say what the email should tell the recipient")

    def prompt(self) -> str:
        return agent_prompt(
            self.intent, recipient=self.recipient, subject=self.subject, previous_context=self.previous_context
        )


class PreferenceAgent:
    def __init__(
        self,
        profile: AgentProfile | None = None,
        *,
        base_model: Path | None = None,
        runtime: LlamaRuntime = RUNTIME,
        n_ctx: int = 2048,
    ) -> None:
        self.profile = profile
        base = base_model or (profile.base_model if profile and profile.base_model else None)
        if base is not None and not Path(base).is_file():
            raise FileNotFoundError(
                f"the agent's base model is missing: {base} (profile {profile.name if profile else '-'}); retrain or restore it"
            )
        self.base_model = Path(base) if base else embedded_base_model()
        self.runtime = runtime
        self.n_ctx = n_ctx

    @classmethod
    def for_sender(cls, sender: str | None, **kwargs) -> PreferenceAgent:
        return cls(find_profile(sender), **kwargs)

    @property
    def adapter(self) -> Path | None:
        return self.profile.adapter if self.profile and self.profile.trained else None

    def spec(self) -> ModelSpec:
        return ModelSpec.of(self.base_model, self.adapter, n_ctx=self.n_ctx)

    def stream_rules(
        self, request: RulesRequest, *, cancel: CancelToken | None = None, max_tokens: int = MAX_RULE_TOKENS
    ) -> Iterator[str]:
        """Yield the rules text as it is generated (greedy; stops at the trained end marker)."""
        for text, _finish in self.runtime.stream(
            self.spec(), request.prompt(), max_tokens=max_tokens, temperature=0.0, stop=STOP, cancel=cancel
        ):
            if text:
                yield text

    def rules(
        self, request: RulesRequest, *, cancel: CancelToken | None = None, max_tokens: int = MAX_RULE_TOKENS
    ) -> list[str]:
        return parse_rules("".join(self.stream_rules(request, cancel=cancel, max_tokens=max_tokens)))
