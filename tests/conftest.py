from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ENRON = Path(os.environ.get("TILLER_ENRON_DATA", REPO.parent / "shared" / "data" / "enron"))


@pytest.fixture(autouse=True)
def tiller_home(tmp_path, monkeypatch):
    """Every test gets its own data directory: nothing touches a real profile."""
    home = tmp_path / "tiller-home"
    monkeypatch.setenv("TILLER_HOME", str(home))
    return home


@pytest.fixture
def db(tiller_home):
    from app.store import open_database

    database = open_database()
    yield database
    database.conn.close()


@pytest.fixture(scope="session")
def enron() -> Path:
    if not (ENRON / "maildir").is_dir():
        pytest.fail(f"real Enron data not found at {ENRON} (set TILLER_ENRON_DATA)")
    return ENRON


def run_import(db, path, **kwargs):
    from app.mail.importer import MailImport
    from app.mail.sources import open_source

    job = MailImport(db, open_source(path), **kwargs)
    for _ in job.run():
        pass
    return job.result


@pytest.fixture(autouse=True)
def file_keyring(tmp_path, monkeypatch):
    """A real keyring backend (keyrings.alt's file keyring) in a temp dir outside TILLER_HOME, so
    tests never touch the user's keyring and can scan TILLER_HOME for leaked keys."""
    import keyring
    from keyrings.alt.file import PlaintextKeyring

    ring = PlaintextKeyring()
    ring.file_path = str(tmp_path / "keyring" / "keyring_pass.cfg")
    previous = keyring.get_keyring()
    keyring.set_keyring(ring)
    monkeypatch.setenv("TILLER_ALLOW_PLAINTEXT_KEYRING", "1")  # chosen on purpose here; see test_keys
    for var in ("ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    yield ring
    keyring.set_keyring(previous)


@pytest.fixture(scope="session", autouse=True)
def shared_models(tmp_path_factory):
    """One assembled copy of the embedded model for the whole run (253 MB)."""
    path = os.environ.get("TILLER_MODELS") or str(tmp_path_factory.mktemp("models"))
    os.environ["TILLER_MODELS"] = path
    return Path(path)


ANTHROPIC_TEST_KEY = "sk-ant-test-4f1c9e2b7a6d4c0e8b3f5a1d2e9c7b6a"
GEMINI_TEST_KEY = "AIzaTest-9d8c7b6a5f4e3d2c1b0a-loopback"


@pytest.fixture
def anthropic_server():
    from tests.wire.providers import AnthropicServer

    with AnthropicServer(ANTHROPIC_TEST_KEY) as server:
        yield server


@pytest.fixture
def gemini_server():
    from tests.wire.providers import GeminiServer

    with GeminiServer(GEMINI_TEST_KEY) as server:
        yield server


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server(shared_models):
    """The real llama-cpp-python OpenAI-compatible server on 127.0.0.1, serving the embedded GGUF."""
    import subprocess
    import sys
    import time
    import urllib.request

    from app.models import embedded_base_model

    model = embedded_base_model()
    port = _free_port()
    log = open(shared_models / f"llama-server-{port}.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
         "--n_ctx", "2048", "--n_threads", "2", "--model_alias", "gemma-270m"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/v1/models", timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"llama_cpp.server did not start; see {log.name}")
            time.sleep(0.3)
    yield f"{url}/v1"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()
