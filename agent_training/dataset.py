"""Training datasets from distilled rows: per sender, a time-ordered 80/20 train/test split.

No test message of a sender is earlier than any of that sender's training messages (the agent is
evaluated on the future, as it will be used). Exported as chat-format JSONL: the user turn is the
agent prompt (intent + metadata, :mod:`app.agent.template`), the assistant turn the rules; LLM
rules get the measured style rules appended (replacing LLM lines on the topics they measure). The
naive-finetune variant maps the same input to the real email, for the paper's baseline. Files are written atomically.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from agent_training.distill import MEASURED_SOURCE
from agent_training.messages import load_messages
from agent_training.rules import MEASURED, formality, merge_with_measured
from app import paths
from app.agent.template import agent_prompt, voice_prompt
from app.content_guard import check_rewrite, names_in
from app.files import write_atomic
from app.store import distilled

TEST_SHARE = 0.2


@dataclass
class Example:
    message_id: int
    sender: str
    date: str
    prompt: str
    rules: str
    email: str
    meta: dict


def split_by_time(examples: list[Example], test_share: float = TEST_SHARE) -> tuple[list[Example], list[Example]]:
    """Per sender: the oldest (1 - test_share) of the emails train, the newest test_share test."""
    by_sender: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        by_sender[ex.sender].append(ex)
    train, test = [], []
    for sender_examples in by_sender.values():
        # by message, not by example: one email distilled with two intent variants is two
        # examples, and both must land on the same side of the cut
        messages = sorted({(e.date, e.message_id) for e in sender_examples})
        n_test = int(round(len(messages) * test_share)) if len(messages) >= 2 else 0
        n_test = max(1, n_test) if len(messages) >= 5 else n_test
        first_test = messages[len(messages) - n_test] if n_test else None
        for e in sorted(sender_examples, key=lambda e: (e.date, e.message_id)):
            (test if first_test is not None and (e.date, e.message_id) >= first_test else train).append(e)
    return train, test


def collect(
    db, *, strategy: str = "R3", rules_source: str | None = None, sender: str | None = None
) -> tuple[list[Example], dict]:
    """Examples with an ok intent and ok rules of ``strategy`` (``measured`` for offline data)."""
    rows = distilled.distilled_examples(db, strategy, rules_source, sender)
    measured = {}
    if strategy != MEASURED:
        measured = {
            (row.message_id, row.intent_id): row.rules
            for row in distilled.rules_by_message(db, MEASURED, MEASURED_SOURCE)
        }
    examples, undated, seen = [], 0, set()
    for row in rows:
        mid, sender, date, intent_id = row.message_id, row.sender, row.date, row.intent_id
        intent, rules, subject = row.intent, row.rules, row.subject
        if (mid, intent_id) in seen:
            continue
        seen.add((mid, intent_id))
        if not date:
            undated += 1  # cannot be placed in time: kept out of both splits
            continue
        target, replaced = rules.strip(), []
        extra = measured.get((mid, intent_id))
        if extra:
            target, replaced = merge_with_measured(target, extra)
        recipients = ", ".join(json.loads(row.to_addrs or "[]"))
        examples.append(
            Example(
                mid,
                sender,
                date,
                agent_prompt(intent, recipient=recipients, subject=subject, previous_context=row.previous_context),
                target + "\n",
                row.own_text.strip(),
                {
                    "message_id": mid,
                    "intent_id": intent_id,
                    "recipients": recipients,
                    "subject": subject,
                    "sender": sender,
                    "date": date,
                    "intent": intent,
                    "strategy": strategy,
                    "rules_backend": row.rules_backend,
                    "rules_model": row.rules_model,
                    "rules_prompt": row.rules_prompt,
                    "rules_source": row.rules_source,
                    "intent_source": row.intent_source,
                    "intent_variant": row.intent_variant,
                    "intent_temperature": row.intent_temperature,
                    "measured_appended": bool(extra),
                    "llm_lines_replaced_by_measured": len(replaced),
                },
            )
        )
    return examples, {"undated_excluded": undated}


def _write_jsonl(path: Path, records: list[dict]) -> None:
    write_atomic(path, "".join(json.dumps(rec, ensure_ascii=False) + "\n" for rec in records))


def _chat(ex: Example, target: str, split: str) -> dict:
    return {
        "messages": [{"role": "user", "content": ex.prompt}, {"role": "assistant", "content": target}],
        "meta": {**ex.meta, "split": split},
    }


def datasets_dir() -> Path:
    return paths.home() / "datasets"


def _slug(text: str) -> str:
    return re.sub(r"[^a-zA-Z0-9._-]+", "_", text)


def sender_datasets_dir(sender: str | None) -> Path:
    """Where ``export`` writes the sender's datasets (one folder per strategy), "all" for every
    sender. Not the agent profile's slug: that one keeps "@"."""
    return datasets_dir() / (_slug(sender) if sender else "all")


