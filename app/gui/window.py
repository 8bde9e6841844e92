"""The main window: a page list on the left (Get started, Compose, Import, Training, Large models,
Privacy, Your edits) and the pages. Window state and the last page are restored from ``<data>/gui.ini``
(versioned); with no mail imported yet the window opens on Get started, the first-run path."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from PySide6.QtCore import QObject, QSize, Signal
from PySide6.QtGui import QIcon
from PySide6.QtWidgets import (
    QApplication,
    QFrame,
    QHBoxLayout,
    QListWidget,
    QListWidgetItem,
    QMainWindow,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app import logs, paths
from app.gui.backends_page import BackendsPage, LedgerPage
from app.gui.compose import ComposePage
from app.gui.edits_page import EditsPage
from app.gui.header import ReadinessHeader, identity_box
from app.gui.import_page import ImportPage
from app.gui.settings import gui_settings
from app.gui.start_page import StartPage
from app.gui.training_page import TrainingPage
from app.gui.tray import TrayIcon, start_in_tray


class StatusLog(QObject):
    """Warnings of the ``tiller`` logger (a retrain that could not start...) shown in the status bar:
    the records may come from worker threads, so they cross to the GUI thread as a signal."""

    sig_warning = Signal(str)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        outer = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                outer.sig_warning.emit(record.getMessage())

        self.handler = _Handler(level=logging.WARNING)
        logging.getLogger(logs.LOGGER).addHandler(self.handler)

    def detach(self) -> None:
        logging.getLogger(logs.LOGGER).removeHandler(self.handler)


class MainWindow(QMainWindow):
    def __init__(self) -> None:
        super().__init__()
        logs.configure()
        self.status_log = StatusLog(self)
        self.status_log.sig_warning.connect(lambda text: self.statusBar().showMessage(f"Warning: {text}", 15000))
        self.setWindowTitle("Tiller")
        self.start = StartPage()
        self.compose = ComposePage()
        self.importer = ImportPage()
        self.training = TrainingPage()
        self.backends = BackendsPage()
        self.ledger = LedgerPage()
        self.edits = EditsPage()
        self.pages = QStackedWidget()
        self.nav = QListWidget(objectName="nav")
        for title, icon, page in (
            ("Get started", "start", self.start),
            ("Compose", "compose", self.compose),
            ("Import mail", "import", self.importer),
            ("Training", "training", self.training),
            ("Large models", "backends", self.backends),
            ("Privacy ledger", "ledger", self.ledger),
            ("Your edits", "edits", self.edits),
        ):
            found = paths_resource(f"icons/{icon}.svg")
            self.nav.addItem(QListWidgetItem(QIcon(str(found)) if found else QIcon(), title))
            self.pages.addWidget(page)
        self.nav.setFixedWidth(180)
        self.nav.setIconSize(QSize(20, 20))
        self.nav.setFrameShape(QFrame.NoFrame)
        self.nav.setStyleSheet(
            "#nav { background: #e9edf1; padding-top: 10px; }"
            "#nav::item { padding: 9px 10px; border-radius: 6px; margin: 1px 8px; color: #2b333b; }"
            "#nav::item:selected { background: #ffffff; color: #0f5fa8; font-weight: 600; }"
        )
        self.nav.currentRowChanged.connect(self._show_page)
        self.header = ReadinessHeader()
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(0, 0, 0, 0)
        right_layout.setSpacing(0)
        right_layout.addWidget(self.header)
        right_layout.addWidget(self.pages, 1)
        central = QWidget()
        layout = QHBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.nav)
        layout.addWidget(right, 1)
        self.setCentralWidget(central)
        identity_box(self.header, self.compose.voice)

        self.compose.sig_status_changed.connect(lambda text: self.statusBar().showMessage(text, 8000))
        self.importer.sig_import_finished.connect(
            lambda _: (
                self.compose.refresh(),
                self.training.refresh(),
                self.start.refresh(),
                self.edits.refresh(),
                self.header.show_for(self.compose.voice.currentData()),
            )
        )
        self.training.sig_trained.connect(
            lambda _: (self.compose.refresh(), self.start.refresh(), self.header.refresh())
        )
        by_key = {"import": self.importer, "training": self.training, "compose": self.compose}
        self.start.sig_go.connect(lambda key: self.show_page(by_key[key]))
        self.backends.sig_changed.connect(
            lambda: (self.compose.refresh(), self.training.refresh(), self.header.refresh())
        )
        self.restore()
        self.quitting = False  # Quit from the tray menu ends the app even when it closes to the tray
        self.tray: TrayIcon | None = TrayIcon(self)
        QApplication.instance().aboutToQuit.connect(self._quitting)

    def _quitting(self) -> None:
        self.quitting = True
        self.save()

    def show_page(self, page: QWidget) -> None:
        self.nav.setCurrentRow(self.pages.indexOf(page))

    def _show_page(self, row: int) -> None:
        self.pages.setCurrentIndex(row)
        if self.pages.currentWidget() is self.ledger:
            self.ledger.refresh()
        elif self.pages.currentWidget() is self.edits:
            self.edits.refresh()
        elif self.pages.currentWidget() is self.start:
            self.start.refresh()

    def restore(self) -> None:
        settings = gui_settings()
        geometry = settings.value("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1180, 760)
        state = settings.value("window_state")
        if state is not None:
            self.restoreState(state)
        first_run = not self._has_mail()
        self.nav.setCurrentRow(0 if first_run else int(settings.value("page", 1)))
        backend = settings.value("compose/backend")
        if backend:
            index = self.compose.backend.findText(str(backend))
            if index >= 0:
                self.compose.backend.setCurrentIndex(index)

    @staticmethod
    def _has_mail() -> bool:
        from app.gui.workers import database
        from app.store.messages import has_mail

        with database() as db:
            return has_mail(db)

    def save(self) -> None:
        settings = gui_settings()
        settings.setValue("geometry", self.saveGeometry())
        settings.setValue("window_state", self.saveState())
        settings.setValue("page", self.nav.currentRow())
        settings.setValue("compose/backend", self.compose.backend.currentText())
        settings.sync()

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        if self.tray is not None and start_in_tray() and not self.quitting:
            self.save()
            self.hide()  # closes to the tray, as the user chose; work goes on and notifies
            self.tray.notify("Tiller is still here, in the tray.")
            event.ignore()
            return
        self.save()
        self.status_log.detach()
        for page in (self.compose, self.importer, self.training, self.backends):
            job = getattr(page, "job", None)
            if job is not None and job.running:
                job.cancel()  # the trainer saves a checkpoint and exits; drafts and imports stop cleanly
        super().closeEvent(event)


def main(argv: list[str] | None = None) -> int:
    """``tiller-gui``; ``tiller-gui --smoke-test`` opens the window, lets it paint, prints what it
    found and exits 0 (how a bundle is checked to start)."""
    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QIcon
    from PySide6.QtWidgets import QApplication

    from app.gui.platform_libs import explain_missing, missing_libraries

    missing = missing_libraries()
    if missing:  # Qt would abort in its own start-up, beyond any exception handler
        print(explain_missing(missing), file=sys.stderr)
        return 1
    argv = list(argv if argv is not None else sys.argv)
    smoke = "--smoke-test" in argv
    argv = [a for a in argv if a != "--smoke-test"]
    app = QApplication.instance() or QApplication(argv)
    app.setApplicationName("Tiller")
    icon = paths_resource("icons/tiller.svg")
    if icon is not None:
        app.setWindowIcon(QIcon(str(icon)))
    problem = _store_problem()
    if problem is not None:  # the same sentence the CLI prints, in a dialog instead of a traceback
        from PySide6.QtWidgets import QMessageBox

        if smoke:
            print(f"Tiller cannot start: {problem.message}", flush=True)
        else:
            QMessageBox.critical(None, "Tiller cannot open your data", problem.message)
        return problem.exit_code
    window = MainWindow()
    if not (start_in_tray() and not smoke):  # started in the tray when the user chose it (and there is one)
        window.show()
    if smoke:

        def report() -> None:
            print(
                f"Tiller started: {window.nav.count()} pages, {window.compose.backend.count()} backends, "
                f"data in {paths.home()}",
                flush=True,
            )
            window.close()
            app.quit()

        QTimer.singleShot(300, report)
    return app.exec()


def _store_problem():
    """None when the database opens (and migrates); else what app.errors says about why not."""
    from app.errors import one_line
    from app.store import open_database

    try:
        open_database().conn.close()
    except Exception as exc:  # noqa: BLE001 - shown as one sentence, traceback logged
        return one_line(exc, context="tiller-gui start")
    return None


def paths_resource(name: str) -> Path | None:
    """A file under resources/: beside the package in a checkout, or in a PyInstaller bundle."""
    from app.prompts import RESOURCES

    bases = [RESOURCES]
    if hasattr(sys, "_MEIPASS"):
        bases.append(Path(sys._MEIPASS) / "resources")
    for base in bases:
        if (base / name).is_file():
            return base / name
    return None
