"""Import wizard: pick a mailbox, preview what it holds, import with progress and cancel, see the summary."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
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

        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(self.choose_folder)
        row.addWidget(self.choose_file)
        run = QHBoxLayout()
        run.addWidget(self.start)
        run.addWidget(self.cancel)
        run.addWidget(self.bar, 1)
        run.addWidget(self.rate)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Import your sent mail to teach Tiller your style. It stays on this computer."))
        layout.addLayout(row)
        layout.addWidget(self.preview)
        layout.addLayout(run)
        layout.addWidget(self.summary, 1)
        layout.addWidget(self.skipped)

        self.choose_folder.clicked.connect(lambda: self._chosen(QFileDialog.getExistingDirectory(self, "Mail folder")))
        self.choose_file.clicked.connect(lambda: self._chosen(QFileDialog.getOpenFileName(self, "mbox file")[0]))
        self.path.editingFinished.connect(lambda: self._chosen(self.path.text()))
        self.start.clicked.connect(self.run_import)
        self.cancel.clicked.connect(lambda: self.job and self.job.cancel())

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
        from app.mail.importer import MailImport
        from app.store import open_database

        source = self.source

        def work(token):
            db = open_database()  # this thread's own connection
            try:
                job = MailImport(db, source, cancel=token)
                yield from job.run()
                return job.result, _skipped(db, job.result.run_id)
            finally:
                db.conn.close()

        self.start.setEnabled(False)
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
        self.start.setEnabled(True)
        self.cancel.setEnabled(False)


def _skipped(db, run_id: int) -> list[tuple[str, str, str]]:
    import os

    from app.store.imports import skipped_items

    return [
        (os.path.join(loc, key), reason, detail) for loc, key, reason, detail in skipped_items(db, run_id, limit=50)
    ]
