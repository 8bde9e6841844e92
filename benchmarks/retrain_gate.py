"""How many held-out edits does the retrain gate need before its decision means something?

    TILLER_HOME=... python benchmarks/retrain_gate.py --adapters <eval>/adapters
        [--rules-from <replay out>/drafts.jsonl] [--replay <replay out>/results.json]
        [--sender S ...] [--emails 15] [--out DIR]

The background retrain (app/learning/retrain.py) holds out the newest 20% of the profile's pairs
(at least 3), scores the adapter in use and the candidate on them, and keeps the candidate only
when it scores at least as well. How many pairs that takes before the decision is more than a coin
toss is what sets ``RETRAIN_AFTER``: 10 new pairs give the first gate 3 held out, 20 give it 4.

Per sender, the adapter in use (``tiller eval``'s R3 agent) writes rules for the newest emails with
an intent it was not trained on, and each email gets the gate's own score
(app.learning.retrain.pair_score: the share of the aspects the real email has a measured rule for
on which the agent's rule is one the email keeps). From those per-email scores, bootstrapped 4,000
times per k, the report gives the spread of the gate's score on k held-out emails (the 5th to 95th
percentile) and the smallest difference between two adapters a gate on k emails tells from noise
at 90% one-sided (1.28 standard errors of the difference of two such means, scored on the same
emails but counted as independent: an upper bound on what the pairing saves). With ``--replay`` it
lists the score differences the replay's retrains met, for scale.

``--rules-from`` takes the agent's rules from an edit replay's drafts cache instead of generating
them (the first row per email there is the unlearned arm's draft, drafted from exactly these
rules); emails missing there are generated and cached in ``--out``/rules.jsonl.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from edit_replay import SEVEN, agent_for, cases_for, trained_on  # noqa: E402

HELD_OUT = (3, 4, 6, 8, 12, 20)
RESAMPLES = 4000
Z_ONE_SIDED_90 = 1.2816


class RuleCache:
    """Agent rules per (sender, message id): from a replay's drafts cache, else generated."""

    def __init__(self, path: Path, seed: Path | None) -> None:
        self.path = path
        self.rules: dict[str, list[str]] = {}
        self.seeded = 0
        if seed and seed.is_file():
            for line in seed.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                key = f"replay|{row['message_id']}"
                if key not in self.rules:  # the first draft of each email is the unlearned arm's
                    self.rules[key] = row["rules"]
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                self.rules[row["key"]] = row["rules"]

    def get(self, sender: str, message_id: int, make) -> list[str]:
        key = f"{sender}|{message_id}"
        if key in self.rules:
            return self.rules[key]
        if f"replay|{message_id}" in self.rules:
            self.seeded += 1
            return self.rules[f"replay|{message_id}"]
        self.rules[key] = make()
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"key": key, "rules": self.rules[key]}) + "\n")
        return self.rules[key]


def email_scores(sender: str, adapters: Path, cases, cache: RuleCache) -> list[float]:
    """The gate's score of the adapter in use on each email that has a measured aspect."""
    from app.agent.agent import RulesRequest
    from app.learning.retrain import pair_share

    agent = None
    out = []
    for case in cases:

        def make(case=case):
            nonlocal agent
            agent = agent or agent_for(sender, adapters)
            return agent.rules(RulesRequest(case.intent, case.recipient, case.subject, case.previous))

        share = pair_share(cache.get(sender, case.message_id, make), case.real)
        if share is not None:
            out.append(share)
    return out


def spread(scores: list[float], k: int, rng: random.Random) -> tuple[float, float]:
    """5th and 95th percentile of the mean of k scores drawn with replacement."""
    means = sorted(statistics.fmean(rng.choices(scores, k=k)) for _ in range(RESAMPLES))
    return means[int(0.05 * RESAMPLES)], means[int(0.95 * RESAMPLES) - 1]


def detectable(sd: float, k: int) -> float:
    return Z_ONE_SIDED_90 * sd * (2 / k) ** 0.5


def replay_gates(path: Path | None) -> list[dict]:
    if not path or not path.is_file():
        return []
    out = []
    for result in json.loads(path.read_text()):
        for batch in result["batches"]:
            retrain = batch.get("retrain") or {}
            if "old_score" in retrain:
                out.append({"sender": result["sender"], **retrain})
    return out


