"""Errors a backend raises, one type per thing the user can do something about.

Messages are written for the person at the keyboard (what failed, on which backend, what to do).
They never contain an API key: every message passes through :func:`redact` with the key in use.
"""

from __future__ import annotations

from app.exceptions import TillerError
from app.jobs import Cancelled  # re-exported: a cancelled request raises the same error as any cancelled job

__all__ = [
    "AuthError",
    "BackendConnectionError",
    "BackendError",
    "BackendTimeout",
    "Cancelled",
    "ConfigError",
    "IncompleteResponseError",
    "MissingKeyError",
    "RateLimited",
    "RequestRejected",
    "ServerError",
    "redact",
]


class BackendError(TillerError):
    """Base of every backend failure. ``retryable`` says whether trying again can help."""

    retryable = False

    def __init__(self, message: str, *, backend: str | None = None, status: int | None = None):
        super().__init__(message)
        self.backend = backend
        self.status = status


class ConfigError(BackendError):
    """A backend is unknown, or its configuration has an unknown or invalid field."""


class MissingKeyError(BackendError):
    """No API key was found: not given, not in the keyring, not in the environment."""


class AuthError(BackendError):
    """The provider rejected the key (401/403)."""


class RequestRejected(BackendError):
    """The provider refused the request itself (400/404/413/422): retrying the same request cannot help."""


class RateLimited(BackendError):
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(BackendError):
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class BackendConnectionError(BackendError):
    retryable = True


class BackendTimeout(BackendError):
    retryable = True


class IncompleteResponseError(BackendError):
    """The response stopped before the provider said it was finished (a cut stream, a dropped
    connection mid-answer). ``partial_text`` is what arrived; it is never passed off as complete."""

    def __init__(self, message: str, *, partial_text: str = "", **kwargs):
        super().__init__(message, **kwargs)
        self.partial_text = partial_text


def redact(text: str, *secrets: str | None) -> str:
    """Replace every occurrence of each secret (of usable length) in ``text``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[redacted]")
    return text
