"""Asking the large model for one tagged answer, retrying a malformed one.

Network-level retries (429, 5xx, cut connections) happen inside the backend client; this adds the
distillation-level retry: an answer without its tagged block is asked for again, and after the
last attempt the failure is returned with the raw text, so nothing the model said is lost.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent_training.parsing import MalformedAnswer
from app.backends.base import GenerationRequest
from app.backends.client import complete
from app.backends.errors import BackendError
from app.jobs import CancelToken


@dataclass
class LLMResult:
    ok: bool
    value: Any  # the parsed answer when ok
    raw: str
    attempts: int
    model: str | None
    error: str | None = None


def ask(
    request: GenerationRequest,
    parse: Callable[[str], Any],
    backend,
    *,
    attempts: int = 3,
    cancel: CancelToken | None = None,
    db_path=None,
) -> LLMResult:
    raw = ""
    model = None
    for attempt in range(1, attempts + 1):
        completion = complete(request, backend, cancel=cancel, db_path=db_path)
        raw, model = completion.text, completion.model
        try:
            return LLMResult(True, parse(raw), raw, attempt, model)
        except MalformedAnswer as exc:
            error = str(exc)
    return LLMResult(False, None, raw, attempts, model, f"malformed after {attempts} attempts: {error}")


def ask_safely(*args, **kwargs) -> LLMResult:
    """Like :func:`ask`, but a backend failure (after its own retries) becomes a failed result."""
    try:
        return ask(*args, **kwargs)
    except BackendError as exc:
        return LLMResult(False, None, getattr(exc, "partial_text", "") or "", 1, None, f"{type(exc).__name__}: {exc}")
