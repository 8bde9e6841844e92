"""Provider registry: a provider is one module that registers its class here.

Built-in providers are imported on first use (so starting Tiller does not import three cloud
SDKs); extra providers register through the same :func:`register` call, or through the
``tiller.backends`` entry-point group.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from app.backends.base import Provider
from app.backends.errors import ConfigError

_BUILTIN_MODULES = {
    "anthropic": "app.backends.anthropic_provider",
    "gemini": "app.backends.gemini_provider",
    "openai_compat": "app.backends.openai_compat",
    "local": "app.backends.local",
}
_PROVIDERS: dict[str, type[Provider]] = {}


def register(cls: type[Provider]) -> type[Provider]:
    """Class decorator: make ``cls`` available under ``cls.id``."""
    if not getattr(cls, "id", None):
        raise TypeError(f"{cls.__name__} has no provider id")
    _PROVIDERS[cls.id] = cls
    return cls


def provider_ids() -> list[str]:
    ids = set(_BUILTIN_MODULES) | set(_PROVIDERS)
    for ep in entry_points(group="tiller.backends"):
        ids.add(ep.name)
    return sorted(ids)


def provider_class(provider_id: str) -> type[Provider]:
    if provider_id in _PROVIDERS:
        return _PROVIDERS[provider_id]
    module = _BUILTIN_MODULES.get(provider_id)
    if module is not None:
        importlib.import_module(module)
    else:
        for ep in entry_points(group="tiller.backends"):
            if ep.name == provider_id:
                register(ep.load())
    if provider_id not in _PROVIDERS:
        raise ConfigError(f"unknown provider {provider_id!r}; known: {', '.join(provider_ids())}")
    return _PROVIDERS[provider_id]
