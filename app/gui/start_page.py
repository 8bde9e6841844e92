"""The start page: the first-run path (:mod:`app.firstrun`) drawn as four steps with a button each."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from app.gui.workers import database


class StartPage(QWidget):
    sig_go = Signal(str)  # the key of the page that does a step

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.grid = QGridLayout()
        self.grid.setColumnStretch(1, 1)
        self.grid.setVerticalSpacing(10)
        self.setStyleSheet(
            "#card, #done_card { background: #ffffff; border: 1px solid #dde2e7; border-radius: 8px; }"
            "#done_card { border-left: 4px solid #1f7a4d; }"
            "#card { border-left: 4px solid #c98a1a; }"
        )
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
            card = QFrame(objectName="done_card" if step.done else "card")
            inside = QHBoxLayout(card)
            inside.setContentsMargins(14, 10, 14, 10)
            inside.addWidget(text, 1)
            inside.addWidget(button)
            self.grid.addWidget(card, row, 0, 1, 3)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
