"""Composing an email, as one operation: intent -> the agent's rules -> draft(s) -> the voice stage
(on this computer, guarded) -> rule check.

The CLI renders it, the desktop app can render it, the evaluation runs it; none of them assembles
the steps itself. ``ComposeOperation(request).run()`` is a generator (cancelled by a token, like
every long job) that yields what a view shows as it happens:

- :class:`RulesText` while the agent writes the rules, the text so far (only from
  :meth:`ComposeOperation.stream_rules`, the first step alone, which the desktop app shows as it
  comes; ``run`` starts with the finished rules);
- :class:`RulesReady` once the rules are known (the agent's, given ones, or none), with the reply's
  language as the last rule when it is not plain English (app/language.py);
- :class:`DraftText` for each streamed piece of a draft (a retried request is reported through the
  ``on_retry`` callback as it happens);
- :class:`VoiceRewritten` when the profile's voice adapter said the draft again in the user's
  words, and whether the content guard kept that (else the large model's draft goes on, with the
  reason);
- :class:`Reasking` when a draft broke rules that cannot be repaired safely (one re-ask per draft);
- :class:`DraftChecked` with the checked and repaired draft (:class:`app.rulecheck.CheckedDraft`).

``result`` then holds the rules and every checked draft. Nothing else is sent to the large model
than the drafting request (intent, the details the user gave, rules, tags): see app/drafting.py.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Literal

from app.backends.base import GenerationRequest, Message
from app.backends.client import generate
from app.backends.config import EndpointConfig
from app.drafting import DRAFT_MAX_TOKENS, DraftInput, build_request
from app.jobs import CancelToken
from app.language import ReplyLanguage, reply_language
from app.rulecheck import REPAIRED, CheckedDraft, check_draft, reask_request, unsupported_sentences


@dataclass(frozen=True)
class ComposeRequest:
    intent: str
    recipient: str | None = None
    subject: str | None = None
    previous_email: str | None = None
    sender: str | None = None  # which identity writes (its agent profile)
    backend: str | EndpointConfig | None = None  # the large model (None: the default backend)
    rules: tuple[str, ...] | None = None  # given rules; None: ask the agent
    use_agent: bool = True  # False: no rules at all (the zero-shot baseline)
    tag_sets: tuple[tuple[str, ...], ...] = ((),)  # one draft per tag set (PREMIUM candidates)
    max_tokens: int = DRAFT_MAX_TOKENS
    check: bool = True
    reask: bool = True
    # the scoped rules learned from the user's edits (app/learning/scoped.py) replace the agent's on
    # their aspects; off by default so the evaluation and benchmarks measure the agent alone
    learned: bool = False
    # the voice stage: None follows the profile (on when its voice adapter is trained and not
    # switched off), True asks for it, False leaves the large model's draft as it is
    voice: bool | None = None
    # the reply's language (app/language.py): "auto" reads it from the thread, else the intent;
    # a name or code asks for one; None adds no language rule
    language: str | None = "auto"


# agent | measured (no trained agent yet: the voice's own mail, measured) | given | none
RulesSource = Literal["agent", "measured", "given", "none"]


@dataclass
class RulesReady:
    rules: list[str]  # what the draft is written with
    source: RulesSource
    profile: str | None = None
    trained: bool = False
    agent_rules: list[str] = field(default_factory=list)  # what the agent said, before scoped rules
    scoped: list[str] = field(default_factory=list)  # learned scoped rules among ``rules``
    language: ReplyLanguage | None = None  # the reply's language, when it is said as a rule (last in ``rules``)
    corrected: list[RuleCorrection] = field(default_factory=list)  # agent rules that could not be meant


@dataclass(frozen=True)
class RuleCorrection:
    """An agent rule that cannot be meant for the intent (app.rule_grammar.implausible), and what
    the draft is written with instead: the same aspect measured from the user's mail, or nothing."""

    said: str
    why: str
    instead: str | None


@dataclass
class RulesText:
    text: str  # the agent's rules as written so far


