"""The "Your edits" page: the drafts Tiller wrote, what you made of them, what they taught, and
forgetting. The same core calls as ``tiller edits`` (app/learning/, app/store/drafts.py)."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QListWidget,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from app.gui.workers import database


class WeeklyEditPlot(QWidget):
    """Bars: the share of a draft's words the user changed, per week (lower is better)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.weeks: list[tuple[str, int, float]] = []
        self.setMinimumHeight(110)

    def set_weeks(self, weeks: list[tuple[str, int, float]]) -> None:
        self.weeks = weeks[-12:]
        self.setToolTip("\n".join(f"{w}: {n} draft(s), {m:.0%} of the words changed" for w, n, m in self.weeks))
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        w, h = self.width(), self.height()
        label_h = 16
        if not self.weeks:
            painter.drawText(self.rect(), Qt.AlignCenter, "No edited or sent drafts yet")
            return
        slot = w / len(self.weeks)
        for i, (week, _n, mean) in enumerate(self.weeks):
            bar_h = max(2.0, (h - 2 * label_h) * min(1.0, mean))
            x = i * slot + slot * 0.2
            painter.fillRect(QRectF(x, h - label_h - bar_h, slot * 0.6, bar_h), QColor("#4a7dbd"))
            painter.drawText(QRectF(i * slot, h - label_h, slot, label_h), Qt.AlignCenter, week[-3:])
            painter.drawText(
                QRectF(i * slot, h - label_h - bar_h - label_h, slot, label_h), Qt.AlignCenter, f"{mean:.0%}"
            )
        painter.end()


class EditsPage(QWidget):
    sig_changed = Signal()

    COLUMNS = ("id", "when (UTC)", "to", "intent", "status", "changed", "sent match")

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.recording = QCheckBox("Record the drafts Tiller writes and what I do with them", objectName="recording")
        self.plot = WeeklyEditPlot()
        self.table = QTableWidget(0, len(self.COLUMNS), objectName="drafts")
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeToContents)
        header.setSectionResizeMode(3, QHeaderView.Stretch)  # the intent takes what is left
        self.forget_button = QPushButton("Forget selected", objectName="forget")
        self.unmatch_button = QPushButton("Not this sent email", objectName="unmatch")
        self.unmatch_button.setToolTip("Undo a wrong match between the draft and a sent email")
        self.rules = QListWidget(objectName="scoped_rules")
        self.retrains = QLabel(objectName="retrains", wordWrap=True)
        self.status = QLabel(objectName="edits_status", wordWrap=True)

        layout = QVBoxLayout(self)
        layout.addWidget(
            QLabel(
                "Drafts you edit, copy or send teach the agent: rules for that recipient, and a retrain in the "
                "background when enough have come in. All of it stays on this computer.",
                wordWrap=True,
            )
        )
        layout.addWidget(self.recording)
        layout.addWidget(QLabel("How much of each draft you still change, per week"))
        layout.addWidget(self.plot)
        layout.addWidget(self.table, 2)
        row = QHBoxLayout()
        row.addWidget(self.forget_button)
        row.addWidget(self.unmatch_button)
        row.addStretch()
        layout.addLayout(row)
        layout.addWidget(QLabel("Rules learned from your edits (they replace the agent's on the same aspect)"))
        layout.addWidget(self.rules, 1)
        layout.addWidget(self.retrains)
        layout.addWidget(self.status)

        self.recording.toggled.connect(self._set_recording)
        self.forget_button.clicked.connect(self.forget_selected)
        self.unmatch_button.clicked.connect(self.unmatch_selected)
        self.refresh()

    def refresh(self) -> None:
        from app.learning.capture import capture_on
        from app.store import drafts as store

        with database() as db:
            rows = store.drafts(db, limit=500)
            weeks = store.weekly_edit_distance(db)
            scoped = store.scoped_rules(db)
            runs = store.retrains(db)[:3]
            on = capture_on(db)
        self.recording.blockSignals(True)
        self.recording.setChecked(on)
        self.recording.blockSignals(False)
        self.plot.set_weeks(weeks)
        self.table.setRowCount(len(rows))
        for r, d in enumerate(rows):
            values = (
                str(d.id),
                d.created_at[:16].replace("T", " "),
                d.recipient or "-",
                d.intent,
                d.status + (" (picked)" if d.picked else ""),
                f"{d.edit_distance:.0%}" if d.edit_distance is not None else "-",
                f"message {d.sent_message_id} ({d.match_similarity:.2f})" if d.sent_message_id else "-",
            )
            for c, value in enumerate(values):
                item = QTableWidgetItem(value)
                item.setData(Qt.UserRole, d.id)
                self.table.setItem(r, c, item)
        self.rules.clear()
        for rule in scoped:
            where = rule.scope_value or "all your mail"
            checked = (
                f"{rule.verified_kept} of {rule.verified_on} of your emails keep it"
                if rule.verified_on
                else "no emails to check"
            )
            self.rules.addItem(f"{where}: {rule.rule}  ({checked})")
        self.retrains.setText(
            "\n".join(
                f"Retrain of {run.profile}, {run.started_at[:16].replace('T', ' ')}: {run.note or run.decision}"
                for run in runs
            )
        )

    def selected_ids(self) -> list[int]:
        return sorted({self.table.item(i.row(), 0).data(Qt.UserRole) for i in self.table.selectedIndexes()})

    def _set_recording(self, on: bool) -> None:
        from app.learning.capture import set_capture

        with database() as db:
            set_capture(db, on)
        self.status.setText(
            "Recording drafts." if on else "Not recording new drafts; what is stored stays until you forget it."
        )

    def forget_selected(self, confirm: bool = True) -> None:
        from app.learning.capture import forget_drafts

        ids = self.selected_ids()
        if not ids:
            self.status.setText("Select the drafts to forget first.")
            return
        if confirm and (
            QMessageBox.question(self, "Forget drafts", f"Forget {len(ids)} draft(s) and what they taught?")
            != QMessageBox.Yes
        ):
            return
        with database() as db:
            forgotten = forget_drafts(db, ids)
        self.status.setText(f"Forgot {forgotten} draft(s) and what they taught.")
        self.refresh()
        self.sig_changed.emit()

    def unmatch_selected(self) -> None:
        from app.learning.loop import undo_matches

        with database() as db:
            undone = undo_matches(db, self.selected_ids())
        self.status.setText(
            f"{undone} match(es) undone." if undone else "The selected drafts are not matched to sent mail."
        )
        self.refresh()
