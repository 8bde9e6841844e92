"""Do the agent's rules change with the intent? Distinct rule sets over a sender's held-out intents.

The issue's complaint: a 60-step agent trained on measured style rules writes nearly the same rules
for every intent (3 distinct rule sets over 20 held-out intents of a sender whose real emails have
9-13). This trains two agents in the same run, from the same emails and the same prompts (the local
model's abstractive intents), differing only in the target rules:

- baseline: the measured style rules of each email (what the offline first minute trains on);
- R3: the rules the embedded instruct model distilled from the zero-shot vs real email difference.

Each agent then writes rules for the sender's held-out intents (the newest 20%, greedy decoding) and
the report gives, per agent: distinct rule sets, distinct single rules, and the mean pairwise word
Jaccard similarity between rule sets (1.0 = identical every time), next to the same figures for the
held-out emails' own distilled R3 rules (what variety the real mail has).

Needs local R3 rows for the sender: run benchmarks/local_distill.py --home DIR --per-sender 100
first and pass the same --home (or pass --distill N to do it here).

Usage: python benchmarks/rule_variety.py --home DIR [--sender kay.mann@enron.com] [--steps 60] [--json FILE]
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def normalized(rules: list[str]) -> tuple[str, ...]:
    return tuple(sorted(re.sub(r"\s+", " ", r.strip().lower().rstrip(".")) for r in rules if r.strip()))


def variety(rule_sets: list[list[str]]) -> dict:
    sets = [normalized(r) for r in rule_sets]
    words = [set(re.findall(r"[a-z']+", " ".join(s))) for s in sets]
    pairs = [(a, b) for a, b in itertools.combinations(words, 2) if a or b]
    jaccard = sum(len(a & b) / len(a | b) for a, b in pairs) / len(pairs) if pairs else 1.0
    return {
        "sets": len(sets),
        "distinct_sets": len(set(sets)),
        "distinct_rules": len({r for s in sets for r in s}),
        "mean_rules": round(sum(len(s) for s in sets) / max(1, len(sets)), 1),
        "mean_jaccard": round(jaccard, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", help="TILLER_HOME with the local distillation (default: a new temporary one)")
    parser.add_argument("--sender", default="kay.mann@enron.com")
    parser.add_argument("--steps", type=int, default=60, help="training steps per agent (the demo's 60)")
    parser.add_argument("--distill", type=int, default=0, help="first distill this many newest emails locally")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    os.environ["TILLER_HOME"] = args.home or tempfile.mkdtemp(prefix="tiller-rule-variety-")
    sender = args.sender.lower()

    from agent_training.dataset import _chat, collect, split_by_time
    from agent_training.distill import MEASURED_SOURCE, Distillation, DistillConfig
    from agent_training.finetune import Finetune, FinetuneConfig
    from agent_training.rules import MEASURED
    from app.agent.agent import PreferenceAgent, RulesRequest
    from app.agent.profiles import profile_at
    from app.files import write_atomic
    from benchmarks.sample_db import sample_database

    db = sample_database()  # measured style rules for every email
    if args.distill:
        for _ in Distillation(db, DistillConfig(backend="local", sender=sender, limit=args.distill)).run():
            pass
    examples, _ = collect(db, strategy="R3", sender=sender)
    examples = [e for e in examples if (e.meta["rules_source"] or "").startswith("local|")]
    train, test = split_by_time(examples)
    if len(train) < 8 or len(test) < 2:
        sys.exit(f"{len(examples)} local R3 examples for {sender}: distill more first (--distill 100)")
    measured = {
        mid: rules
        for mid, rules in db.execute(
            "SELECT message_id, rules FROM rules WHERE strategy = ? AND source = ? AND status = 'ok'",
            [MEASURED, MEASURED_SOURCE],
        )
    }
    work = Path(os.environ["TILLER_HOME"]) / "rule-variety"
    targets = {
        "measured (baseline)": [(e, measured[e.message_id].strip() + "\n") for e in train if e.message_id in measured],
        "local R3": [(e, e.rules) for e in train],
    }
    results: dict = {
        "sender": sender,
        "train_emails": len(train),
        "held_out_intents": len(test),
        "steps": args.steps,
        "held_out_real_R3": variety([[r for r in e.rules.splitlines() if r.strip()] for e in test]),
        "held_out_real_measured": variety(
            [[r for r in measured.get(e.message_id, "").splitlines() if r.strip()] for e in test]
        ),
        "agents": {},
    }
    for name, pairs in targets.items():
        slug = "measured" if name.startswith("measured") else "r3"
        dataset = work / f"{slug}.jsonl"
        write_atomic(dataset, "".join(json.dumps(_chat(e, t, "train"), ensure_ascii=False) + "\n" for e, t in pairs))
        started = time.monotonic()
        job = Finetune(
            FinetuneConfig(
                dataset=dataset,
                sender=sender,
                output=work / f"agent-{slug}",
                max_steps=args.steps,
                epochs=100.0,
                fresh=True,
            ),
            log=lambda *a: None,
        )
        last = None
        for progress in job.run():
            last = progress
        trained_s = time.monotonic() - started
        agent = PreferenceAgent(profile_at(work / f"agent-{slug}", sender))
        started = time.monotonic()
        written = []
        for e in test:  # the same prompt the agent was trained on: intent, recipients, subject, quoted context
            to_addrs, subject, previous = db.execute(
                "SELECT to_addrs, subject, previous_context FROM messages WHERE id = ?", [e.message_id]
            ).fetchone()
            written.append(
                agent.rules(
                    RulesRequest(
                        e.meta["intent"],
                        recipient=", ".join(json.loads(to_addrs or "[]")),
                        subject=subject,
                        previous_context=previous,
                    )
                )
            )
        results["agents"][name] = {
            **variety(written),
            "train_examples": len(pairs),
            "train_s": round(trained_s),
            "final_loss": last.loss if last else None,
            "rules_s_per_intent": round((time.monotonic() - started) / len(test), 2),
            "example": written[0] if written else [],
        }
        print(f"{name}: {results['agents'][name]}", flush=True)
    print(
        f"\nRule variety for {sender}: {len(train)} training emails, {len(test)} held-out intents, {args.steps} steps per agent"
    )
    header = f"{'rules from':<28}{'distinct sets':>14}{'distinct rules':>16}{'rules/set':>10}{'mean Jaccard':>14}"
    print(header)
    rows = [
        ("held-out emails, R3", results["held_out_real_R3"]),
        ("held-out emails, measured", results["held_out_real_measured"]),
    ]
    rows += [(f"agent on {name}", v) for name, v in results["agents"].items()]
    for label, v in rows:
        print(
            f"{label:<28}{v['distinct_sets']:>9} / {v['sets']:<3}{v['distinct_rules']:>16}{v['mean_rules']:>10}{v['mean_jaccard']:>14}"
        )
    base = results["agents"]["measured (baseline)"]["distinct_sets"]
    r3 = results["agents"]["local R3"]["distinct_sets"]
    print(f"distinct rule sets, R3 agent / measured agent: {r3} / {base} = {r3 / max(1, base):.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
