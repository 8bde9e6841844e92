"""Agent profiles: one trained adapter per sender identity (or one for all of them).

A profile is a folder ``<data>/agents/<slug>/``. The trainer (a separate process) writes
``adapter.gguf`` there only once it is complete and validated, with ``training.json`` describing
how it was made; until then the previous adapter stays in place and in use. The app only reads.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from app import paths
from app.files import read_text_bounded, write_atomic

ALL_SENDERS = "all"
ADAPTER_FILE = "adapter.gguf"
TRAINING_FILE = "training.json"
# The voice stage's adapter (the large model's draft -> the user's words) lives in a folder of its
# own inside the profile, with its own training.json; a file VOICE_OFF there switches it off.
VOICE_DIR = "voice"
VOICE_OFF = "off"


def agents_dir() -> Path:
    path = paths.home() / "agents"
    path.mkdir(parents=True, exist_ok=True)
    return path


def profile_slug(sender: str | None) -> str:
    return re.sub(r"[^a-zA-Z0-9._@-]+", "_", sender.strip().lower()) if sender else ALL_SENDERS


def profile_dir(sender: str | None) -> Path:
    return agents_dir() / profile_slug(sender)


@dataclass(frozen=True)
class TrainingRecord:
    """``training.json``: how a profile's adapter was made. The trainer (a separate process,
    ``agent_training/finetune.py``) writes it when a run finishes; the app, ``tiller check`` and a
    rerun of the same training read it. Unknown keys are ignored and missing ones default, so a
    record from an older or newer Tiller still reads."""

    profile: str  # the sender address, or "all"
    slug: str | None = None
    base_gguf: str | None = None  # the GGUF the adapter was trained on
    base_hf: str | None = None
    template_version: str | None = None
    fingerprint: str | None = None  # data + configuration: the same fingerprint is the same run
    dataset: str | None = None
    dataset_sha256: str | None = None
    examples: dict = field(default_factory=dict)  # used, too_long, malformed, other_sender, read
    config: dict = field(default_factory=dict)  # the resolved FinetuneConfig
    steps: int | None = None
    first_loss: float | None = None
    final_loss: float | None = None
    loss_history: list = field(default_factory=list)
    adapter: dict | None = None  # the GGUF export's summary (tensors, bytes); None: not exported
    adapter_sha256: str | None = None  # `tiller check` compares the adapter file with these
    adapter_bytes: int | None = None
    finished_at: str | None = None

    @classmethod
    def from_dict(cls, data: dict) -> TrainingRecord:
        if not isinstance(data, dict) or not isinstance(data.get("profile", ""), str):
            raise ValueError("not a training record (expected a JSON object)")
        known = {f.name for f in fields(cls)}
        return cls(**{"profile": "", **{k: v for k, v in data.items() if k in known}})

    @classmethod
    def read(cls, path: Path) -> TrainingRecord:
        """Raises ValueError naming the file when it cannot be read as a record."""
        try:
            return cls.from_dict(json.loads(read_text_bounded(path, 64 << 20, "training record")))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: unreadable training record ({exc})") from None

    def to_dict(self) -> dict:
        return asdict(self)

    def write(self, path: Path) -> None:
        write_atomic(path, json.dumps(self.to_dict(), indent=2))

    @property
    def examples_used(self) -> int | None:
        return self.examples.get("used")


@dataclass(frozen=True)
class AgentProfile:
    name: str  # the sender address, or "all"
    directory: Path
    adapter: Path | None  # None: not trained yet (the base model alone is used)
    base_model: Path | None  # the GGUF the adapter was trained on, from training.json
    record: TrainingRecord | None  # None: never trained

    @property
    def trained(self) -> bool:
        return self.adapter is not None

    @property
    def voice_adapter(self) -> Path | None:
        """The voice stage's adapter, when it was trained (whether or not it is switched on)."""
        path = self.directory / VOICE_DIR / ADAPTER_FILE
        return path if path.is_file() else None

    @property
    def voice_on(self) -> bool:
        """The voice stage runs for this profile: trained, and not switched off."""
        return self.voice_adapter is not None and not (self.directory / VOICE_DIR / VOICE_OFF).exists()

    def set_voice(self, on: bool) -> None:
        flag = self.directory / VOICE_DIR / VOICE_OFF
        if on:
            flag.unlink(missing_ok=True)
        else:
            flag.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(flag, "the voice stage is off for this profile (tiller voice on)\n")


def load_profile(sender: str | None) -> AgentProfile:
    return profile_at(profile_dir(sender), sender.lower() if sender else ALL_SENDERS)


def profile_at(directory: Path, name: str) -> AgentProfile:
    """The profile in ``directory`` (a candidate adapter a retrain has not put in place yet)."""
    training = directory / TRAINING_FILE
    record = TrainingRecord.read(training) if training.is_file() else None
    adapter = directory / ADAPTER_FILE
    base = record.base_gguf if record else None
    return AgentProfile(
        name=(record.profile if record else None) or name,
        directory=directory,
        adapter=adapter if adapter.is_file() else None,
        base_model=Path(base) if base else None,
        record=record,
    )


def list_profiles() -> list[AgentProfile]:
    """Every profile that finished a training run (each training record read once)."""
    return [
        profile_at(d, d.name) for d in sorted(agents_dir().iterdir()) if d.is_dir() and (d / TRAINING_FILE).is_file()
    ]


def find_profile(sender: str | None) -> AgentProfile:
    """The sender's own trained profile, else the all-senders one, else the untrained sender profile."""
    own = load_profile(sender)
    if own.trained or sender is None:
        return own
    shared = load_profile(None)
    return shared if shared.trained else own
