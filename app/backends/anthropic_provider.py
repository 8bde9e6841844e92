"""Claude through the official ``anthropic`` SDK (Messages API, SSE streaming).

The SDK's own retries are off (``max_retries=0``): the client in :mod:`app.backends.client` retries,
so every attempt goes through the ledger and Retry-After is honoured the same way for all providers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal, cast

import anthropic
from pydantic import field_validator

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

_STOP_REASONS = {"end_turn": "stop", "max_tokens": "length", "stop_sequence": "stop_sequence"}


class AnthropicOptions(Options):
    """The Messages API as of ``anthropic-version: 2026-10-21`` (SDK 2.x) takes no sampling
    parameters (temperature, top_p, top_k are gone); ``effort`` is its one quality knob."""

    effort: Literal["low", "medium", "high", "xhigh", "max"] | None = None

    @field_validator("temperature", "top_p")
    @classmethod
    def _no_sampling(cls, value, info):
        if value is not None:
            raise ValueError(
                f"Claude's current Messages API has no {info.field_name}; leave it unset (effort=low|medium|high is the knob it has)"
            )
        return value


@register
class AnthropicProvider(Provider[AnthropicOptions]):
    id = "anthropic"
    label = "Claude (Anthropic)"
    needs_key = True
    key_env_vars = ("ANTHROPIC_API_KEY",)
    default_model = "claude-sonnet-4-5"
    default_base_url = None  # the SDK's own (https://api.anthropic.com)
    Options = AnthropicOptions
    supports_temperature = False

    def _client(self, options: AnthropicOptions) -> anthropic.Anthropic:
        return anthropic.Anthropic(
            api_key=self.key,
            base_url=self.base_url,
            http_client=self.http_client,
            max_retries=0,
            timeout=options.timeout_s,
            open_telemetry=False,
        )

    def _params(self, request: GenerationRequest, options: AnthropicOptions) -> dict:
        params: dict = {
            "model": self.model,
            "max_tokens": options.max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
        if request.system:
            params["system"] = request.system
        if options.effort is not None:
            params["output_config"] = {"effort": options.effort}
        if options.stop:
            params["stop_sequences"] = list(options.stop)
        return params

    def translate_error(self, exc: BaseException) -> BackendError | None:
        name = self.endpoint.name
        if isinstance(exc, anthropic.APIStatusError):
            detail = getattr(exc, "api_message", None) or None
            return http_errors.from_status(name, exc.status_code, exc.response.headers, detail)
        if isinstance(exc, anthropic.APIConnectionError):
            return http_errors.from_transport(name, exc.__cause__ or exc) or http_errors.from_transport(
                name, ConnectionError(str(exc))
            )
        return http_errors.from_transport(name, exc)

    def stream_once(
        self, request: GenerationRequest, options: AnthropicOptions, cancel: CancelToken
    ) -> Iterator[Event]:
        params = self._params(request, options)
        with self.translating_errors():
            stream = self._client(options).messages.create(stream=True, **params)
            stop_reason, model, usage_in, usage_out = None, None, None, None
            with stream:
                for event in stream:
                    kind = event.type
                    if kind == "message_start":
                        model = event.message.model
                        usage_in = event.message.usage.input_tokens
                    elif kind == "content_block_delta" and event.delta.type == "text_delta":
                        yield TextDelta(event.delta.text)
                    elif kind == "message_delta":
                        stop_reason = event.delta.stop_reason
                        if event.usage is not None:
                            usage_out = event.usage.output_tokens
                    elif kind == "message_stop":
                        # Only this event says the message is complete; a stream that ends
                        # without it was cut, whatever text arrived.
                        yield Finished(
                            _STOP_REASONS.get(stop_reason or "", stop_reason or "stop"), usage_in, usage_out, model
                        )
                        return

    def complete_once(
        self, request: GenerationRequest, options: AnthropicOptions, cancel: CancelToken
    ) -> tuple[str, Finished]:
        with self.translating_errors():
            message = self._client(options).messages.create(**self._params(request, options))
        text = "".join(block.text for block in message.content if block.type == "text")
        reason = _STOP_REASONS.get(message.stop_reason, message.stop_reason or "stop")
        return text, Finished(reason, message.usage.input_tokens, message.usage.output_tokens, message.model)

    # -- Message Batches (POST /v1/messages/batches; results as JSONL once processing has ended) --

    supports_batch = True

    def batch_submit(self, items: list[BatchRequest], display_name: str) -> str:
        requests = [
            {"custom_id": i.custom_id, "params": self._params(i.request, cast(AnthropicOptions, i.options))}
            for i in items
        ]
        with self.translating_errors():
            return self._client(self.Options()).messages.batches.create(requests=requests).id

    def batch_state(self, batch_id: str) -> BatchState:
        with self.translating_errors():
            batch = self._client(self.Options()).messages.batches.retrieve(batch_id)
        counts = batch.request_counts.model_dump()
        # "ended" covers a batch whose 24 hours ran out too: its unfinished requests come back "expired"
        if batch.processing_status == "ended":
            state = "expired" if counts.get("expired") else "ended"
        else:
            state = "running"
        return BatchState(state, batch.processing_status, counts)

    def batch_outcomes(self, batch_id: str):
        with self.translating_errors():
            for entry in self._client(self.Options()).messages.batches.results(batch_id):
                result = entry.result
                if result.type == "succeeded":
                    message = result.message
                    text = "".join(block.text for block in message.content if block.type == "text")
                    reason = _STOP_REASONS.get(message.stop_reason, message.stop_reason or "stop")
                    finished = Finished(reason, message.usage.input_tokens, message.usage.output_tokens, message.model)
                    yield BatchOutcome(entry.custom_id, text, finished)
                elif result.type == "errored":
                    error = getattr(result.error, "error", None)
                    yield BatchOutcome(entry.custom_id, None, error=f"errored: {getattr(error, 'message', error)}")
                else:
                    yield BatchOutcome(entry.custom_id, None, error=result.type)  # expired, canceled

    def batch_cancel(self, batch_id: str) -> None:
        with self.translating_errors():
            self._client(self.Options()).messages.batches.cancel(batch_id)
