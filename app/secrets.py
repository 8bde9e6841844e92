"""API keys: found explicitly, in the OS keyring, or in the environment, in that order.

Keys are stored only in the OS keyring (macOS Keychain, Windows Credential Locker, Secret Service
on Linux) under the service name ``Tiller`` and the backend's name, so "work vLLM" and "home
Ollama" can hold different keys. Tiller never writes a key to its database, config, logs, the
privacy ledger or an error message, and never falls back to a plaintext file on its own: when no
keyring is available it says so and points at the environment variable instead.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import keyring
import keyring.backends.fail
import keyring.errors

from app.exceptions import TillerError

SERVICE = "Tiller"


class KeyringUnavailable(TillerError, RuntimeError):
    pass


@dataclass(frozen=True)
class FoundKey:
    value: str
    source: str  # "explicit" | "keyring" | "env:NAME"

    def __repr__(self) -> str:  # a key must never show up in a traceback or a log line
        return f"FoundKey(source={self.source!r}, value=[redacted])"

    __str__ = __repr__


def keyring_name() -> str:
    """The keyring backend in use, for messages and `tiller keys list`."""
    backend = keyring.get_keyring()
    return f"{type(backend).__module__}.{type(backend).__name__}"


def _is_plaintext(backend) -> bool:
    return "plaintext" in type(backend).__name__.lower()


def _keyring_usable() -> bool:
    backend = keyring.get_keyring()
    if isinstance(backend, keyring.backends.fail.Keyring):
        return False
    if _is_plaintext(backend) and not os.environ.get("TILLER_ALLOW_PLAINTEXT_KEYRING"):
        # keyrings.alt's file keyring is a plain file on disk: never chosen for the user silently.
        return False
    return True


def lookup(backend_name: str, env_vars: tuple[str, ...] = (), explicit: str | None = None) -> FoundKey | None:
    """Explicit -> keyring -> environment. None when none has a key."""
    if explicit:
        return FoundKey(explicit, "explicit")
    try:
        stored = keyring.get_password(SERVICE, backend_name)
    except keyring.errors.KeyringError:
        stored = None  # no usable keyring: fall through to the environment
    if stored:
        return FoundKey(stored, "keyring")
    for var in env_vars:
        value = os.environ.get(var)
        if value:
            return FoundKey(value, f"env:{var}")
    return None


def stored_secret(name: str) -> str | None:
    """The keyring's secret for ``name``; None only when the keyring answers that it has none. A
    locked keyring, or one that fails (any error of its backend), is KeyringUnavailable with a
    sentence: a mail import once said "no password" for a keyring that was only locked."""
    try:
        return keyring.get_password(SERVICE, name)
    except keyring.errors.KeyringLocked:
        raise KeyringUnavailable(
            f"the keyring ({keyring_name()}) is locked: unlock it (log in to your desktop session, or unlock "
            "the login keyring) and run the command again"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a third-party backend may raise anything
        raise KeyringUnavailable(
            f"the keyring ({keyring_name()}) failed when asked for the password: {type(exc).__name__}: {str(exc)[:200]}"
        ) from None


def set_key(backend_name: str, value: str, *, strip: bool = True) -> None:
    """Store ``value`` in the OS keyring. API keys are stripped (a pasted key often carries a
    newline); a mail password is stored exactly as typed (``strip=False``): spaces at either end
    can be part of it, and a stripped copy is refused at every later login."""
    if strip:
        value = value.strip()
    if not value:
        raise ValueError("the key is empty")
    if not _keyring_usable():
        raise KeyringUnavailable(
            f"no secure OS keyring is available ({keyring_name()}); Tiller stores keys nowhere else. "
            "Unlock or install a keyring (e.g. GNOME Keyring / KWallet), or set the provider's environment variable. "
            "(To accept a plaintext file keyring anyway, set TILLER_ALLOW_PLAINTEXT_KEYRING=1.)"
        )
    try:
        keyring.set_password(SERVICE, backend_name, value)
    except keyring.errors.KeyringError as exc:
        raise KeyringUnavailable(f"the keyring refused to store the key: {type(exc).__name__}") from None


def delete_key(backend_name: str) -> bool:
    """Remove the stored key; False when there was none."""
    try:
        keyring.delete_password(SERVICE, backend_name)
    except keyring.errors.PasswordDeleteError:
        return False
    except keyring.errors.KeyringError as exc:
        raise KeyringUnavailable(f"the keyring refused to delete the key: {type(exc).__name__}") from None
    return True


def has_stored_key(backend_name: str) -> bool:
    try:
        return keyring.get_password(SERVICE, backend_name) is not None
    except keyring.errors.KeyringError:
        return False
