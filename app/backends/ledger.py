"""The privacy ledger: a local record of every request that leaves the machine.

Recording happens at the HTTP transport, under the provider SDKs, so what is stored is the body
that was actually sent, not our idea of it. The row is written *before* the request goes out and
completed when the answer ends, so neither a crash nor an exception can hide a request.
Authorization headers are dropped and key-like query parameters redacted: the ledger never holds a key.
"""

from __future__ import annotations

import functools
import json
import os
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx2 as httpx

from app import paths
from app.backends.errors import redact
from app.store.ledger import LedgerTable

SECRET_HEADERS = frozenset(
    {"authorization", "x-api-key", "x-goog-api-key", "api-key", "proxy-authorization", "cookie", "set-cookie"}
)
SECRET_QUERY_PARAMS = frozenset({"key", "api_key", "apikey", "access_token", "token"})


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if not parts.query:
        return url
    query = [
        (k, "[redacted]" if k.lower() in SECRET_QUERY_PARAMS else v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def safe_headers(headers) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower() not in SECRET_HEADERS}


@dataclass(frozen=True)
class LedgerContext:
    """Who is sending: stamped on every row a transport writes."""

    backend: str
    provider: str
    model: str | None
    purpose: str


class Ledger(LedgerTable):
    """The ledger of requests that left: each row redacted here (no key in a URL, header or body)
    before :class:`app.store.ledger.LedgerTable` stores it."""

    def __init__(self, db_path: Path | str | None = None):
        super().__init__(Path(db_path) if db_path is not None else paths.database_path())

    def record_request(self, ctx: LedgerContext, method: str, url: str, headers, body: bytes, secrets=()) -> int:
        return self.insert_sent(
            backend=ctx.backend,
            provider=ctx.provider,
            model=ctx.model,
            purpose=ctx.purpose,
            method=method,
            url=redact(redact_url(url), *secrets),
            request_headers=redact(json.dumps(safe_headers(headers)), *secrets),
            request_bytes=len(body),
            request_payload=redact(body.decode("utf-8", errors="replace"), *secrets),
        )


def finish_not_http(ledger: LedgerTable, row_id: int, started: float, error: str | None) -> None:
    """Complete the row of something that left without HTTP (an IMAP APPEND, an MCP tool's answer):
    no status, nothing received back; ``started`` is ``time.monotonic()`` when it began."""
    ledger.finish(
        row_id,
        status=None,
        response_bytes=0,
        duration_s=time.monotonic() - started,
        outcome="refused" if error else "ok",
        error=error,
    )


class _CountingStream(httpx.SyncByteStream):
    """Passes the response body through, counting its bytes; completes the ledger row on close."""

    def __init__(self, inner, on_done):
        self._inner = inner
        self._on_done = on_done
        self._bytes = 0
        self._error: str | None = None
        self._done = False

    def __iter__(self):
        try:
            for chunk in self._inner:
                self._bytes += len(chunk)
                yield chunk
        except BaseException as exc:
            self._error = f"{type(exc).__name__}: {exc}"
            raise

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            if not self._done:
                self._done = True
                self._on_done(self._bytes, self._error)


@functools.cache
def _tls_context(ssl_cert_file: str | None, ssl_cert_dir: str | None) -> ssl.SSLContext:
    # the arguments are the cache key only: httpx's defaults read the same two variables
    return httpx.create_ssl_context()


def shared_tls_context() -> ssl.SSLContext:
    """The process's one TLS context for backend requests. Building one reads the whole CA bundle
    (29 ms of CPU on a 2-core EPYC): built per request, as each new transport did, that was the larger
    part of the CPU a batch of distillation requests took. An SSLContext is safe to share between
    threads and connections; a changed SSL_CERT_FILE or SSL_CERT_DIR gets a context of its own."""
    return _tls_context(os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR"))


class LedgerTransport(httpx.BaseTransport):
    """An httpx transport that records each request in the ledger before sending it."""

    def __init__(self, ledger: Ledger, ctx: LedgerContext, secrets=(), inner: httpx.BaseTransport | None = None):
        self.ledger = ledger
        self.ctx = ctx
        self.secrets = tuple(s for s in secrets if s)
        self.inner = inner or httpx.HTTPTransport(verify=shared_tls_context())

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        body = request.read()
        row_id = self.ledger.record_request(
            self.ctx, request.method, str(request.url), request.headers, body, self.secrets
        )
        started = time.monotonic()
        try:
            response = self.inner.handle_request(request)
        except BaseException as exc:
            self.ledger.finish(
                row_id,
                status=None,
                response_bytes=0,
                duration_s=time.monotonic() - started,
                outcome="connection_error",
                error=redact(f"{type(exc).__name__}: {exc}", *self.secrets),
            )
            raise
        status = response.status_code

        def done(n_bytes: int, error: str | None) -> None:
            if error:
                outcome = "connection_error"
            else:
                outcome = "ok" if status < 400 else "http_error"
            self.ledger.finish(
                row_id,
                status=status,
                response_bytes=n_bytes,
                duration_s=time.monotonic() - started,
                outcome=outcome,
                error=redact(error, *self.secrets) if error else None,
            )

        return httpx.Response(
            status_code=status,
            headers=response.headers,
            stream=_CountingStream(response.stream, done),
            extensions=response.extensions,
            request=request,
        )

    def close(self) -> None:
        self.inner.close()
