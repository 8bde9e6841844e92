"""Distillation: the user's sent mail -> intents -> zero-shot baselines -> rules, stored per row
with the backend, model, prompt version and temperature that produced it.

Long work as a generator of progress (the CLI shows it with rich, the GUI from a worker). Every
stage skips rows already done for the same source (backend|model|prompt), so a rerun resumes and a
changed prompt version recomputes only its own stage. Requests to a cloud backend run in parallel
with a concurrency limit; the database is written from the generator's thread only.

The ``local`` backend (the embedded instruct model, in-process) gets the small-model prompts: JSON
answers under llama.cpp's grammar, instructions first so consecutive requests of a stage share a
cached prompt prefix (the stages run one after another for that reason), the newest emails first.

Privacy: a backend that leaves the machine receives the user's sent mail here, so it needs the
user's recorded consent (:mod:`app.consent`). Without a backend, or with ``offline``, everything is
computed on the machine: extractive intents and measured style rules.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from pathlib import Path

from agent_training import baseline as baseline_mod
from agent_training import intents as intents_mod
from agent_training import rules as rules_mod
from agent_training.llm import LLMResult, ask_safely
from agent_training.messages import SentMessage, load_messages
from app import consent
from app.backends.config import get_endpoint
from app.backends.registry import provider_class
from app.consent import ConsentRequired  # noqa: F401  (raised by consent.ensure; callers catch it from here)
from app.jobs import Cancelled, CancelToken, Progress
from app.measured_style import sender_phrases
from app.prompts import load_prompt
from app.store import distilled
from app.store.messages import own_texts

OFFLINE_INTENT_SOURCE = f"offline|extractive|{intents_mod.OFFLINE_VERSION}"
MEASURED_SOURCE = f"offline|measure|{rules_mod.MEASURED_VERSION}"


@dataclass
class DistillConfig:
    backend: str | None = None  # None: offline
    sender: str | None = None  # one identity's address; None: all identities
    limit: int | None = None  # first N messages of each sender
    strategies: tuple[str, ...] = ("R3",)
    all_intent_variants: bool = False  # all three temperatures instead of one sampled per message
    concurrency: int = 4
    seed: int = 0
    consent_given_now: bool = False  # the user passed --i-consent-to-send-sent-mail
    max_tokens: int | None = None  # cap on every answer (None: each stage's own; small for quick tests)
    attempts: int = 3  # asks per row when the answer is malformed
    newest_first: bool | None = None  # None: newest first for the local model (slow), oldest first otherwise
    retry_failed: bool = True  # False: a row that failed before stays failed (a repeatable reproduction run)
    # the zero-shot emails: R3 compares against them and the voice stage learns from them; None: with R3
    zero_shot: bool | None = None
    # each email said again in a generic style, from the email itself (the voice stage's training
    # input, agent_training/baseline.py); None: with the zero-shot emails
    plain_rewrites: bool | None = None
    # only these messages (of those ``sender`` and ``limit`` pick): the reproduction asks for plain
    # rewrites of its training split alone, the held-out emails never need one
    message_ids: tuple[int, ...] | None = None
    # the plain rewrites alone: they need no intent, so the voice stage can learn from more of the
    # user's emails than the rules distillation covers (one request an email, not four)
    voice_only: bool = False

    @property
    def wants_zero_shot(self) -> bool:
        return self.zero_shot if self.zero_shot is not None else "R3" in self.strategies

    @property
    def wants_plain_rewrites(self) -> bool:
        return self.plain_rewrites if self.plain_rewrites is not None else self.wants_zero_shot


@dataclass(frozen=True)
class StageJob:
    """One request a stage still has to make: what it is for (``key``, and ``custom_id`` for a batch),
    the request, and the parser that turns the answer into a stored row."""

    key: tuple
    custom_id: str
    request: object  # GenerationRequest
    parse: Callable[[str], object]


@dataclass
class DistillCounts:
    intents: int = 0
    baselines: int = 0
    plain_rewrites: int = 0
    rules: int = 0
    measured: int = 0
    asked: dict[str, int] = field(default_factory=dict)  # stage -> rows asked for this run (the yield's denominator)
    attempts: dict[str, int] = field(default_factory=dict)  # stage -> requests made (re-asks included)
    skipped_done: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)


class Distillation:
    def __init__(self, db, config: DistillConfig, cancel: CancelToken | None = None, db_path: Path | None = None):
        self.db = db
        self.config = config
        self.cancel = cancel or CancelToken()
        self.db_path = db_path
        self.counts = DistillCounts()
        self.endpoint = None
        if config.backend:
            self.endpoint = get_endpoint(db, config.backend)
            self.provider_cls = provider_class(self.endpoint.provider)
            consent.ensure(
                db,
                self.endpoint,
                given_now=config.consent_given_now,
                why=f"distilling with {self.endpoint.name!r} sends your sent mail to it.",
                alternative=", or use --offline to keep everything on this computer",
            )
        # a small model on this computer: JSON under a grammar, prompts written for it
        self.small = bool(self.endpoint) and self.endpoint.provider == "local"
        unknown = set(config.strategies) - set(rules_mod.STRATEGIES)
        if unknown:
            raise ValueError(f"unknown rule strategies: {', '.join(sorted(unknown))}")

    # -- sources ---------------------------------------------------------------------------------

    def _source(self, prompt_id: str) -> str:
        ep = self.endpoint
        model = ep.model or self.provider_cls.default_model
        return f"{ep.name}|{model}|{prompt_id}"

    def _temperature(self, variant: int) -> float | None:
        if not self.provider_cls.supports_temperature:
            return None  # e.g. Claude today: recorded as null, the variants differ by sampling alone
        return intents_mod.TEMPERATURES[variant]

    # -- the job ---------------------------------------------------------------------------------

    def _prompt_name(self, stage: str) -> str:
        if stage == "intents":
            return intents_mod.SMALL_PROMPT if self.small else intents_mod.PROMPT
        if stage == "baselines":
            return baseline_mod.SMALL_PROMPT if self.small else baseline_mod.PROMPT
        if self.small and stage in ("R1", "R3"):
            return rules_mod.SMALL_R3_PROMPT if stage == "R3" else rules_mod.SMALL_R1_PROMPT
        return f"rules_{stage.lower()}"

    @property
    def newest_first(self) -> bool:
        """Which emails go first (and which ``limit`` takes): newest first for the slow local model."""
        return self.config.newest_first if self.config.newest_first is not None else self.small

    def run(self) -> Iterator[Progress]:
        messages = load_messages(self.db, self.config.sender, self.config.limit, newest_first=self.newest_first)
        if self.config.message_ids is not None:
            wanted = set(self.config.message_ids)
            messages = [m for m in messages if m.id in wanted]
        started = time.monotonic()
        if self.config.voice_only:
            if self.endpoint is None:
                raise ValueError("--voice-only needs a backend that writes (--backend NAME, or local)")
            yield from self._plain_rewrites(messages, started)
            return
        if self.endpoint is None:
            yield from self._offline(messages, started)
            return
        yield from self._intents_llm(messages, started)
        if self.config.wants_zero_shot:
            yield from self._baselines(messages, started)
        for strategy in self.config.strategies:
            yield from self._rules_llm(messages, strategy, started)
        if self.config.wants_plain_rewrites:  # after the rules: a cancelled run has its training data first
            yield from self._plain_rewrites(messages, started)
        yield from self._measured(messages, started, with_baselines=True)

    def _offline(self, messages: list[SentMessage], started: float) -> Iterator[Progress]:
        done = {message_id for message_id, _ in distilled.intents_done(self.db, OFFLINE_INTENT_SOURCE)}
        for i, msg in enumerate(messages, 1):
            if self.cancel.cancelled:
                return
            if msg.id in done:
                self.counts.skipped_done += 1
            else:
                self._write_intent(
                    msg,
                    0,
                    None,
                    OFFLINE_INTENT_SOURCE,
                    LLMResult(True, (intents_mod.offline_intent(msg), ""), "", 1, "extractive"),
                    backend="offline",
                    prompt=intents_mod.OFFLINE_VERSION,
                )
            if i % 50 == 0 or i == len(messages):
                yield Progress(i, len(messages), "intents (offline)", started)
        yield from self._measured(messages, started, with_baselines=False)

    def _parallel(
        self,
        jobs: list[tuple[object, Callable[[], LLMResult]]],
        stage: str,
        started: float,
        on_result: Callable[[object, LLMResult], None],
    ) -> Iterator[Progress]:
        """Run ``jobs`` (key, call) with the concurrency limit; ``on_result`` runs on this thread."""
        total = len(jobs)
        if not total:
            yield Progress(0, 0, stage, started)
            return
        workers = 1 if not self.provider_cls.leaves_machine else max(1, self.config.concurrency)
        pending: dict[Future, object] = {}
        queue = list(jobs)
        finished = 0
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tiller-distill") as pool:
            try:
                while queue or pending:
                    while queue and len(pending) < workers and not self.cancel.cancelled:
                        key, call = queue.pop(0)
                        pending[pool.submit(call)] = key
                    if not pending:
                        break
                    ready, _ = wait(pending, return_when=FIRST_COMPLETED)
                    for future in ready:
                        key = pending.pop(future)
                        try:
                            result = future.result()
                        except Cancelled:
                            continue  # stopped mid-request: nothing stored, the next run asks again
                        on_result(key, result)
                        finished += 1
                    yield Progress(finished, total, stage, started)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)

    # -- intents ---------------------------------------------------------------------------------

    def _write_intent(self, msg, variant, temperature, source, result: LLMResult, *, backend, prompt) -> None:
        text, scratchpad = result.value if result.ok else (None, None)
        how = _provenance(result, backend, prompt, source, temperature)
        distilled.save_intent(self.db, msg.id, variant, text, scratchpad, how)
        self._count("intents", result, msg)

    def _count(self, kind: str, result: LLMResult, msg) -> None:
        self.counts.asked[kind] = self.counts.asked.get(kind, 0) + 1
        self.counts.attempts[kind] = self.counts.attempts.get(kind, 0) + result.attempts
        if result.ok:
            setattr(self.counts, kind, getattr(self.counts, kind) + 1)
        else:
            self.counts.failed += 1
            self.counts.failures.append(f"{kind} for message {msg.id}: {result.error}")

    def _intents_llm(self, messages, started) -> Iterator[Progress]:
        jobs, store = self.intent_jobs(messages)
        yield from self._parallel(self._askers(jobs), "intents", started, store)

    def intent_jobs(self, messages) -> tuple[list[StageJob], Callable[[object, LLMResult], None]]:
        """The intent requests still to make, and how to store an answer."""
        prompt_id = load_prompt(self._prompt_name("intents")).id
        source = self._source(prompt_id)
        done = distilled.intents_done(self.db, source, with_failed=not self.config.retry_failed)
        jobs = []
        for msg in messages:
            variants = (
                range(len(intents_mod.TEMPERATURES))
                if self.config.all_intent_variants
                else [intents_mod.sampled_variant(msg.id, self.config.seed)]
            )
            for variant in variants:
                if (msg.id, variant) in done:
                    self.counts.skipped_done += 1
                    continue
                temperature = self._temperature(variant)
                if self.small:
                    request, _ = intents_mod.small_intent_request(msg, temperature)
                    parse = (lambda email: lambda raw: intents_mod.parse_small_intent(raw, email))(msg.own_text)
                else:
                    request, _ = intents_mod.intent_request(msg, temperature)
                    parse = intents_mod.parse_intent
                jobs.append(StageJob((msg, variant, temperature), f"intent-{msg.id}-{variant}", request, parse))

        def store(key, result):
            msg, variant, temperature = key
            self._write_intent(msg, variant, temperature, source, result, backend=self.endpoint.name, prompt=prompt_id)

        return jobs, store

    def _askers(self, jobs: list[StageJob]) -> list[tuple[object, Callable[[], LLMResult]]]:
        return [(job.key, self._asker(job.request, job.parse)) for job in jobs]

    def capped(self, request):
        """``request`` with the run's cap on answer length (``--max-tokens``), if any."""
        if self.config.max_tokens:
            return replace(request, options={**request.options, "max_tokens": self.config.max_tokens})
        return request

    def _asker(self, request, parse) -> Callable[[], LLMResult]:
        request = self.capped(request)
        return lambda: ask_safely(
            request, parse, self.endpoint, attempts=self.config.attempts, cancel=self.cancel, db_path=self.db_path
        )

    def _intent_rows(self, messages) -> dict[int, tuple[int, str]]:
        """The intent each message trains with: message id -> (intent id, text). The sampled
        variant from this backend's intent source, else any ok intent of that source."""
        ids = [m.id for m in messages]
        if not ids:
            return {}
        source = self._source(load_prompt(self._prompt_name("intents")).id) if self.endpoint else OFFLINE_INTENT_SOURCE
        chosen: dict[int, tuple[int, str]] = {}
        for row in distilled.intents_of(self.db, source, ids):
            if row.message_id not in chosen or row.variant == intents_mod.sampled_variant(
                row.message_id, self.config.seed
            ):
                chosen[row.message_id] = (row.id, row.text)
        return chosen

    # -- baselines -------------------------------------------------------------------------------

    def _baselines(self, messages, started) -> Iterator[Progress]:
        jobs, store = self.baseline_jobs(messages)
        yield from self._parallel(self._askers(jobs), "zero-shot baselines", started, store)

    def baseline_jobs(self, messages) -> tuple[list[StageJob], Callable[[object, LLMResult], None]]:
        intents = self._intent_rows(messages)
        by_id = {m.id: m for m in messages}
        prompt_id = load_prompt(self._prompt_name("baselines")).id
        source = self._source(prompt_id)
        done = distilled.baselines_done(self.db, source, with_failed=not self.config.retry_failed)
        jobs = []
        for message_id, (intent_id, text) in intents.items():
            if intent_id in done:
                self.counts.skipped_done += 1
                continue
            if self.small:
                request, _ = baseline_mod.small_baseline_request(by_id[message_id], text)
                parse = baseline_mod.parse_small_baseline
            else:
                request, _ = baseline_mod.baseline_request(by_id[message_id], text)
                parse = baseline_mod.parse_baseline
            jobs.append(StageJob((by_id[message_id], intent_id), f"baseline-{intent_id}", request, parse))

        def store(key, result: LLMResult):
            msg, intent_id = key
            how = _provenance(result, self.endpoint.name, prompt_id, source, None)
            distilled.save_baseline(self.db, intent_id, result.value if result.ok else None, how)
            self._count("baselines", result, msg)

        return jobs, store

    # -- plain rewrites (the voice stage's input) -----------------------------------------------

    def _plain_rewrites(self, messages, started) -> Iterator[Progress]:
        jobs, store = self.plain_rewrite_jobs(messages)
        yield from self._parallel(self._askers(jobs), "plain rewrites", started, store)

    def plain_rewrite_jobs(self, messages) -> tuple[list[StageJob], Callable[[object, LLMResult], None]]:
        prompt_id = load_prompt(baseline_mod.PLAIN_PROMPT).id
        source = self._source(prompt_id)
        done = distilled.plain_rewrites_done(self.db, source, with_failed=not self.config.retry_failed)
        jobs = []
        for msg in messages:
            if msg.id in done:
                self.counts.skipped_done += 1
                continue
            request, _ = baseline_mod.plain_rewrite_request(msg)
            jobs.append(StageJob(msg, f"plain-{msg.id}", request, baseline_mod.parse_small_baseline))

        def store(msg, result: LLMResult):
            how = _provenance(result, self.endpoint.name, prompt_id, source, None)
            distilled.save_plain_rewrite(self.db, msg.id, result.value if result.ok else None, how)
            self._count("plain_rewrites", result, msg)

        return jobs, store

    def _baseline_rows(self, intent_ids: list[int]) -> dict[int, tuple[int, str]]:
        if not intent_ids:
            return {}
        return {k: (row.id, row.text) for k, row in distilled.baselines_of(self.db, intent_ids).items()}

    # -- rules -----------------------------------------------------------------------------------

    def _write_rules(
        self, msg, intent_id, baseline_id, strategy, source, prompt_id, result: LLMResult, backend
    ) -> None:
        rules, thinking, dropped = result.value if result.ok else (None, None, [])
        distilled.save_rules(
            self.db,
            msg.id,
            intent_id,
            baseline_id,
            strategy,
            "\n".join(f"- {r}" for r in rules) if rules else None,
            thinking,
            json.dumps(dropped),
            _provenance(result, backend, prompt_id, source, None),
        )
        self._count("measured" if strategy == rules_mod.MEASURED else "rules", result, msg)

    def _rules_llm(self, messages, strategy, started) -> Iterator[Progress]:
        jobs, store = self.rule_jobs(messages, strategy)
        yield from self._parallel(self._askers(jobs), f"rules {strategy}", started, store)

    def rule_jobs(self, messages, strategy) -> tuple[list[StageJob], Callable[[object, LLMResult], None]]:
        intents = self._intent_rows(messages)
        baselines = self._baseline_rows([i for i, _ in intents.values()]) if strategy == "R3" else {}
        by_id = {m.id: m for m in messages}
        prompt_id = load_prompt(self._prompt_name(strategy)).id
        source = self._source(prompt_id)
        # R3 rules also depend on the baseline: a new baseline (e.g. a new baseline prompt) redoes them.
        done = {
            (message_id, intent_id, baseline_id if strategy == "R3" else None)
            for message_id, intent_id, baseline_id in distilled.rules_done(
                self.db, source, strategy, with_failed=not self.config.retry_failed
            )
        }
        jobs = []
        for message_id, (intent_id, intent_text) in intents.items():
            msg = by_id[message_id]
            baseline_id, baseline_text = baselines.get(intent_id, (None, None))
            if (message_id, intent_id, baseline_id if strategy == "R3" else None) in done:
                self.counts.skipped_done += 1
                continue
            if strategy == "R3" and baseline_text is None:
                continue  # its baseline failed: counted there
            if self.small and strategy == "R3":
                request, _ = rules_mod.small_r3_request(msg, baseline_text)
                parse = (lambda email, base: lambda raw: rules_mod.parse_small_rules(raw, email, base))(
                    msg.own_text, baseline_text
                )
            elif self.small and strategy == "R1":
                request, _ = rules_mod.small_r1_request(msg)
                parse = (lambda email: lambda raw: rules_mod.parse_small_rules(raw, email))(msg.own_text)
            else:
                request, _ = rules_mod.rules_request(strategy, msg, intent_text, baseline_text)
                parse = (lambda email, base: lambda raw: rules_mod.parse_rules(raw, email, base))(
                    msg.own_text, baseline_text
                )
            custom_id = f"{strategy}-{message_id}-{intent_id}-{baseline_id or 0}"
            jobs.append(StageJob((msg, intent_id, baseline_id), custom_id, request, parse))

        def store(key, result):
            msg, intent_id, baseline_id = key
            self._write_rules(msg, intent_id, baseline_id, strategy, source, prompt_id, result, self.endpoint.name)

        return jobs, store

    def _measured(self, messages, started, *, with_baselines: bool) -> Iterator[Progress]:
        intents = self._intent_rows(messages)
        baselines = self._baseline_rows([i for i, _ in intents.values()]) if with_baselines else {}
        done = {(message_id, intent_id) for message_id, intent_id, _ in distilled.rules_done(self.db, MEASURED_SOURCE)}
        phrases: dict[str, list[str]] = {}
        for sender in {m.sender for m in messages}:
            phrases[sender] = sender_phrases(own_texts(self.db, sender))
        items = [(m, intents[m.id]) for m in messages if m.id in intents]
        for i, (msg, (intent_id, _)) in enumerate(items, 1):
            if self.cancel.cancelled:
                return
            if (msg.id, intent_id) in done:
                self.counts.skipped_done += 1
            else:
                baseline_id, baseline_text = baselines.get(intent_id, (None, None))
                rules = rules_mod.measured_rules(msg, phrases[msg.sender], baseline_text)
                self._write_rules(
                    msg,
                    intent_id,
                    baseline_id,
                    rules_mod.MEASURED,
                    MEASURED_SOURCE,
                    rules_mod.MEASURED_VERSION,
                    LLMResult(True, (rules, "", []), "", 1, "measure"),
                    "offline",
                )
            if i % 50 == 0 or i == len(items):
                yield Progress(i, len(items), "measured style rules", started)


def _provenance(result: LLMResult, backend: str, prompt: str, source: str, temperature: float | None):
    return distilled.Provenance(
        ok=result.ok,
        backend=backend,
        model=result.model,
        prompt_version=prompt,
        source=source,
        raw=result.raw,
        error=result.error,
        attempts=result.attempts,
        temperature=temperature,
    )
