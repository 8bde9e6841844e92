"""Turn HTTP statuses and transport failures into the errors of :mod:`app.backends.errors`.

Shared by the providers whose SDKs run over httpx2 (all three cloud SDKs do).
"""

from __future__ import annotations

import httpx2

from app.backends.errors import (
    AuthError,
    BackendConnectionError,
    BackendError,
    BackendTimeout,
    RateLimited,
    RequestRejected,
    ServerError,
)
from app.backends.retry import retry_after_from_headers

RETRYABLE_CLIENT_STATUSES = {408, 409, 425, 429}


def from_status(backend: str, status: int, headers=None, detail: str | None = None) -> BackendError:
    """An error for an HTTP status, with the provider's own explanation when it gave one."""
    detail = f": {detail.strip()[:300].rstrip('.')}" if detail and detail.strip() else ""
    retry_after = retry_after_from_headers(headers)
    if status in (401, 403):
        return AuthError(
            f"backend {backend!r} rejected the API key (HTTP {status}){detail}. "
            f"Replace it with: tiller keys set {backend!r}",
            backend=backend,
            status=status,
        )
    if status == 429:
        when = f"; the server asks to wait {retry_after:.0f} s" if retry_after is not None else ""
        return RateLimited(
            f"backend {backend!r} is rate limiting (HTTP 429){when}{detail}",
            backend=backend,
            status=status,
            retry_after=retry_after,
        )
    if status >= 500 or status in RETRYABLE_CLIENT_STATUSES:
        return ServerError(
            f"backend {backend!r} failed (HTTP {status}){detail}",
            backend=backend,
            status=status,
            retry_after=retry_after,
        )
    return RequestRejected(
        f"backend {backend!r} refused the request (HTTP {status}){detail}", backend=backend, status=status
    )


def from_transport(backend: str, exc: BaseException) -> BackendError | None:
    """An error for a network-level failure, or None when ``exc`` is not one."""
    if isinstance(exc, httpx2.TimeoutException):
        return BackendTimeout(f"backend {backend!r} did not answer in time ({type(exc).__name__})", backend=backend)
    if isinstance(exc, httpx2.TransportError | httpx2.StreamError):
        return BackendConnectionError(
            f"backend {backend!r}: connection failed or dropped ({type(exc).__name__}: {exc})", backend=backend
        )
    if isinstance(exc, ValueError) and type(exc).__name__ == "JSONDecodeError":
        return BackendConnectionError(f"backend {backend!r}: the response was garbled (invalid JSON)", backend=backend)
    if isinstance(exc, ConnectionError | OSError):
        return BackendConnectionError(f"backend {backend!r}: connection failed ({type(exc).__name__})", backend=backend)
    return None
