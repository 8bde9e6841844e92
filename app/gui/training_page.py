"""Training page: distill the training data (offline, or through a cloud model after an explicit
consent naming what is sent), then fine-tune the agent for one voice, with live progress, a live
loss plot, ETA and cancel. Both run as separate processes; the app stays usable meanwhile."""

from __future__ import annotations

from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from app.errors import EXIT_CANCELLED
from app.firstrun import LOCAL_DISTILL_EMAILS, LOCAL_DISTILL_S_PER_EMAIL
from app.gui.workers import Job

LOCAL_DISTILL = "local"  # the built-in local backend: the embedded instruct model, in the trainer process


class LossPlot(QWidget):
    """The training loss per step, drawn as it arrives."""

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.points: list[tuple[int, float]] = []
        self.setMinimumHeight(160)

    def clear(self) -> None:
        self.points = []
        self.update()

    def add(self, step: int, loss: float) -> None:
        self.points.append((step, loss))
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        rect = self.rect().adjusted(40, 10, -10, -24)
        painter.fillRect(self.rect(), self.palette().base())
        painter.setPen(QPen(self.palette().mid().color()))
        painter.drawRect(rect)
        if not self.points:
            painter.drawText(rect, Qt.AlignCenter, "loss per step appears here")
            return
        steps = [s for s, _ in self.points]
        losses = [v for _, v in self.points]
        lo, hi = min(losses), max(losses)
        span = (hi - lo) or 1.0
        last = max(steps[-1], 2)
        painter.setPen(QPen(self.palette().text().color()))
        painter.drawText(2, rect.top() + 10, f"{hi:.2f}")
        painter.drawText(2, rect.bottom(), f"{lo:.2f}")
        painter.drawText(rect.left(), rect.bottom() + 18, "step 1")
        painter.drawText(rect.right() - 60, rect.bottom() + 18, f"step {steps[-1]}")
        pen = QPen(QColor("#1f6feb"))
        pen.setWidth(2)
        painter.setPen(pen)
        pts = [
            QPointF(rect.left() + (s - 1) / (last - 1) * rect.width(), rect.bottom() - (v - lo) / span * rect.height())
            for s, v in self.points
        ]
        for a, b in zip(pts, pts[1:]):
            painter.drawLine(a, b)


