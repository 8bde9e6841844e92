"""The parts of the compose page, each owning its widgets and their state; the page
(app/gui/compose.py) only wires them to the compose operation (app/ops/compose.py).

- :class:`ComposeForm`: who writes, with which large model, to whom, the intent and the email answered;
- :class:`RulesEditor`: the preference rules, editable, and whether they still fit the form;
- :class:`DraftView`: the draft, its rule check, the large model's original one click away, and what
  the user can do with it;
- :class:`CandidateBar`: several drafts' "Use draft N" buttons and what the picks taught.
"""

from __future__ import annotations

from urllib.parse import quote

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.gui.workers import database
from app.store.messages import message_text, received_messages, search_messages

# what the form holds, in this order: (voice, intent, recipient, subject, previous email)
FormInputs = tuple


def voices() -> list[tuple[str, str | None]]:
    """(label, sender) for each identity, marked when it has a trained agent; plus all senders."""
    from app.agent.profiles import find_profile
    from app.mail.identity import active_identities

    with database() as db:
        addresses = active_identities(db)
    out = []
    for address in addresses:
        profile = find_profile(address)
        mark = (
            "trained agent"
            if profile.trained and profile.name == address
            else ("shared agent" if profile.trained else "no agent yet")
        )
        out.append((f"{address} ({mark})", address))
    out.append(("All my identities", None))
    return out


def backend_names() -> tuple[list[str], str]:
    from app.backends.config import default_endpoint_name, list_endpoints

    with database() as db:
        return [c.name for c in list_endpoints(db)], default_endpoint_name(db)


def drafts_accounts() -> list[str]:
    """The accounts that let Tiller save drafts (the Save to Drafts button shows only then)."""
    from app.mail.accounts import list_accounts

    with database() as db:
        return [a.name for a in list_accounts(db) if a.save_drafts]


