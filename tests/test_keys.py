"""API keys: lookup order, the keyring CLI, and no key on disk outside the keyring."""

from __future__ import annotations

import base64
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from app import secrets
from app.backends.base import GenerationRequest
from app.backends.client import complete, generate
from app.backends.errors import AuthError, IncompleteResponseError
from app.backends.retry import RetryPolicy
from app.cli import cli
from tests.helpers import ANTHROPIC_TEST_KEY, GEMINI_TEST_KEY, REPO
from tests.wire.server import Fault

FAST = RetryPolicy(base_delay_s=0.01, max_delay_s=0.05)


def test_lookup_order_explicit_then_keyring_then_environment(monkeypatch):
    assert secrets.lookup("claude", ("ANTHROPIC_API_KEY",)) is None
    monkeypatch.setenv("ANTHROPIC_API_KEY", "from-env-1234")
    assert secrets.lookup("claude", ("ANTHROPIC_API_KEY",)).source == "env:ANTHROPIC_API_KEY"
    secrets.set_key("claude", "from-keyring-1234")
    found = secrets.lookup("claude", ("ANTHROPIC_API_KEY",))
    assert (found.value, found.source) == ("from-keyring-1234", "keyring")
    assert secrets.lookup("claude", ("ANTHROPIC_API_KEY",), explicit="given-1234").source == "explicit"
    assert "from-keyring" not in repr(found)
    assert "from-keyring" not in str(found)
    # keys are per backend name: two OpenAI-compatible endpoints keep their own
    secrets.set_key("work vLLM", "work-key-1234")
    assert secrets.lookup("home Ollama") is None
    assert secrets.delete_key("claude")
    assert not secrets.delete_key("claude")


def test_plaintext_keyring_is_refused_unless_chosen(monkeypatch):
    monkeypatch.delenv("TILLER_ALLOW_PLAINTEXT_KEYRING")
    with pytest.raises(secrets.KeyringUnavailable, match="no secure OS keyring"):
        secrets.set_key("claude", "sk-should-not-be-stored")
    assert secrets.lookup("claude") is None


def test_keys_cli_round_trip(file_keyring):
    runner = CliRunner()
    result = runner.invoke(cli, ["backends", "add", "claude", "--provider", "anthropic", "--model", "claude-test"])
    assert result.exit_code == 0, result.output
    assert "tiller keys set 'claude'" in result.output
    result = runner.invoke(cli, ["keys", "set", "claude"], input=ANTHROPIC_TEST_KEY + "\n")
    assert result.exit_code == 0, result.output
    assert ANTHROPIC_TEST_KEY not in result.output
    assert file_keyring.get_password(secrets.SERVICE, "claude") == ANTHROPIC_TEST_KEY
    result = runner.invoke(cli, ["keys", "list"])
    assert "keyring" in result.output
    assert ANTHROPIC_TEST_KEY not in result.output
    result = runner.invoke(cli, ["backends", "remove", "claude"])
    assert result.exit_code == 0
    assert "and its key" in result.output
    assert file_keyring.get_password(secrets.SERVICE, "claude") is None
    result = runner.invoke(cli, ["keys", "delete", "claude"])
    assert result.exit_code != 0
    assert "no key stored" in result.output


def _files_under(root: Path):
    return [p for p in root.rglob("*") if p.is_file()]