@dataclass
class DraftText:
    index: int
    text: str


@dataclass
class VoiceRewritten:
    index: int
    kept: bool  # the content guard found every fact of the draft in the rewrite
    text: str  # what the draft is now: the rewrite if kept, else the large model's draft
    reason: str
    draft: str  # the large model's draft, one click away
    rewrite: str  # what the voice adapter wrote (shown when refused, to see why)


@dataclass
class Reasking:
    index: int
    broken: list


@dataclass
class DraftChecked:
    index: int
    draft: CheckedDraft
    tags: tuple[str, ...]
    unsupported: list[str] = field(default_factory=list)
    backend: str | None = None
    model: str | None = None
    elapsed_s: float = 0.0
    finish_reason: str | None = None
    voice: VoiceRewritten | None = None


@dataclass
class ComposeResult:
    rules: list[str]
    drafts: list[DraftChecked]


Event = RulesText | RulesReady | DraftText | VoiceRewritten | Reasking | DraftChecked


class ComposeOperation:
    """``for event in ComposeOperation(request, cancel).run(): ...``; ``result`` at the end.

    ``agent`` makes the agent for a sender (a fake in fast tests); ``scoped_rules`` gives a
    sender's learned scoped rules (default: the database's); ``generate_fn`` starts a generation
    (app.backends.client.generate)."""

    def __init__(
        self,
        request: ComposeRequest,
        cancel: CancelToken | None = None,
        *,
        agent: Callable | None = None,
        scoped_rules: Callable | None = None,
        generate_fn: Callable = generate,
        on_retry: Callable | None = None,
        prepare: Callable[[GenerationRequest], GenerationRequest] | None = None,
        voice: Callable | None = None,
    ):
        self.request = request
        self.cancel = cancel or CancelToken()
        self.on_retry = on_retry
        self._agent = agent
        self._scoped_rules = scoped_rules  # sender -> stored scoped rules (app.learning.scoped.stored_rules)
        self._generate = generate_fn
        self._prepare = prepare  # a last change to the drafting request (the evaluation's few-shot examples)
        self._voice = voice  # sender -> a voice rewriter or None (app.agent.voice); None: the profile's
        self._rewriter = None  # the voice stage of this run, looked up when it starts
        self.result: ComposeResult | None = None
        self.rules_ready: RulesReady | None = None

    def run(self) -> Iterator[Event]:
        req = self.request
        rules_event = self.rules()
        self._rewriter = self._voice_rewriter()  # one asked for but not trained fails here, before anything is sent
        yield rules_event
        drafts = []
        for index, tags in enumerate(req.tag_sets):
            checked = None
            for event in self._draft(index, rules_event.rules, tags):
                if isinstance(event, DraftChecked):
                    checked = event
                yield event
            assert checked is not None  # every draft ends with its DraftChecked
            drafts.append(checked)
        self.result = ComposeResult(rules_event.rules, drafts)

    def rules(self) -> RulesReady:
        """The first step alone: the rules the draft is written with (the agent's, measured, given or
        none), the reply's language last. What `tiller mcp`'s style_rules returns."""
        steps = self.stream_rules()
        while True:
            try:
                next(steps)
            except StopIteration as done:
                return done.value

    def stream_rules(self) -> Generator[RulesText, None, RulesReady]:
        """:meth:`rules` as it happens: :class:`RulesText` while the agent writes, the
        :class:`RulesReady` as the generator's return value (``ready = yield from op.stream_rules()``)."""
        req = self.request
        ready = self.rules_ready = yield from self._rules()
        if req.language is not None:
            found = reply_language(req.intent, req.previous_email, None if req.language == "auto" else req.language)
            if found is not None:
                ready.language = found
                ready.rules.append(found.rule())
        return ready

    # -- steps -------------------------------------------------------------------------------------

    def _rules(self) -> Generator[RulesText, None, RulesReady]:
        req = self.request
        if req.rules is not None:
            return RulesReady(list(req.rules), "given")
        if not req.use_agent:
            return RulesReady([], "none")
        from app.agent.agent import PreferenceAgent, RulesRequest
        from app.agent.template import parse_rules

        if self._agent is None:
            measured = measured_voice_rules(req.sender, req.recipient)
            if measured is not None:  # no trained agent yet: the user's own mail, measured
                return measured
        agent = (self._agent or PreferenceAgent.for_sender)(req.sender)
        asked = RulesRequest(
            req.intent, recipient=req.recipient, subject=req.subject, previous_context=req.previous_email
        )
        if hasattr(agent, "stream_rules"):  # the real agent streams; a test's fake may only answer
            text = ""
            for piece in agent.stream_rules(asked, cancel=self.cancel):
                text += piece
                yield RulesText(text)
            rules = parse_rules(text)
        else:
            rules = agent.rules(asked, cancel=self.cancel)
        profile = getattr(agent, "profile", None)
        rules, corrected = plausible_rules(rules, req.intent, lambda: measured_rules(req.sender, req.recipient))
        ready = RulesReady(
            rules,
            "agent",
            getattr(profile, "name", None),
            bool(profile and profile.trained),
            agent_rules=list(rules),
            corrected=corrected,
        )
        if req.learned:
            from app.learning.scoped import with_learned_rules

            ready.rules, ready.scoped = with_learned_rules(rules, req.sender, req.recipient, self._scoped_rules)
        return ready

    def _draft(self, index: int, rules: list[str], tags: tuple[str, ...]) -> Iterator[Event]:
        req = self.request
        inp = DraftInput(
            req.intent,
            recipient=req.recipient,
            subject=req.subject,
            previous_email=req.previous_email,
            rules=tuple(rules),
            tags=tuple(tags),
        )
        request = build_request(inp, max_tokens=req.max_tokens)
        if self._prepare:
            request = self._prepare(request)
        text, gen = yield from self._stream(index, request)
        voiced = None
        if self._rewriter is not None:
            # the universal repairs first: a "Subject:" line or a preamble is not a fact the
            # rewrite must keep (the demo's voice stage dropped the Subject line, rightly, and the
            # guard refused it for losing "subject")
            universal = check_draft(text, [])
            result = self._rewriter.rewrite(
                universal.text if any(c.status == REPAIRED for c in universal.checks) else text,
                intent=req.intent,
                sender=req.sender,
                recipient=req.recipient,
                subject=req.subject,
                style=tuple(tags),  # the ranking reaches the voice too
                cancel=self.cancel,
            )
            voiced = VoiceRewritten(index, result.kept, result.text, result.verdict.reason, text, result.rewrite)
            yield voiced
            text = result.text
        if not req.check:
            yield self._checked(index, CheckedDraft(text, text), rules, tags, gen, voiced)
            return
        checked = check_draft(text, rules, recipient=req.recipient)
        # a kept rewrite is no longer the large model's text: asking it again would undo the voice
        if checked.broken and req.reask and not (voiced and voiced.kept):
            yield Reasking(index, checked.broken)
            again = GenerationRequest(
                request.system,
                (
                    *request.messages,
                    Message("assistant", checked.text),
                    Message("user", reask_request(checked.broken, checked.text)),
                ),
                options=request.options,
                purpose=request.purpose,
            )
            text2, gen = yield from self._stream(index, again, echo=False)
            rechecked = check_draft(text2, rules, recipient=req.recipient)
            if len(rechecked.broken) < len(checked.broken):  # keep the re-ask only when it helped
                rechecked.original = text
                rechecked.reasked = True
                checked = rechecked
        yield self._checked(index, checked, rules, tags, gen, voiced)

    def _voice_rewriter(self):
        """The voice stage for this request, or None."""
        req = self.request
        if req.voice is False or not (req.voice or req.use_agent):
            return None
        if self._voice is not None:
            return self._voice(req.sender)
        from app.agent.profiles import find_profile
        from app.agent.voice import VoiceRewriter

        profile = find_profile(req.sender)
        if req.voice and profile.voice_adapter is None:
            raise ValueError(
                f"no voice stage is trained for {profile.name} (tiller train --stage voice); draft without --voice"
            )
        if profile.voice_adapter is not None and (req.voice or profile.voice_on):
            return VoiceRewriter(profile)
        return None

    def _stream(self, index: int, request: GenerationRequest, echo: bool = True):
        gen = self._generate(request, self.request.backend, cancel=self.cancel, on_retry=self.on_retry)
        pieces = []
        for piece in gen:
            pieces.append(piece)
            if echo:
                yield DraftText(index, piece)
        return "".join(pieces), gen

    def _checked(self, index: int, checked: CheckedDraft, rules: list[str], tags, gen, voiced=None) -> DraftChecked:
        req = self.request
        completion = getattr(gen, "completion", None)
        unsupported = unsupported_sentences(
            checked.text, req.intent, req.recipient, req.subject, req.previous_email, "\n".join(rules), " ".join(tags)
        )
        return DraftChecked(
            index,
            checked,
            tuple(tags),
            unsupported,
            backend=getattr(getattr(gen, "endpoint", None), "name", None),
            model=getattr(completion, "model", None),
            elapsed_s=getattr(completion, "elapsed_s", 0.0) or 0.0,
            finish_reason=getattr(completion, "finish_reason", None),
            voice=voiced,
        )


