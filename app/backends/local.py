"""llama.cpp in-process as a large-model backend: nothing leaves the machine.

The default model is the embedded Gemma 3 270M *base* model. It has no chat template and was
never instruction-tuned, so it is prompted completion-style with a worked example, and it is
labelled a preview: it keeps Tiller usable offline, it does not write like a real large model.
Any other GGUF file can be configured as the model (``--model /path/to/model.gguf``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from pydantic import Field

from app.agent.runtime import RUNTIME, ModelSpec
from app.backends.base import Event, Finished, GenerationRequest, Options, Provider, TextDelta
from app.backends.errors import ConfigError
from app.backends.registry import register
from app.jobs import CancelToken

EMBEDDED = "embedded"
END = "### End"

# One worked example: a base model continues the pattern it sees. Written for this project.
_EXAMPLE = (
    "Request: Write a short email to Sam saying the budget review moved to Thursday at 3pm.\n"
    "Response: Hi Sam,\n\nThe budget review has moved to Thursday at 3pm, same room. "
    "Let me know if that clashes with anything.\n\nThanks,\nAlex\n"
    f"{END}\n\n"
)


def completion_prompt(request: GenerationRequest) -> str:
    """Chat turns flattened into the Request/Response pattern the base model continues."""
    parts = [request.system.strip() + "\n\n" if request.system.strip() else "", _EXAMPLE]
    for message in request.messages:
        if message.role == "user":
            parts.append(f"Request: {message.content.strip()}\n")
        else:
            parts.append(f"Response: {message.content.strip()}\n{END}\n\n")
    parts.append("Response:")
    return "".join(parts)


class LocalOptions(Options):
    seed: int | None = None
    repeat_penalty: float = Field(1.1, ge=0.5, le=2.0)
    n_ctx: int = Field(2048, ge=256, le=131072)


@register
class LocalProvider(Provider):
    id = "local"
    label = "On this computer (llama.cpp; the embedded Gemma 3 270M is an offline preview)"
    needs_key = False
    leaves_machine = False
    default_model = EMBEDDED
    Options = LocalOptions

    def _spec(self, options: LocalOptions) -> ModelSpec:
        if self.model == EMBEDDED:
            from app.models import embedded_base_model

            return ModelSpec.of(embedded_base_model(), n_ctx=options.n_ctx)
        path = Path(self.model).expanduser()
        if not path.is_file():
            raise ConfigError(f"backend {self.endpoint.name!r}: model file not found: {path}", backend=self.endpoint.name)
        return ModelSpec.of(path, n_ctx=options.n_ctx)

    def stream_once(self, request: GenerationRequest, options: Options, cancel: CancelToken) -> Iterator[Event]:
        spec = self._spec(options)
        stop = [END, "\nRequest:", *options.stop]
        reason = None
        started = False
        for text, finish in RUNTIME.stream(
            spec,
            completion_prompt(request),
            max_tokens=options.max_tokens,
            temperature=options.temperature if options.temperature is not None else 0.7,
            top_p=options.top_p if options.top_p is not None else 0.95,
            stop=stop,
            seed=options.seed,
            repeat_penalty=options.repeat_penalty,
            cancel=cancel,
        ):
            if not started:  # the model continues "Response:" with a space
                text = text.lstrip()
                started = bool(text)
            if text:
                yield TextDelta(text)
            reason = finish or reason
        yield Finished(reason or "stop", model=Path(spec.model_path).name)

    def complete_once(self, request: GenerationRequest, options: Options, cancel: CancelToken) -> tuple[str, Finished]:
        text, finished = [], None
        for event in self.stream_once(request, options, cancel):
            if isinstance(event, TextDelta):
                text.append(event.text)
            else:
                finished = event
        return "".join(text).strip(), finished
