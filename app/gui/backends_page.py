"""Backends & keys: add Claude / Gemini / OpenAI-compatible endpoints, keys into the OS keyring,
a round-trip test, the default; the models on this computer and their roles (what `tiller models`
shows); and the privacy ledger of every request that left the machine."""

from __future__ import annotations

import json

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSplitter,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.gui.workers import Job, database

PROVIDERS = [
    ("Claude (Anthropic)", "anthropic"),
    ("Gemini (Google)", "gemini"),
    ("OpenAI-compatible (llama.cpp server, vLLM, Ollama)", "openai_compat"),
    ("Local GGUF on this computer", "local"),
]


class AddBackendDialog(QDialog):
    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Add a large model")
        self.name = QLineEdit(objectName="backend_name", placeholderText="e.g. claude, work vLLM")
        self.provider = QComboBox(objectName="backend_provider")
        for label, pid in PROVIDERS:
            self.provider.addItem(label, pid)
        self.model = QLineEdit(
            objectName="backend_model", placeholderText="model id (e.g. claude-sonnet-4-5), or a GGUF path for local"
        )
        self.base_url = QLineEdit(
            objectName="backend_url", placeholderText="http://127.0.0.1:8080/v1 (OpenAI-compatible only)"
        )
        self.key = QLineEdit(
            objectName="backend_key", echoMode=QLineEdit.Password, placeholderText="API key (kept in the OS keyring)"
        )
        self.error = QLabel(wordWrap=True, styleSheet="color: #b00020;")
        form = QFormLayout(self)
        form.addRow("Name", self.name)
        form.addRow("Provider", self.provider)
        form.addRow("Model", self.model)
        form.addRow("Base URL", self.base_url)
        form.addRow("API key", self.key)
        form.addRow(self.error)
        buttons = QDialogButtonBox(QDialogButtonBox.Save | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def save(self) -> None:
        from app.backends.base import EndpointConfig
        from app.backends.errors import ConfigError
        from app.ops.backends import add_backend

        cfg = EndpointConfig(
            name=self.name.text().strip(),
            provider=self.provider.currentData(),
            model=self.model.text().strip() or None,
            base_url=self.base_url.text().strip() or None,
        )
        try:
            with database() as db:
                add_backend(db, cfg, key=self.key.text() or None)
        except (ConfigError, ValueError, RuntimeError) as exc:
            self.error.setText(str(exc))
            return
        self.key.clear()
        self.accept()


class BackendsPage(QWidget):
    sig_changed = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.job: Job | None = None
        self.table = QTableWidget(0, 5, objectName="backends_table")
        self.table.setHorizontalHeaderLabels(["name", "provider", "model / endpoint", "key", "default"])
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSelectionBehavior(QTableWidget.SelectRows)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.add = QPushButton("Add…", objectName="backend_add")
        self.set_key = QPushButton("Set key…")
        self.make_default = QPushButton("Make default")
        self.test = QPushButton("Test round trip", objectName="backend_test")
        self.remove = QPushButton("Remove")
        self.result = QLabel(objectName="backend_result", wordWrap=True)
        buttons = QHBoxLayout()
        for b in (self.add, self.set_key, self.make_default, self.test, self.remove):
            buttons.addWidget(b)
        buttons.addStretch()
        layout = QVBoxLayout(self)
        layout.addWidget(
            QLabel("Large models that write your drafts. Keys are kept in the OS keyring, never in Tiller's files.")
        )
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.result)
        self.models = ModelsTable(self)
        layout.addWidget(self.models, 1)
        self.add.clicked.connect(self._add)
        self.set_key.clicked.connect(self._set_key)
        self.make_default.clicked.connect(self._make_default)
        self.test.clicked.connect(self.run_test)
        self.remove.clicked.connect(self._remove)
        self.refresh()

    def selected(self) -> str | None:
        row = self.table.currentRow()
        return self.table.item(row, 0).text() if row >= 0 and self.table.item(row, 0) else None

    def refresh(self) -> None:
        from app.backends.config import default_endpoint_name, key_status, list_endpoints
        from app.backends.registry import provider_class

        with database() as db:
            endpoints, default = list_endpoints(db), default_endpoint_name(db)
        self.table.setRowCount(len(endpoints))
        for i, cfg in enumerate(endpoints):
            cls = provider_class(cfg.provider)
            where = cfg.model or cls.default_model or ""
            if cfg.base_url:
                where += f" @ {cfg.base_url}"
            for j, text in enumerate(
                [cfg.name, cls.label, where, key_status(cfg), "yes" if cfg.name == default else ""]
            ):
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()

    def _add(self) -> None:
        if AddBackendDialog(self).exec() == QDialog.Accepted:
            self.refresh()
            self.sig_changed.emit()

    def _set_key(self) -> None:
        from app.secrets import set_key

        name = self.selected()
        if not name:
            return
        key, ok = QInputDialog.getText(
            self, f"Key for {name}", "API key (stored in the OS keyring):", QLineEdit.Password
        )
        if ok and key:
            try:
                set_key(name, key)
            except (RuntimeError, ValueError) as exc:
                self.result.setText(str(exc))
            self.refresh()

    def _make_default(self) -> None:
        from app.backends.config import set_default_endpoint

        name = self.selected()
        if name:
            with database() as db:
                set_default_endpoint(db, name)
            self.refresh()
            self.sig_changed.emit()

    def _remove(self) -> None:
        from app.ops.backends import remove_backend

        name = self.selected()
        if not name or name == "local":
            return
        with database() as db:
            remove_backend(db, name)
        self.refresh()
        self.sig_changed.emit()

    def run_test(self) -> None:
        from app.backends.client import connectivity_request, generate

        name = self.selected()
        if not name or (self.job is not None and self.job.running):
            return
        request = connectivity_request()

        def work(token):
            gen = generate(request, name, cancel=token)
            text = "".join(gen)
            return text, gen.completion

        self.result.setText(f"Testing {name}…")
        job = self.job = Job(work, "backend-test", self)
        job.sig_succeeded.connect(
            lambda r: self.result.setText(f"{name} answered in {r[1].elapsed_s:.2f} s: {r[0].strip()[:80]!r}")
        )
        job.sig_failed.connect(lambda msg: self.result.setText(f"{name} failed: {msg}"))
        job.start()


