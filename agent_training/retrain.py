"""Retrain a sender's agent from the user's edits, and keep the new adapter only if it is no worse.

``python -m agent_training retrain --sender S`` (the app starts it in the background, see
app/learning/retrain.py):

1. The (draft, final) pairs of the identity, oldest first; the newest 20% (at least 3) are held
   out for the gate.
2. A dataset: one corrected example per training pair (the agent's prompt for the draft's intent
   and details -> the measured rules of the final email, with Tiller's own draft as the zero-shot
   baseline; with ``--rules-backend``, that model's R3 rules from draft vs final first, Tiller's
   draft playing the paper's zero-shot email; a backend off this computer needs the consent
   distillation needs), each twice, plus up to ``REPLAY`` times as many of the
   sender's distilled examples (newest first), so the agent does not forget the rest of the mail.
3. A candidate adapter, trained from the current one (``FinetuneConfig.init_adapter``) for one
   pass over that dataset (``--steps`` to change), in ``agents/.candidate-<profile>``; Ctrl-C
   saves a checkpoint and the same command resumes.
4. The gate: both adapters write rules for the held-out intents on llama.cpp, scored with
   app.learning.retrain.score. The candidate replaces the profile (one folder swap) only when its
   score is at least the current one's; otherwise the current adapter stays and the row in
   ``retrains`` says why.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from agent_training.llm import ask_safely
from agent_training.messages import SentMessage
from agent_training.rules import (
    SMALL_R3_PROMPT,
    merge_with_measured,
    parse_rules,
    parse_small_rules,
    rules_request,
    small_r3_request,
)
from app.agent.agent import PreferenceAgent, RulesRequest
from app.agent.profiles import AgentProfile, find_profile, profile_at, profile_dir
from app.agent.template import agent_prompt, format_rules
from app.agent.trainer import TrainerEvent
from app.files import write_atomic, write_atomic_dir
from app.jobs import CancelToken
from app.learning import retrain as policy
from app.measured_style import measure, style_rules
from app.store import drafts as store

REPLAY = 4  # distilled examples per edit example
EDIT_REPEATS = 2
# the edits repeat (EDIT_REPEATS) among few examples: unlike a first training run, this one keeps
# LoRA dropout against learning them by heart
EDIT_DROPOUT = 0.05
MAX_STEPS = 60
BATCH = 4


@dataclass
class RetrainConfig:
    sender: str | None = None
    steps: int | None = None  # default: one pass over the dataset, at most MAX_STEPS
    lr: float = 5e-4  # half the first training's rate: this continues an adapter
    threads: int | None = None
    # a backend that writes R3 rules from each (draft, final) pair; None: measured rules only
    rules_backend: str | None = None
    consent_given_now: bool = False  # --i-consent-to-send-sent-mail, for a backend off this computer


def r3_source(endpoint, pair: store.DraftRow) -> str:
    """What R3 rules of one pair depend on: the backend, model and prompt, and the final text
    (an undone match or a new edit changes it, and the rules are asked for again)."""
    final = hashlib.sha256((pair.final_text or "").encode()).hexdigest()[:12]
    prompt = SMALL_R3_PROMPT if endpoint.provider == "local" else "rules_r3"
    return f"{endpoint.name}|{endpoint.model or '-'}|{prompt}|{final}"


def as_sent_message(pair: store.DraftRow) -> SentMessage:
    return SentMessage(
        id=-pair.id,
        sender=pair.identity or "",
        recipients=pair.recipient or "",
        subject=pair.subject or "",
        date=pair.final_at,
        own_text=pair.final_text or "",
        previous_context=pair.previous_email or "",
        signature="",
    )


def ask_r3_rules(db, pairs: list[store.DraftRow], endpoint, cancel: CancelToken) -> Iterator[TrainerEvent]:
    """R3 rules for each pair that has none from this source yet: Tiller's draft plays the paper's
    zero-shot baseline, the final text the real email. Stored on the draft row (a rerun asks nothing
    twice); a failed answer leaves the pair on measured rules alone."""
    todo = [p for p in pairs if p.r3_source != r3_source(endpoint, p)]
    for n, pair in enumerate(todo, 1):
        if cancel.cancelled:
            return
        msg = as_sent_message(pair)
        if endpoint.provider == "local":
            request, _ = small_r3_request(msg, pair.text)
            parse = lambda raw, email=msg.own_text: parse_small_rules(raw, email)  # noqa: E731
        else:
            request, _ = rules_request("R3", msg, pair.intent, pair.text)
            parse = lambda raw, email=msg.own_text: parse_rules(raw, email)  # noqa: E731
        result = ask_safely(request, parse, endpoint, cancel=cancel)
        if result.ok:
            with db.atomic():
                store.set_r3_rules(db, pair.id, result.value[0], r3_source(endpoint, pair))
        yield TrainerEvent("rules", n, len(todo), message=f"R3 rules from your edits ({endpoint.name})")


def edit_example(pair: store.DraftRow, endpoint=None) -> dict:
    """The corrected example one (draft, final) pair gives: the measured rules of the final text,
    with Tiller's draft as the zero-shot baseline; and the model's R3 rules from the same pair
    first, when ``endpoint`` wrote them (merged as the distilled targets are)."""
    measured = format_rules(style_rules(measure(pair.final_text or ""), measure(pair.text)))
    target = measured
    if endpoint is not None and pair.r3_rules and pair.r3_source == r3_source(endpoint, pair):
        target, _ = merge_with_measured(format_rules(pair.r3_rules), measured)
    return {
        "messages": [
            {
                "role": "user",
                "content": agent_prompt(
                    pair.intent, recipient=pair.recipient, subject=pair.subject, previous_context=pair.previous_email
                ),
            },
            {"role": "assistant", "content": target.rstrip("\n") + "\n"},
        ],
        "meta": {"sender": (pair.identity or "").lower(), "source": "edit", "draft_id": pair.id, "split": "train"},
    }


def distilled_examples(sender: str | None, limit: int) -> list[dict]:
    """Up to ``limit`` of the sender's distilled training examples, newest first ([] when the
    user never distilled)."""
    from agent_training.dataset import default_training_file

    try:
        path = default_training_file(sender)
    except FileNotFoundError:
        return []
    records = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if sender and (record.get("meta") or {}).get("sender", "").lower() != sender.lower():
                continue
            records.append(record)
    records.sort(key=lambda r: (r.get("meta") or {}).get("date") or "", reverse=True)
    return records[:limit]


SHAPE_FIELDS = ("rank", "alpha", "target_modules", "max_length", "base_gguf", "base_hf")


def same_shape(profile: AgentProfile) -> dict:
    """The options that make the candidate's LoRA the shape of the adapter it starts from (and on
    the same base model), from the profile's training record."""
    recorded = (profile.record.config if profile.record else None) or {}
    out = {}
    for name in SHAPE_FIELDS:
        value = recorded.get(name)
        if value is None:
            continue
        if name in ("base_gguf", "base_hf"):
            value = Path(value)
        elif name == "target_modules":
            value = tuple(value)
        out[name] = value
    return out


