"""Every benchmark still imports and names only functions that exist: they are run by hand, so a
rename elsewhere breaks them silently (benchmarks/rule_variety.py imported a helper, _profile_at,
that had been renamed; nothing noticed)."""

import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = sorted(p for p in (Path(__file__).parent.parent / "benchmarks").glob("*.py"))


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.stem)
def test_a_benchmarks_imports_resolve(path):
    """Imports inside functions too: each ``from X import Y`` of the project must find Y."""
    tree = ast.parse(path.read_text())
    missing = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("app", "agent_training"):
            module = importlib.import_module(node.module)
            missing += [f"{node.module}.{a.name}" for a in node.names if not _exists(module, a.name)]
    assert not missing, f"{path.name} imports what does not exist: {missing}"


def _exists(module, name: str) -> bool:
    if hasattr(module, name):
        return True
    try:  # a submodule: from app.learning import scoped
        importlib.import_module(f"{module.__name__}.{name}")
    except ModuleNotFoundError:
        return False
    return True
