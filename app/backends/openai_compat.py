"""Any OpenAI-compatible chat endpoint through the ``openai`` SDK: llama.cpp server, vLLM, Ollama,
LM Studio, hosted Llama providers. Several can be configured side by side under their own names.

Local servers usually need no key; when one is stored in the keyring under the endpoint's name it
is sent. The user's ``OPENAI_API_KEY`` is deliberately *not* read: it must never leak to an
arbitrary endpoint just because it is in the environment.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
from pydantic import Field

from app.backends import http_errors
from app.backends.base import Event, Finished, GenerationRequest, Options, Provider, TextDelta
from app.backends.errors import BackendError
from app.backends.registry import register
from app.jobs import CancelToken

_FINISH = {"stop": "stop", "length": "length"}
NO_KEY = "no-key"  # the SDK insists on some key; local servers ignore it


class OpenAICompatOptions(Options):
    seed: int | None = None
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)


@register
class OpenAICompatProvider(Provider):
    id = "openai_compat"
    label = "OpenAI-compatible endpoint (llama.cpp server, vLLM, Ollama, LM Studio)"
    needs_key = False
    key_env_vars = ()
    default_model = "default"  # llama.cpp server serves whatever it loaded; vLLM/Ollama need the real name
    Options = OpenAICompatOptions

    def _client(self, options: Options) -> openai.OpenAI:
        return openai.OpenAI(
            api_key=self.key or NO_KEY,
            base_url=self.base_url,
            http_client=self.http_client,
            max_retries=0,
            timeout=options.timeout_s,
        )

    def _params(self, request: GenerationRequest, options: OpenAICompatOptions) -> dict:
        messages = [{"role": "system", "content": request.system}] if request.system else []
        messages += [{"role": m.role, "content": m.content} for m in request.messages]
        params: dict = {"model": self.model, "messages": messages, "max_tokens": options.max_tokens}
        for name in ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty"):
            value = getattr(options, name)
            if value is not None:
                params[name] = value
        if options.stop:
            params["stop"] = list(options.stop)
        return params

    def translate_error(self, exc: BaseException) -> BackendError | None:
        name = self.endpoint.name
        if isinstance(exc, openai.APIStatusError):
            return http_errors.from_status(name, exc.status_code, exc.response.headers, getattr(exc, "message", None))
        if isinstance(exc, openai.APIConnectionError):
            return http_errors.from_transport(name, exc.__cause__ or exc) or http_errors.from_transport(
                name, ConnectionError(str(exc))
            )
        return http_errors.from_transport(name, exc)

    def stream_once(self, request: GenerationRequest, options: Options, cancel: CancelToken) -> Iterator[Event]:
        with self.translating_errors():
            stream = self._client(options).chat.completions.create(stream=True, **self._params(request, options))
            with stream:
                finished = None
                for chunk in stream:
                    if not chunk.choices:
                        continue
                    choice = chunk.choices[0]
                    if choice.delta and choice.delta.content:
                        yield TextDelta(choice.delta.content)
                    if choice.finish_reason:
                        usage = chunk.usage
                        finished = Finished(
                            _FINISH.get(choice.finish_reason, choice.finish_reason),
                            usage.prompt_tokens if usage else None,
                            usage.completion_tokens if usage else None,
                            chunk.model,
                        )
                # A finish_reason says the answer is complete; a stream that ends without one was cut.
                if finished is not None:
                    yield finished

    def complete_once(self, request: GenerationRequest, options: Options, cancel: CancelToken) -> tuple[str, Finished]:
        with self.translating_errors():
            response = self._client(options).chat.completions.create(**self._params(request, options))
        choice = response.choices[0]
        usage = response.usage
        return choice.message.content or "", Finished(
            _FINISH.get(choice.finish_reason, choice.finish_reason or "stop"),
            usage.prompt_tokens if usage else None,
            usage.completion_tokens if usage else None,
            response.model,
        )
