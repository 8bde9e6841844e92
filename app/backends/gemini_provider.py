"""Gemini through the ``google-genai`` SDK (generateContent / streamGenerateContent over SSE).

``google-generativeai`` is end-of-life; this is its successor. The SDK's retries are switched off
(one attempt) so :mod:`app.backends.client` owns retries, and it is handed our ledger-recording
httpx2 client.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from google import genai
from google.genai import errors as genai_errors
from google.genai import types
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
from app.backends.errors import BackendConnectionError, BackendError
from app.backends.ledger import shared_tls_context
from app.backends.registry import register
from app.jobs import CancelToken

_FINISH = {"STOP": "stop", "MAX_TOKENS": "length"}


class GeminiOptions(Options):
    top_k: int | None = Field(None, ge=1)


@register
class GeminiProvider(Provider[GeminiOptions]):
    id = "gemini"
    label = "Gemini (Google)"
    needs_key = True
    key_env_vars = ("GEMINI_API_KEY", "GOOGLE_API_KEY")
    default_model = "gemini-2.5-flash"
    Options = GeminiOptions

    def _client(self, options: GeminiOptions) -> genai.Client:
        # Unless given one, the SDK builds two TLS contexts for every client (one for its httpx
        # clients, one for websockets), each reading the CA bundle: 29 ms of CPU each, on every
        # request. "ssl" is the websocket's name for it.
        tls = shared_tls_context()
        http_options = types.HttpOptions(
            base_url=self.base_url,
            timeout=int(options.timeout_s * 1000),
            retry_options=types.HttpRetryOptions(attempts=1),
            httpx_client=self.http_client,
            client_args={"verify": tls},
            async_client_args={"verify": tls, "ssl": tls},
        )
        return genai.Client(api_key=self.key, http_options=http_options)

    def _contents_and_config(self, request: GenerationRequest, options: GeminiOptions):
        contents = [
            types.Content(role="model" if m.role == "assistant" else "user", parts=[types.Part(text=m.content)])
            for m in request.messages
        ]
        config = types.GenerateContentConfig(
            system_instruction=request.system or None,
            temperature=options.temperature,
            top_p=options.top_p,
            top_k=options.top_k,
            max_output_tokens=options.max_tokens,
            stop_sequences=list(options.stop) or None,
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
        )
        return contents, config

    def translate_error(self, exc: BaseException) -> BackendError | None:
        name = self.endpoint.name
        if isinstance(exc, genai_errors.UnknownApiResponseError):
            return BackendConnectionError(
                f"backend {name!r}: the response was garbled ({str(exc)[:120]})", backend=name
            )
        if isinstance(exc, genai_errors.APIError):
            response = getattr(exc, "response", None)
            headers = getattr(response, "headers", None)
            return http_errors.from_status(name, int(exc.code or 0), headers, exc.message)
        return http_errors.from_transport(name, exc)

    @staticmethod
    def _chunk_text(chunk) -> str:
        # chunk.text warns on non-text parts (thoughts, calls); collect text parts ourselves.
        if not chunk.candidates or not chunk.candidates[0].content or not chunk.candidates[0].content.parts:
            return ""
        return "".join(p.text for p in chunk.candidates[0].content.parts if p.text and not p.thought)

    @staticmethod
    def _finish(chunk, model: str) -> Finished | None:
        if not chunk.candidates or chunk.candidates[0].finish_reason is None:
            return None
        raw = chunk.candidates[0].finish_reason
        raw = raw.value if hasattr(raw, "value") else str(raw)
        usage = chunk.usage_metadata
        return Finished(
            _FINISH.get(raw, raw.lower()),
            usage.prompt_token_count if usage else None,
            usage.candidates_token_count if usage else None,
            chunk.model_version or model,
        )

    def stream_once(self, request: GenerationRequest, options: GeminiOptions, cancel: CancelToken) -> Iterator[Event]:
        contents, config = self._contents_and_config(request, options)
        with self.translating_errors():
            finished = None
            for chunk in self._client(options).models.generate_content_stream(
                model=self.model, contents=contents, config=config
            ):
                text = self._chunk_text(chunk)
                if text:
                    yield TextDelta(text)
                finished = self._finish(chunk, self.model) or finished
            # The last chunk of a complete answer carries finishReason; without it the stream was cut.
            if finished is not None:
                yield finished

    def complete_once(
        self, request: GenerationRequest, options: GeminiOptions, cancel: CancelToken
    ) -> tuple[str, Finished]:
        contents, config = self._contents_and_config(request, options)
        with self.translating_errors():
            response = self._client(options).models.generate_content(model=self.model, contents=contents, config=config)
        finished = self._finish(response, self.model) or Finished("stop", model=self.model)
        return self._chunk_text(response), finished

    # -- batch mode (models/{model}:batchGenerateContent with inline requests) -------------------

    supports_batch = True
    _STATES = {
        "JOB_STATE_QUEUED": "running",
        "JOB_STATE_PENDING": "running",
        "JOB_STATE_RUNNING": "running",
        "JOB_STATE_SUCCEEDED": "ended",
        "JOB_STATE_FAILED": "failed",
        "JOB_STATE_CANCELLED": "cancelled",
        "JOB_STATE_EXPIRED": "expired",
    }

    def batch_submit(self, items: list[BatchRequest], display_name: str) -> str:
        src = []
        for item in items:
            contents, config = self._contents_and_config(item.request, cast(GeminiOptions, item.options))
            config.automatic_function_calling = None  # not a field a batch request takes
            src.append(types.InlinedRequest(contents=contents, config=config, metadata={"key": item.custom_id}))
        with self.translating_errors():
            job = self._client(self.Options()).batches.create(
                model=self.model, src=src, config=types.CreateBatchJobConfig(display_name=display_name)
            )
        return job.name

    def batch_state(self, batch_id: str) -> BatchState:
        with self.translating_errors():
            job = self._client(self.Options()).batches.get(name=batch_id)
        raw = job.state.value if hasattr(job.state, "value") else str(job.state)
        error = job.error.message if getattr(job, "error", None) else None
        done = len(job.dest.inlined_responses or []) if job.dest else 0
        return BatchState(self._STATES.get(raw, "running"), raw, {"responses": done}, error)

    def batch_outcomes(self, batch_id: str):
        with self.translating_errors():
            job = self._client(self.Options()).batches.get(name=batch_id)
        for response in (job.dest.inlined_responses or []) if job.dest else []:
            key = (response.metadata or {}).get("key", "")
            if response.error is not None or response.response is None:
                yield BatchOutcome(key, None, error=f"errored: {getattr(response.error, 'message', response.error)}")
                continue
            finished = self._finish(response.response, self.model) or Finished("stop", model=self.model)
            yield BatchOutcome(key, self._chunk_text(response.response), finished)

    def batch_cancel(self, batch_id: str) -> None:
        with self.translating_errors():
            self._client(self.Options()).batches.cancel(name=batch_id)
