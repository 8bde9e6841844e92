"""``tiller eval --reproduce``: the paper's comparison in one command, on this computer.

For each sender, whatever is missing is made, and what exists is reused (every stage resumes):

1. distillation of the sender's newest ``distill`` emails with an abstractive intent model (the
   embedded instruct model by default): intents, zero-shot baselines, R3 rules, and R1 rules (the
   no-baseline ablation);
2. four training files, all from emails older than every held-out one: intent -> R3 rules (the
   agent), intent -> email (the naive fine-tune), intent -> R1 rules (the no-baseline agent), and
   plain rewrite (else zero-shot email) -> real email (the voice stage; pairs the content guard
   refuses left out; the plain rewrites are made for the training split only);
3. the adapters trained on them (the voice stage into the agent's ``voice/`` folder, where the app
   keeps a profile's) (:class:`agent_training.finetune.Finetune`: a rerun finds the
   finished ones by their data and configuration, and an interrupted one resumes from its checkpoint);
4. the evaluation (:class:`agent_training.evaluate.Evaluation`) of every method on the held-out split.

Everything lands under the report folder (``datasets/``, ``adapters/``, ``report.md``), so a
reproduction never replaces the sender's own agent. Like every long job here, :meth:`Reproduction.run`
is a generator of progress events, cancelled by a token.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agent_training.dataset import (
    TEST_SHARE,
    VOICE_MAX_LENGTH,
    Example,
    collect,
    plainly_said_examples,
    voice_chat,
    voice_pairs,
)
from agent_training.distill import Distillation, DistillConfig
from agent_training.evaluate import EvalConfig, EvalProgress, Evaluation, held_out_cases
from agent_training.finetune import Finetune, FinetuneConfig
from agent_training.messages import load_messages
from app.agent.profiles import VOICE_DIR, profile_slug
from app.files import write_atomic
from app.jobs import CancelToken

# training file -> the evaluation method that needs its adapter
TRAINED = {"agent": "agent", "naive_finetune": "naive_finetune", "r1_agent": "r1_agent", "voice": "agent_voice"}


@dataclass
class ReproduceConfig:
    evaluation: EvalConfig  # senders, limit, seed, backends, out_dir: as for a plain evaluation
    # newest emails per sender distilled here (None: enough for the held-out share to hold limit out)
    distill: int | None = None
    distill_backend: str = "local"  # abstractive intents and rules (the embedded instruct model)
    steps: int = 30  # optimizer steps per adapter (3 adapters per sender: the main cost)
    train_options: dict = field(default_factory=dict)  # other FinetuneConfig fields (rank, lr, threads, ...)
    # the voice stage's extra data: plain rewrites of up to this many more emails per sender, older
    # than every held-out one and not distilled (they need no intent; one request an email)
    voice_emails: int = 0

    @property
    def distill_count(self) -> int:
        return self.distill or math.ceil(self.evaluation.limit / self.evaluation.held_out_share)


def _chat(ex: Example, target: str) -> dict:
    return {
        "messages": [{"role": "user", "content": ex.prompt}, {"role": "assistant", "content": target}],
        "meta": {**ex.meta, "split": "train"},
    }


def older_undistilled(db, sender: str, limit: int, seed: int, count: int, share: float = TEST_SHARE) -> tuple[int, ...]:
    """Up to ``count`` of the sender's emails, newest first, that are older than every held-out one
    and not in the training split: the voice stage can learn from them once they are said plainly."""
    if count <= 0:
        return ()
    held, train = held_out_cases(db, sender, limit, seed, share)
    if not held:
        return ()
    first = min(c.date for c in held)
    known = {c.message_id for c in held} | {e.message_id for e in train}
    older = [
        m.id
        for m in load_messages(db, sender, newest_first=True)
        if m.date and m.date < first and m.id not in known and m.own_text.strip()
    ]
    return tuple(older[:count])


def training_files(
    db,
    sender: str,
    limit: int,
    seed: int,
    folder: Path,
    share: float = TEST_SHARE,
    voice_only_ids: tuple[int, ...] = (),
) -> dict[str, dict]:
    """The training files for ``sender``, from the same split the evaluation holds out: every
    example is older than every held-out email (R1 rows too, which can exist for emails whose R3
    row failed; the voice stage's emails said plainly alone, ``voice_only_ids``, too). Returns
    file name (TRAINED) -> {"path", "examples"}."""
    held, train = held_out_cases(db, sender, limit, seed, share)
    if not train:
        raise ValueError(
            f"{sender}: every distilled email is held out, none is left to train on (distil more: --distill)"
        )
    last = max((e.date, e.message_id) for e in train)
    first_held = min(c.date for c in held) if held else None
    wanted = set(voice_only_ids)
    plain_only = [
        e
        for e in plainly_said_examples(db, sender, {e.message_id for e in train}, before=first_held)
        if e.message_id in wanted
    ]
    r1, _ = collect(db, strategy="R1", sender=sender)
    r1 = [
        e
        for e in r1
        if not (e.meta.get("intent_source") or "").startswith("offline|") and (e.date, e.message_id) <= last
    ]
    rows = {
        "agent": [_chat(e, e.rules) for e in train],
        "naive_finetune": [_chat(e, e.email + "\n") for e in train],
        "r1_agent": [_chat(e, e.rules) for e in r1],
        "voice": [voice_chat(e, baseline, "train") for e, baseline in voice_pairs(db, train + plain_only)[0]],
    }
    out = {}
    for method, records in rows.items():
        path = folder / f"{method}.jsonl"
        write_atomic(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
        out[method] = {"path": path, "examples": len(records)}
    return out


class Reproduction:
    """``for progress in Reproduction(db, config).run(): ...`` then read ``.report_path``."""

    def __init__(self, db, config: ReproduceConfig, cancel: CancelToken | None = None, log=print):
        self.db = db
        self.config = config
        self.cancel = cancel or CancelToken()
        self.log = log
        self.out = Path(config.evaluation.out_dir)
        self.report_path = self.out / "report.md"
        self.timings: dict[str, float] = {}
        self.trained: dict[str, dict] = {}  # "method:sender" -> the trainer's result
        self.voice_only_ids: dict[str, tuple[int, ...]] = {}  # sender -> older emails said plainly alone
        # checks the backends and consent now, not after an hour of training
        self.evaluation = Evaluation(db, config.evaluation, cancel=self.cancel)

    def run(self) -> Iterator[EvalProgress]:
        cfg, ev = self.config, self.config.evaluation
        started = time.monotonic()
        for sender in ev.senders:
            yield from self._distill(sender, started)
            if self.cancel.cancelled:
                return
        if "agent_voice" in ev.methods:  # the voice stage's input, for the training split alone
            for sender in ev.senders:
                _, train = held_out_cases(self.db, sender, ev.limit, ev.seed, ev.held_out_share)
                yield from self._distill(sender, started, plain_for=tuple(sorted({e.message_id for e in train})))
                if self.cancel.cancelled:
                    return
                older = older_undistilled(self.db, sender, ev.limit, ev.seed, cfg.voice_emails, ev.held_out_share)
                if older:
                    self.voice_only_ids[sender] = older
                    yield from self._distill(sender, started, plain_for=older, voice_only=True)
                    if self.cancel.cancelled:
                        return
        agents, adapters = {}, {}
        for sender in ev.senders:
            folder = self.out / "datasets" / profile_slug(sender)
            files = training_files(
                self.db, sender, ev.limit, ev.seed, folder, ev.held_out_share, self.voice_only_ids.get(sender, ())
            )
            agent_folder = self.out / "adapters" / profile_slug(sender) / "agent"
            for method, info in files.items():
                given = ev.agents.get(sender) if method in ("agent", "voice") else ev.adapter(method, sender)
                if given or TRAINED[method] not in ev.methods:  # named (--agent / --adapter), or not asked for
                    continue
                if not info["examples"]:
                    if method == "voice":  # every pair refused by the content guard: said in the report
                        self.log(f"{sender}: no voice pairs the content guard keeps; agent_voice is not run")
                        continue
                    raise ValueError(f"{sender}: no training examples for {method} (distil more emails: --distill)")
                folder = agent_folder / VOICE_DIR if method == "voice" else agent_folder.parent / method
                yield from self._train(method, sender, info["path"], folder, started)
                if self.cancel.cancelled:
                    return
                if method == "agent":
                    agents[sender] = folder
                elif method != "voice":
                    adapters[f"{method}:{sender}"] = folder
        ev.agents, ev.adapters = {**agents, **ev.agents}, {**adapters, **ev.adapters}
        evaluation = self.evaluation
        evaluation.extra_timings = {k: round(v, 1) for k, v in self.timings.items()}
        evaluation.command = (
            f"tiller eval --reproduce {' '.join('--sender ' + s for s in ev.senders)} --limit {ev.limit} "
            f"--seed {ev.seed} --distill {cfg.distill_count} --steps {cfg.steps}"
            + (f" --held-out-share {ev.held_out_share}" if ev.held_out_share != TEST_SHARE else "")
            + (f" --voice-emails {cfg.voice_emails}" if cfg.voice_emails else "")
            + "".join(f" --method {m}" for m in ev.methods)
        )
        yield from evaluation.run()

    def _distill(
        self, sender: str, started: float, plain_for: tuple[int, ...] | None = None, voice_only: bool = False
    ) -> Iterator[EvalProgress]:
        """Intents, zero-shot emails and rules of the sender's newest emails; with ``plain_for``,
        the plain rewrites of those messages (everything else of theirs is done by then); with
        ``voice_only`` too, of older emails that are not distilled at all."""
        cfg = self.config
        job = Distillation(
            self.db,
            DistillConfig(
                backend=cfg.distill_backend,
                sender=sender,
                limit=None if voice_only else cfg.distill_count,
                voice_only=voice_only,
                strategies=("R3", "R1") if "r1_agent" in cfg.evaluation.methods else ("R3",),
                newest_first=True,
                # a rerun (to add the judge, say) must not ask again what failed: an answer that
                # succeeds now changes the training set, retrains the agent and redoes its drafts
                retry_failed=False,
                consent_given_now=cfg.evaluation.consent_given_now,
                plain_rewrites=plain_for is not None,
                message_ids=plain_for,
            ),  # distillation's own seed:
            # another evaluation seed must not distil every email again
            cancel=self.cancel,
        )
        began = time.monotonic()
        what = "older emails said plainly" if voice_only else "plain rewrites" if plain_for else "distill"
        stage = f"{what} {sender.split('@')[0]}"
        for p in job.run():
            yield EvalProgress(done=p.done, total=p.total, started=started, message=p.message, stage=stage)
        self.timings[f"distill ({sender})"] = self.timings.get(f"distill ({sender})", 0) + time.monotonic() - began
        if job.counts.failed:
            self.log(f"{sender}: {job.counts.failed} emails failed to distil (left out)")

    def _train(self, method: str, sender: str, dataset: Path, folder: Path, started: float) -> Iterator[EvalProgress]:
        cfg = self.config
        options = dict(cfg.train_options)
        if method == "voice":  # a draft and the email it becomes: longer than an intent and its rules
            options["max_length"] = max(options.get("max_length", 0), VOICE_MAX_LENGTH)
        job = Finetune(
            FinetuneConfig(dataset=dataset, output=folder, max_steps=cfg.steps, **options),
            cancel=self.cancel,
            log=self.log,
        )
        began = time.monotonic()
        stage = f"train {method} {sender.split('@')[0]}"
        for p in job.run():
            if p.phase in ("training", "done") and p.total_steps:
                yield EvalProgress(
                    done=p.step,
                    total=p.total_steps,
                    started=started,
                    stage=stage,
                    message=f"loss {p.loss:.3f}" if p.loss is not None else p.message or "",
                )
            elif p.phase == "cancelled":
                return
        self.trained[f"{method}:{sender}"] = job.result or {}
        if not (job.result or {}).get("already"):
            self.timings[f"train {method} ({sender})"] = time.monotonic() - began
