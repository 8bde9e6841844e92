"""Do local drafts keep their rules? Share of checkable rules kept before and after the rule check.

For the newest held-out emails of each sender in the Enron sample (the time-ordered 80/20 split),
the embedded instruct model (the ``local`` backend) drafts from the email's intent with the rules
measured from the real email (what a perfect agent would give), through the same compose operation
the CLI and the app use. Reported per sender and in total, all measured in this run:

- kept before repair: rules the model's own draft keeps;
- kept after repair: after the deterministic repairs (greeting, closing, placeholders, ...);
- kept after re-ask: after the one re-ask for what cannot be repaired safely (length, sentences);
- how often a re-ask was needed, and seconds per draft.

Usage: python benchmarks/rule_compliance.py [--per-sender 5] [--senders a,b] [--home DIR] [--intents local]
``--intents offline`` (the default) drafts from the extractive offline intents (the email's own
sentences, which invite long drafts); ``--intents local`` first distills the chosen emails' intents
with the embedded model (abstractive: what the email says, as a user would type it), which is how
the app is used. The rules, not the intent, decide what is checked.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-sender", type=int, default=5)
    parser.add_argument("--senders", help="comma-separated sender addresses (default: every identity)")
    parser.add_argument("--home", help="TILLER_HOME to use (default: a new temporary one)")
    parser.add_argument("--max-tokens", type=int, default=300)
    parser.add_argument("--json", help="also write the per-draft results here")
    parser.add_argument(
        "--intents",
        choices=("offline", "local"),
        default="offline",
        help="draft from the offline extractive intents or the local model's abstractive ones",
    )
    args = parser.parse_args()
    os.environ["TILLER_HOME"] = args.home or tempfile.mkdtemp(prefix="tiller-rules-")

    from agent_training.dataset import MEASURED, MEASURED_SOURCE, collect, split_by_time
    from agent_training.distill import Distillation, DistillConfig
    from app.ops.compose import ComposeOperation, ComposeRequest
    from app.rulecheck import BROKEN, KEPT, UNCHECKED, check_draft
    from benchmarks.sample_db import sample_database

    db = sample_database()
    examples, _ = collect(db, strategy=MEASURED, rules_source=MEASURED_SOURCE)
    _, test = split_by_time(examples)
    by_sender = defaultdict(list)
    for ex in test:
        by_sender[ex.sender].append(ex)
    senders = args.senders.split(",") if args.senders else sorted(by_sender)
    local_intents: dict[int, str] = {}
    if args.intents == "local":
        for sender in senders:  # the newest emails first: the held-out ones; intents only (no R3 rules)
            for _ in Distillation(
                db, DistillConfig(backend="local", sender=sender, limit=args.per_sender, strategies=())
            ).run():
                pass
        local_intents = dict(
            db.execute("SELECT message_id, text FROM intents WHERE status = 'ok' AND source LIKE 'local|%'")
        )
        print(f"{len(local_intents)} abstractive intents from the local model")
    rows, totals = [], defaultdict(float)
    print(
        f"{'sender':32s} {'drafts':>6s} {'before':>7s} {'repaired':>9s} {'re-asked':>9s} {'re-asks':>8s} {'s/draft':>8s}"
    )
    for sender in senders:
        chosen = sorted(by_sender[sender], key=lambda e: e.date)[-args.per_sender :]
        s = defaultdict(float)
        for ex in chosen:
            intent = local_intents.get(ex.message_id) if args.intents == "local" else ex.meta["intent"]
            if not intent:
                print(f"  {sender}: message {ex.message_id} has no local intent; left out")
                continue
            rules = [r[2:].strip() if r.startswith("- ") else r.strip() for r in ex.rules.splitlines() if r.strip()]
            to = db.execute("SELECT to_addrs FROM messages WHERE id = ?", [ex.message_id]).fetchone()[0]
            first = (json.loads(to or "[]") or [""])[0]
            recipient = first.split("@")[0].split(".")[0].capitalize() or None
            started = time.monotonic()
            op = ComposeOperation(
                ComposeRequest(
                    intent, recipient=recipient, backend="local", rules=tuple(rules), max_tokens=args.max_tokens
                )
            )
            for _ in op.run():
                pass
            took = time.monotonic() - started
            final = op.result.drafts[0].draft
            first_check = check_draft(final.original, rules, recipient=recipient)  # the model's own draft
            checkable = [c for c in first_check.checks if c.status != UNCHECKED]
            n = len(checkable)
            before = sum(c.status == KEPT for c in checkable)
            repaired = sum(c.status != BROKEN for c in checkable)
            after = sum(c.status != BROKEN for c in final.checks if c.status != UNCHECKED)
            s["drafts"] += 1
            s["rules"] += n
            s["before"] += before
            s["repaired"] += repaired
            s["after"] += after
            s["reasks"] += int(final.reasked or bool(first_check.broken))
            s["seconds"] += took
            rows.append(
                {
                    "sender": sender,
                    "message_id": ex.message_id,
                    "intent": intent,
                    "rules": rules,
                    "draft": final.original,
                    "final": final.text,
                    "checks": [(c.rule, c.status, c.note) for c in final.checks],
                    "kept_before": before,
                    "kept_after_repair": repaired,
                    "kept_after_reask": after,
                    "checkable": n,
                    "seconds": took,
                }
            )
        if s["drafts"]:
            print(
                f"{sender:32s} {int(s['drafts']):6d} {s['before'] / s['rules']:7.1%} {s['repaired'] / s['rules']:9.1%} "
                f"{s['after'] / s['rules']:9.1%} {int(s['reasks']):8d} {s['seconds'] / s['drafts']:8.1f}"
            )
        for k, v in s.items():
            totals[k] += v
    if totals["drafts"]:
        print(
            f"{'all':32s} {int(totals['drafts']):6d} {totals['before'] / totals['rules']:7.1%} "
            f"{totals['repaired'] / totals['rules']:9.1%} {totals['after'] / totals['rules']:9.1%} "
            f"{int(totals['reasks']):8d} {totals['seconds'] / totals['drafts']:8.1f}"
        )
        print(f"checkable rules: {int(totals['rules'])}; target after repair: >= 98%")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