class PickMessageDialog(QDialog):
    """Pick an imported email to answer (newest first, filtered by a search box)."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Pick the email you are answering")
        self.resize(640, 420)
        self.search = QLineEdit(placeholderText="Search subject or sender…")
        self.list = QListWidget()
        buttons = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.list.itemDoubleClicked.connect(lambda _: self.accept())
        layout = QVBoxLayout(self)
        for w in (self.search, self.list, buttons):
            layout.addWidget(w)
        self.search.textChanged.connect(self.refresh)
        self.refresh("")

    def refresh(self, text: str) -> None:
        with database() as db:
            # mail you received is what there is to answer; with none imported, any message
            rows = received_messages(db, 200, text) or search_messages(db, text)
        self.list.clear()
        for row in rows:
            item = QListWidgetItem(f"{(row.date or '')[:10]}  {row.sender}  —  {row.subject or '(no subject)'}")
            item.setData(Qt.UserRole, row.id)
            self.list.addItem(item)
        if self.list.count():
            self.list.setCurrentRow(0)

    def chosen(self) -> tuple[int, str, str, str] | None:
        """(id, sender, subject, body) of the selected message."""
        item = self.list.currentItem()
        if item is None:
            return None
        with database() as db:
            found = message_text(db, item.data(Qt.UserRole))
        return (item.data(Qt.UserRole), found.sender, found.subject, found.own_text) if found else None


class ComposeForm(QWidget):
    """The left side: what the user asks for. ``inputs()`` is what the rules and draft are made from."""

    sig_draft = Signal()
    sig_cancel = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.voice = QComboBox(objectName="voice")
        self.backend = QComboBox(objectName="backend")
        self.recipient = QLineEdit(objectName="recipient", placeholderText="Sylvia, or sylvia@example.com")
        self.subject = QLineEdit(objectName="subject")
        self.intent = QPlainTextEdit(objectName="intent")
        self.intent.setPlaceholderText(
            "What should the email say? e.g. Tell Sylvia the NG contract is ready for legal review."
        )
        self.previous = QPlainTextEdit(objectName="previous")
        self.previous.setPlaceholderText("Optional: the email you are answering (paste it, or pick an imported one).")
        self.pick = QPushButton("Pick imported…")
        self.draft_button = QPushButton("Draft", objectName="draft")
        self.draft_button.setDefault(True)
        self.cancel_button = QPushButton("Cancel", objectName="cancel", enabled=False)
        # "give me 3 drafts": each with other style/topic tags; the pick teaches the tag selector
        self.candidates = QSpinBox(objectName="candidates", minimum=1, maximum=3, value=1)
        self.candidates.setToolTip(
            "Write several drafts with different style tags; pick the best and Tiller learns your taste."
        )
        self.use_voice = QCheckBox("In my words (voice stage, on this computer)", objectName="use_voice", checked=True)
        self.use_voice.setToolTip(
            "When this voice's profile has a trained voice stage, the large model's draft is said again in your "
            "words on this computer; a rewrite that loses or adds a fact is not used."
        )
        # the imported message answered (its id, and its text as picked): a draft saved to the
        # server threads under it while the "Answering" box still holds that text
        self._reply_to: tuple[int, str] | None = None

        form = QFormLayout()
        form.addRow("Write as", self.voice)
        form.addRow("Large model", self.backend)
        form.addRow("To", self.recipient)
        form.addRow("Subject", self.subject)
        form.addRow("Drafts to compare", self.candidates)
        form.addRow("", self.use_voice)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel("Intent"))
        layout.addWidget(self.intent, 2)
        previous_row = QHBoxLayout()
        previous_row.addWidget(QLabel("Answering"))
        previous_row.addStretch()
        previous_row.addWidget(self.pick)
        layout.addLayout(previous_row)
        layout.addWidget(self.previous, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.draft_button)
        buttons.addWidget(self.cancel_button)
        layout.addLayout(buttons)

        self.draft_button.clicked.connect(lambda: self.sig_draft.emit())
        self.cancel_button.clicked.connect(lambda: self.sig_cancel.emit())
        self.pick.clicked.connect(self.pick_previous)
        self.voice.activated.connect(lambda _: self.voice.setProperty("chosen", True))  # the user's pick is kept

    def refresh(self) -> None:
        """Reload voices and backends (after an import, training, or a backend change)."""
        current_voice, current_backend = self.voice.currentData(), self.backend.currentText()
        self.voice.blockSignals(True)
        self.voice.clear()
        for label, sender in voices():
            self.voice.addItem(label, sender)
        index = self.voice.findData(current_voice) if self.voice.property("chosen") else -1
        if index < 0:  # first look: the first voice with a trained agent, else the first identity
            labels = [self.voice.itemText(i) for i in range(self.voice.count())]
            index = next((i for i, label in enumerate(labels) if "(trained agent)" in label), 0)
        self.voice.setCurrentIndex(index)
        self.voice.blockSignals(False)
        names, default = backend_names()
        self.backend.clear()
        self.backend.addItems(names)
        self.backend.setCurrentText(current_backend if current_backend in names else default)

    def inputs(self) -> FormInputs:
        return (
            self.voice.currentData(),
            self.intent.toPlainText().strip(),
            self.recipient.text().strip(),
            self.subject.text().strip(),
            self.previous.toPlainText().strip(),
        )

    def busy(self, busy: bool) -> None:
        self.draft_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    def pick_previous(self) -> None:
        dialog = PickMessageDialog(self)
        if dialog.exec() == QDialog.Accepted and (chosen := dialog.chosen()):
            message_id, sender, subject, body = chosen
            self.previous.setPlainText(body)
            self._reply_to = (message_id, self.previous.toPlainText())  # saved drafts thread under it
            from app.mail.imap_drafts import reply_defaults

            recipient, reply = reply_defaults(sender, subject, self.recipient.text(), self.subject.text())
            self.recipient.setText(recipient or "")
            self.subject.setText(reply or "")

    def replying_to(self) -> int | None:
        """The picked message's id while the "Answering" box still holds its text."""
        if self._reply_to and self._reply_to[1] == self.previous.toPlainText():
            return self._reply_to[0]
        return None


