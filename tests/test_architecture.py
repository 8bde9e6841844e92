"""The dependency direction: app never imports agent_training; only app/gui imports PySide6; SQL
lives in app/store alone; the app's layers import downwards only, and no modules import each other."""

import ast
import re
import shutil
from pathlib import Path

from tests.helpers import REPO


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


_SQL = re.compile(
    r"\b(SELECT\b.*\bFROM|INSERT (OR \w+ )?INTO|UPDATE \w+ SET|DELETE FROM|CREATE (TABLE|INDEX)|PRAGMA \w+"
    r"|BEGIN( IMMEDIATE)?$|COMMIT$|ROLLBACK$)",
    re.S,
)


def _sql_outside_store(package: str) -> list[str]:
    """Each SQL statement (a string that reads as one, docstrings aside), each ``.execute`` call
    and each sqlite-utils ``db["table"]`` of ``package`` outside app/store, as "path:line what"."""
    bad = []
    for path in sorted((REPO / package).rglob("*.py")):
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith("app/store/"):
            continue
        found: list[tuple[int, str]] = []
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        docstrings = {
            id(node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                if _SQL.search(node.value.strip()):
                    found.append((node.lineno, f"SQL {node.value.strip()[:40]!r}"))
            elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in (
                "execute",
                "executemany",
                "executescript",
            ):
                found.append((node.lineno, f".{node.func.attr}()"))
            elif (
                isinstance(node, ast.Subscript)
                and isinstance(node.value, (ast.Name, ast.Attribute))
                and getattr(node.value, "id", getattr(node.value, "attr", "")) == "db"
                and isinstance(node.slice, ast.Constant)
                and isinstance(node.slice.value, str)
            ):
                found.append((node.lineno, f"db[{node.slice.value!r}]"))
        bad += [f"{rel}:{line} {what}" for line, what in sorted(found)]
    return bad


def test_sql_lives_in_app_store_only():
    """The GUI, the CLI, the mail import and the distillation go through the typed queries of app/store."""
    assert _sql_outside_store("app") == []
    assert _sql_outside_store("agent_training") == []


def test_the_sql_scan_catches_a_violation(tmp_path, monkeypatch):
    fake = tmp_path / "app" / "gui" / "page.py"
    fake.parent.mkdir(parents=True)
    fake.write_text(
        '"""Lists messages (SELECT in a docstring is prose)."""\n'
        "def rows(db):\n"
        '    sql = f"SELECT id FROM messages WHERE x = {1}"\n'
        "    db.execute(sql)\n"
        '    return db["messages"].count\n'
    )
    (tmp_path / "app" / "store").mkdir()
    (tmp_path / "app" / "store" / "q.py").write_text('def q(db):\n    return db.execute("SELECT 1 FROM t")\n')
    import tests.test_architecture as me

    monkeypatch.setattr(me, "REPO", tmp_path)
    assert _sql_outside_store("app") == [
        "app/gui/page.py:3 SQL 'SELECT id FROM messages WHERE x ='",
        "app/gui/page.py:4 .execute()",
        "app/gui/page.py:5 db['messages']",
    ]


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


# -- layers and cycles (issue 3/5) -------------------------------------------------------------------
# Lowest first. A module may import its own layer and those below, never one above; module-level and
# function-level imports alike. The longest matching prefix decides a module's layer.
LAYERS = (
    ("base", ("app", "app.exceptions", "app.clock", "app.paths", "app.files", "app.jobs", "app.console_text", "app.logs",
              "app.prompts", "app.hardware", "app.secrets", "app._resources")),
    ("store", ("app.store",)),
    ("domain", ("app.mail", "app.backends", "app.agent", "app.learning", "app.ranking", "app.measured_style",
                "app.rulecheck", "app.content_guard", "app.language", "app.drafting", "app.model_files", "app.gguf",
                "app.llamacpp", "app.check", "app.firstrun", "app.consent")),
    ("operations", ("app.ops", "app.errors")),
    ("interfaces", ("app.cli", "app.gui", "app.mcp_server", "app.__main__")),
)  # fmt: skip


def _module_graph(root: Path, packages=("app", "agent_training")) -> dict[str, set[str]]:
    """Module -> the project modules it imports (a ``from X import Y`` counts Y when it is a module)."""
    files = {}
    for package in packages:
        for path in (root / package).rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def known(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(filter(None, (known(a.name) for a in node.names)))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package
                    for _ in range(node.level - 1):
                        up = up.rpartition(".")[0]
                    base = f"{up}.{base}" if base else up
                found.update(filter(None, (known(f"{base}.{a.name}") or known(base) for a in node.names)))
        graph[module] = found - {module}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _layer(module: str) -> int | None:
    best = None
    for number, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (number, len(prefix))
    return best[0] if best else None


def _layer_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for module in sorted(m for m in graph if m == "app" or m.startswith("app.")):
        mine = _layer(module)
        if mine is None:
            bad.append(f"{module} is in no layer: add it to LAYERS")
            continue
        for target in sorted(graph[module]):
            theirs = _layer(target)
            if theirs is not None and theirs > mine:
                bad.append(f"{module} ({LAYERS[mine][0]}) imports {target} ({LAYERS[theirs][0]})")
    return bad


def test_no_import_cycles_and_no_layer_imports_upwards():
    """interfaces (cli, gui, mcp) -> operations (compose) -> domain (mail, backends, agent, learning,
    ranking, rules) -> store -> base: the store does not re-split mail on open (the mail layer
    registers that), errors and paths share a base module, and no two modules import each other."""
    graph = _module_graph(REPO)
    assert len(graph) > 100
    assert _cycles(graph) == []
    assert _layer_violations(graph) == []
    # the importer stores mail; what an import means for learning is the import operation's
    # (app/ops/imports.py): the mail package never reaches into learning
    assert not [(m, t) for m in graph if m.startswith("app.mail") for t in graph[m] if t.startswith("app.learning")]


def test_the_layer_check_catches_a_planted_wrong_way_import_and_a_cycle(tmp_path):
    for package in ("app", "agent_training"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "app" / "store" / "sneaky.py").write_text("from app.ops.compose import ComposeOperation\n")
    (tmp_path / "app" / "clock.py").write_text((REPO / "app" / "clock.py").read_text() + "\nimport app.jobs\n")
    (tmp_path / "app" / "jobs.py").write_text((REPO / "app" / "jobs.py").read_text() + "\nfrom app import clock\n")
    graph = _module_graph(tmp_path)
    assert ["app.clock", "app.jobs"] in _cycles(graph)
    assert _layer_violations(graph) == ["app.store.sneaky (store) imports app.ops.compose (operations)"]


def test_the_agent_base_role_is_resolved_in_one_place():
    """Issue 3/5: "Use as agent base" was honoured by `tiller train` alone; the Training page and
    the demo looked the role up separately or not at all. Now only app/ops/training.py reads it."""
    readers = sorted(
        str(path.relative_to(REPO))
        for path in (REPO / "app").rglob("*.py")
        if "agent_base_gguf(" in path.read_text(encoding="utf-8") and path.name != "model_files.py"
    )
    assert readers == ["app/ops/training.py"]


def test_every_way_to_start_training_uses_the_chosen_agent_base(tmp_path, db, monkeypatch):
    """`tiller train`, the Training page and the demo all start the trainer through
    app.ops.training, which fills in the agent-base role's GGUF (and keeps one given explicitly)."""
    import shutil as _shutil

    from app.agent import trainer as trainer_module
    from app.model_files import embedded_base_model, register_model, use_model
    from app.ops.training import start_trainer, with_agent_base

    assert with_agent_base({"steps": 3}, db) == {"steps": 3, "base_gguf": None}  # the embedded default
    mine = tmp_path / "my-gemma.gguf"
    _shutil.copy(embedded_base_model(), mine)
    register_model(db, mine, "agent-base", name="my-gemma")
    use_model(db, "agent-base", "my-gemma")
    assert with_agent_base({"steps": 3}, db)["base_gguf"] == str(mine.resolve())
    assert with_agent_base({"base_gguf": "/given.gguf"}, db)["base_gguf"] == "/given.gguf"
    started = []
    monkeypatch.setattr(
        trainer_module.TrainerProcess, "start_command", classmethod(lambda cls, args, **kw: started.append(args))
    )
    start_trainer(sender="kay.mann@enron.com", steps=2)  # no db given: it opens the user's own
    assert started
    assert started[0][started[0].index("--base-gguf") + 1] == str(mine.resolve())