def test_no_key_lands_on_disk_outside_the_keyring(
    tiller_home, file_keyring, anthropic_server, gemini_server, caplog, capfd
):
    """Configure two backends through the CLI, store keys, run successful, failing and cut requests,
    then scan every file Tiller wrote, the logs and the error messages for the key bytes."""
    caplog.set_level(logging.DEBUG)  # SDK debug logs included
    runner = CliRunner()
    for args in (
        [
            "backends",
            "add",
            "claude",
            "--provider",
            "anthropic",
            "--model",
            "claude-test",
            "--base-url",
            anthropic_server.url,
        ],
        [
            "backends",
            "add",
            "gemini",
            "--provider",
            "gemini",
            "--model",
            "gemini-test",
            "--base-url",
            gemini_server.url,
        ],
        ["backends", "default", "claude"],
    ):
        assert runner.invoke(cli, args).exit_code == 0
    assert runner.invoke(cli, ["keys", "set", "claude"], input=ANTHROPIC_TEST_KEY + "\n").exit_code == 0
    assert runner.invoke(cli, ["keys", "set", "gemini"], input=GEMINI_TEST_KEY + "\n").exit_code == 0

    messages = []
    result = runner.invoke(cli, ["backends", "test"])
    assert result.exit_code == 0, result.output
    messages.append(result.output)
    result = runner.invoke(cli, ["backends", "test", "gemini"])
    assert result.exit_code == 0, result.output
    messages.append(result.output)
    request = GenerationRequest.simple("s", "intent")
    anthropic_server.enqueue(Fault.http(500), Fault.http(429, retry_after="0"))
    complete(request, "claude", retry=FAST)
    gemini_server.enqueue(Fault.truncate(after_events=2, clean=False))
    with pytest.raises(IncompleteResponseError) as cut:
        list(generate(request, "gemini", retry=FAST))
    messages.append(str(cut.value))
    secrets.set_key("claude", "sk-ant-wrong-9f8e7d6c5b4a")
    with pytest.raises(AuthError) as rejected:
        complete(request, "claude", retry=FAST)
    messages.append(str(rejected.value))
    result = runner.invoke(cli, ["ledger"])
    messages.append(result.output)
    result = runner.invoke(cli, ["ledger", "--show", "1"])
    assert result.exit_code == 0
    assert "payload as sent" in result.output
    messages.append(result.output)
    captured = capfd.readouterr()
    messages += [captured.out, captured.err, caplog.text]

    secrets_bytes = [k.encode() for k in (ANTHROPIC_TEST_KEY, GEMINI_TEST_KEY, "sk-ant-wrong-9f8e7d6c5b4a")]
    secrets_bytes += [base64.b64encode(k) for k in list(secrets_bytes)]
    written = _files_under(tiller_home)
    assert any(p.name == "tiller.db" for p in written)
    for path in written:
        data = path.read_bytes()
        for secret in secrets_bytes:
            assert secret not in data, f"key bytes found in {path}"
    for text in messages:
        for secret in secrets_bytes:
            assert secret.decode() not in text
    # the keys did reach the keyring and the servers (so the scan above could have found them)
    assert file_keyring.get_password(secrets.SERVICE, "gemini") == GEMINI_TEST_KEY
    assert any(r.headers.get("x-goog-api-key") == GEMINI_TEST_KEY for r in gemini_server.requests)


def test_keys_set_reads_a_piped_key_in_a_real_process(tiller_home, tmp_path, db):
    """The installed command, not CliRunner: the key comes from stdin and is never echoed. (The
    backend exists first: a key for one that does not is refused, issue 5/5.)"""
    from app.backends.base import EndpointConfig
    from app.backends.config import save_endpoint

    save_endpoint(db, EndpointConfig(name="claude", provider="anthropic", model="claude-test"))
    ring = tmp_path / "ring.cfg"
    script = (
        "import sys, keyring\n"
        "from keyrings.alt.file import PlaintextKeyring\n"
        "r = PlaintextKeyring(); r.file_path = sys.argv[1]; keyring.set_keyring(r)\n"
        "from app.cli import main\n"
        "sys.argv = ['tiller', 'keys', 'set', 'claude']\n"
        "main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, str(ring)],
        input=ANTHROPIC_TEST_KEY + "\n",
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**__import__("os").environ, "TILLER_ALLOW_PLAINTEXT_KEYRING": "1"},
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert ANTHROPIC_TEST_KEY not in proc.stdout + proc.stderr
    assert base64.b64encode(ANTHROPIC_TEST_KEY.encode()).decode() in ring.read_text().replace("\n", "")
    for path in _files_under(tiller_home):
        assert ANTHROPIC_TEST_KEY.encode() not in path.read_bytes()


def test_backends_list_shows_where_keys_come_from(monkeypatch):
    runner = CliRunner()
    runner.invoke(cli, ["backends", "add", "gemini", "--provider", "gemini"])
    runner.invoke(
        cli, ["backends", "add", "lab", "--provider", "openai_compat", "--base-url", "http://127.0.0.1:8080/v1"]
    )
    out = runner.invoke(cli, ["backends", "list"]).output
    assert "missing" in out
    assert "none (not needed)" in out
    assert "in-process" in out
    monkeypatch.setenv("GEMINI_API_KEY", "AIza-env-value-1234")
    out = runner.invoke(cli, ["backends", "list"]).output
    assert "env:GEMINI_API_KEY" in out
    assert "AIza-env-value-1234" not in out
    out = runner.invoke(cli, ["backends", "add", "bad", "--provider", "gemini", "--option", "temprature=1"]).output
    assert "temprature" in out
    assert "Allowed:" in out
