"""The start page: the first-run path (:mod:`app.firstrun`) drawn as four steps with a button each."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QGridLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.gui.workers import database


class StartPage(QWidget):
    sig_go = Signal(str)  # the key of the page that does a step

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.grid = QGridLayout()
        self.grid.setColumnStretch(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(
            QLabel(
                "<h2>Get started</h2>Tiller learns how you write from the mail you sent, on this "
                "computer. Four steps; each says how long it takes here and what, if anything, leaves "
                "this computer."
            )
        )
        layout.addLayout(self.grid)
        layout.addStretch()
        self.labels: dict[str, QLabel] = {}
        self.refresh()

    def refresh(self) -> None:
        from app.firstrun import first_run_steps

        while self.grid.count():
            item = self.grid.takeAt(0)
            if item.widget():
                item.widget().deleteLater()
        with database() as db:
            steps = first_run_steps(db)
        self.labels = {}
        for row, step in enumerate(steps):
            mark = "✓" if step.done else "·"
            text = QLabel(
                f"<b>{mark} {step.title}</b><br>{_html(step.does)}<br><i>Takes:</i> {_html(step.takes)} "
                f"<i>Leaves this computer:</i> {_html(step.leaves)}<br><i>Now:</i> {_html(step.status)}",
                wordWrap=True,
                objectName=f"step_{row + 1}",
            )
            self.labels[step.title] = text
            button = QPushButton("Open" if step.done else "Start", objectName=f"step_{row + 1}_go")
            button.clicked.connect(lambda _=False, key=step.key: self.sig_go.emit(key))
            line = QFrame(frameShape=QFrame.HLine)
            self.grid.addWidget(text, 2 * row, 0, 1, 2)
            self.grid.addWidget(button, 2 * row, 2)
            self.grid.addWidget(line, 2 * row + 1, 0, 1, 3)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
