"""Named endpoints the user configured, stored in the database (never with a key).

The built-in ``local`` endpoint (the embedded Gemma 3 270M, in-process, a preview) always exists,
so Tiller works offline before anything is configured. Every call reads the configuration afresh:
switching or editing a backend takes effect on the next request, without a restart.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from sqlite_utils import Database

from app.backends.base import EndpointConfig, parse_options
from app.backends.errors import ConfigError
from app.backends.registry import provider_class
from app.store import backends as rows
from app.store.settings import get_setting, set_setting

BUILTIN = {"local": EndpointConfig(name="local", provider="local", model="embedded")}
DEFAULT_KEY = "default_backend"
_NAME = re.compile(r"^[\w][\w .@:+-]{0,63}$")


def _row_to_config(row: rows.BackendRow) -> EndpointConfig:
    return EndpointConfig(
        name=row.name,
        provider=row.provider,
        model=row.model,
        base_url=row.base_url,
        options=json.loads(row.options_json or "{}"),
    )


def list_endpoints(db: Database) -> list[EndpointConfig]:
    stored = {r.name: _row_to_config(r) for r in rows.backend_rows(db)}
    builtins = [cfg for name, cfg in BUILTIN.items() if name not in stored]
    return builtins + list(stored.values())


def get_endpoint(db: Database, name: str) -> EndpointConfig:
    row = rows.backend_row(db, name)
    if row:
        return _row_to_config(row)
    if name in BUILTIN:
        return BUILTIN[name]
    known = ", ".join(c.name for c in list_endpoints(db))
    raise ConfigError(f"no backend named {name!r} (configured: {known}); add one with: tiller backends add")


def validate_endpoint(cfg: EndpointConfig) -> EndpointConfig:
    if cfg.name.strip().lower() in BUILTIN:  # a stored one would shadow it, silently, everywhere
        raise ConfigError(f"backend name {cfg.name!r} is the built-in embedded model's: pick another name")
    if not _NAME.match(cfg.name):
        raise ConfigError(f"backend name {cfg.name!r}: use 1-64 letters, digits, spaces or . @ : + - _")
    cls = provider_class(cfg.provider)
    if cfg.base_url is not None:
        try:
            parts = urlsplit(cfg.base_url)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
        except ValueError as exc:
            raise ConfigError(f"backend {cfg.name!r}: base URL {cfg.base_url!r} is not a valid URL ({exc})") from None
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"backend {cfg.name!r}: base URL {cfg.base_url!r} must be http(s)://host[:port][/path]")
        if parts.username or parts.password:
            raise ConfigError(f"backend {cfg.name!r}: put credentials in the keyring (tiller keys set), not in the URL")
    if cls.id == "openai_compat" and not cfg.base_url:
        raise ConfigError(
            f"backend {cfg.name!r}: an OpenAI-compatible endpoint needs --base-url (e.g. http://127.0.0.1:8080/v1)"
        )
    if not (cfg.model or cls.default_model):
        raise ConfigError(f"backend {cfg.name!r}: provider {cls.id} needs --model")
    parse_options(cls.Options, cfg.options, where=f"backend {cfg.name!r}")
    return cfg


def save_endpoint(db: Database, cfg: EndpointConfig) -> EndpointConfig:
    """Add or replace a named endpoint after strict validation."""
    validate_endpoint(cfg)
    rows.save_backend(
        db,
        rows.BackendRow(cfg.name, cfg.provider, cfg.model, cfg.base_url, json.dumps(cfg.options, sort_keys=True)),
    )
    return cfg


def remove_endpoint(db: Database, name: str) -> bool:
    if not rows.delete_backend(db, name):
        return False
    if get_setting(db, DEFAULT_KEY) == name:
        set_setting(db, DEFAULT_KEY, None)
    return True


def default_endpoint_name(db: Database) -> str:
    name = get_setting(db, DEFAULT_KEY)
    if name and (name in BUILTIN or rows.backend_exists(db, name)):
        return name
    return "local"


def set_default_endpoint(db: Database, name: str) -> None:
    get_endpoint(db, name)  # raises with the list of names when unknown
    set_setting(db, DEFAULT_KEY, name)


def parse_option_pairs(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings from the command line; values parsed as JSON when they parse
    (numbers, lists), else kept as text. Validation against the provider happens later."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"option {pair!r}: expected KEY=VALUE")
        try:
            options[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            options[key.strip()] = value
    return options


def key_status(endpoint: EndpointConfig) -> str:
    """Where the endpoint's key would come from, never the key: "keyring", "env:VAR", "missing",
    "not needed" (runs on this computer) or "none (not needed)" (a keyless remote endpoint)."""
    from app import secrets

    cls = provider_class(endpoint.provider)
    if not cls.leaves_machine:
        return "not needed"
    found = secrets.lookup(endpoint.name, cls.key_env_vars)
    if found is None:
        return "missing" if cls.needs_key else "none (not needed)"
    return found.source
