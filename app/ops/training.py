"""Starting the trainer for the user: the agent-base role resolved once, for every caller.

``tiller train``, the demo, the app's Training page and the demo's longer background run all train
on the model the user chose with "Use as agent base" (``tiller models use NAME agent-base``), or the
embedded Gemma 3 270M; before this module each caller looked the role up itself, and two forgot.
The trainer runs as its own process (app/agent/trainer.py); nothing here imports the training side.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from app.agent.trainer import TrainerProcess, start_background_training

MIN_VOICE_PAIRS = 20  # fewer pairs than this teach a rewrite nothing worth its risk


def voice_pairs_exist() -> bool:
    """Whether any dataset holds voice pairs: then training the agent goes on to its voice stage
    (the trainer, given ``min_pairs``, decides whether there are enough for this sender)."""
    from app import paths

    return any(f.stat().st_size for f in (paths.home() / "datasets").glob("*/*/voice_train.jsonl"))


def with_agent_base(options: dict, db=None) -> dict:
    """``options`` with ``base_gguf`` set to the agent-base role's GGUF when the caller gave none
    (None stays None for the embedded default, which the trainer finds itself)."""
    if options.get("base_gguf") is not None:
        return options
    from app.model_files import agent_base_gguf

    if db is not None:
        return {**options, "base_gguf": agent_base_gguf(db)}
    from app.store import open_database

    opened = open_database()
    try:
        return {**options, "base_gguf": agent_base_gguf(opened)}
    finally:
        opened.conn.close()


def start_trainer(*, db=None, python: str | None = None, env: dict | None = None, **options) -> TrainerProcess:
    """The trainer as a followed process (JSON events, cancellable): ``sender``, ``steps``, ``stage``
    and any training option by field name (app/agent/train_options.py)."""
    return TrainerProcess.start(python=python, env=env, **with_agent_base(options, db))


def start_longer_training(log: Path, *, db=None, **options) -> subprocess.Popen:
    """A training run that goes on after this program ends (the demo's longer run), on the same base."""
    return start_background_training(log, **with_agent_base(options, db))
