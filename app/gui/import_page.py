"""Import wizard: pick a mailbox, preview what it holds, import with progress and cancel, see the summary."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.gui.workers import Job


class ImportPage(QWidget):
    sig_import_finished = Signal(object)  # the ImportResult

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.job: Job | None = None
        self.last_result = None
        self.path = QLineEdit(
            objectName="import_path", placeholderText="A Maildir folder, an mbox file, a folder of mbox or .eml files"
        )
        self.choose_folder = QPushButton("Folder…")
        self.choose_file = QPushButton("mbox file…")
        self.choose_server = QPushButton("Mail server…", objectName="imap_show", checkable=True)
        self.preview = QLabel(objectName="import_preview", wordWrap=True)
        self.start = QPushButton("Import", objectName="import_start", enabled=False)
        self.cancel = QPushButton("Cancel", objectName="import_cancel", enabled=False)
        self.bar = QProgressBar(objectName="import_bar")
        self.rate = QLabel()
        self.summary = QTableWidget(0, 2, objectName="import_summary")
        self.summary.setHorizontalHeaderLabels(["", "messages"])
        self.summary.horizontalHeader().setStretchLastSection(True)
        self.summary.verticalHeader().setVisible(False)
        self.skipped = QLabel(objectName="import_skipped", wordWrap=True)
        server = self.server_box = self._server_box()
        # shown on demand, so the page (and the window's smallest size) stays small for file imports
        server.setVisible(False)
        self.choose_server.toggled.connect(server.setVisible)
        self.choose_server.setChecked(bool(self._accounts))  # someone with an account imports from it again

        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(self.choose_folder)
        row.addWidget(self.choose_file)
        row.addWidget(self.choose_server)
        run = QHBoxLayout()
        run.addWidget(self.start)
        run.addWidget(self.cancel)
        run.addWidget(self.bar, 1)
        run.addWidget(self.rate)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Import your sent mail to teach Tiller your style. It stays on this computer."))
        layout.addLayout(row)
        layout.addWidget(server)
        layout.addWidget(self.preview)
        layout.addLayout(run)
        layout.addWidget(self.summary, 1)
        layout.addWidget(self.skipped)

        self.choose_folder.clicked.connect(lambda: self._chosen(QFileDialog.getExistingDirectory(self, "Mail folder")))
        self.choose_file.clicked.connect(lambda: self._chosen(QFileDialog.getOpenFileName(self, "mbox file")[0]))
        self.path.editingFinished.connect(lambda: self._chosen(self.path.text()))
        self.start.clicked.connect(self.run_import)
        self.cancel.clicked.connect(lambda: self.job and self.job.cancel())

    # -- from a mail server (IMAP) ---------------------------------------------------------------

    SECURITY_CHOICES = (
        ("tls", "TLS (port 993)"),
        ("starttls", "STARTTLS (port 143)"),
        ("plaintext", "Plain text: UNSAFE, the password and mail cross the network readable"),
    )

    def _server_box(self) -> QGroupBox:
        box = QGroupBox("From a mail server (IMAP): your Sent folder, read-only", objectName="imap_box")
        self.account = QComboBox(objectName="imap_account", editable=True)
        self.account.lineEdit().setPlaceholderText("a name for this account, e.g. work")
        self.host = QLineEdit(objectName="imap_host", placeholderText="imap.example.com")
        self.port = QSpinBox(objectName="imap_port", minimum=0, maximum=65535, specialValueText="usual port")
        self.user = QLineEdit(objectName="imap_user", placeholderText="you@example.com")
        self.password = QLineEdit(objectName="imap_password", echoMode=QLineEdit.EchoMode.Password)
        self.password.setPlaceholderText("password or app password (kept in the OS keyring)")
        self.security = QComboBox(objectName="imap_security")
        for key, label in self.SECURITY_CHOICES:
            self.security.addItem(label, key)
        self.ca_file = QLineEdit(
            objectName="imap_ca", placeholderText="only for a server with a self-signed certificate"
        )
        self.sent_folder = QLineEdit(
            objectName="imap_sent", placeholderText="found on the server (flagged \\Sent, or by name)"
        )
        self.context_folders = QLineEdit(
            objectName="imap_context", placeholderText="optional, comma-separated: folders imported as context (INBOX)"
        )
        choose_ca = QPushButton("Certificate…")
        self.risk = QLabel(objectName="imap_risk", wordWrap=True)
        self.risk.setStyleSheet("color: #b00020")
        self.server_import = QPushButton("Import from server", objectName="imap_import")
        ca_row = QHBoxLayout()
        ca_row.addWidget(self.ca_file, 1)
        ca_row.addWidget(choose_ca)
        form = QFormLayout(box)
        form.addRow("Account", self.account)
        form.addRow("Server", self.host)
        form.addRow("Port", self.port)
        form.addRow("User", self.user)
        form.addRow("Password", self.password)
        form.addRow("Security", self.security)
        form.addRow("Trusted certificate", ca_row)
        form.addRow("Sent folder", self.sent_folder)
        form.addRow("Context folders", self.context_folders)
        form.addRow(self.risk)
        form.addRow(self.server_import)
        choose_ca.clicked.connect(lambda: self.ca_file.setText(QFileDialog.getOpenFileName(self, "Certificate")[0]))
        self.security.currentIndexChanged.connect(lambda _: self._show_risk())
        self.account.currentTextChanged.connect(self._account_chosen)
        self.server_import.clicked.connect(self.run_server_import)
        self.refresh_accounts()
        return box

    def refresh_accounts(self) -> None:
        from app.mail.accounts import list_accounts
        from app.store import open_database

        db = open_database()
        try:
            self._accounts = {a.name: a for a in list_accounts(db)}
        finally:
            db.conn.close()
        current = self.account.currentText()
        self.account.blockSignals(True)
        self.account.clear()
        self.account.addItems(sorted(self._accounts))
        self.account.setEditText(current)
        self.account.blockSignals(False)

    def _account_chosen(self, name: str) -> None:
        acc = self._accounts.get(name)
        if acc is None:
            return
        self.host.setText(acc.host)
        self.port.setValue(acc.port or 0)
        self.user.setText(acc.user)
        self.security.setCurrentIndex([k for k, _ in self.SECURITY_CHOICES].index(acc.security))
        self.ca_file.setText(acc.ca_file or "")
        self.sent_folder.setText(acc.sent_folder or "")
        self.context_folders.setText(", ".join(acc.context_folders))
        self.password.clear()
        self.password.setPlaceholderText("stored in the keyring (type a new one to replace it)")

    def _form_account(self):
        from app.mail.imap import ImapAccount

        return ImapAccount(
            name=self.account.currentText().strip(),
            host=self.host.text().strip(),
            user=self.user.text().strip(),
            port=self.port.value() or None,
            security=self.security.currentData(),
            ca_file=self.ca_file.text().strip() or None,
            sent_folder=self.sent_folder.text().strip() or None,
            context_folders=tuple(f.strip() for f in self.context_folders.text().split(",") if f.strip()),
        )

    def _show_risk(self) -> None:
        from app.mail.imap import ImapAccount

        # from the security choice alone: the warning shows before the rest of the form is filled
        risks = ImapAccount(name="-", host="-", user="-", security=self.security.currentData()).unsafe
        self.risk.setText("Unsafe: " + "; ".join(risks) if risks else "")

    def run_server_import(self) -> None:
        if self.job is not None and self.job.running:
            return
        try:
            account = self._form_account()
        except ValueError as exc:
            self.preview.setText(f"Cannot import from the server: {exc}")
            return
        password = self.password.text()
        if not password and account.name not in self._accounts:
            self.preview.setText("Type the password (or app password) for this account.")
            return
        stored = self._accounts.get(account.name)
        if not password and stored is not None and stored != account:
            self.preview.setText("The account's settings changed: type its password again to save them.")
            return
        self._show_risk()
        from app.mail.accounts import add_account, imap_source

        def prepare(db):
            if password:
                add_account(db, account, password)  # logs in first: a wrong password stores nothing
            return imap_source(db, account.name)

        self.password.clear()
        self.preview.setText(f"Connecting to {account.host}…")
        self._start(_importing(prepare))
        self.job.sig_succeeded.connect(lambda _: self.refresh_accounts())

    def _chosen(self, path: str) -> None:
        if not path:
            return
        self.path.setText(path)
        self.source = None
        from app.mail.sources import SourceError, open_source

        try:
            self.source = open_source(Path(path))
        except (SourceError, OSError, ValueError) as exc:
            self.preview.setText(f"Cannot import this: {exc}")
            self.start.setEnabled(False)
            return
        estimate = self.source.estimate()
        what = f"about {estimate:,} items" if estimate is not None else "an mbox (counted while importing)"
        self.preview.setText(f"{self.source.kind}: {what} in {self.source.location}")
        self.start.setEnabled(True)

    def run_import(self) -> None:
        if self.job is not None and self.job.running or getattr(self, "source", None) is None:
            return
        source = self.source
        self._start(_importing(lambda db: source))

    def _start(self, work) -> None:
        self.start.setEnabled(False)
        self.server_import.setEnabled(False)
        self.cancel.setEnabled(True)
        self.bar.setRange(0, 0)
        job = self.job = Job(work, "import", self)
        job.sig_progress.connect(self._progress)
        job.sig_succeeded.connect(self._done)
        job.sig_failed.connect(
            lambda msg: self._ended(
                f"The import stopped: {msg}. Everything counted so far is saved; import again to resume."
            )
        )
        job.start()

    def _progress(self, p) -> None:
        if p.message.startswith("waiting for another import"):
            self.preview.setText(
                f"Waiting: another import of this data is running ({p.message.split('(')[-1].rstrip(')')}); "
                "this one starts when it ends. Cancel to stop waiting."
            )
            return
        if p.total:
            self.bar.setRange(0, p.total)
            self.bar.setValue(min(p.done, p.total))
        self.rate.setText(f"{p.done:,} · {p.rate:,.0f}/s")

    def _done(self, result) -> None:
        result, skipped = result
        self.last_result = result
        c = result.counts
        rows = (
            [
                ("seen", c.seen),
                ("stored", c.stored),
                ("duplicates", c.duplicates),
                ("already imported", c.already_imported),
                ("skipped", c.skipped),
            ]
            + [(f"  skipped: {r}", n) for r, n in c.skip_reasons.most_common()]
            + [("stored with warnings", c.warnings)]
        )
        self.summary.setRowCount(len(rows))
        for i, (label, n) in enumerate(rows):
            self.summary.setItem(i, 0, QTableWidgetItem(label))
            self.summary.setItem(i, 1, QTableWidgetItem(f"{n:,}"))
        self.summary.resizeColumnToContents(0)
        self.skipped.setText("\n".join(f"skipped {path}: {reason}: {detail}" for path, reason, detail in skipped[:10]))
        status = (
            "Cancelled: everything counted is saved; import again to resume."
            if result.status == "cancelled"
            else (f"Done: {c.stored:,} stored in {result.elapsed_s:.1f} s.")
        )
        self._ended(status)
        self.sig_import_finished.emit(result)

    def _ended(self, text: str) -> None:
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        self.preview.setText(text)
        self.start.setEnabled(getattr(self, "source", None) is not None)
        self.server_import.setEnabled(True)
        self.cancel.setEnabled(False)


def _skipped(db, run_id: int) -> list[tuple[str, str, str]]:
    from app.store.imports import skipped_items

    return [(item.where, item.reason, item.detail) for item in skipped_items(db, run_id, limit=50)]


def _importing(prepare):
    """A job's work: this thread's own database connection, the source ``prepare(db)`` gives, the
    import, then its result and what it skipped."""
    from app.ops.imports import ImportOperation
    from app.store import open_database

    def work(token):
        db = open_database()
        try:
            job = ImportOperation(db, prepare(db), cancel=token)
            yield from job.run()
            return job.result, _skipped(db, job.result.run_id)
        finally:
            db.conn.close()

    return work
