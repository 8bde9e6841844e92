"""The one call site for large-model requests: key lookup, retries, ledger, cut streams, cancel.

    gen = generate(GenerationRequest.simple(system, intent), backend="claude", cancel=token)
    for text in gen:          # text as it arrives
        show(text)
    gen.completion            # the whole answer, its finish reason and token counts

A stream that ends before the provider said it was finished raises
:class:`IncompleteResponseError` carrying the partial text: half a draft is never returned as if
complete. Failures before any text arrived (429, 5xx, connection errors, timeouts) are retried
with backoff; once text has been handed out, a failure is reported instead of silently restarting.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx

from app import paths, secrets
from app.backends.base import EndpointConfig, Finished, GenerationRequest, Options, Provider, TextDelta, parse_options
from app.backends.errors import (
    BackendError,
    Cancelled,
    ConfigError,
    IncompleteResponseError,
    MissingKeyError,
    redact,
)
from app.backends.ledger import Ledger, LedgerContext, LedgerTransport
from app.backends.registry import provider_class
from app.backends.retry import RetryPolicy
from app.jobs import CancelToken


class _CutStream(BackendError):
    """A stream ended without its end-of-answer marker before any text arrived: worth retrying."""

    retryable = True


@dataclass(frozen=True)
class _Failure:
    exc: BaseException


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str
    backend: str
    provider: str
    model: str
    input_tokens: int | None
    output_tokens: int | None
    attempts: int
    elapsed_s: float

    @property
    def hit_token_limit(self) -> bool:
        """Complete as far as the provider is concerned, but stopped by ``max_tokens``."""
        return self.finish_reason == "length"


@dataclass(frozen=True)
class RetryNotice:
    """Passed to ``on_retry`` so a UI can say "rate limited, retrying in 4 s"."""

    attempt: int
    wait_s: float
    error: BackendError


def _resolve_endpoint(backend: str | EndpointConfig | None, db_path: Path | None) -> EndpointConfig:
    if isinstance(backend, EndpointConfig):
        return backend
    from app.backends.config import default_endpoint_name, get_endpoint
    from app.store import open_database

    db = open_database(db_path)
    try:
        return get_endpoint(db, backend or default_endpoint_name(db))
    finally:
        db.conn.close()


def missing_key_message(endpoint: EndpointConfig, cls: type[Provider]) -> str:
    env = " or ".join(cls.key_env_vars)
    hint = f", or set {env}" if env else ""
    return (
        f"no API key for backend {endpoint.name!r} ({cls.label}). "
        f"Store one in the OS keyring with: tiller keys set {endpoint.name!r}{hint}"
    )


def find_key(endpoint: EndpointConfig, cls: type[Provider], explicit: str | None = None) -> str | None:
    """The endpoint's key (explicit, keyring, then the provider's environment variables)."""
    found = secrets.lookup(endpoint.name, cls.key_env_vars, explicit)
    if found is None and cls.needs_key:
        raise MissingKeyError(missing_key_message(endpoint, cls), backend=endpoint.name)
    return found.value if found else None


def ledger_http_client(
    ledger: Ledger, endpoint: EndpointConfig, cls: type[Provider], purpose: str, key: str | None, options: Options
) -> httpx.Client:
    """An httpx client whose every request is recorded in the privacy ledger before it leaves."""
    ctx = LedgerContext(
        backend=endpoint.name, provider=cls.id, model=endpoint.model or cls.default_model, purpose=purpose
    )
    transport = LedgerTransport(ledger, ctx, secrets=(key,))
    timeout = httpx.Timeout(options.timeout_s, connect=options.connect_timeout_s)
    return httpx.Client(transport=transport, timeout=timeout, follow_redirects=False)


class Generation:
    """One request to one endpoint, iterated for its text. Not thread-safe; cancel from any thread."""

    def __init__(
        self,
        request: GenerationRequest,
        endpoint: EndpointConfig,
        *,
        stream: bool = True,
        cancel: CancelToken | None = None,
        key: str | None = None,
        retry: RetryPolicy | None = None,
        db_path: Path | None = None,
        on_retry: Callable[[RetryNotice], None] | None = None,
    ):
        self.request = request
        self.endpoint = endpoint
        self.cls = provider_class(endpoint.provider)
        self.stream = stream and self.cls.can_stream
        self.cancel = cancel or CancelToken()
        self.retry = retry or RetryPolicy()
        self.db_path = Path(db_path) if db_path else paths.database_path()
        self.on_retry = on_retry
        self.completion: Completion | None = None
        self._pieces: list[str] = []  # the current attempt's text so far
        merged = {**endpoint.options, **request.options}
        self.options: Options = parse_options(self.cls.Options, merged, where=f"backend {endpoint.name!r}")
        self._key = self._find_key(key)
        self._ledger = Ledger(self.db_path) if self.cls.leaves_machine else None
        self._iterator: Iterator[str] | None = None

    @property
    def partial_text(self) -> str:
        """What the current (or last) attempt delivered so far."""
        return "".join(self._pieces)

    def _find_key(self, explicit: str | None) -> str | None:
        return find_key(self.endpoint, self.cls, explicit)

    def _http_client(self) -> httpx.Client | None:
        if self._ledger is None:
            return None
        return ledger_http_client(self._ledger, self.endpoint, self.cls, self.request.purpose, self._key, self.options)

    def __iter__(self) -> Iterator[str]:
        if self._iterator is None:
            self._iterator = self._run()
        return self._iterator

    def result(self) -> Completion:
        """Run to the end (if not already) and return the completion."""
        for _ in self:
            pass
        assert self.completion is not None
        return self.completion

    def _attempt_events(self, provider: Provider, http_client) -> Generator[object, None, None]:
        """Run one provider attempt on a helper thread and relay its events.

        The helper thread is what makes cancel immediate: a silent server can block a socket read
        for the whole timeout, but this loop wakes every 50 ms and gives up on the attempt (closing
        its client, which makes the helper's read fail soon after) as soon as cancel is pressed.
        """
        events: queue.SimpleQueue = queue.SimpleQueue()
        done = object()

        def pump() -> None:
            try:
                if self.stream:
                    for event in provider.stream_once(self.request, self.options, self.cancel):
                        events.put(event)
                        if self.cancel.cancelled:
                            break
                else:
                    text, finished = provider.complete_once(self.request, self.options, self.cancel)
                    events.put(TextDelta(text))
                    events.put(finished)
            except BaseException as exc:  # handed to the consuming thread, which raises it
                events.put(_Failure(exc))
            finally:
                events.put(done)

        worker = threading.Thread(target=pump, name=f"tiller-{self.cls.id}-request", daemon=True)
        worker.start()
        try:
            while True:
                try:
                    item = events.get(timeout=0.05)
                except queue.Empty:
                    if self.cancel.cancelled:
                        raise Cancelled("cancelled") from None
                    continue
                if item is done:
                    return
                if isinstance(item, _Failure):
                    raise item.exc
                yield item
        finally:
            if worker.is_alive() and http_client is not None:
                # Cancelled or abandoned: closing the client makes the helper's read fail; it is a
                # daemon thread and ends on its own, so nobody waits for it here.
                http_client.close()

    def _run(self) -> Iterator[str]:
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            self.cancel.raise_if_cancelled()
            self._pieces = pieces = []
            http_client = self._http_client()
            provider = self.cls(self.endpoint, self._key, http_client)
            attempt_events = self._attempt_events(provider, http_client)
            try:
                finished: Finished | None = None
                for event in attempt_events:
                    if isinstance(event, TextDelta):
                        if event.text:
                            pieces.append(event.text)
                            yield event.text
                    elif isinstance(event, Finished):
                        finished = event
                    if self.cancel.cancelled:
                        raise Cancelled("cancelled")
                if finished is None:
                    raise _CutStream(
                        f"backend {self.endpoint.name!r}: the answer stopped before the provider marked it complete",
                        backend=self.endpoint.name,
                    )
                self.completion = Completion(
                    text="".join(pieces),
                    finish_reason=finished.reason,
                    backend=self.endpoint.name,
                    provider=self.cls.id,
                    model=finished.model or provider.model,
                    input_tokens=finished.input_tokens,
                    output_tokens=finished.output_tokens,
                    attempts=attempt,
                    elapsed_s=time.monotonic() - started,
                )
                return
            except Cancelled:
                raise
            except BackendError as exc:
                if self.cancel.cancelled:
                    raise Cancelled("cancelled") from None
                self._scrub(exc)
                if pieces:  # text already went to the caller: never restart behind its back
                    raise IncompleteResponseError(
                        f"backend {self.endpoint.name!r}: the answer was cut off after {len(self.partial_text)} "
                        f"characters ({exc}); it is incomplete and was not used",
                        backend=self.endpoint.name,
                        partial_text=self.partial_text,
                        status=exc.status,
                    ) from exc
                wait = self.retry.delay(attempt, getattr(exc, "retry_after", None)) if exc.retryable else None
                if wait is None:
                    if isinstance(exc, _CutStream):
                        raise IncompleteResponseError(
                            f"{exc} (after {attempt} attempts); nothing usable arrived",
                            backend=self.endpoint.name,
                            partial_text="",
                        ) from exc
                    if exc.retryable and attempt > 1:
                        exc.args = (f"{exc.args[0]} (gave up after {attempt} attempts)",)
                    raise
                if self.on_retry:
                    self.on_retry(RetryNotice(attempt, wait, exc))
                if self.cancel.wait(wait):
                    raise Cancelled("cancelled") from None
            finally:
                attempt_events.close()
                provider.close()
                if http_client is not None:
                    http_client.close()

    def _scrub(self, exc: BaseException) -> None:
        """Belt and braces: no key in any message we pass on, even one an SDK wrote."""
        if self._key and exc.args and isinstance(exc.args[0], str):
            exc.args = (redact(exc.args[0], self._key), *exc.args[1:])


def connectivity_request() -> GenerationRequest:
    """The tiny round trip behind "test this backend" (CLI and GUI)."""
    return GenerationRequest.simple(
        "You are a connectivity check. Answer in at most five words.",
        "Reply with: ready",
        purpose="test",
        max_tokens=16,
    )


def generate(
    request: GenerationRequest,
    backend: str | EndpointConfig | None = None,
    *,
    stream: bool = True,
    cancel: CancelToken | None = None,
    key: str | None = None,
    retry: RetryPolicy | None = None,
    db_path: Path | None = None,
    on_retry: Callable[[RetryNotice], None] | None = None,
) -> Generation:
    """Start a request on ``backend`` (a configured name, an :class:`EndpointConfig`, or None for the
    default). The configuration is read now, so a switched backend applies to the very next call."""
    endpoint = _resolve_endpoint(backend, Path(db_path) if db_path else None)
    return Generation(
        request, endpoint, stream=stream, cancel=cancel, key=key, retry=retry, db_path=db_path, on_retry=on_retry
    )


def complete(request: GenerationRequest, backend: str | EndpointConfig | None = None, **kwargs) -> Completion:
    """The whole answer at once, through the provider's non-streaming call (safe to retry)."""
    kwargs.setdefault("stream", False)
    return generate(request, backend, **kwargs).result()


__all__ = ["Completion", "ConfigError", "Generation", "RetryNotice", "complete", "generate"]