def measured_voice_rules(sender: str | None, recipient: str | None = None) -> RulesReady | None:
    """Until a voice has a trained agent, its rules are the measured style of its own sent mail
    (seconds to compute, exact), labelled so: the untrained base model wrote "The NG Energy is the
    customer." here. None when an agent is trained, or there is no mail to measure."""
    from app.agent.profiles import find_profile

    profile = find_profile(sender)
    if profile.trained:
        return None
    rules = measured_rules(sender, recipient)
    if rules is None:
        return None
    return RulesReady(rules, "measured", profile.name, False, agent_rules=list(rules))


def measured_rules(sender: str | None, recipient: str | None = None) -> list[str] | None:
    """The measured style rules of ``sender``'s own sent mail (all identities' when None), or None
    when there is none to measure."""
    from app.measured_style import style_rules, voice_profile
    from app.store import open_database
    from app.store.messages import dated_own_texts

    db = open_database()
    try:
        if sender:
            dated = dated_own_texts(db, sender)
        else:
            from app.mail.identity import active_identities

            dated = sorted(d for address in active_identities(db) for d in dated_own_texts(db, address))
        texts = [text for _, text in dated]  # oldest first: the profile measures the newest
    finally:
        db.conn.close()
    voice = voice_profile(texts, recipient)
    return None if voice is None else style_rules(voice)