class RulesEditor(QWidget):
    """The preference rules the draft is written with: the agent's (or measured) as proposed, then
    whatever the user made of them. Remembers which form inputs the rules were made for, so the
    page asks the agent again only when those changed and the user did not edit the rules."""

    sig_regenerate = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.list = QListWidget(objectName="rules")
        self.list.setEditTriggers(QAbstractItemView.DoubleClicked | QAbstractItemView.EditKeyPressed)
        self.add_rule = QPushButton("Add rule")
        self.remove_rule = QPushButton("Remove")
        self.regenerate = QPushButton("Ask the agent again")
        self.made_for: FormInputs | None = None  # the inputs the shown rules were made for
        self.edited = False  # the user changed the rules since they were made

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Preference rules (made on this computer; double-click to edit)"))
        layout.addWidget(self.list, 1)
        buttons = QHBoxLayout()
        for b in (self.add_rule, self.remove_rule, self.regenerate):
            buttons.addWidget(b)
        layout.addLayout(buttons)

        self.add_rule.clicked.connect(self._add)
        self.remove_rule.clicked.connect(self._remove)
        self.regenerate.clicked.connect(lambda: self.sig_regenerate.emit())
        self.list.itemChanged.connect(lambda _: setattr(self, "edited", True))

    def rules(self) -> list[str]:
        texts = (self.list.item(i).text().strip() for i in range(self.list.count()))
        return [t for t in texts if t]

    def set_rules(
        self, rules: list[str], scoped: list[str] | tuple[str, ...] = (), measured_instead: dict[str, str] | None = None
    ) -> None:
        """Show ``rules``; those in ``scoped`` (learned from the user's edits) are marked, and so are
        those in ``measured_instead`` (rule -> why: the measured rule that replaced an agent rule
        that could not be meant)."""
        measured_instead = measured_instead or {}
        self.list.blockSignals(True)
        self.list.clear()
        for rule in rules:
            item = QListWidgetItem(rule)
            item.setFlags(item.flags() | Qt.ItemIsEditable)
            if rule in scoped:
                item.setForeground(QColor("#1f5fa8"))
                item.setToolTip("Learned from your edits to drafts like this one (see Edits)")
            elif rule in measured_instead:
                item.setForeground(QColor("#8a5a00"))
                item.setToolTip(measured_instead[rule])
            self.list.addItem(item)
        self.list.blockSignals(False)
        self.edited = False

    def needs_agent(self, inputs: FormInputs, force: bool = False) -> bool:
        """Whether the rules must be made (again) before drafting from ``inputs``."""
        return force or not self.list.count() or (inputs != self.made_for and not self.edited)

    def busy(self, busy: bool) -> None:
        self.regenerate.setEnabled(not busy)

    def _add(self) -> None:
        item = QListWidgetItem("New rule")
        item.setFlags(item.flags() | Qt.ItemIsEditable)
        self.list.addItem(item)
        self.edited = True
        self.list.editItem(item)

    def _remove(self) -> None:
        for item in self.list.selectedItems():
            self.list.takeItem(self.list.row(item))
        self.edited = True


