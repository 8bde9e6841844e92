"""The dependency direction: app never imports agent_training; only app/gui imports PySide6."""

import ast
from pathlib import Path

from tests.conftest import REPO


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
            "import_module",
            "__import__",
        ):
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                names.add(node.args[0].value)
    return names


def _violations(package: str, forbidden: str, allowed_under: str | None = None) -> list[str]:
    bad = []
    for path in sorted((REPO / package).rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if allowed_under and rel.startswith(allowed_under):
            continue
        for name in _imports(path):
            if name == forbidden or name.startswith(forbidden + "."):
                bad.append(f"{rel} imports {name}")
    return bad


def test_app_never_imports_agent_training():
    assert _violations("app", "agent_training") == []


def test_only_app_gui_imports_pyside6():
    assert _violations("app", "PySide6", allowed_under="app/gui/") == []
    assert _violations("agent_training", "PySide6") == []


def test_the_checker_catches_a_violation(tmp_path, monkeypatch):
    # the scan must be able to fail: plant a violating module in a copy of the layout
    fake = tmp_path / "app" / "drafting_bad.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("from agent_training import finetune\nimport PySide6.QtCore\n")
    import tests.test_architecture as me

    monkeypatch.setattr(me, "REPO", tmp_path)
    assert _violations("app", "agent_training") == ["app/drafting_bad.py imports agent_training"]
    assert _violations("app", "PySide6", allowed_under="app/gui/") == ["app/drafting_bad.py imports PySide6.QtCore"]


def test_the_bare_core_venv_really_lacks_the_heavy_parts():
    """.ci/run runs the core's tests where only the core is installed; if a dependency of the core
    pulled torch or Qt in after all, that run would prove nothing: it fails here instead."""
    import importlib.util
    import os

    import pytest

    if os.environ.get("TILLER_BARE_CORE") != "1":
        pytest.skip("only in the bare-core venv of .ci/run (TILLER_BARE_CORE=1)")
    present = [
        m
        for m in ("torch", "transformers", "peft", "PySide6", "matplotlib", "sklearn")
        if importlib.util.find_spec(m) is not None
    ]
    assert present == []
