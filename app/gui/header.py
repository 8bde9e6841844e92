"""The header above every page: for the identity being written as, what is ready, one chip each
(mail imported, training data, the agent and when it was trained, the voice stage, the large
model), so the user sees at a glance what the next step is. The figures come from
:func:`app.firstrun.readiness` (Qt-free)."""

from __future__ import annotations

from html import escape

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QWidget

from app.gui.workers import database

_GOOD, _TODO = "#1f7a4d", "#9a5b00"


def _chip(text: str, ready: bool) -> str:
    color = _GOOD if ready else _TODO
    return (
        f'<span style="color:{color}; font-weight:600">{"●" if ready else "○"}</span> '
        f'<span style="color:#2b333b">{escape(text)}</span>'
    )


class ReadinessHeader(QWidget):
    """``show_for(address)`` when the identity changes, ``refresh()`` after an import, a training run
    or a backend change."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent, objectName="header")
        self.address: str | None = None
        self.who = QLabel(objectName="header_who")
        self.chips = QLabel(objectName="header_chips", wordWrap=True)
        self.chips.setTextFormat(self.chips.textFormat().RichText)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(12, 8, 12, 8)
        layout.addWidget(self.who)
        layout.addWidget(self.chips, 1)
        self.setAttribute(Qt.WA_StyledBackground, True)  # a plain QWidget paints no stylesheet background
        self.setStyleSheet("#header { background: #f3f5f7; border-bottom: 1px solid #dde2e7; }")

    def show_for(self, address: str | None) -> None:
        self.address = address
        self.refresh()

    def refresh(self) -> None:
        from app.firstrun import readiness

        with database() as db:
            r = readiness(db, self.address)
        if r is None:
            self.who.setText("<b>Welcome</b>")
            self.chips.setText(_chip("import the mail you sent to begin", False))
            return
        self.who.setText(f"<b>{escape(r.address or 'All my identities')}</b>")
        agent = r.agent or "agent not trained"
        if r.agent and r.agent_is_shared:
            agent = f"shared agent {r.agent}"
        self.chips.setText(
            " &nbsp;&nbsp; ".join(
                [
                    _chip(f"{r.emails:,} sent emails", r.emails > 0),
                    _chip(f"training data for {r.with_intents:,}", r.with_intents > 0),
                    _chip(agent, r.agent is not None),
                    _chip(f"voice stage {r.voice}", r.voice == "on"),
                    _chip(f"default large model: {r.backend}", True),
                ]
            )
        )

    def text(self) -> str:
        """What the header says, as plain text (tests, accessibility)."""
        from PySide6.QtGui import QTextDocument

        doc = QTextDocument()
        doc.setHtml(f"{self.who.text()} {self.chips.text()}")
        return doc.toPlainText().replace("\xa0", " ")


def identity_box(header: ReadinessHeader, box: QComboBox) -> None:
    """Keep the header on the identity ``box`` (the Compose page's "Write as") has chosen."""
    box.currentIndexChanged.connect(lambda _: header.show_for(box.currentData()))
    header.show_for(box.currentData())
