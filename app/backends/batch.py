"""A provider's batch service behind one small class: submit many requests at once, look at the
batch later (from another process, after the app was closed), collect the outcomes.

Every HTTP request goes through the same ledger-recording client as a single generation, so an
upload of a thousand emails is in the privacy ledger like one draft is. The provider modules do the
translation (Anthropic Message Batches, Gemini batch mode, the OpenAI-compatible Batch API).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from app import paths
from app.backends.base import (
    BatchOutcome,
    BatchRequest,
    BatchState,
    EndpointConfig,
    GenerationRequest,
    Provider,
    parse_options,
)
from app.backends.client import find_key, ledger_http_client
from app.backends.errors import BackendError, ConfigError
from app.backends.ledger import Ledger
from app.backends.registry import provider_class


class BatchUnsupported(ConfigError):
    """The endpoint's provider (or this endpoint) has no batch service."""


def batch_provider_class(endpoint: EndpointConfig) -> type[Provider]:
    """The endpoint's provider class, or BatchUnsupported when it has no batch service."""
    cls = provider_class(endpoint.provider)
    if not cls.supports_batch or not cls.leaves_machine:
        raise BatchUnsupported(f"backend {endpoint.name!r} ({cls.label}) has no batch service; distill without --batch")
    return cls


class BatchClient:
    """One endpoint's batch service. Use as a context manager (it holds an HTTP client)."""

    def __init__(self, endpoint: EndpointConfig, *, purpose: str = "distill", db_path: Path | None = None, key=None):
        self.endpoint = endpoint
        self.cls = batch_provider_class(endpoint)
        self.options = parse_options(self.cls.Options, dict(endpoint.options), where=f"backend {endpoint.name!r}")
        key = find_key(endpoint, self.cls, key)
        db_path = Path(db_path) if db_path else paths.database_path()
        self.http = ledger_http_client(Ledger(db_path), endpoint, self.cls, purpose, key, self.options)
        self.provider = self.cls(endpoint, key, self.http)

    def __enter__(self) -> BatchClient:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.provider.close()
        self.http.close()

    def item(self, custom_id: str, request: GenerationRequest) -> BatchRequest:
        """``request`` as a batch item, its options checked like a single request's."""
        options = parse_options(
            self.cls.Options, {**self.endpoint.options, **request.options}, where=f"backend {self.endpoint.name!r}"
        )
        return BatchRequest(custom_id, request, options)

    def submit(self, items: list[BatchRequest], display_name: str) -> str:
        try:
            return self.provider.batch_submit(items, display_name)
        except BackendError as exc:
            if exc.status in (404, 405):
                raise BatchUnsupported(
                    f"backend {self.endpoint.name!r} answered that it has no batch endpoint ({exc}); "
                    "distill without --batch"
                ) from None
            raise

    def state(self, batch_id: str) -> BatchState:
        return self.provider.batch_state(batch_id)

    def outcomes(self, batch_id: str) -> Iterator[BatchOutcome]:
        return self.provider.batch_outcomes(batch_id)

    def cancel(self, batch_id: str) -> None:
        self.provider.batch_cancel(batch_id)