def export(
    db, *, strategy: str = "R3", sender: str | None = None, out_dir: Path | None = None, rules_source: str | None = None
) -> dict:
    """Write train/test JSONL (rules targets) and the naive variant (email targets) plus stats.json.
    Returns the stats."""
    examples, info = collect(db, strategy=strategy, rules_source=rules_source, sender=sender)
    train, test = split_by_time(examples)
    out = Path(out_dir) if out_dir else sender_datasets_dir(sender) / strategy
    _write_jsonl(out / "train.jsonl", [_chat(e, e.rules, "train") for e in train])
    _write_jsonl(out / "test.jsonl", [_chat(e, e.rules, "test") for e in test])
    _write_jsonl(out / "naive_train.jsonl", [_chat(e, e.email, "train") for e in train])
    _write_jsonl(out / "naive_test.jsonl", [_chat(e, e.email, "test") for e in test])
    voice_stats = _export_voice_pairs(db, train, test, out, sender)
    per_sender = {}
    for name, split in (("train", train), ("test", test)):
        for e in split:
            s = per_sender.setdefault(
                e.sender,
                {"train": 0, "test": 0, "first_train": None, "last_train": None, "first_test": None, "last_test": None},
            )
            s[name] += 1
            s[f"first_{name}"] = min(filter(None, [s[f"first_{name}"], e.date]))
            s[f"last_{name}"] = max(filter(None, [s[f"last_{name}"], e.date]))

    def words(texts: list[str]) -> float:
        return round(sum(len(t.split()) for t in texts) / len(texts), 1) if texts else 0

    stats = {
        "strategy": strategy,
        "examples": len(examples),
        "train": len(train),
        "test": len(test),
        **info,
        "mean_intent_words": words([e.prompt.split("Intent:\n", 1)[-1] for e in examples]),
        "mean_rules_words": words([e.rules for e in examples]),
        "mean_email_words": words([e.email for e in examples]),
        "per_sender": per_sender,
        "voice_pairs": voice_stats,
        "directory": str(out),
    }
    write_atomic(out / "stats.json", json.dumps(stats, indent=2))
    return stats


TRAINING_PREFERENCE = ("R3", "R2", "R1", MEASURED)  # LLM-distilled rules first; measured ones offline


def default_training_file(sender: str | None = None) -> Path:
    """The newest kind of dataset there is for ``sender``: its own folder, else the all-senders
    one (the trainer then keeps only that sender's examples)."""
    folders = ([sender_datasets_dir(sender)] if sender else []) + [sender_datasets_dir(None)]
    for strategy in TRAINING_PREFERENCE:
        for folder in folders:
            candidate = folder / strategy / "train.jsonl"
            if candidate.is_file():
                return candidate
    raise FileNotFoundError(f"no training data under {datasets_dir()}: run `tiller distill` first")


VOICE_MAX_LENGTH = 768  # tokens of a voice example (draft + email); longer ones are skipped and counted
# Optimizer steps of a voice adapter unless --steps says otherwise: what the 7-sender evaluation
# trained and measured (`--steps 15`: about 3 passes over 20 pairs at batch 4). The trainer's default
# of one pass made 6 steps in the demo, and that adapter's rewrite of the sample draft lost every fact.
VOICE_STEPS = 15


def default_voice_file(sender: str | None = None) -> Path:
    """The newest voice pairs there are for ``sender`` (``voice_train.jsonl``), as
    :func:`default_training_file` picks rules data."""
    folders = ([sender_datasets_dir(sender)] if sender else []) + [sender_datasets_dir(None)]
    for strategy in TRAINING_PREFERENCE:
        for folder in folders:
            candidate = folder / strategy / "voice_train.jsonl"
            if candidate.is_file() and candidate.stat().st_size:
                return candidate
    raise FileNotFoundError(
        "no voice pairs yet: they need zero-shot emails, which `tiller distill --backend NAME` writes "
        "(a cloud backend, or `local` on this computer); offline distillation has none"
    )


