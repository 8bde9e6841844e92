"""What tests share that is not a fixture: paths, the loopback servers' test keys, the training
settings of the shared agent, and running an import. Tests import these from here; conftest.py
holds the fixtures (and imports these too)."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ENRON = Path(os.environ.get("TILLER_ENRON_DATA", REPO.parent / "shared" / "data" / "enron"))

KAY = "kay.mann@enron.com"  # the sample's Kay Mann: the shared agent is trained on her mail

ANTHROPIC_TEST_KEY = "sk-ant-test-4f1c9e2b7a6d4c0e8b3f5a1d2e9c7b6a"
GEMINI_TEST_KEY = "AIzaTest-9d8c7b6a5f4e3d2c1b0a-loopback"

# the shared agent's brief training run (conftest.kay_agent)
TRAIN_KW = dict(max_steps=14, batch_size=4, rank=8, lr=3e-3, max_length=320, checkpoint_every=100, seed=0)


def run_import(db, path, **kwargs):
    """Import ``path`` (any source kind) into ``db`` to the end, as the user's import does (learning
    from sent drafts included: app.ops.imports); its result."""
    from app.mail.sources import open_source
    from app.ops.imports import ImportOperation

    job = ImportOperation(db, open_source(path), **kwargs)
    for _ in job.run():
        pass
    return job.result


def use_tiny_agent_base(db, tiny_base: dict) -> None:
    """Put the tiny Gemma 3 (conftest.tiny_base) in the agent-base role, as "Use as agent base" does:
    every way to start training then trains on it, and the agent drafts with it."""
    from app.model_files import register_model, use_model

    info = register_model(db, tiny_base["base_gguf"], "agent-base", name="tiny-gemma3-test")
    use_model(db, "agent-base", info.name)


def self_signed_certificate(folder: Path) -> tuple[Path, Path]:
    """A throw-away certificate for localhost and 127.0.0.1, made by ``openssl``: (cert.pem, key.pem)
    in ``folder``. For the loopback servers that speak TLS (Dovecot, the wire-format servers)."""
    import subprocess

    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost"]
        + ["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key
