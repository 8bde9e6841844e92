from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

# Qt draws offscreen in tests (no display needed); set before pytest-qt creates the application.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from tests.helpers import ANTHROPIC_TEST_KEY, ENRON, GEMINI_TEST_KEY, KAY, REPO, TRAIN_KW, run_import  # noqa: F401


@pytest.fixture(autouse=True)
def tiller_home(tmp_path, monkeypatch, request):
    """Every test gets its own data directory: nothing touches a real profile. A slow test's starts
    with the session's measurement of bf16 against fp32 (``cpu_dtype_measured``), as a user's data
    folder has it after the first training run: measured anew in every test, it cost 5-12 s each
    on a CPU without native bf16. The measurement itself is tested in test_dtype_probe.py."""
    home = tmp_path / "tiller-home"
    monkeypatch.setenv("TILLER_HOME", str(home))
    if request.node.get_closest_marker("slow") is not None:
        measured = request.getfixturevalue("cpu_dtype_measured")
        (home / "hardware").mkdir(parents=True)
        shutil.copy(measured, home / "hardware" / measured.name)
    return home


@pytest.fixture(scope="session")
def cpu_dtype_measured(session_home) -> Path:
    """The trainer's measurement of bf16 against fp32 on this CPU, made once for the run."""
    from agent_training.dtype_probe import CACHE_FILE, cpu_dtype

    folder = session_home / "hardware"
    cpu_dtype(folder)
    return folder / CACHE_FILE


@pytest.fixture
def db(tiller_home):
    from app.store import open_database

    database = open_database()
    yield database
    database.conn.close()


@pytest.fixture
def script():
    """The scripted large model (tests/fakes.py), empty before and after the test."""
    from tests.fakes import ScriptedProvider

    ScriptedProvider.reset()
    yield ScriptedProvider
    ScriptedProvider.reset()


@pytest.fixture
def scripted_backend(db):
    """The scripted model saved as a backend, so the CLI and the app can pick it by name."""
    from app.backends.config import save_endpoint
    from tests.fakes import SCRIPTED

    save_endpoint(db, SCRIPTED)
    return SCRIPTED.name


@pytest.fixture(scope="session")
def enron() -> Path:
    if not (ENRON / "maildir").is_dir():
        pytest.fail(f"real Enron data not found at {ENRON} (set TILLER_ENRON_DATA)")
    return ENRON


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
def session_home(tmp_path_factory):
    """TILLER_HOME for the whole run, under the per-test one: session fixtures (the trained agent)
    are set up before any test's own home, and without this they wrote to the real data folder
    (the trainer caches its measurements of the computer there)."""
    home = tmp_path_factory.mktemp("session-home")
    previous = os.environ.get("TILLER_HOME")
    os.environ["TILLER_HOME"] = str(home)
    yield home
    if previous is None:
        os.environ.pop("TILLER_HOME", None)
    else:
        os.environ["TILLER_HOME"] = previous


@pytest.fixture(scope="session", autouse=True)
def shared_models(tmp_path_factory, session_home):
    """One assembled copy of the embedded model for the whole run (253 MB)."""
    path = os.environ.get("TILLER_MODELS") or str(tmp_path_factory.mktemp("models"))
    os.environ["TILLER_MODELS"] = path
    return Path(path)


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

    from app.model_files import embedded_base_model

    model = embedded_base_model()
    port = _free_port()
    log = open(shared_models / f"llama-server-{port}.log", "wb")  # noqa: SIM115 - the server's log, closed at teardown
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "app.llamacpp",  # llama_cpp.server, safe on every CPU
            "--model",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "2048",
            "--n_threads",
            "2",
            "--model_alias",
            "gemma-270m",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
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
                raise RuntimeError(f"llama_cpp.server did not start; see {log.name}") from None
            time.sleep(0.3)
    yield f"{url}/v1"
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    log.close()


# -- one real agent, trained once per test session on Kay Mann's distilled mail ---------------------


@contextmanager
def _with_home(home: Path):
    """Session fixtures cannot use monkeypatch: point TILLER_HOME at ``home`` for a block."""
    previous = os.environ.get("TILLER_HOME")
    os.environ["TILLER_HOME"] = str(home)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("TILLER_HOME", None)
        else:
            os.environ["TILLER_HOME"] = previous


@pytest.fixture(scope="session")
def kay_dataset(tmp_path_factory, enron) -> Path:
    """Kay Mann's real sent mail, imported and distilled offline: train.jsonl / test.jsonl."""
    from agent_training.dataset import export
    from agent_training.distill import Distillation, DistillConfig
    from app.store import open_database

    home = tmp_path_factory.mktemp("kay-home")
    with _with_home(home):
        db = open_database()
        run_import(db, enron / "maildir" / "mann-k")
        for _ in Distillation(db, DistillConfig(sender=KAY)).run():
            pass
        stats = export(db, strategy="measured", sender=KAY, rules_source="offline|measure|style-measured.v1")
        db.conn.close()
    assert stats["train"] > 150
    assert stats["test"] > 30
    return Path(stats["directory"])


@pytest.fixture(scope="session")
def kay_agent(kay_dataset, tmp_path_factory):
    """A brief real training run; returns the finished Finetune job and its profile folder."""
    from agent_training.finetune import Finetune, FinetuneConfig

    out = tmp_path_factory.mktemp("kay-agent")
    job = Finetune(FinetuneConfig(dataset=kay_dataset / "train.jsonl", sender=KAY, output=out, **TRAIN_KW))
    events = list(job.run())
    assert job.result["status"] == "done", events[-1]
    return job, out, events


@pytest.fixture(scope="session")
def tiny_base(shared_models) -> dict:
    """A tiny random Gemma 3 with the embedded model's tokenizer (tests/tiny_model.py), as trainer
    options: for the tests that check how a run is started, stopped, resumed or shown, not what it
    learns. A step takes 0.4-0.8 s instead of 4-8 s."""
    from tests.tiny_model import tiny_base as build

    gguf, hf = build(shared_models)
    return {"base_gguf": gguf, "base_hf": hf}


# Fixtures that load or train a real model, or import and distill a whole mailbox: a test that uses
# one is slow whatever its own marks say, so `-m "not slow"` (the fast subset) never pays for them.
HEAVY_FIXTURES = {"kay_agent", "kay_dataset", "llama_server", "tiny_base"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if HEAVY_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_terminal_summary(terminalreporter):
    """The fuzzing figures of this run (issue 1/6 asks for them in every CI log)."""
    import sys

    fuzz = sys.modules.get("tests.test_fuzz_import")
    if fuzz is not None and fuzz.FUZZ_STATS["cases"]:
        s = fuzz.FUZZ_STATS
        terminalreporter.write_line(
            f"import fuzzing: {s['cases']} generated mailboxes, {s['items']} items; "
            f"crashes {s['crashes']}, hangs {s['hangs']}"
        )