def voice_pairs(db, examples: list[Example]) -> tuple[list[tuple[Example, str]], dict]:
    """(example, generic email) for the voice stage: the generic email says what the real one says
    in an assistant's voice. First choice, the email's plain rewrite (made from the email itself);
    else the zero-shot email (made from the intent, which often invents a time or a place). A pair
    where the generic email has a fact the real one lacks, or lacks one it has (the content guard,
    app/content_guard.py), would teach the rewrite to drop or invent, so it is left out."""
    baselines = distilled.baselines_of(db, sorted({e.meta["intent_id"] for e in examples if e.meta.get("intent_id")}))
    plain = distilled.plain_rewrites_of(db, sorted({e.message_id for e in examples}))
    kept, refused, reasons = [], 0, {"dropped": 0, "invented": 0}
    by_kind = {"plain_rewrite": 0, "zero_shot": 0}
    samples = []
    for e in examples:
        row = baselines.get(e.meta.get("intent_id"))  # None for an email that was only said plainly
        candidates = [("plain_rewrite", plain.get(e.message_id)), ("zero_shot", row.text if row else None)]
        candidates = [(kind, text) for kind, text in candidates if text]
        if not candidates:
            continue
        allowed = names_in(e.sender, e.meta.get("recipients", ""))
        verdicts = []  # the guard's verdict on each candidate, up to the first it keeps
        for kind, text in candidates:
            verdicts.append((kind, text, check_rewrite(text, e.email, e.meta.get("intent", ""), allowed=allowed)))
            if verdicts[-1][2].kept:
                break
        if verdicts[-1][2].kept:
            kept.append((e, verdicts[-1][1]))
            by_kind[verdicts[-1][0]] += 1
            continue
        refused += 1
        verdict = verdicts[0][2]
        reasons["dropped"] += bool(verdict.dropped)
        reasons["invented"] += bool(verdict.invented)
        if len(samples) < 5:
            reason = "; ".join(f"{kind}: {v.reason}" for kind, _, v in verdicts)
            samples.append({"message_id": e.message_id, "reason": reason})
    stats = {"pairs": len(kept) + refused, "kept": len(kept), "refused": refused, **reasons, "kept_from": by_kind}
    stats["kept_not_distilled"] = sum(1 for e, _ in kept if e.meta.get("voice_only"))
    return kept, {**stats, "samples": samples}


def plainly_said_examples(db, sender: str | None, exclude: set[int], before: str | None = None) -> list[Example]:
    """The sender's emails that have a plain rewrite but were not distilled (no intent, no rules):
    the voice stage needs only (plain rewrite -> real email), so these add training pairs at the
    price of one request an email (``tiller distill --voice-only``). ``before``: only emails dated
    earlier (an evaluation keeps its held-out emails out)."""
    messages = [
        m
        for m in load_messages(db, sender)
        if m.id not in exclude and m.date and m.own_text.strip() and (before is None or m.date < before)
    ]
    said = distilled.plain_rewrites_of(db, [m.id for m in messages])
    return [
        Example(
            m.id,
            m.sender,
            m.date or "",
            "",
            "",
            m.own_text.strip(),
            {
                "message_id": m.id,
                "intent_id": None,
                "recipients": m.recipients,
                "subject": m.subject,
                "sender": m.sender,
                "date": m.date,
                "intent": "",
                "voice_only": True,
            },
        )
        for m in messages
        if m.id in said
    ]


BRIEF_RATIO, THOROUGH_RATIO = 0.6, 1.25  # the real email's words against the generic one's
FORMALITY_GAP = 1.0  # formality points (agent_training/rules.py: formality) that make a tag


def voice_style_tags(generic: str, real: str) -> tuple[str, ...]:
    """The style tags (app.agent.template.VOICE_STYLE_TAGS) that take ``generic`` to ``real``,
    measured: Brief / Thorough by the word count's ratio, Professional / Amateurish by the change in
    formality. A tag asked for at drafting then means the same: shorter than the draft, more formal."""
    tags = []
    words_generic, words_real = len(generic.split()), len(real.split())
    if words_generic and words_real <= BRIEF_RATIO * words_generic:
        tags.append("Brief")
    elif words_generic and words_real >= THOROUGH_RATIO * words_generic:
        tags.append("Thorough")
    gap = formality(real) - formality(generic)
    if gap >= FORMALITY_GAP:
        tags.append("Professional")
    elif gap <= -FORMALITY_GAP:
        tags.append("Amateurish")
    return tuple(tags)


def voice_chat(e: Example, baseline: str, split: str) -> dict:
    """One voice training example. Every other email (by id) carries its measured style tags in
    the prompt and the rest none, so the adapter learns both to follow tags and to do without."""
    style = voice_style_tags(baseline, e.email) if e.message_id % 2 == 0 else ()
    prompt = voice_prompt(baseline, recipient=e.meta.get("recipients"), subject=e.meta.get("subject"), style=style)
    return {
        "messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": e.email + "\n"}],
        "meta": {**e.meta, "split": split, "stage": "voice", "style_tags": list(style)},
    }


def _export_voice_pairs(db, train: list[Example], test: list[Example], out: Path, sender: str | None) -> dict:
    """voice_train.jsonl / voice_test.jsonl (plain rewrite or zero-shot email -> the real email),
    when the distillation made either. Emails said plainly without being distilled join the split
    their date puts them in: train when older than the sender's first test email."""
    first_test: dict[str, str] = {}
    for e in test:
        first_test[e.sender] = min(first_test.get(e.sender, e.date), e.date)
    extra = plainly_said_examples(db, sender, {e.message_id for e in train + test})
    train = train + [e for e in extra if e.sender not in first_test or e.date < first_test[e.sender]]
    test = test + [e for e in extra if e.sender in first_test and e.date >= first_test[e.sender]]
    stats = {}
    for name, split in (("train", train), ("test", test)):
        pairs, stats[name] = voice_pairs(db, split)
        if stats[name]["pairs"]:
            _write_jsonl(out / f"voice_{name}.jsonl", [voice_chat(e, b, name) for e, b in pairs])
    return stats