class TrainingPage(QWidget):
    sig_trained = Signal(str)  # the profile that got a new adapter

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.job: Job | None = None
        self.process = None
        self._hardware_facts: dict[str, str] = {}
        self._voice_round = False  # the second training of one press of Train: the voice stage
        self.distill_backend = QComboBox(objectName="distill_backend")
        self.distill_button = QPushButton("Build training data", objectName="distill")
        self.voice = QComboBox(objectName="train_voice")
        self.steps = QSpinBox(
            objectName="train_steps", minimum=0, maximum=100_000, value=60, specialValueText="one epoch"
        )
        self.train_button = QPushButton("Train the agent", objectName="train")
        self.cancel_button = QPushButton("Cancel", objectName="train_cancel", enabled=False)
        self.bar = QProgressBar(objectName="train_bar")
        self.eta = QLabel(objectName="train_eta")
        # what the trainer chose for this computer: number format (measured), load time, cores busy
        self.hardware = QLabel(objectName="train_hardware", wordWrap=True)
        self.plot = LossPlot()
        self.status = QLabel(objectName="train_status", wordWrap=True)

        form = QFormLayout()
        row = QHBoxLayout()
        row.addWidget(self.distill_backend, 1)
        row.addWidget(self.distill_button)
        form.addRow("1. Training data from", row)
        row2 = QHBoxLayout()
        row2.addWidget(self.voice, 1)
        row2.addWidget(QLabel("steps"))
        row2.addWidget(self.steps)
        row2.addWidget(self.train_button)
        form.addRow("2. Train the agent for", row2)
        progress = QHBoxLayout()
        progress.addWidget(self.bar, 1)
        progress.addWidget(self.eta)
        progress.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(progress)
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.hardware)
        layout.addWidget(self.status)

        self.distill_button.clicked.connect(self.start_distill)
        self.train_button.clicked.connect(self.start_training)
        self.cancel_button.clicked.connect(self.cancel)
        self.voice.activated.connect(lambda _: self.voice.setProperty("chosen", True))
        self.refresh()

    def refresh(self) -> None:
        from app.gui.compose_parts import backend_names, voices

        self.distill_backend.clear()
        self.distill_backend.addItem("This computer only (offline: measured style rules, about a minute)", None)
        self.distill_backend.addItem(
            f"This computer, with the local model (the paper's method: the voice's newest {LOCAL_DISTILL_EMAILS} "
            f"emails, about {LOCAL_DISTILL_S_PER_EMAIL} s each)",
            LOCAL_DISTILL,
        )
        names, _ = backend_names()
        for name in names:
            if name != "local":
                self.distill_backend.addItem(f"{name} (sends your sent mail to it)", name)
        current = self.voice.currentData()
        self.voice.clear()
        for label, sender in voices():
            self.voice.addItem(label, sender)
        index = self.voice.findData(current) if self.voice.property("chosen") else -1
        self.voice.setCurrentIndex(max(0, index))  # first look: the first identity

    def _busy(self, busy: bool) -> None:
        self.distill_button.setEnabled(not busy)
        self.train_button.setEnabled(not busy)
        self.cancel_button.setEnabled(busy)

    def _run_process(self, start, on_event, on_done) -> None:
        def work(token):
            process = self.process = start()
            token.on_cancel(process.cancel)
            token.on_cancel(process.interrupt)
            yield from process.events()
            return process

        job = self.job = Job(work, "trainer", self)
        job.sig_progress.connect(on_event)
        job.sig_succeeded.connect(on_done)
        job.sig_failed.connect(lambda msg: (self.status.setText(f"Failed: {msg}"), self._busy(False)))
        job.sig_cancelled.connect(
            lambda: (self.status.setText("Stopped. Start again to resume where it stopped."), self._busy(False))
        )
        self._busy(True)
        job.start()

    # -- distillation ------------------------------------------------------------------------------

    def start_distill(self) -> None:
        from app.agent.trainer import TrainerProcess

        backend = self.distill_backend.currentData()
        args = ["distill", "--json"]
        if backend is None:
            args.append("--offline")
        elif backend == LOCAL_DISTILL:  # nothing leaves the computer: no consent to ask for
            args += ["--backend", "local", "--limit", str(LOCAL_DISTILL_EMAILS)]
            if self.voice.currentData():
                args += ["--sender", self.voice.currentData()]
        else:
            from app.consent import distill_statement

            answer = QMessageBox.question(
                self,
                "Send your sent mail?",
                f"{distill_statement(backend)}\n\nThis is what leaves your computer, once, to build the training data. "
                "Drafting later sends only intents and rules. Every request is listed on the Privacy page.",
                QMessageBox.Yes | QMessageBox.No,
                QMessageBox.No,
            )
            if answer != QMessageBox.Yes:
                return
            args += ["--backend", backend, "--i-consent-to-send-sent-mail"]
        self.status.setText("Building the training data…")
        self.bar.setRange(0, 0)
        self._run_process(lambda: TrainerProcess.start_command(args), self._distill_event, self._distill_done)

    def _distill_event(self, event) -> None:
        self.status.setText(f"Building the training data: {event.message or event.phase}")
        if event.total_steps:
            self.bar.setRange(0, event.total_steps)
            self.bar.setValue(event.step)

    def _distill_done(self, process) -> None:
        self._busy(False)
        self.bar.setRange(0, 1)
        self.bar.setValue(1)
        if process.returncode == 0:
            self.status.setText("Training data ready. Now train the agent for a voice.")
        elif process.returncode == EXIT_CANCELLED:
            self.status.setText("Stopped; finished rows are kept. Start again to resume.")
        else:
            self.status.setText(f"Building the training data failed: {process.error_text()}")

    # -- training ------------------------------------------------------------------------------------

    def start_training(self) -> None:
        from app.ops.training import start_trainer

        sender = self.voice.currentData()
        steps = self.steps.value() or None
        self._voice_round = False  # the agent first, then its voice stage when there are voice pairs
        self.plot.clear()
        self._hardware_facts = {}
        self.hardware.setText("")
        self.bar.setRange(0, 0)
        self.status.setText("Loading the base model…")
        self._run_process(
            lambda: start_trainer(sender=sender, steps=steps),  # on "Use as agent base" (the Models page)
            self._train_event,
            lambda process: self._train_done(process, sender),
        )

    def _train_event(self, event) -> None:
        if event.extra.get("dtype_reason"):
            self._hardware_facts["format"] = f"Number format {event.extra['dtype']}: {event.extra['dtype_reason']}"
        if event.extra.get("load_s") is not None:
            self._hardware_facts["load"] = f"model loaded in {event.extra['load_s']:.0f} s"
        if event.extra.get("cores_busy"):
            self._hardware_facts["cores"] = f"{event.extra['cores_busy']:.1f} cores busy"
        if event.extra.get("s_per_step"):
            self._hardware_facts["step"] = f"{event.extra['s_per_step']:.1f} s a step"
        self.hardware.setText(" · ".join(self._hardware_facts.values()))
        if event.phase == "training" and event.message and event.loss is not None:
            self._hardware_facts["plan"] = event.message  # what a time budget chose
        if event.phase == "training" and event.total_steps:
            if self._voice_round and event.loss is None:  # the voice stage starts: its own loss curve
                self.plot.clear()
            self.bar.setRange(0, event.total_steps)
            self.bar.setValue(event.step)
            if event.loss is not None:
                self.plot.add(event.step, event.loss)
                self.status.setText(
                    f"Training: step {event.step} of {event.total_steps}, loss {event.loss:.3f}, "
                    f"{event.tokens_per_s or 0:.0f} tokens/s"
                )
            if event.eta_s is not None:
                minutes, seconds = divmod(int(event.eta_s), 60)
                self.eta.setText(f"ETA {minutes}:{seconds:02d}")
        elif event.message:
            self.status.setText(event.message)

    def _train_done(self, process, sender) -> None:
        from app.ops.training import MIN_VOICE_PAIRS, start_trainer, voice_pairs_exist

        self._busy(False)
        self.eta.setText("")
        who = sender or "all identities"
        if process.returncode == 0 and not self._voice_round and voice_pairs_exist():
            # as `tiller train` does: the voice stage's own steps, not the agent's
            self._voice_round = True
            self.status.setText(
                f"The agent for {who} is trained. Now its voice stage (drafts said again in your words)…"
            )
            self.bar.setRange(0, 0)
            self._run_process(
                lambda: start_trainer(sender=sender, stage="voice", min_pairs=MIN_VOICE_PAIRS),
                self._train_event,
                lambda process: self._train_done(process, sender),
            )
            return
        if process.returncode == 0:
            last = process.last
            if not self._voice_round:
                self.status.setText(f"The agent for {who} is trained; drafts use it from now on.")
            elif last is not None and last.phase == "skipped":
                self.status.setText(
                    f"The agent for {who} is trained; drafts use it from now on. Voice stage not trained: {last.message}."
                )
            else:
                self.status.setText(
                    f"The agent for {who} and its voice stage are trained; drafts use both from now on."
                )
            self.sig_trained.emit(sender or "all")
        elif process.returncode == EXIT_CANCELLED:
            self.status.setText("Stopped with a checkpoint; press Train again to resume.")
        else:
            self.status.setText(f"Training failed: {process.error_text()}")

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