def report(rows: list[dict], gates: list[dict], elapsed: float, generated: int, seeded: int) -> str:
    lines = [
        "# Retrain gate: how much a score on k held-out emails moves",
        "",
        f"{len(rows)} senders · {elapsed / 60:.1f} min · agent rules: {seeded} from the replay's cache, "
        f"{generated} generated · {RESAMPLES} bootstrap draws per k",
        "",
        "Per sender: the adapter in use scored by the gate on each unseen email; the 5-95% range of its "
        "score on k emails; the smallest difference between two adapters a gate on k emails tells from "
        "noise (90% one-sided).",
        "",
        "| sender | emails | mean | sd | " + " | ".join(f"range k={k}" for k in HELD_OUT) + " |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in HELD_OUT) + " |",
    ]
    for r in rows:
        cells = " | ".join(f"{lo:.2f}-{hi:.2f}" for lo, hi in (r["spread"][str(k)] for k in HELD_OUT))
        lines.append(f"| {r['sender']} | {r['emails']} | {r['mean']:.2f} | {r['sd']:.2f} | {cells} |")
    from app.learning.retrain import held_out_count

    pooled = [s for r in rows for s in r["scores"]]
    if len(pooled) > 1:
        sd = statistics.stdev(pooled)
        lines += [
            "",
            f"Pooled over {len(pooled)} emails: sd {sd:.2f}. Smallest difference a gate on k emails tells from "
            "noise: " + ", ".join(f"k={k}: {detectable(sd, k):.2f}" for k in HELD_OUT) + ".",
            "",
            "| pairs when the gate runs | held out (20%, at least 3) | smallest difference told from noise |",
            "| --- | --- | --- |",
        ]
        for pairs in (5, 10, 20, 40, 60, 100):
            k = held_out_count(pairs)
            lines.append(f"| {pairs} | {k} | {detectable(sd, k):.2f} |")
    if gates:
        lines += [
            "",
            "The replay's retrains (3+ held out each):",
            "",
            "| sender | held-out score in use / new | decision |",
            "| --- | --- | --- |",
        ]
        for g in gates:
            lines.append(f"| {g['sender']} | {g['old_score']:.2f} / {g['new_score']:.2f} | {g['decision']} |")
        gaps = [abs(g["new_score"] - g["old_score"]) for g in gates]
        lines += ["", f"Median |difference| at the replay's gates: {statistics.median(gaps):.2f}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", type=Path, help="tiller eval's adapters/ (<sender>/agent)")
    parser.add_argument("--sender", action="append", help="This sender (repeatable; default: the 7).")
    parser.add_argument("--emails", type=int, default=15, help="The newest N unseen emails with an intent per sender.")
    parser.add_argument("--rules-from", type=Path, help="An edit replay's drafts.jsonl (its agent rules, reused).")
    parser.add_argument("--replay", type=Path, help="An edit replay's results.json (its retrains' gate scores).")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("retrain-gate"))
    args = parser.parse_args()

    from app.store.db import open_database

    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    db = open_database()
    cache = RuleCache(args.out / "rules.jsonl", args.rules_from)
    before = len(cache.rules)
    rng = random.Random(args.seed)
    rows = []
    for sender in args.sender or SEVEN:
        cases = cases_for(db, sender, args.emails, exclude=trained_on(sender, args.adapters))
        scores = email_scores(sender, args.adapters, cases, cache)
        print(f"{sender}: {len(scores)} of {len(cases)} unseen emails have an aspect the gate scores", flush=True)
        if len(scores) < 2:
            continue
        rows.append(
            {
                "sender": sender,
                "emails": len(scores),
                "mean": statistics.fmean(scores),
                "sd": statistics.stdev(scores),
                "scores": scores,
                "spread": {str(k): spread(scores, k, rng) for k in HELD_OUT},
            }
        )
    text = report(rows, replay_gates(args.replay), time.monotonic() - started, len(cache.rules) - before, cache.seeded)
    (args.out / "results.json").write_text(json.dumps(rows, indent=2))
    (args.out / "report.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
