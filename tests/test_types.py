"""The type gate: mypy over the packages pyproject.toml's [tool.mypy] names (the store, the
backends, learning, the compose operation and the base modules under them). CI runs it through
this test; it is marked slow (about 35 s on 2 cores from a cold cache)."""

import subprocess
import sys

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.slow


def _mypy(*args: str, cwd=REPO) -> subprocess.CompletedProcess:
    pytest.importorskip("mypy", reason="mypy is in the [test] extra (pip install -e '.[test]')")
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=cwd, capture_output=True, text=True, timeout=600)


def test_the_typed_packages_pass_mypy():
    done = _mypy()
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]


def test_the_gate_can_fail(tmp_path):
    # the same configuration catches a wrong type (the gate is not a no-op)
    bad = tmp_path / "bad.py"
    bad.write_text("def words(text: str) -> int:\n    return text.split()\n")
    done = _mypy("--config-file", str(REPO / "pyproject.toml"), str(bad), cwd=tmp_path)
    assert done.returncode == 1, done.stdout
    assert "Incompatible return value type" in done.stdout, done.stdout
