"""The one small interface every large-model provider implements.

A provider is a class with a few class attributes (``id``, ``needs_key``, ``key_env_vars``,
``can_stream``, its strict ``Options``) and two methods that make *one attempt* at a request:
``stream_once`` yields :class:`TextDelta` events and ends with a :class:`Finished` event, and
``complete_once`` returns the whole answer. Everything shared (key lookup, retries with backoff,
the privacy ledger, cut-stream detection, cancellation) lives in :mod:`app.backends.client`, so a
provider module stays a thin translation between our request and one SDK.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.backends.errors import BackendError, ConfigError
from app.jobs import CancelToken


class Options(BaseModel):
    """Generation options every provider accepts. Unknown fields are an error, not silently dropped:
    a typo like ``temprature`` must not quietly produce a different draft."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    temperature: float | None = Field(None, ge=0.0, le=2.0)
    max_tokens: int = Field(1024, ge=1, le=200_000)
    stop: list[str] = Field(default_factory=list, max_length=4)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    timeout_s: float = Field(60.0, gt=0, le=3600, description="longest wait for the next bytes of an answer")
    connect_timeout_s: float = Field(10.0, gt=0, le=300)

    @field_validator("stop")
    @classmethod
    def _no_empty_stop(cls, value: list[str]) -> list[str]:
        if any(not s for s in value):
            raise ValueError("stop sequences must not be empty")
        return value


def parse_options(options_cls: type[Options], values: dict[str, Any], *, where: str) -> Options:
    """Validate ``values`` against a provider's options model, with an error naming ``where``."""
    try:
        return options_cls(**values)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'options'}: {err['msg']}" for err in exc.errors()
        )
        allowed = ", ".join(options_cls.model_fields)
        raise ConfigError(f"{where}: invalid options ({problems}). Allowed: {allowed}") from None


@dataclass(frozen=True)
class Message:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate. ``options`` are per-request overrides of the endpoint's defaults.
    ``purpose`` (draft, distill, test, eval) is recorded in the privacy ledger."""

    system: str
    messages: tuple[Message, ...]
    options: dict[str, Any] = field(default_factory=dict)
    purpose: str = "draft"

    @classmethod
    def simple(cls, system: str, user: str, purpose: str = "draft", **options: Any) -> GenerationRequest:
        return cls(system=system, messages=(Message("user", user),), options=options, purpose=purpose)


@dataclass(frozen=True)
class EndpointConfig:
    """A named endpoint the user configured ("work vLLM", "claude"). Holds no key, ever."""

    name: str
    provider: str
    model: str | None = None
    base_url: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Finished:
    """The provider said the answer is complete. ``reason`` is normalized: stop, length, stop_sequence,
    or the provider's own word when it is something else (e.g. safety)."""

    reason: str
    input_tokens: int | None = None
    output_tokens: int | None = None
    model: str | None = None


Event = TextDelta | Finished


# -- batch services (Anthropic Message Batches, Gemini batch mode, the OpenAI Batch API) ------------


@dataclass(frozen=True)
class BatchRequest:
    """One request of a batch; ``custom_id`` says what it is for (letters, digits, - and _ only)."""

    custom_id: str
    request: GenerationRequest
    options: Options


@dataclass(frozen=True)
class BatchState:
    """Where a batch is. ``state``: running (still being worked on), ended (results ready),
    expired (its time window passed: the finished part can be collected), failed, cancelled."""

    state: str
    provider_state: str  # the provider's own word
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def collectable(self) -> bool:
        return self.state in ("ended", "expired", "cancelled")


@dataclass(frozen=True)
class BatchOutcome:
    """One request's result: its text, or why there is none (errored, expired, cancelled)."""

    custom_id: str
    text: str | None
    finished: Finished | None = None
    error: str | None = None


# The options a provider's methods take: each provider narrows it to its own options model
# (``class AnthropicProvider(Provider[AnthropicOptions])``).
OptionsT = TypeVar("OptionsT", bound=Options)


class Provider(Generic[OptionsT]):
    """Base class of providers. Subclasses set the class attributes and implement the two methods."""

    id: ClassVar[str]
    label: ClassVar[str]
    needs_key: ClassVar[bool] = True
    key_env_vars: ClassVar[tuple[str, ...]] = ()
    can_stream: ClassVar[bool] = True
    supports_temperature: ClassVar[bool] = True  # False: the API has no sampling temperature (Claude today)
    leaves_machine: ClassVar[bool] = True  # False only for in-process models
    default_model: ClassVar[str | None] = None
    default_base_url: ClassVar[str | None] = None
    Options: ClassVar[type[Options]] = Options

    def __init__(self, endpoint: EndpointConfig, key: str | None, http_client=None):
        self.endpoint = endpoint
        self.key = key
        self.http_client = http_client  # an httpx.Client whose transport writes the ledger; None for in-process
        model = endpoint.model or self.default_model
        if not model:
            raise ConfigError(f"backend {endpoint.name!r}: no model set (tiller backends add … --model NAME)")
        self.model: str = model

    @property
    def base_url(self) -> str | None:
        return self.endpoint.base_url or self.default_base_url

    def stream_once(self, request: GenerationRequest, options: OptionsT, cancel: CancelToken) -> Iterator[Event]:
        """One streaming attempt. Yields text deltas, then exactly one :class:`Finished` when the
        provider marked the answer complete. Ending without it means the stream was cut."""
        raise NotImplementedError

    def complete_once(self, request: GenerationRequest, options: OptionsT, cancel: CancelToken) -> tuple[str, Finished]:
        """One non-streaming attempt."""
        raise NotImplementedError

    # A provider with a batch service sets supports_batch and implements these four.
    supports_batch: ClassVar[bool] = False

    def batch_submit(self, items: list[BatchRequest], display_name: str) -> str:
        """Submit ``items`` as one batch; returns the provider's batch id."""
        raise NotImplementedError

    def batch_state(self, batch_id: str) -> BatchState:
        raise NotImplementedError

    def batch_outcomes(self, batch_id: str) -> Iterator[BatchOutcome]:
        """Every request's outcome, once :meth:`batch_state` is collectable."""
        raise NotImplementedError

    def batch_cancel(self, batch_id: str) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the provider holds (the client's sockets)."""

    def translate_error(self, exc: BaseException) -> BackendError | None:
        """The :mod:`app.backends.errors` error for an SDK's exception, or None to let it through."""
        return None

    @contextmanager
    def translating_errors(self):
        """Around SDK calls (and stream loops): SDK exceptions leave as our errors."""
        try:
            yield
        except BackendError:
            raise
        except Exception as exc:
            mapped = self.translate_error(exc)
            if mapped is None:
                raise
            raise mapped from exc