def plausible_rules(
    rules: list[str], intent: str, measured: Callable[[], list[str] | None]
) -> tuple[list[str], list[RuleCorrection]]:
    """``rules`` with each one that cannot be meant for ``intent`` replaced by the measured rule of
    the same aspect (``measured`` is asked only then: it reads the mailbox), or left out when the
    mail has none; and what was replaced, to show."""
    from app.rule_grammar import implausible, rule_aspect

    out: list[str] = []
    corrected: list[RuleCorrection] = []
    known: list[str] | None = None
    for rule in rules:
        aspect = rule_aspect(rule)
        if aspect is not None and aspect in {rule_aspect(r) for r in out}:
            # "No closing phrase; sign with just "Kay"" then "No sign-off and no name at the end."
            # (the demo's agent, 2026-12-06): the check repaired the draft one way, then back
            corrected.append(RuleCorrection(rule, f"a second {aspect} rule contradicts the first", None))
            continue
        why = implausible(rule, intent)
        if why is None:
            out.append(rule)
            continue
        if known is None:
            known = measured() or []
        instead = next((m for m in known if rule_aspect(m) == aspect and implausible(m, intent) is None), None)
        corrected.append(RuleCorrection(rule, why, instead))
        if instead is not None:
            out.append(instead)
    return out, corrected
