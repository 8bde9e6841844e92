"""Agent profiles: one trained adapter per sender identity (or one for all of them).

A profile is a folder ``<data>/agents/<slug>/``. The trainer (a separate process) writes
``adapter.gguf`` there only once it is complete and validated, with ``training.json`` describing
how it was made; until then the previous adapter stays in place and in use. The app only reads.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from app import paths
from app.files import read_text_bounded

ALL_SENDERS = "all"
ADAPTER_FILE = "adapter.gguf"
TRAINING_FILE = "training.json"


def agents_dir() -> Path:
    path = paths.home() / "agents"
    path.mkdir(parents=True, exist_ok=True)
    return path


def profile_slug(sender: str | None) -> str:
    return re.sub(r"[^a-zA-Z0-9._@-]+", "_", sender.strip().lower()) if sender else ALL_SENDERS


def profile_dir(sender: str | None) -> Path:
    return agents_dir() / profile_slug(sender)


@dataclass(frozen=True)
class AgentProfile:
    name: str  # the sender address, or "all"
    directory: Path
    adapter: Path | None  # None: not trained yet (the base model alone is used)
    base_model: Path | None  # the GGUF the adapter was trained on, from training.json
    info: dict

    @property
    def trained(self) -> bool:
        return self.adapter is not None


def load_profile(sender: str | None) -> AgentProfile:
    return _profile_at(profile_dir(sender), sender.lower() if sender else ALL_SENDERS)


def _profile_at(directory: Path, name: str) -> AgentProfile:
    info: dict = {}
    training = directory / TRAINING_FILE
    if training.is_file():
        try:
            info = json.loads(read_text_bounded(training, 64 << 20, "training record"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{training}: unreadable training record ({exc})") from None
    adapter = directory / ADAPTER_FILE
    base = info.get("base_gguf")
    return AgentProfile(
        name=info.get("profile") or name,
        directory=directory,
        adapter=adapter if adapter.is_file() else None,
        base_model=Path(base) if base else None,
        info=info,
    )


def list_profiles() -> list[AgentProfile]:
    """Every profile that finished a training run (each training record read once)."""
    return [_profile_at(d, d.name) for d in sorted(agents_dir().iterdir()) if d.is_dir() and (d / TRAINING_FILE).is_file()]


def find_profile(sender: str | None) -> AgentProfile:
    """The sender's own trained profile, else the all-senders one, else the untrained sender profile."""
    own = load_profile(sender)
    if own.trained or sender is None:
        return own
    shared = load_profile(None)
    return shared if shared.trained else own
