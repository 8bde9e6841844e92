"""The compose page: intent and details in, the agent's editable rules and a streamed draft out.

Draft: when there are no rules yet, or the intent/details changed since the agent wrote them (and
the user has not edited them), the on-device agent writes rules first; then the chosen backend
writes the draft with whatever rules are in the list. Errors are shown above the draft and never
clear what the user typed or what was drafted so far.

The page is a controller: its parts (app/gui/compose_parts.py: the form, the rules editor, the
draft view, the candidate bar) own their widgets, and both steps run the one compose operation
(app/ops/compose.py) that `tiller draft` runs: the rules step streamed into the editor, then the
draft(s), each checked and repaired, with the voice stage where the profile has one.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import Qt, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication
from PySide6.QtWidgets import QInputDialog, QLabel, QSplitter, QVBoxLayout, QWidget

from app.drafting import DRAFT_MAX_TOKENS
from app.gui.compose_parts import (
    CandidateBar,
    ComposeForm,
    DraftView,
    FormInputs,
    RulesEditor,
    drafts_accounts,
)
from app.gui.workers import Job, database


class ComposePage(QWidget):
    sig_draft_finished = Signal(str)  # the whole draft, for tests and the status bar
    sig_status_changed = Signal(str)
    sig_saved = Signal(str)  # the Drafts folder a draft was saved to

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.job: Job | None = None
        self.form = ComposeForm()
        self.rules_editor = RulesEditor()
        self.draft = DraftView()
        self.candidate_bar = CandidateBar()
        self.status = QLabel(objectName="status", wordWrap=True)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)

        # what the agent said and which learned scoped rules joined it (stored with each draft)
        self._agent_rules: list[str] = []
        self._scoped: list[str] = []
        self._proposed: list[str] = []  # the agent's rules with the scoped ones, as first shown
        self._profile: str | None = None
        # the stored draft in the box (app/learning/capture.py) and the text it was shown with
        self._draft_id: int | None = None
        self._shown_text = ""
        self._learn_job: Job | None = None
        self._save_job: Job | None = None
        # several drafts: their ids, (tags, text), what they were drafted for, and the tag selector
        self._candidate_ids: list[int] = []
        self._candidates: list[tuple[tuple[str, ...], str]] = []
        self._candidate_for: tuple[str | None, str] = (None, "")  # (voice, intent)
        self._selector = None

        right = QWidget()
        rv = QVBoxLayout(right)
        rv.addWidget(self.rules_editor, 1)
        rv.addWidget(self.status)
        rv.addWidget(self.draft, 2)
        rv.addWidget(self.candidate_bar)
        rv.addLayout(self.draft.actions)
        splitter = QSplitter()
        splitter.addWidget(self.form)
        splitter.addWidget(right)
        splitter.setStretchFactor(1, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)

        self.form.sig_draft.connect(self.start_draft)
        self.form.sig_cancel.connect(self.cancel)
        self.rules_editor.sig_regenerate.connect(lambda: self.start_draft(force_rules=True))
        self.draft.copy.clicked.connect(self.copy_draft)
        self.draft.mail.clicked.connect(self.open_in_mail_client)
        self.draft.discard.clicked.connect(self.discard_draft)
        self.draft.save_drafts.clicked.connect(self.save_to_drafts)
        self.candidate_bar.sig_pick.connect(self.use_candidate)
        self.candidate_bar.sig_reset.connect(self.forget_tags)
        self.refresh()

    # -- the parts' widgets most callers (tray, window, tests) reach for ---------------------------

    @property
    def voice(self):
        return self.form.voice

    @property
    def backend(self):
        return self.form.backend

    @property
    def intent(self):
        return self.form.intent

    @property
    def output(self):
        return self.draft.output

    @property
    def draft_button(self):
        return self.form.draft_button

    def refresh(self) -> None:
        """Reload voices and backends (after an import, training, or a backend change)."""
        self.form.refresh()
        self.draft.save_drafts.setVisible(bool(drafts_accounts()))

    def inputs(self) -> FormInputs:
        return self.form.inputs()

    def pick_previous(self) -> None:
        self.form.pick_previous()

    # -- drafting --------------------------------------------------------------------------------

    def show_status(self, text: str, error: bool = False) -> None:
        self.status.setStyleSheet("color: #b00020;" if error else "")
        self.status.setText(text)
        self.sig_status_changed.emit(text)

    def _busy(self, busy: bool) -> None:
        self.form.busy(busy)
        self.rules_editor.busy(busy)

    def start_draft(self, force_rules: bool = False) -> None:
        if self.job is not None and self.job.running:
            return
        inputs = self.inputs()
        if not inputs[1]:
            self.show_status("Write the intent first: what should the email tell the recipient?", error=True)
            return
        self._busy(True)
        if self.rules_editor.needs_agent(inputs, force_rules):
            self._run_rules(inputs)
        else:
            self._run_draft(inputs)

    def _request(self, inputs: FormInputs, **kwargs):
        from app.ops.compose import ComposeRequest

        sender, intent, recipient, subject, previous = inputs
        return ComposeRequest(
            intent, recipient or None, subject or None, previous or None, sender,
            self.form.backend.currentText() or None, max_tokens=DRAFT_MAX_TOKENS, **kwargs,
        )  # fmt: skip

    def _run_rules(self, inputs: FormInputs) -> None:
        """The compose operation's first step alone, streamed into the rules editor: the agent's
        rules with the scoped rules learned from edits, or the voice's measured style before any
        training. The language rule is left to the draft step (it adds it to whatever rules it gets)."""
        from app.agent.template import parse_rules
        from app.ops.compose import ComposeOperation

        request = self._request(inputs, learned=True, language=None)

        def work(token):  # RulesText events as the agent writes; the RulesReady at the end
            return (yield from ComposeOperation(request, token).stream_rules())

        self.show_status("The agent is writing rules on this computer…")
        self.rules_editor.set_rules([])
        job = self.job = Job(work, "rules", self)
        job.sig_progress.connect(lambda event: self.rules_editor.set_rules(parse_rules(event.text)))

        def done(ready):
            self._agent_rules, self._scoped, self._profile = list(ready.agent_rules), list(ready.scoped), ready.profile
            self._proposed = list(ready.rules)
            instead = {
                c.instead: f'Measured from your mail: the agent said "{c.said}", but {c.why}.'
                for c in ready.corrected
                if c.instead
            }
            self.rules_editor.set_rules(ready.rules, self._scoped, instead)
            self.rules_editor.made_for = inputs
            if self._scoped:
                self.show_status(f"{len(self._scoped)} rule(s) learned from your edits joined the agent's (in blue).")
            if ready.corrected:
                said = "; ".join(f'"{c.said}" ({c.why})' for c in ready.corrected)
                self.show_status(f"Agent rules that cannot be meant were replaced or left out (in brown): {said}.")
            if not ready.trained:
                self.show_status(
                    "No trained agent for this voice yet: these rules are measured from your own sent mail "
                    "(train the agent on the Training page to have rules written for each email)."
                )
            self._run_draft(inputs)

        job.sig_succeeded.connect(done)
        self._end_on_failure(job, lambda msg: f"The agent failed: {msg}", "Cancelled.")
        job.start()

    def _run_draft(self, inputs: FormInputs) -> None:
        if self.form.candidates.value() > 1:
            self._run_candidates(inputs, self.form.candidates.value())
            return
        from app.ops.compose import ComposeOperation, DraftChecked, DraftText, Reasking

        rules = tuple(self.rules_editor.rules())
        backend = self.form.backend.currentText() or None
        request = self._request(inputs, rules=rules, voice=None if self.form.use_voice.isChecked() else False)

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
        self.draft.clear()
        self.show_status(f"{backend} is writing the draft…")
        job = self.job = Job(work, "draft", self)

        def progress(item):
            if item is Reasking:
                self.show_status(f"The draft broke rules that cannot be repaired safely; asking {backend} once more…")
            else:
                self.draft.append(item)

        job.sig_progress.connect(progress)

        def done(event):
            if event is None or not event.draft.original.strip():
                self.show_status(f"{backend} returned an empty draft; try again or switch the large model.", error=True)
                self._busy(False)
                return
            checked = event.draft
            self.draft.set_text(checked.text.rstrip("\n"))
            self.draft.show_check(event)
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
            self.sig_draft_finished.emit(self.draft.text())

        job.sig_succeeded.connect(done)
        self._end_on_failure(job, self._draft_failed(backend), "Cancelled; the text so far is kept.")
        job.start()

    # -- what the user does with a draft (app/learning/capture.py) -----------------------------

    def _remember(self, inputs: FormInputs, rules: tuple, shown: list) -> list[int]:
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
                "Learned from your edit"
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
        text = self.draft.text()
        if self._draft_id is not None and text.strip() and text.strip() != self._shown_text.strip():
            self._record("edited", text)
        self._draft_id = None

    def copy_draft(self) -> None:
        QGuiApplication.clipboard().setText(self.draft.text())
        self._record("copied", self.draft.text())

    def replying_to(self) -> int | None:
        return self.form.replying_to()

    def save_to_drafts(self) -> None:
        """Save the draft to the Drafts folder of the account that allows it (asked when several do)."""
        text = self.draft.text()
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
            self.draft.save_drafts.setEnabled(True)
            self.show_status(
                done.sentence(account, reply_to is not None) + " Never sent: it waits in your mail client."
            )
            self._record("saved", text)
            self.sig_saved.emit(done.folder)

        def failed(message):
            self.draft.save_drafts.setEnabled(True)
            self.show_status(f"Not saved: {message}", error=True)

        self.draft.save_drafts.setEnabled(False)
        self.show_status("Saving to Drafts…")
        job = self._save_job = Job(work, "save-draft", self)
        job.sig_succeeded.connect(saved)
        job.sig_failed.connect(failed)
        job.start()

    def discard_draft(self) -> None:
        """Clear the box; an edit made before discarding teaches nothing (the draft was not used)."""
        self._record("discarded")
        self._draft_id = None
        self.draft.clear()
        self.show_status("Draft discarded.")

    def _end_on_failure(self, job: Job, failed: Callable[[str], str], cancelled: str) -> None:
        """A failed or cancelled job says so in the status line and gives the controls back."""
        job.sig_failed.connect(lambda msg: (self.show_status(failed(msg), error=True), self._busy(False)))
        job.sig_cancelled.connect(lambda: (self.show_status(cancelled), self._busy(False)))

    @staticmethod
    def _draft_failed(backend: str | None) -> Callable[[str], str]:
        return lambda msg: f"{backend}: {msg} — your intent and rules are kept; try again or switch the large model."

    # -- several drafts, one pick ---------------------------------------------------------------

    def _run_candidates(self, inputs: FormInputs, m: int) -> None:
        from app.ops.compose import ComposeOperation, DraftChecked, DraftText
        from app.ranking.selector import load_selector

        sender, intent = inputs[0], inputs[1]
        rules = tuple(self.rules_editor.rules())
        backend = self.form.backend.currentText() or None
        self.candidate_bar.offer(0)

        def work(token):
            # the same operation as one draft and `tiller draft --candidates`: each draft is checked
            # against the rules, repaired and re-asked once (this path called the backend directly)
            selector = load_selector(sender)
            tag_sets = tuple(tuple(t) for t in selector.propose(intent, m=m))
            request = self._request(inputs, rules=rules, tag_sets=tag_sets)
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
        self.draft.clear()
        self.show_status(f"{backend} is writing {m} drafts, each with other style tags…")
        job = self.job = Job(work, "draft", self)
        job.sig_progress.connect(self.draft.append)

        def finished(result):
            self._selector, self._candidates = result
            self._candidate_for = (sender, intent)  # what the pick teaches, even if the voice changes meanwhile
            from app.learning.capture import DraftShown

            self._candidate_ids = self._remember(
                inputs, rules, [DraftShown(text, list(tags), backend) for tags, text in self._candidates]
            )
            self._draft_id = None  # none is in the box alone until one is picked
            self.candidate_bar.offer(len(self._candidates))
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
        self.draft.set_text(self._candidates[n][1])
        self.candidate_bar.offer(0)
        if n < len(self._candidate_ids):
            self._draft_id, self._shown_text = self._candidate_ids[n], self._candidates[n][1]
            self._record("picked")

        def work(token):
            return learn_ranking(selector, sender, intent, ranked, best_only=True)

        job = self.job = Job(work, "learn", self)

        def learned(result):
            names = ", ".join(result.favoured) or "(none yet)"
            self.candidate_bar.learned.setText(f"Learned from {result.updates} pick(s). Favoured tags: {names}")
            self.show_status(f"Learned from your pick in {result.seconds * 1000:.0f} ms.")
            self.sig_draft_finished.emit(self.draft.text())

        job.sig_succeeded.connect(learned)
        job.sig_failed.connect(lambda msg: self.show_status(f"Could not learn from the pick: {msg}", error=True))
        job.start()

    def forget_tags(self) -> None:
        from app.ranking.selector import reset_selector

        reset_selector(self.inputs()[0])
        self._selector = None
        self.candidate_bar.learned.setText("Learned tags forgotten: the next picks start from scratch.")

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()

    def mailto_url(self) -> QUrl:
        return self.draft.mailto_url(self.form.recipient.text(), self.form.subject.text())

    def open_in_mail_client(self) -> None:
        if not QDesktopServices.openUrl(self.mailto_url()):
            self.show_status("No mail client answered the mailto: link; use Copy instead.", error=True)
            return
        self._record("opened", self.draft.text())
