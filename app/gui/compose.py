"""The compose page: intent and details in, the agent's editable rules and a streamed draft out.

Draft: when there are no rules yet, or the intent/details changed since the agent wrote them (and
the user has not edited them), the on-device agent writes rules first; then the chosen backend
writes the draft with whatever rules are in the list. Errors are shown above the draft and never
clear what the user typed or what was drafted so far.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QInputDialog,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from app.drafting import DRAFT_MAX_TOKENS
from app.gui.workers import Job, database
from app.store.messages import message_text, received_messages, search_messages


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


class ComposePage(QWidget):
    sig_draft_finished = Signal(str)  # the whole draft, for tests and the status bar
    sig_status_changed = Signal(str)
    sig_saved = Signal(str)  # the Drafts folder a draft was saved to

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.job: Job | None = None
        self._rules_inputs: tuple | None = None  # the inputs the agent's rules were made for
        self._rules_edited = False
        # what the agent said and which learnt scoped rules joined it (stored with each draft)
        self._agent_rules: list[str] = []
        self._scoped: list[str] = []
        self._proposed: list[str] = []  # the agent's rules with the scoped ones, as first shown
        self._profile: str | None = None
        # the stored draft in the box (app/learning/capture.py) and the text it was shown with
        self._draft_id: int | None = None
        self._shown_text = ""
        self._candidate_ids: list[int] = []
        self._learn_job: Job | None = None
        # the imported message answered (its id, and its text as picked): a draft saved to the
        # server threads under it while the "Answering" box still holds that text
        self._reply_to: tuple[int, str] | None = None
        self._save_job: Job | None = None

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
        self.pick_buttons = [
            QPushButton(f"Use draft {n}", objectName=f"use_draft_{n}", visible=False) for n in (1, 2, 3)
        ]
        self.learned = QLabel(objectName="learned", wordWrap=True)
        self.reset_tags = QPushButton("Reset learned tags", objectName="reset_tags")
        self._candidates: list[tuple[tuple[str, ...], str]] = []
        self._candidate_for: tuple[str | None, str] = (None, "")  # (voice, intent) the candidates were drafted for
        self._selector = None

        self.rules = QListWidget(objectName="rules")
        self.rules.setEditTriggers(QAbstractItemView.DoubleClicked | QAbstractItemView.EditKeyPressed)
        self.add_rule = QPushButton("Add rule")
        self.remove_rule = QPushButton("Remove")
        self.regenerate = QPushButton("Ask the agent again")
        self.output = QPlainTextEdit(objectName="output")
        self.output.setPlaceholderText("The draft appears here, as it is written.")
        self.copy = QPushButton("Copy", objectName="copy")
        self.mail = QPushButton("Open in mail client", objectName="mail")
        self.discard = QPushButton("Discard", objectName="discard")
        self.save_drafts = QPushButton("Save to Drafts", objectName="save_drafts", visible=False)
        self.save_drafts.setToolTip(
            "Save the draft in your mail server's Drafts folder, threaded under the email you are answering; never "
            "sent. Only accounts you allowed (tiller accounts set NAME --save-drafts on)."
        )
        self.discard.setToolTip("Clear the draft; Tiller notes that it was not used.")
        self.status = QLabel(objectName="status", wordWrap=True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)
        # each rule as kept / repaired / broken after the draft; the model's original one click away
        self.check = QListWidget(objectName="rulecheck")
        self.check.setMaximumHeight(120)
        self.check.hide()
        self.show_original = QPushButton("Show the model's original", objectName="show_original", checkable=True)
        self.show_original.hide()
        self._checked = None  # the last CheckedDraft
        self._ml_draft = None  # the large model's draft, when the voice stage's rewrite replaced it
        self.use_voice = QCheckBox("In my words (voice stage, on this computer)", objectName="use_voice", checked=True)
        self.use_voice.setToolTip(
            "When this voice's profile has a trained voice stage, the large model's draft is said again in your "
            "words on this computer; a rewrite that loses or adds a fact is not used."
        )

        form = QFormLayout()
        form.addRow("Write as", self.voice)
        form.addRow("Large model", self.backend)
        form.addRow("To", self.recipient)
        form.addRow("Subject", self.subject)
        form.addRow("Drafts to compare", self.candidates)
        form.addRow("", self.use_voice)
        left = QWidget()
        lv = QVBoxLayout(left)
        lv.addLayout(form)
        lv.addWidget(QLabel("Intent"))
        lv.addWidget(self.intent, 2)
        prev_row = QHBoxLayout()
        prev_row.addWidget(QLabel("Answering"))
        prev_row.addStretch()
        prev_row.addWidget(self.pick)
        lv.addLayout(prev_row)
        lv.addWidget(self.previous, 1)
        buttons = QHBoxLayout()
        buttons.addWidget(self.draft_button)
        buttons.addWidget(self.cancel_button)
        lv.addLayout(buttons)

        right = QWidget()
        rv = QVBoxLayout(right)
        rv.addWidget(QLabel("Preference rules (made on this computer; double-click to edit)"))
        rv.addWidget(self.rules, 1)
        rule_buttons = QHBoxLayout()
        for b in (self.add_rule, self.remove_rule, self.regenerate):
            rule_buttons.addWidget(b)
        rv.addLayout(rule_buttons)
        rv.addWidget(self.status)
        rv.addWidget(QLabel("Draft"))
        rv.addWidget(self.output, 2)
        rv.addWidget(self.check)
        picks = QHBoxLayout()
        for b in self.pick_buttons:
            picks.addWidget(b)
        picks.addStretch()
        rv.addLayout(picks)
        learned_row = QHBoxLayout()
        learned_row.addWidget(self.learned, 1)
        learned_row.addWidget(self.reset_tags)
        rv.addLayout(learned_row)
        out_buttons = QHBoxLayout()
        out_buttons.addWidget(self.copy)
        out_buttons.addWidget(self.mail)
        out_buttons.addWidget(self.save_drafts)
        out_buttons.addWidget(self.discard)
        out_buttons.addWidget(self.show_original)
        out_buttons.addStretch()
        rv.addLayout(out_buttons)

        splitter = QSplitter()
        splitter.addWidget(left)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)

        self.draft_button.clicked.connect(self.start_draft)
        self.cancel_button.clicked.connect(self.cancel)
        self.regenerate.clicked.connect(lambda: self.start_draft(force_rules=True))
        self.add_rule.clicked.connect(self._add_rule)
        self.remove_rule.clicked.connect(self._remove_rule)
        self.rules.itemChanged.connect(lambda _: setattr(self, "_rules_edited", True))
        self.copy.clicked.connect(self.copy_draft)
        self.mail.clicked.connect(self.open_in_mail_client)
        self.discard.clicked.connect(self.discard_draft)
        self.save_drafts.clicked.connect(self.save_to_drafts)
        self.show_original.toggled.connect(self._toggle_original)
        self.pick.clicked.connect(self.pick_previous)
        for n, b in enumerate(self.pick_buttons):
            b.clicked.connect(lambda _=False, n=n: self.use_candidate(n))
        self.reset_tags.clicked.connect(self.forget_tags)
        self.voice.activated.connect(lambda _: self.voice.setProperty("chosen", True))  # the user's pick is kept
        self.refresh()

    # -- choices ---------------------------------------------------------------------------------

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
        self.save_drafts.setVisible(bool(drafts_accounts()))
        names, default = backend_names()
        self.backend.clear()
        self.backend.addItems(names)
        self.backend.setCurrentText(current_backend if current_backend in names else default)

    def inputs(self) -> tuple:
        return (
            self.voice.currentData(),
            self.intent.toPlainText().strip(),
            self.recipient.text().strip(),
            self.subject.text().strip(),
            self.previous.toPlainText().strip(),
        )

    def current_rules(self) -> list[str]:
        return [
            self.rules.item(i).text().strip() for i in range(self.rules.count()) if self.rules.item(i).text().strip()
        ]

    def set_rules(self, rules: list[str], scoped: list[str] = ()) -> None:
        """Show ``rules``; those in ``scoped`` (learnt from the user's edits) are marked."""
        from PySide6.QtGui import QColor

        self.rules.blockSignals(True)
        self.rules.clear()
        for rule in rules:
            item = QListWidgetItem(rule)
            item.setFlags(item.flags() | Qt.ItemIsEditable)
            if rule in scoped:
                item.setForeground(QColor("#1f5fa8"))
                item.setToolTip("Learnt from your edits to drafts like this one (see Edits)")
            self.rules.addItem(item)
        self.rules.blockSignals(False)
        self._rules_edited = False

    def _add_rule(self) -> None:
        item = QListWidgetItem("New rule")
        item.setFlags(item.flags() | Qt.ItemIsEditable)
        self.rules.addItem(item)
        self._rules_edited = True
        self.rules.editItem(item)

    def _remove_rule(self) -> None:
        for item in self.rules.selectedItems():
            self.rules.takeItem(self.rules.row(item))
        self._rules_edited = True

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

    # -- drafting --------------------------------------------------------------------------------

    def show_status(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet("color: #b00020;" if error else "")
        self.status.setText(text)
        self.sig_status_changed.emit(text)

    def _busy(self, busy: bool) -> None:
        self.draft_button.setEnabled(not busy)
        self.regenerate.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    def start_draft(self, force_rules: bool = False) -> None:
        if self.job is not None and self.job.running:
            return
        inputs = self.inputs()
        if not inputs[1]:
            self.show_status("Write the intent first: what should the email tell the recipient?", error=True)
            return
        needs_rules = force_rules or not self.rules.count() or (inputs != self._rules_inputs and not self._rules_edited)
        self._busy(True)
        if needs_rules:
            self._run_agent(inputs)
        else:
            self._run_draft(inputs)

    def _run_agent(self, inputs: tuple) -> None:
        from app.agent.agent import PreferenceAgent, RulesRequest
        from app.agent.template import parse_rules

        sender, intent, recipient, subject, previous = inputs

        def work(token):
            from app.learning.scoped import with_learnt_rules
            from app.ops.compose import measured_voice_rules

            measured = measured_voice_rules(sender, recipient or None)
            if measured is not None:  # no trained agent yet: the voice's own mail, measured
                return measured.rules, False, measured.agent_rules, [], measured.profile
            agent = PreferenceAgent.for_sender(sender)
            text = ""
            for piece in agent.stream_rules(
                RulesRequest(intent, recipient or None, subject or None, previous or None), cancel=token
            ):
                text += piece
                yield text
            agent_rules = parse_rules(text)
            rules, scoped = with_learnt_rules(agent_rules, sender, recipient or None)
            profile = agent.profile.name if agent.profile else None
            return rules, agent.profile.trained if agent.profile else False, agent_rules, scoped, profile

        self.show_status("The agent is writing rules on this computer…")
        self.set_rules([])
        job = self.job = Job(work, "rules", self)
        job.sig_progress.connect(lambda text: self.set_rules(parse_rules(text)))

        def done(result):
            rules, trained, self._agent_rules, self._scoped, self._profile = result
            self._proposed = list(rules)
            self.set_rules(rules, self._scoped)
            self._rules_inputs = inputs
            if self._scoped:
                self.show_status(f"{len(self._scoped)} rule(s) learnt from your edits joined the agent's (in blue).")
            if not trained:
                self.show_status(
                    "No trained agent for this voice yet: these rules are measured from your own sent mail "
                    "(train the agent on the Training page to have rules written for each email)."
                )
            self._run_draft(inputs)

        job.sig_succeeded.connect(done)
        self._end_on_failure(job, lambda msg: f"The agent failed: {msg}", "Cancelled.")
        job.start()

    def _run_draft(self, inputs: tuple) -> None:
        if self.candidates.value() > 1:
            self._run_candidates(inputs, self.candidates.value())
            return
        from app.ops.compose import ComposeOperation, ComposeRequest, DraftChecked, DraftText, Reasking

        sender, intent, recipient, subject, previous = inputs
        rules = tuple(self.current_rules())
        backend = self.backend.currentText() or None
        request = ComposeRequest(
            intent, recipient or None, subject or None, previous or None, sender, backend, rules=rules,
            max_tokens=DRAFT_MAX_TOKENS, voice=None if self.use_voice.isChecked() else False,
        )  # fmt: skip

        def work(token):  # the same core operation as `tiller draft`; this thread never touches widgets
            checked = None
            for event in ComposeOperation(request, token).run():
                if isinstance(event, DraftText):
                    yield event.text
                elif isinstance(event, Reasking):
                    yield Reasking
                elif isinstance(event, DraftChecked):
                    checked = event
            return checked

        self._note_edit()
        self.output.clear()
        self._show_check(None)
        self.show_status(f"{backend} is writing the draft…")
        job = self.job = Job(work, "draft", self)

        def progress(item):
            if item is Reasking:
                self.show_status(f"The draft broke rules that cannot be repaired safely; asking {backend} once more…")
            else:
                self._append(item)

        job.sig_progress.connect(progress)

        def done(event):
            if event is None or not event.draft.original.strip():
                self.show_status(f"{backend} returned an empty draft; try again or switch the large model.", error=True)
                self._busy(False)
                return
            checked = event.draft
            self.output.setPlainText(checked.text.rstrip("\n"))
            self._show_check(event)
            kept = sum(c.status != "broken" for c in checked.checkable)
            voice = ""
            if event.voice is not None:
                voice = (
                    " Said again in your words on this computer (the large model's draft is one click away)."
                    if event.voice.kept
                    else f" Voice stage: {event.voice.reason}."
                )
            self.show_status(
                f"Drafted by {backend} in {event.elapsed_s:.1f} s with {len(rules)} rules: {kept} of "
                f"{len(checked.checkable)} checkable rules kept"
                + (" after repair" if checked.text.strip() != checked.original.strip() else "")
                + ("; re-asked once" if checked.reasked else "")
                + "."
                + voice
            )
            self._busy(False)
            from app.learning.capture import DraftShown

            self._remember(inputs, rules, [DraftShown(checked.text.rstrip("\n"), [], event.backend, event.model)])
            self.sig_draft_finished.emit(self.output.toPlainText())

        job.sig_succeeded.connect(done)
        self._end_on_failure(job, self._draft_failed(backend), "Cancelled; the text so far is kept.")
        job.start()

    # -- what the user does with a draft (app/learning/capture.py) -----------------------------

    def _remember(self, inputs: tuple, rules: tuple, shown: list) -> list[int]:
        """Store the drafts just shown (app.learning.capture.DraftShown); the first is the one in the box."""
        from app.learning.capture import record_drafts

        sender, intent, recipient, subject, previous = inputs
        scoped = [r for r in self._scoped if r in rules]
        given = list(rules) != self._proposed  # the user edited the rules
        with database() as db:
            ids = record_drafts(
                db,
                identity=sender,
                recipient=recipient or None,
                subject=subject or None,
                intent=intent,
                previous_email=previous or None,
                agent_rules=list(self._agent_rules),
                scoped_rules=scoped,
                rules=list(rules),
                rules_source="given" if given else "agent",
                profile=self._profile,
                shown=shown,
            )
        self._draft_id = ids[0] if ids else None
        self._shown_text = shown[0].text if shown else ""
        return ids

    def _record(self, action: str, text: str | None = None) -> None:
        """Record ``action`` on the draft in the box; an edited text relearns in the background."""
        from app.learning.capture import record_action

        if self._draft_id is None:
            return
        with database() as db:
            after = record_action(db, self._draft_id, action, text)
        if (
            after is not None
            and after.final_source == "edit"
            and text is not None
            and text.strip() != self._shown_text.strip()
        ):
            self._relearn(after.identity)

    def _relearn(self, identity: str | None) -> None:
        def work(token):
            from app.learning.loop import after_edit

            with database() as db:
                return after_edit(db, identity)

        if self._learn_job is not None and self._learn_job.running:
            return  # the running one reads the edit just stored anyway
        job = self._learn_job = Job(work, "learn-edits", self)
        job.sig_succeeded.connect(
            lambda report: self.show_status(
                "Learnt from your edit"
                + (
                    f"; the agent is retraining in the background ({', '.join(report.retraining)})"
                    if report.retraining
                    else ""
                )
                + "."
            )
        )
        job.sig_failed.connect(lambda msg: self.show_status(f"Could not learn from the edit: {msg}", error=True))
        job.start()

    def _note_edit(self) -> None:
        """Before the box is cleared: an edited draft is recorded as edited."""
        text = self.output.toPlainText()
        if self._draft_id is not None and text.strip() and text.strip() != self._shown_text.strip():
            self._record("edited", text)
        self._draft_id = None

    def copy_draft(self) -> None:
        QGuiApplication.clipboard().setText(self.output.toPlainText())
        self._record("copied", self.output.toPlainText())

    def replying_to(self) -> int | None:
        """The picked message's id while the "Answering" box still holds its text."""
        if self._reply_to and self._reply_to[1] == self.previous.toPlainText():
            return self._reply_to[0]
        return None

    def save_to_drafts(self) -> None:
        """Save the draft to the Drafts folder of the account that allows it (asked when several do)."""
        text = self.output.toPlainText()
        if not text.strip():
            self.show_status("Nothing to save: draft first.", error=True)
            return
        names = drafts_accounts()
        name = names[0] if len(names) == 1 else None
        if len(names) > 1:
            name, ok = QInputDialog.getItem(self, "Save to Drafts", "Account", names, 0, False)
            if not ok:
                return
        sender, intent, recipient, subject, _ = self.inputs()
        reply_to = self.replying_to()

        def work(token):  # the network on a worker thread; the same function as `tiller draft --save`
            from app.mail.imap_drafts import drafts_account, save_reply
            from app.store.messages import reply_original

            with database() as db:
                account = drafts_account(db, name)
                original = reply_original(db, reply_to) if reply_to is not None else None
            return save_reply(
                account,
                text,
                intent=intent,
                sender=sender,
                recipient=recipient or None,
                subject=subject or None,
                original=original,
            ), account.name

        def saved(result):
            done, account = result
            self.save_drafts.setEnabled(True)
            self.show_status(
                done.sentence(account, reply_to is not None) + " Never sent: it waits in your mail client."
            )
            self._record("saved", text)
            self.sig_saved.emit(done.folder)

        def failed(message):
            self.save_drafts.setEnabled(True)
            self.show_status(f"Not saved: {message}", error=True)

        self.save_drafts.setEnabled(False)
        self.show_status("Saving to Drafts…")
        job = self._save_job = Job(work, "save-draft", self)
        job.sig_succeeded.connect(saved)
        job.sig_failed.connect(failed)
        job.start()

    def discard_draft(self) -> None:
        """Clear the box; an edit made before discarding teaches nothing (the draft was not used)."""
        self._record("discarded")
        self._draft_id = None
        self.output.clear()
        self._show_check(None)
        self.show_status("Draft discarded.")

    def _show_check(self, event) -> None:
        """List each rule as kept, repaired or broken (with what was done), and offer the original."""
        from PySide6.QtGui import QColor

        self.check.clear()
        self._checked = event.draft if event is not None else None
        voice = getattr(event, "voice", None)
        self._ml_draft = voice.draft if voice is not None and voice.kept else None
        self.show_original.setText("Show the large model's draft" if self._ml_draft else "Show the model's original")
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

    def _toggle_original(self, original: bool) -> None:
        if self._checked is not None:
            before = self._ml_draft or self._checked.original
            self.output.setPlainText((before if original else self._checked.text).rstrip("\n"))
            label = "Show the large model's draft" if self._ml_draft else "Show the model's original"
            self.show_original.setText("Show the checked email" if original else label)

    def _end_on_failure(self, job: Job, failed: Callable[[str], str], cancelled: str) -> None:
        """A failed or cancelled job says so in the status line and gives the controls back."""
        job.sig_failed.connect(lambda msg: (self.show_status(failed(msg), error=True), self._busy(False)))
        job.sig_cancelled.connect(lambda: (self.show_status(cancelled), self._busy(False)))

    @staticmethod
    def _draft_failed(backend: str | None) -> Callable[[str], str]:
        return lambda msg: f"{backend}: {msg} — your intent and rules are kept; try again or switch the large model."

    # -- several drafts, one pick ---------------------------------------------------------------

    def _run_candidates(self, inputs: tuple, m: int) -> None:
        from app.ops.compose import ComposeOperation, ComposeRequest, DraftChecked, DraftText
        from app.ranking.selector import load_selector

        sender, intent, recipient, subject, previous = inputs
        rules = tuple(self.current_rules())
        backend = self.backend.currentText() or None
        for b in self.pick_buttons:
            b.setVisible(False)

        def work(token):
            # the same operation as one draft and `tiller draft --candidates`: each draft is checked
            # against the rules, repaired and re-asked once (this path called the backend directly)
            selector = load_selector(sender)
            tag_sets = tuple(tuple(t) for t in selector.propose(intent, m=m))
            request = ComposeRequest(
                intent, recipient or None, subject or None, previous or None, sender, backend, rules=rules,
                tag_sets=tag_sets, max_tokens=DRAFT_MAX_TOKENS,
            )  # fmt: skip
            done: list[tuple[tuple[str, ...], str]] = []
            shown = -1
            for event in ComposeOperation(request, token).run():
                if isinstance(event, DraftText):
                    if event.index != shown:
                        shown = event.index
                        tags = ", ".join(tag_sets[event.index])
                        yield ("\n\n" if event.index else "") + f"── Draft {event.index + 1} · tags: {tags} ──\n"
                    yield event.text
                elif isinstance(event, DraftChecked):
                    done.append((event.tags, event.draft.text.strip()))
                    yield f"\n[checked: {event.draft.kept_share():.0%} of the checkable rules kept]"
            return selector, done

        self._note_edit()
        self.output.clear()
        self.show_status(f"{backend} is writing {m} drafts, each with other style tags…")
        job = self.job = Job(work, "draft", self)
        job.sig_progress.connect(self._append)

        def finished(result):
            self._selector, self._candidates = result
            self._candidate_for = (sender, intent)  # what the pick teaches, even if the voice changes meanwhile
            from app.learning.capture import DraftShown

            self._candidate_ids = self._remember(
                inputs, rules, [DraftShown(text, list(tags), backend) for tags, text in self._candidates]
            )
            self._draft_id = None  # none is in the box alone until one is picked
            for n, b in enumerate(self.pick_buttons):
                b.setVisible(n < len(self._candidates))
            self.show_status(
                f"{len(self._candidates)} drafts by {backend}: use the one closest to how you write, "
                f"and Tiller learns which tags you prefer."
            )
            self._busy(False)

        job.sig_succeeded.connect(finished)
        self._end_on_failure(job, self._draft_failed(backend), "Cancelled; the text so far is kept.")
        job.start()

    def use_candidate(self, n: int) -> None:
        """The user picked draft n: show it alone and teach the selector (on a worker thread)."""
        from app.ranking.selector import learn_ranking

        if not self._candidates or self._selector is None or (self.job is not None and self.job.running):
            return
        selector, (sender, intent) = self._selector, self._candidate_for
        ranked = [self._candidates[n][0], *(t for i, (t, _) in enumerate(self._candidates) if i != n)]
        self.output.setPlainText(self._candidates[n][1])
        for b in self.pick_buttons:
            b.setVisible(False)
        if n < len(self._candidate_ids):
            self._draft_id, self._shown_text = self._candidate_ids[n], self._candidates[n][1]
            self._record("picked")

        def work(token):
            return learn_ranking(selector, sender, intent, ranked, best_only=True)

        job = self.job = Job(work, "learn", self)

        def learned(result):
            names = ", ".join(result.favoured) or "(none yet)"
            self.learned.setText(f"Learned from {result.updates} pick(s). Favoured tags: {names}")
            self.show_status(f"Learned from your pick in {result.seconds * 1000:.0f} ms.")
            self.sig_draft_finished.emit(self.output.toPlainText())

        job.sig_succeeded.connect(learned)
        job.sig_failed.connect(lambda msg: self.show_status(f"Could not learn from the pick: {msg}", error=True))
        job.start()

    def forget_tags(self) -> None:
        from app.ranking.selector import reset_selector

        reset_selector(self.inputs()[0])
        self._selector = None
        self.learned.setText("Learned tags forgotten: the next picks start from scratch.")

    def _append(self, text: str) -> None:
        cursor = self.output.textCursor()
        cursor.movePosition(cursor.MoveOperation.End)
        cursor.insertText(text)

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def mailto_url(self) -> QUrl:
        to = self.recipient.text().strip()
        to = to if "@" in to else ""
        return QUrl(f"mailto:{quote(to)}?subject={quote(self.subject.text())}&body={quote(self.output.toPlainText())}")

    def open_in_mail_client(self) -> None:
        if not QDesktopServices.openUrl(self.mailto_url()):
            self.show_status("No mail client answered the mailto: link; use Copy instead.", error=True)
            return
        self._record("opened", self.output.toPlainText())