class DraftView(QWidget):
    """The draft as it is written, each rule as kept / repaired / broken after it, the model's
    original (or the large model's draft, when the voice stage said it again) one click away, and
    the buttons for what the user does with it."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.output = QPlainTextEdit(objectName="output")
        self.output.setPlaceholderText("The draft appears here, as it is written.")
        self.check = QListWidget(objectName="rulecheck")
        self.check.setMaximumHeight(120)
        self.check.hide()
        self.copy = QPushButton("Copy", objectName="copy")
        self.mail = QPushButton("Open in mail client", objectName="mail")
        self.save_drafts = QPushButton("Save to Drafts", objectName="save_drafts", visible=False)
        self.save_drafts.setToolTip(
            "Save the draft in your mail server's Drafts folder, threaded under the email you are answering; never "
            "sent. Only accounts you allowed (tiller accounts set NAME --save-drafts on)."
        )
        self.discard = QPushButton("Discard", objectName="discard")
        self.discard.setToolTip("Clear the draft; Tiller notes that it was not used.")
        self.show_original = QPushButton("Show the model's original", objectName="show_original", checkable=True)
        self.show_original.hide()
        self._checked = None  # the last CheckedDraft
        self._ml_draft: str | None = None  # the large model's draft, when the voice stage's rewrite replaced it
        self.actions = QHBoxLayout()  # the page puts the candidate bar's rows between draft and these

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("Draft"))
        layout.addWidget(self.output, 2)
        layout.addWidget(self.check)
        for b in (self.copy, self.mail, self.save_drafts, self.discard, self.show_original):
            self.actions.addWidget(b)
        self.actions.addStretch()
        self.show_original.toggled.connect(self._toggle_original)

    def text(self) -> str:
        return self.output.toPlainText()

    def set_text(self, text: str) -> None:
        self.output.setPlainText(text)

    def append(self, text: str) -> None:
        cursor = self.output.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        cursor.insertText(text)

    def show_check(self, event) -> None:
        """List each rule as kept, repaired or broken (with what was done), and offer the original;
        ``event`` is the compose operation's DraftChecked, or None to hide the check."""
        self.check.clear()
        self._checked = event.draft if event is not None else None
        voice = getattr(event, "voice", None)
        self._ml_draft = voice.draft if voice is not None and voice.kept else None
        self.show_original.setText(self._original_label())
        self.show_original.blockSignals(True)
        self.show_original.setChecked(False)
        self.show_original.blockSignals(False)
        if event is None:
            self.check.hide()
            self.show_original.hide()
            return
        colours = {"kept": "#1b7f3b", "repaired": "#a06000", "broken": "#b00020"}
        for c in event.draft.checks:
            item = QListWidgetItem(f"{c.status}: {c.rule}" + (f" ({c.note})" if c.note else ""))
            item.setForeground(QColor(colours.get(c.status, "#666666")))
            self.check.addItem(item)
        for sentence in event.unsupported:
            self.check.addItem(QListWidgetItem(f"check: not in your intent? {sentence}"))
        self.check.show()
        self.show_original.setVisible(bool(self._ml_draft) or event.draft.text.strip() != event.draft.original.strip())

    def clear(self) -> None:
        self.output.clear()
        self.show_check(None)

    def mailto_url(self, recipient: str, subject: str) -> QUrl:
        to = recipient.strip() if "@" in recipient else ""
        return QUrl(f"mailto:{quote(to)}?subject={quote(subject)}&body={quote(self.text())}")

    def _original_label(self) -> str:
        return "Show the large model's draft" if self._ml_draft else "Show the model's original"

    def _toggle_original(self, original: bool) -> None:
        if self._checked is not None:
            before = self._ml_draft or self._checked.original
            self.output.setPlainText((before if original else self._checked.text).rstrip("\n"))
            self.show_original.setText("Show the checked email" if original else self._original_label())


class CandidateBar(QWidget):
    """After several drafts: one "Use draft N" button each; what the picks taught the tag selector."""

    sig_pick = Signal(int)
    sig_reset = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.pick_buttons = [
            QPushButton(f"Use draft {n}", objectName=f"use_draft_{n}", visible=False) for n in (1, 2, 3)
        ]
        self.learned = QLabel(objectName="learned", wordWrap=True)
        self.reset_tags = QPushButton("Reset learned tags", objectName="reset_tags")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        picks = QHBoxLayout()
        for b in self.pick_buttons:
            picks.addWidget(b)
        picks.addStretch()
        layout.addLayout(picks)
        learned_row = QHBoxLayout()
        learned_row.addWidget(self.learned, 1)
        learned_row.addWidget(self.reset_tags)
        layout.addLayout(learned_row)
        for n, b in enumerate(self.pick_buttons):
            b.clicked.connect(lambda _=False, n=n: self.sig_pick.emit(n))
        self.reset_tags.clicked.connect(lambda: self.sig_reset.emit())

    def offer(self, count: int) -> None:
        """Show a button for each of ``count`` drafts (0 hides them all)."""
        for n, b in enumerate(self.pick_buttons):
            b.setVisible(n < count)