class ModelsTable(QWidget):
    """The GGUF models on this computer: the embedded two and any the user added, with their roles
    (a role marked * is in use), header facts and sha256."""

    def __init__(self, parent=None) -> None:
        from app.model_files import ModelInfo

        super().__init__(parent)
        self.table = QTableWidget(0, len(ModelInfo.TABLE_COLUMNS), objectName="models_table")
        self.table.setHorizontalHeaderLabels(list(ModelInfo.TABLE_COLUMNS))
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setSelectionBehavior(QTableWidget.SelectRows)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.add = QPushButton("Add a GGUF…", objectName="model_add")
        self.use_drafting = QPushButton("Use for drafting", objectName="model_use_drafting")
        self.use_agent = QPushButton("Use as agent base", objectName="model_use_agent")
        self.message = QLabel(objectName="models_message", wordWrap=True)
        buttons = QHBoxLayout()
        for b in (self.add, self.use_drafting, self.use_agent):
            buttons.addWidget(b)
        buttons.addStretch()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(
            QLabel("Models on this computer (llama.cpp). Nothing is downloaded: add a GGUF file you have.")
        )
        layout.addWidget(self.table, 1)
        layout.addLayout(buttons)
        layout.addWidget(self.message)
        self.add.clicked.connect(self._add)
        self.use_drafting.clicked.connect(lambda: self.use("drafting"))
        self.use_agent.clicked.connect(lambda: self.use("agent-base"))
        self.names: list[str] = []
        self.refresh()

    def refresh(self) -> None:
        from app.model_files import ROLES, list_models, model_for_role

        with database() as db:
            in_use = {model_for_role(db, role) for role in ROLES}
            models = list_models(db)
        self.names = [m.name for m in models]
        self.table.setRowCount(len(models))
        for i, m in enumerate(models):
            for j, text in enumerate(m.table_row(m.name in in_use)):
                self.table.setItem(i, j, QTableWidgetItem(text))
        self.table.resizeColumnsToContents()

    def use(self, role: str) -> None:
        from app.model_files import use_model

        row = self.table.currentRow()
        if row < 0:
            self.message.setText("Select a model first.")
            return
        try:
            with database() as db:
                use_model(db, role, self.names[row])
        except ValueError as exc:
            self.message.setText(str(exc))
            return
        self.message.setText(f"The {role} model is now {self.names[row]}.")
        self.refresh()

    def _add(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Add a GGUF model", "", "GGUF models (*.gguf)")
        if path:
            self.add_file(path)

    def add_file(self, path: str, role: str = "drafting") -> Job:
        """Register the file in a worker: its sha256 takes seconds for a model of a few GB."""
        from app.model_files import register_model

        def work(token):
            with database() as db:
                return register_model(db, path, role)

        def added(info) -> None:
            self.message.setText(f"Added {info.name} for {role}; select it and choose a role to use it.")
            self.refresh()

        self.message.setText(f"Reading {path} and computing its sha256…")
        self.job = Job(work, "model-add", self)
        self.job.sig_succeeded.connect(added)
        self.job.sig_failed.connect(self.message.setText)
        self.job.start()
        return self.job


class LedgerPage(QWidget):
    """Every request that left this computer, newest first, with its full payload."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(0, 7, objectName="ledger_table")
        self.table.setHorizontalHeaderLabels(
            ["id", "time (UTC)", "backend", "purpose", "endpoint", "bytes sent", "outcome"]
        )
        self.table.setSelectionBehavior(QTableWidget.SelectRows)
        self.table.setEditTriggers(QTableWidget.NoEditTriggers)
        self.payload = QPlainTextEdit(objectName="ledger_payload", readOnly=True)
        self.summary = QLabel(objectName="ledger_summary")
        refresh = QPushButton("Refresh")
        splitter = QSplitter(Qt.Vertical)
        splitter.addWidget(self.table)
        splitter.addWidget(self.payload)
        layout = QVBoxLayout(self)
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(refresh)
        layout.addLayout(top)
        layout.addWidget(splitter, 1)
        refresh.clicked.connect(self.refresh)
        self.table.currentCellChanged.connect(lambda row, *_: self._show(row))
        self.refresh()

    def refresh(self) -> None:
        from app.backends.ledger import Ledger

        entries = Ledger().entries(limit=500)
        self.summary.setText(
            f"{len(entries)} requests have left this computer." if entries else "Nothing has left this computer."
        )
        self.table.setRowCount(len(entries))
        for i, e in enumerate(entries):
            values = [
                str(e["id"]),
                e["started_at"][:19].replace("T", " "),
                e["backend"],
                e["purpose"],
                e["url"],
                str(e["request_bytes"]),
                e["outcome"] or "",
            ]
            for j, text in enumerate(values):
                self.table.setItem(i, j, QTableWidgetItem(text))

    def _show(self, row: int) -> None:
        from app.backends.ledger import Ledger

        item = self.table.item(row, 0) if row >= 0 else None
        if item is None:
            return
        entry = Ledger().entry(int(item.text()))
        if entry is None:
            return
        try:
            payload = json.dumps(json.loads(entry["request_payload"]), indent=2, ensure_ascii=False)
        except (TypeError, json.JSONDecodeError):
            payload = entry["request_payload"] or ""
        headers = entry["request_headers"] or "{}"
        self.payload.setPlainText(
            f"{entry['method']} {entry['url']}\nstatus {entry['response_status']}, {entry['outcome']}"
            f"\nheaders (authorization never recorded): {headers}\n\n{payload}"
        )
