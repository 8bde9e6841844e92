"""Any OpenAI-compatible chat endpoint through the ``openai`` SDK: llama.cpp server, vLLM, Ollama,
LM Studio, hosted Llama providers. Several can be configured side by side under their own names.

Local servers usually need no key; when one is stored in the keyring under the endpoint's name it
is sent. The user's ``OPENAI_API_KEY`` is deliberately *not* read: it must never leak to an
arbitrary endpoint just because it is in the environment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import cast

import openai
from pydantic import Field

from app.backends import http_errors
from app.backends.base import (
    BatchOutcome,
    BatchRequest,
    BatchState,
    Event,
    Finished,
    GenerationRequest,
    Options,
    Provider,
    TextDelta,
)
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
class OpenAICompatProvider(Provider[OpenAICompatOptions]):
    id = "openai_compat"
    label = "OpenAI-compatible endpoint (llama.cpp server, vLLM, Ollama, LM Studio)"
    needs_key = False
    key_env_vars = ()
    default_model = "default"  # llama.cpp server serves whatever it loaded; vLLM/Ollama need the real name
    Options = OpenAICompatOptions

    def _client(self, options: OpenAICompatOptions) -> openai.OpenAI:
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

    def stream_once(
        self, request: GenerationRequest, options: OpenAICompatOptions, cancel: CancelToken
    ) -> Iterator[Event]:
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

    def complete_once(
        self, request: GenerationRequest, options: OpenAICompatOptions, cancel: CancelToken
    ) -> tuple[str, Finished]:
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

    # -- the Batch API (a JSONL file uploaded, POST /v1/batches), where the endpoint has it --------

    supports_batch = True
    _RUNNING = ("validating", "in_progress", "finalizing", "cancelling")

    def batch_submit(self, items: list[BatchRequest], display_name: str) -> str:
        lines = [
            json.dumps(
                {
                    "custom_id": i.custom_id,
                    "method": "POST",
                    "url": "/v1/chat/completions",
                    "body": self._params(i.request, cast(OpenAICompatOptions, i.options)),
                }
            )
            for i in items
        ]
        with self.translating_errors():
            client = self._client(self.Options())
            upload = client.files.create(file=("tiller-distill.jsonl", "\n".join(lines).encode()), purpose="batch")
            batch = client.batches.create(
                input_file_id=upload.id,
                endpoint="/v1/chat/completions",
                completion_window="24h",
                metadata={"job": display_name},
            )
        return batch.id

    def batch_state(self, batch_id: str) -> BatchState:
        with self.translating_errors():
            batch = self._client(self.Options()).batches.retrieve(batch_id)
        counts = batch.request_counts.model_dump() if batch.request_counts else {}
        state = "running" if batch.status in self._RUNNING else {"completed": "ended"}.get(batch.status, batch.status)
        error = None
        if batch.errors and batch.errors.data:
            error = "; ".join(f"{e.code}: {e.message}" for e in batch.errors.data)[:500]
        return BatchState(state, batch.status, counts, error)

    def batch_outcomes(self, batch_id: str):
        with self.translating_errors():
            client = self._client(self.Options())
            batch = client.batches.retrieve(batch_id)
            for file_id in (batch.output_file_id, batch.error_file_id):
                if not file_id:
                    continue
                for line in client.files.content(file_id).text.splitlines():
                    if line.strip():
                        yield self._outcome(json.loads(line))

    @staticmethod
    def _outcome(entry: dict) -> BatchOutcome:
        custom_id = entry.get("custom_id", "")
        response = entry.get("response") or {}
        if (entry.get("error") or {}).get("code") == "batch_expired":
            return BatchOutcome(custom_id, None, error="expired")  # not run in the window: ask again
        if entry.get("error") or response.get("status_code", 200) >= 400:
            error = entry.get("error") or (response.get("body") or {}).get("error") or response.get("status_code")
            return BatchOutcome(custom_id, None, error=f"errored: {error}")
        body = response.get("body") or {}
        choice = (body.get("choices") or [{}])[0]
        usage = body.get("usage") or {}
        finished = Finished(
            _FINISH.get(choice.get("finish_reason"), choice.get("finish_reason") or "stop"),
            usage.get("prompt_tokens"),
            usage.get("completion_tokens"),
            body.get("model"),
        )
        return BatchOutcome(custom_id, (choice.get("message") or {}).get("content") or "", finished)

    def batch_cancel(self, batch_id: str) -> None:
        with self.translating_errors():
            self._client(self.Options()).batches.cancel(batch_id)
