"""Distillation through a provider's batch service: a whole mailbox for half the price, without
keeping the app open.

The stages depend on each other (intents -> zero-shot baselines -> rules), so each is one batch:
``submit`` sends the first stage that has work left, ``check`` looks at the open batches, stores
what finished (parsed exactly as a single request's answer would be) and submits the next stage,
and ``run_until_done`` does that until every stage is stored. The batch ids live in the database
(``distill_batches``), so any later process picks up where the last one stopped: ``tiller distill
--status`` after the app was closed, or after a reboot.

What a batch does not deliver (its 24 hours ran out, it was cancelled) is not stored and goes into
the next submission of that stage; an answer that came back malformed or errored is stored as a
failed row, as in the one-by-one path, and is not asked again within the chain (``tiller distill
--backend NAME`` without ``--batch`` re-asks failed rows one by one).

Before anything is sent the user sees what it costs: the requests, their input tokens (about 4
characters a token), the output tokens at most and as expected, and the price where Tiller knows
the model's batch price (app/backends/prices.py, dated).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace

from agent_training import baseline as baseline_mod
from agent_training import rules as rules_mod
from agent_training.distill import Distillation, DistillConfig, StageJob
from agent_training.llm import LLMResult
from agent_training.messages import load_messages
from agent_training.parsing import MalformedAnswer
from app.backends.base import GenerationRequest
from app.backends.batch import BatchClient, BatchUnsupported, batch_provider_class
from app.backends.errors import BackendError
from app.backends.prices import batch_price
from app.clock import utc_now
from app.store import batches as batch_store

# the DistillConfig fields that decide which rows a chain distills (stored with each batch)
CHAIN_FIELDS = (
    "sender",
    "limit",
    "strategies",
    "all_intent_variants",
    "seed",
    "max_tokens",
    "newest_first",
    "zero_shot",
)
CHARS_PER_TOKEN = 4  # the usual rule of thumb for English; the providers count exactly when they bill
EXPECTED_OUTPUT_TOKENS = {
    "intents": 60,
    "baselines": None,
    "plain_rewrites": None,
    "rules": 120,
}  # None: about the email's length


@dataclass(frozen=True)
class StageEstimate:
    stage: str
    requests: int
    input_tokens: int
    output_tokens_max: int
    output_tokens_expected: int
    exact: bool  # False: a later stage, estimated before its inputs exist


@dataclass(frozen=True)
class Estimate:
    stages: tuple[StageEstimate, ...]
    price: dict | None  # asdict(BatchPrice) or None

    @property
    def input_tokens(self) -> int:
        return sum(s.input_tokens for s in self.stages)

    @property
    def output_tokens_expected(self) -> int:
        return sum(s.output_tokens_expected for s in self.stages)

    @property
    def output_tokens_max(self) -> int:
        return sum(s.output_tokens_max for s in self.stages)

    def cost(self, output_tokens: int) -> float | None:
        if self.price is None:
            return None
        return (self.input_tokens * self.price["input_per_m"] + output_tokens * self.price["output_per_m"]) / 1e6

    def lines(self) -> list[str]:
        out = []
        for s in self.stages:
            how = "" if s.exact else " (estimated before its inputs exist)"
            out.append(
                f"{s.stage}: {s.requests} requests, about {s.input_tokens:,} input tokens, "
                f"{s.output_tokens_expected:,} output tokens expected (at most {s.output_tokens_max:,}){how}"
            )
        if self.price is None:
            out.append("cost: Tiller does not know this model's batch price; the provider's price list decides")
        else:
            out.append(
                f"cost: about ${self.cost(self.output_tokens_expected):.2f} (at most "
                f"${self.cost(self.output_tokens_max):.2f}); {self.price['source']}"
            )
        return out

    def to_dict(self) -> dict:
        return {
            "stages": [asdict(s) for s in self.stages],
            "price": self.price,
            "cost_expected": self.cost(self.output_tokens_expected),
            "cost_max": self.cost(self.output_tokens_max),
        }


@dataclass(frozen=True)
class BatchEvent:
    """What happened to a batch, for the CLI to show: submitted, running, collected, failed."""

    kind: str
    stage: str
    batch_id: str
    message: str
    counts: dict | None = None


def _tokens(text: str) -> int:
    return max(1, len(text) // CHARS_PER_TOKEN)


def request_tokens(request: GenerationRequest) -> int:
    return _tokens(request.system + "".join(m.content for m in request.messages))


class BatchDistillation:
    """The batch chain for one backend and one selection of mail (``config``)."""

    def __init__(self, db, config: DistillConfig, db_path=None, client_factory: Callable = BatchClient):
        # a chain never re-asks a row that failed (an errored or malformed answer): only what was
        # not delivered goes into the next submission (module docstring)
        self.config = replace(config, retry_failed=False)
        self.db = db
        self.db_path = db_path
        self.distillation = Distillation(db, self.config, db_path=db_path)  # checks the consent
        endpoint = self.distillation.endpoint
        if endpoint is None:
            raise BatchUnsupported("--batch needs a cloud backend (--backend NAME); offline distillation is local")
        self.endpoint = endpoint
        self.client_factory = client_factory
        cls = batch_provider_class(endpoint)  # BatchUnsupported for a provider without a batch service
        self.model = endpoint.model or cls.default_model

    # -- which stage is next ---------------------------------------------------------------------

    @property
    def stages(self) -> list[str]:
        strategies = list(self.config.strategies)
        plain = ["plain_rewrites"] if self.config.wants_plain_rewrites else []
        return ["intents"] + (["baselines"] if self.config.wants_zero_shot else []) + strategies + plain

    def _messages(self):
        return load_messages(
            self.db, self.config.sender, self.config.limit, newest_first=self.distillation.newest_first
        )

    def jobs(self, stage: str) -> tuple[list[StageJob], Callable]:
        messages = self._messages()
        d = self.distillation
        if stage == "intents":
            return d.intent_jobs(messages)
        if stage == "baselines":
            return d.baseline_jobs(messages)
        if stage == "plain_rewrites":
            return d.plain_rewrite_jobs(messages)
        return d.rule_jobs(messages, stage)

    def next_stage(self) -> tuple[str, list[StageJob], Callable] | None:
        """The first stage with requests left, or None when every stage is stored."""
        for stage in self.stages:
            jobs, store = self.jobs(stage)
            if jobs:
                return stage, jobs, store
        return None

    def open_batches(self) -> list[batch_store.BatchRow]:
        return [b for b in batch_store.open_batches(self.db, self.endpoint.name) if b.config == self.chain_config()]

    def chain_config(self) -> dict:
        return json.loads(json.dumps({f: getattr(self.config, f) for f in CHAIN_FIELDS}, sort_keys=True))

    # -- what it costs ---------------------------------------------------------------------------

    def estimate(self, stage: str, jobs: list[StageJob]) -> Estimate:
        """This stage counted from its requests; the stages after it from stand-in requests built
        with the real prompts (the real email standing in for the intent and the zero-shot email)."""
        capped = [self.distillation.capped(j.request) for j in jobs]
        stages = [self._stage_estimate(stage, capped, exact=True)]
        later = self.stages[self.stages.index(stage) + 1 :]
        if later:
            messages = {j.key[0].id: j.key[0] for j in jobs}.values()
            for name in later:
                stand_ins = [self.distillation.capped(self._stand_in(name, m)) for m in messages]
                stages.append(self._stage_estimate(name, stand_ins, exact=False))
        price = batch_price(self.endpoint.provider, self.model)
        return Estimate(tuple(stages), asdict(price) if price else None)

    def _stand_in(self, stage: str, msg) -> GenerationRequest:
        if stage == "baselines":
            return baseline_mod.baseline_request(msg, msg.own_text)[0]
        if stage == "plain_rewrites":
            return baseline_mod.plain_rewrite_request(msg)[0]
        return rules_mod.rules_request(stage, msg, msg.own_text, msg.own_text)[0]

    def _stage_estimate(self, stage: str, requests: list[GenerationRequest], exact: bool) -> StageEstimate:
        default_max = self.distillation.provider_cls.Options.model_fields["max_tokens"].default
        caps = [int(r.options.get("max_tokens") or default_max) for r in requests]
        per = EXPECTED_OUTPUT_TOKENS.get("rules" if stage in rules_mod.STRATEGIES else stage)
        # a zero-shot email (per None) is about as long as the request's own email
        expected = sum(min(cap, 40 + request_tokens(r) // 4 if per is None else per) for cap, r in zip(caps, requests))
        return StageEstimate(stage, len(requests), sum(request_tokens(r) for r in requests), sum(caps), expected, exact)

    # -- submitting, checking, collecting --------------------------------------------------------

    def submit(self, stage: str, jobs: list[StageJob], estimate: Estimate | None = None) -> BatchEvent:
        with self.client_factory(self.endpoint, purpose="distill-batch", db_path=self.db_path) as client:
            items = [client.item(j.custom_id, self.distillation.capped(j.request)) for j in jobs]
            batch_id = client.submit(items, f"tiller distill {stage}")
        batch_store.add_batch(
            self.db,
            backend=self.endpoint.name,
            provider=self.endpoint.provider,
            model=self.model,
            batch_id=batch_id,
            stage=stage,
            sender=self.config.sender,
            config=self.chain_config(),
            custom_ids=[j.custom_id for j in jobs],
            estimate=(estimate or self.estimate(stage, jobs)).to_dict(),
        )
        return BatchEvent("submitted", stage, batch_id, f"{len(jobs)} requests")

    def check(self) -> Iterator[BatchEvent]:
        """Look at every open batch of this chain; collect the finished ones. Then, when none is
        open, submit the next stage (the chain's cost was shown when it started)."""
        open_rows = self.open_batches()
        failed = False
        with self.client_factory(self.endpoint, purpose="distill-batch", db_path=self.db_path) as client:
            for row in open_rows:
                event = self._check_one(client, row)
                failed = failed or event.kind == "failed"
                yield event
        # only a chain under way goes on by itself (its cost was shown when it started): with no
        # batch open, nothing new is ever sent from here; and a batch the provider failed as a whole
        # is not sent again by itself (``tiller distill --backend NAME --batch`` submits it anew)
        if open_rows and not failed and not self.open_batches():
            nxt = self.next_stage()
            if nxt is not None:
                stage, jobs, _ = nxt
                yield self.submit(stage, jobs)

    def _check_one(self, client: BatchClient, row: batch_store.BatchRow) -> BatchEvent:
        state = client.state(row.batch_id)
        if state.state == "running":
            batch_store.update_batch(
                self.db, row.id, state="running", provider_state=state.provider_state, counts=state.counts
            )
            return BatchEvent("running", row.stage, row.batch_id, state.provider_state, state.counts)
        if state.state == "failed":
            batch_store.update_batch(
                self.db,
                row.id,
                state="failed",
                provider_state=state.provider_state,
                counts=state.counts,
                error=state.error,
            )
            return BatchEvent("failed", row.stage, row.batch_id, state.error or state.provider_state, state.counts)
        counts = self.collect(client, row)
        batch_store.update_batch(
            self.db,
            row.id,
            state="collected" if state.state == "ended" else state.state,
            provider_state=state.provider_state,
            counts=counts,
            collected_at=utc_now(),
        )
        word = {"ended": "collected", "expired": "expired (the finished part collected)"}.get(state.state, state.state)
        return BatchEvent("collected", row.stage, row.batch_id, word, counts)

    def collect(self, client: BatchClient, row: batch_store.BatchRow) -> dict:
        """Store every delivered answer of ``row``'s batch; returns what came back, by outcome."""
        jobs, store = self.jobs(row.stage)
        by_id = {j.custom_id: j for j in jobs}
        counts = {"stored": 0, "failed": 0, "not_delivered": 0, "unknown": 0}
        seen = set()
        for outcome in client.outcomes(row.batch_id):
            job = by_id.get(outcome.custom_id)
            if job is None or outcome.custom_id in seen:
                counts["unknown"] += 1  # not ours, already stored, or delivered twice
                continue
            seen.add(outcome.custom_id)
            if outcome.text is None and outcome.error in ("expired", "canceled", "cancelled"):
                counts["not_delivered"] += 1  # asked again in the next submission of this stage
                continue
            result = self._result(job, outcome)
            store(job.key, result)
            counts["stored" if result.ok else "failed"] += 1
        counts["not_delivered"] += len(set(row.custom_ids) - seen)
        return counts

    @staticmethod
    def _result(job: StageJob, outcome) -> LLMResult:
        model = outcome.finished.model if outcome.finished else None
        if outcome.text is None:
            return LLMResult(False, None, "", 1, model, outcome.error or "no answer")
        try:
            return LLMResult(True, job.parse(outcome.text), outcome.text, 1, model)
        except MalformedAnswer as exc:
            return LLMResult(False, None, outcome.text, 1, model, f"malformed (batch, one attempt): {exc}")

    def finish(self) -> Iterator:
        """Once every stage is stored: the measured style rules, computed on this computer."""
        messages = self._messages()
        yield from self.distillation._measured(messages, time.monotonic(), with_baselines=True)

    def done(self) -> bool:
        return not self.open_batches() and self.next_stage() is None

    def run_until_done(self, poll_s: float, cancel, on_event: Callable[[BatchEvent], None]) -> bool:
        """Check every ``poll_s`` seconds until every stage is stored (True) or ``cancel`` (False).
        A failed request to the provider (a network error, a 5xx) is reported and tried again."""
        while not cancel.cancelled:
            try:
                for event in self.check():
                    on_event(event)
                    if event.kind == "failed":
                        return False
            except BatchUnsupported:
                raise
            except BackendError as exc:
                on_event(BatchEvent("retrying", "", "", f"{exc}; trying again in {poll_s:.0f} s"))
            if self.done():
                return True
            if cancel.wait(poll_s):
                break
        return False
