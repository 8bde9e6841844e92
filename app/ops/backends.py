"""Adding and removing a backend, with its key: what ``tiller backends add/remove`` and the app's
Backends page both do."""

from __future__ import annotations

from sqlite_utils import Database

from app import secrets
from app.backends.base import EndpointConfig
from app.backends.config import (
    BUILTIN,
    key_status,
    remove_endpoint,
    save_endpoint,
    set_default_endpoint,
    validate_endpoint,
)
from app.backends.errors import ConfigError


def add_backend(db: Database, cfg: EndpointConfig, *, key: str | None = None, make_default: bool = False) -> str:
    """The user adds (or replaces) a backend, with its API key when given: what ``tiller backends add``
    and the app's Add dialog both do. Validated first; the key goes to the keyring before the row is
    written, so a keyring that refuses it leaves no backend without its key; the row and the default
    are one transaction. Returns the key's status (:func:`key_status`)."""
    validate_endpoint(cfg)
    if key:
        secrets.set_key(cfg.name, key)
    try:
        with db.atomic():
            save_endpoint(db, cfg)
            if make_default:
                set_default_endpoint(db, cfg.name)
    except Exception:
        if key:
            secrets.delete_key(cfg.name)  # nothing half-added
        raise
    return key_status(cfg)


def remove_backend(db: Database, name: str, *, keep_key: bool = False) -> tuple[bool, bool]:
    """The user removes a backend and, unless ``keep_key``, its key: (removed, key removed)."""
    if name.strip().lower() in BUILTIN:
        raise ConfigError(f"{name!r} is the built-in embedded model: it cannot be removed")
    with db.atomic():
        removed = remove_endpoint(db, name)
    key_removed = bool(removed and not keep_key and secrets.delete_key(name))
    return removed, key_removed