def rules_of(profile: AgentProfile | None) -> Callable[[store.DraftRow], list[str]]:
    agent = PreferenceAgent(profile)

    def rules_for(pair: store.DraftRow) -> list[str]:
        return agent.rules(
            RulesRequest(
                pair.intent, recipient=pair.recipient, subject=pair.subject, previous_context=pair.previous_email
            )
        )

    return rules_for


class Retrain:
    """``for event in Retrain(db, config).run(): ...``; ``result`` at the end."""

    def __init__(self, db, config: RetrainConfig, cancel: CancelToken | None = None, log=print) -> None:
        self.db = db
        self.config = config
        self.cancel = cancel or CancelToken()
        self.log = log
        self.result: dict | None = None
        self._finetune = None

    def emergency_checkpoint(self) -> int | None:
        """The candidate's training saves its last finished step (before a forced exit; any thread)."""
        return self._finetune.emergency_checkpoint() if self._finetune is not None else None

    def run(self) -> Iterator[TrainerEvent]:
        sender = self.config.sender
        lock = policy.retrain_lock(sender)
        if not lock.try_acquire():
            raise RuntimeError(f"a retrain of {policy.profile_key(sender)} is already running ({lock.holder()})")
        try:
            yield from self._run(sender)
        finally:
            lock.release()

    def _run(self, sender: str | None) -> Iterator[TrainerEvent]:
        from agent_training.finetune import PEFT_DIR, Finetune, FinetuneConfig

        db, key = self.db, policy.profile_key(sender)
        pairs = store.learning_pairs(db, sender)
        train_pairs, held_out = policy.split_held_out(pairs)
        if not train_pairs:
            raise ValueError(
                f"{len(pairs)} edited or sent draft(s) for {key}: too few to retrain "
                f"({policy.MIN_HELD_OUT} are held out to check the new adapter)"
            )
        endpoint = None
        if self.config.rules_backend:
            from app import consent
            from app.backends.config import get_endpoint

            endpoint = get_endpoint(db, self.config.rules_backend)
            consent.ensure(
                db,
                endpoint,
                given_now=self.config.consent_given_now,
                why="R3 rules from your edits send each edited draft and the email you sent to that backend.",
                alternative=", or retrain without --rules-backend (measured rules, on this computer)",
            )
        with db.atomic():
            store.fail_stale_retrains(db, key)
            run_id = store.start_retrain(db, key, len(pairs), len(held_out))
        try:
            if endpoint is not None:
                yield from ask_r3_rules(db, train_pairs, endpoint, self.cancel)
                train_pairs = [store.draft(db, p.id) or p for p in train_pairs]  # with their R3 rules
            records = [edit_example(p, endpoint) for p in train_pairs for _ in range(EDIT_REPEATS)]
            records += distilled_examples(sender, REPLAY * len(train_pairs))
            dataset = policy.dataset_path(sender)
            write_atomic(dataset, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            current = find_profile(sender)
            start_from = current.directory / PEFT_DIR if current.trained else None
            if start_from is not None and not start_from.is_dir():
                start_from = None  # an adapter from before peft/ was kept: train from fresh weights
            candidate_dir = policy.candidate_dir(sender)
            steps = self.config.steps or min(MAX_STEPS, max(1, math.ceil(len(records) / BATCH)))
            config = FinetuneConfig(
                dataset=dataset,
                sender=sender,
                output=candidate_dir,
                max_steps=steps,
                lr=self.config.lr,
                warmup_steps=min(10, steps // 5),
                dropout=EDIT_DROPOUT,
                init_adapter=start_from,
                threads=self.config.threads,
                **(same_shape(current) if start_from else {}),
            )
            job = self._finetune = Finetune(config, cancel=self.cancel, log=self.log)
            yield from job.run()
            if (job.result or {}).get("status") == "cancelled":
                with db.atomic():
                    store.finish_retrain(
                        db, run_id, "cancelled", old_score=None, new_score=None, note="cancelled; rerun to resume"
                    )
                self.result = {"decision": "cancelled"}
                return
            yield TrainerEvent("gating", message=f"scoring both adapters on the {len(held_out)} newest edits")
            old_score = policy.score(rules_of(current if current.trained else None), held_out)
            candidate = profile_at(candidate_dir, key)
            new_score = policy.score(rules_of(candidate), held_out)
            target = profile_dir(sender)
            if new_score >= old_score:
                write_atomic_dir(target, lambda tmp: shutil.copytree(candidate_dir, tmp, dirs_exist_ok=True))
                decision = "kept_new"
                note = f"new adapter in {target}: {new_score:.2f} >= {old_score:.2f} on the held-out edits"
            else:
                decision = "kept_old"
                note = f"the new adapter did worse ({new_score:.2f} < {old_score:.2f}): the current one stays"
            shutil.rmtree(candidate_dir, ignore_errors=True)
            dataset.unlink(missing_ok=True)  # it holds the user's edited text: kept only to resume
            with db.atomic():
                store.finish_retrain(db, run_id, decision, old_score=old_score, new_score=new_score, note=note)
                policy.clear_due(db, sender)
            self.result = {"decision": decision, "old_score": old_score, "new_score": new_score, "note": note}
            yield TrainerEvent("done", message=note, extra=self.result)
        except BaseException as exc:
            with db.atomic():
                store.finish_retrain(db, run_id, "failed", old_score=None, new_score=None, note=str(exc)[:500])
            raise
