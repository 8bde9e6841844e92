"""llama.cpp in-process as a large-model backend: nothing leaves the machine.

The default model is the embedded Qwen2.5-Coder-1.5B-Instruct (or whichever model the user chose
for the drafting role, ``tiller models use drafting NAME``). A model whose GGUF carries a chat
template is prompted through that template, as it was trained; only a base model without one
(Gemma 3 270M base, or any GGUF configured as ``--model /path/to/model.gguf``) is prompted
completion-style with a worked example, and a base model is a preview, not a large model.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path

from pydantic import Field

from app.agent.runtime import RUNTIME, ModelSpec
from app.backends.base import Event, Finished, GenerationRequest, Message, Options, Provider, TextDelta
from app.backends.errors import ConfigError, IncompleteResponseError
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


def chat_messages(request: GenerationRequest) -> list[dict]:
    """The request as chat turns for a model's own template."""
    turns = [{"role": "system", "content": request.system}] if request.system.strip() else []
    return turns + [{"role": m.role, "content": m.content} for m in request.messages]


ANSWER_RESERVE = 512  # prompt tokens are cut before the answer gets less room than this
CUT_MARK = " […cut to fit the model's context]"
_QUOTED = re.compile(r"(<email_being_answered>\n)(.*?)(\n</email_being_answered>)", re.S)


def _shorten(text: str, chars: int) -> str:
    """``text`` less about ``chars`` characters from its end, cut at a word, marked as cut."""
    keep = max(0, len(text) - chars - len(CUT_MARK))
    return text[:keep].rsplit(" ", 1)[0].rstrip() + CUT_MARK


def fit_request(
    request: GenerationRequest, count: Callable[[GenerationRequest], int], budget: int
) -> GenerationRequest:
    """``request`` cut to at most ``budget`` prompt tokens (``count`` renders and counts one).

    A long email being answered is what overflows a small model's context (a 2,048-token
    window holds about 6,000 characters): its quoted text is shortened first, keeping its
    beginning (the newest message of a thread). A request with no quoted email, or one still too
    long, has its longest message cut in the middle, which can shorten the intent or the rules
    themselves: only a request far over the window gets there (the app's own prompts fit without
    a quoted email). Raises ValueError when even that cannot fit."""
    for _ in range(12):
        tokens = count(request)
        if tokens <= budget:
            return request
        excess_chars = (tokens - budget) * 4 + 64  # about 4 characters a token; a margin for the estimate
        messages = list(request.messages)
        quoted = [
            (i, m, found)
            for i, m in enumerate(messages)
            if (found := _QUOTED.search(m.content)) and len(found.group(2)) > len(CUT_MARK) + 40
        ]
        if quoted:
            i, m, found = quoted[0]
            content = m.content[: found.start(2)] + _shorten(found.group(2), excess_chars) + m.content[found.end(2) :]
        else:
            i, m = max(enumerate(messages), key=lambda pair: len(pair[1].content))
            if len(m.content) <= excess_chars + 200:
                break
            content = _shorten(m.content, excess_chars)
        messages[i] = Message(m.role, content)
        request = GenerationRequest(request.system, tuple(messages), options=request.options, purpose=request.purpose)
    raise ValueError(f"the prompt does not fit the model's context of {budget} tokens for the prompt, even cut down")


def _drafting_model_path() -> Path:
    """The model chosen for the drafting role (the embedded instruct model unless changed)."""
    from app.model_files import model_for_role, model_path
    from app.store import open_database

    db = open_database()
    try:
        return model_path(db, model_for_role(db, "drafting"))
    finally:
        db.conn.close()


class LocalOptions(Options):
    seed: int | None = None
    repeat_penalty: float = Field(1.1, ge=0.5, le=2.0)
    n_ctx: int = Field(2048, ge=256, le=131072)
    json_schema: dict | None = Field(None, description="decode under llama.cpp's grammar for this JSON schema")


@register
class LocalProvider(Provider[LocalOptions]):
    id = "local"
    label = "On this computer (llama.cpp; the embedded Qwen2.5-Coder-1.5B-Instruct by default)"
    needs_key = False
    leaves_machine = False
    default_model = EMBEDDED
    Options = LocalOptions

    def _spec(self, options: LocalOptions) -> ModelSpec:
        from app.model_files import EMBEDDED_MODELS, embedded_model

        if self.model == EMBEDDED:
            return ModelSpec.of(_drafting_model_path(), n_ctx=options.n_ctx)
        if self.model in EMBEDDED_MODELS:
            return ModelSpec.of(embedded_model(self.model), n_ctx=options.n_ctx)
        path = Path(self.model or "").expanduser()  # a model is set: Provider.__init__ refuses none
        if not path.is_file():
            raise ConfigError(
                f"backend {self.endpoint.name!r}: model file not found: {path}", backend=self.endpoint.name
            )
        return ModelSpec.of(path, n_ctx=options.n_ctx)

    def _render(self, spec: ModelSpec, request: GenerationRequest, options: LocalOptions) -> tuple[str, list[str]]:
        chat = RUNTIME.chat_prompt(spec, chat_messages(request))
        if chat is not None:
            return chat[0], [*chat[1], *options.stop]
        return completion_prompt(request), [END, "\nRequest:", *options.stop]

    def stream_once(self, request: GenerationRequest, options: LocalOptions, cancel: CancelToken) -> Iterator[Event]:
        spec = self._spec(options)
        budget = spec.n_ctx - min(options.max_tokens or ANSWER_RESERVE, ANSWER_RESERVE)
        rendered: dict[int, tuple] = {}  # the prompt fit_request counted last is the one sent: rendered once

        def count(candidate: GenerationRequest) -> int:
            rendered[id(candidate)] = self._render(spec, candidate, options)
            return RUNTIME.count_tokens(spec, rendered[id(candidate)][0])

        request = fit_request(request, count, budget)
        prompt, stop = rendered.get(id(request)) or self._render(spec, request, options)
        reason = None
        started = False
        for text, finish in RUNTIME.stream(
            spec,
            prompt,
            max_tokens=options.max_tokens,
            temperature=options.temperature if options.temperature is not None else 0.7,
            top_p=options.top_p if options.top_p is not None else 0.95,
            stop=stop,
            seed=options.seed,
            repeat_penalty=options.repeat_penalty,
            json_schema=options.json_schema,
            cancel=cancel,
        ):
            if not started:  # the model continues "Response:" with a space
                text = text.lstrip()
                started = bool(text)
            if text:
                yield TextDelta(text)
            reason = finish or reason
        yield Finished(reason or "stop", model=Path(spec.model_path).name)

    def complete_once(
        self, request: GenerationRequest, options: LocalOptions, cancel: CancelToken
    ) -> tuple[str, Finished]:
        text, finished = [], None
        for event in self.stream_once(request, options, cancel):
            if isinstance(event, TextDelta):
                text.append(event.text)
            else:
                finished = event
        if finished is None:  # stream_once always ends with Finished; never pass a cut answer off as whole
            raise IncompleteResponseError("the local model stopped without finishing", partial_text="".join(text))
        return "".join(text).strip(), finished
