"""PREMIUM-Embed with simulated users: does the selector find a user's hidden tags from rankings?

    python benchmarks/premium_sim.py --setup 3/50 --noise 0.2 [--candidates 3] [--users 3] [--dynamic] [--full]

A setup k/N: a tag library of N tags (topic tags plus the 8 binary style tags), k tags per
candidate, a hidden user set of k tags. Each interaction: an intent, m candidates from the selector
(one of them random), an annotator that ranks them by overlap with the hidden tags (with
probability ``--noise`` the ranking is shuffled), an update. Interactions as in the paper:
3/20: 67, 3/50: 112, 3/100: 164. Accuracy = share of the selector's top-k tags that are hidden
tags, on intents it was not trained on, averaged over simulated users. Printed next to random
(k/N) and the paper's numbers (54.3 / 55.8 / 35.2 %). ``--dynamic``: 2 hidden tags change after 50
interactions, accuracy is against the new set. ``--full``: every setup, noise 0 and 0.2, m = 2/3/4,
10 users. The last line reads ``accuracy=NN.N%`` (the mean over what ran).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from app.ranking.premium import STYLE_TAGS, PremiumConfig, PremiumEmbed, TextEncoder  # noqa: E402

TOPICS = [
    "contract",
    "legal review",
    "invoice",
    "budget",
    "schedule",
    "meeting",
    "deadline",
    "pricing",
    "gas supply",
    "power trading",
    "regulation",
    "compliance",
    "hiring",
    "interview",
    "travel",
    "expense report",
    "conference",
    "customer complaint",
    "vendor",
    "negotiation",
    "risk",
    "credit",
    "audit",
    "tax",
    "insurance",
    "weather",
    "pipeline",
    "transmission",
    "turbine",
    "construction",
    "permits",
    "environment",
    "safety",
    "training",
    "software",
    "database",
    "network outage",
    "security",
    "password",
    "holiday",
    "birthday",
    "lunch",
    "golf",
    "charity",
    "press release",
    "investor",
    "earnings",
    "merger",
    "bankruptcy",
    "layoffs",
    "benefits",
    "payroll",
    "office move",
    "parking",
    "printer",
    "shipping",
    "logistics",
    "inventory",
    "forecast",
    "analysis",
    "report",
    "presentation",
    "slides",
    "spreadsheet",
    "draft",
    "signature",
    "approval",
    "follow-up",
    "thank you",
    "apology",
    "introduction",
    "referral",
    "reminder",
    "cancellation",
    "reschedule",
    "feedback",
    "proposal",
    "quote",
    "deposit",
    "refund",
    "warranty",
    "maintenance",
    "recruiting",
    "board meeting",
    "strategy",
    "marketing",
    "sales lead",
    "partnership",
    "legal dispute",
    "litigation",
    "settlement",
]
INTENTS = [
    "Tell Sylvia the NG contract is ready for legal review.",
    "Ask Ben for the turbine delivery schedule.",
    "Thank the team for the quarterly report.",
    "Move Thursday's meeting to Friday at 10.",
    "Send Mark the revised budget spreadsheet.",
    "Remind everyone that expense reports are due Monday.",
    "Decline the golf invitation politely.",
    "Ask legal whether the settlement can be signed this week.",
    "Introduce Kate to the new vendor contact.",
    "Follow up on the unpaid invoice from March.",
    "Confirm the hotel booking for the Houston conference.",
    "Ask IT why the network was down this morning.",
    "Share the draft press release for comments.",
    "Tell the board the merger vote moved to next month.",
    "Ask Chris for feedback on the pricing proposal.",
    "Apologise for missing the call yesterday.",
    "Request approval for two new analyst positions.",
    "Send the pipeline maintenance plan to operations.",
    "Let the client know the refund was processed.",
    "Ask the auditor which documents they still need.",
    "Congratulate Jeff on closing the power deal.",
    "Tell HR the benefits form is attached.",
    "Ask for a quote on 500 printer cartridges.",
    "Warn the desk about the credit limit on the new counterparty.",
    "Propose a lunch to discuss the marketing strategy.",
    "Explain the delay in the permit application.",
    "Send the slides for tomorrow's presentation.",
    "Ask whether the warranty covers the broken turbine part.",
    "Confirm the parking arrangements for visitors.",
    "Tell the team the office move is postponed.",
    "Ask Sara to sign the insurance renewal.",
    "Report the inventory shortfall to logistics.",
    "Share the weather forecast impact on gas demand.",
    "Ask recruiting to schedule the final interviews.",
    "Thank the charity committee for organising the drive.",
    "Request the litigation status from outside counsel.",
    "Send the earnings summary to investors.",
    "Cancel the Friday training session.",
    "Ask the vendor to reschedule the shipment.",
    "Forward the safety incident report to management.",
]
PAPER = {"3/20": 54.3, "3/50": 55.8, "3/100": 35.2}
INTERACTIONS = {"3/20": 67, "3/50": 112, "3/100": 164}


def library(n: int) -> list[str]:
    return TOPICS[: n - len(STYLE_TAGS)] + list(STYLE_TAGS)


def run_user(encoder, setup: str, m: int, noise: float, seed: int, dynamic: bool, **overrides) -> tuple[float, float]:
    k, n = (int(x) for x in setup.split("/"))
    tags = library(n)
    rng = random.Random(seed)
    hidden = set(rng.sample(tags, k))
    intents = INTENTS[:]
    rng.shuffle(intents)
    train, held_out = intents[:30], intents[30:]
    selector = PremiumEmbed(tags, encoder, PremiumConfig(k=k, seed=seed, **overrides))
    times = []
    for step in range(INTERACTIONS[setup]):
        if dynamic and step == 50:  # two of the user's preferences change
            keep = rng.sample(sorted(hidden), k - 2)
            hidden = set(keep) | set(rng.sample([t for t in tags if t not in hidden], 2))
        query = rng.choice(train)
        candidates = selector.propose(query, m)
        if rng.random() < noise:
            ranked = candidates[:]
            rng.shuffle(ranked)
        else:
            ranked = sorted(candidates, key=lambda s: (-len(hidden & set(s)), rng.random()))
        times.append(selector.update(query, ranked))
    accuracy = statistics.mean(len(hidden & set(selector.top_tags(q))) / k for q in held_out)
    return accuracy, statistics.mean(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--setup", default="3/50", choices=sorted(PAPER))
    parser.add_argument("--noise", type=float, default=0.2)
    parser.add_argument("--candidates", type=int, default=3)
    parser.add_argument("--users", type=int, default=3)
    parser.add_argument("--dynamic", action="store_true")
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    started = time.perf_counter()
    encoder = TextEncoder()
    if args.full:
        runs = [(s, m, noise, 10) for s in ("3/20", "3/50", "3/100") for noise in (0.0, 0.2) for m in (2, 3, 4)]
    else:
        runs = [(args.setup, args.candidates, args.noise, args.users)]
    accuracies = []
    for setup, m, noise, users in runs:
        results = [run_user(encoder, setup, m, noise, seed, args.dynamic) for seed in range(users)]
        per_user = [r[0] * 100 for r in results]
        acc = statistics.mean(per_user)
        # the 95% interval of the mean over simulated users (normal approximation)
        half = 1.96 * statistics.stdev(per_user) / len(per_user) ** 0.5 if len(per_user) > 1 else float("nan")
        accuracies.append(acc)
        k, n = (int(x) for x in setup.split("/"))
        verdict = ""
        if m == 3:
            verdict = "above the paper" if acc - half > PAPER[setup] else "not above the paper"
        print(
            f"setup {setup:6s} m={m} noise={noise:.1f}{' dynamic' if args.dynamic else ''}  {INTERACTIONS[setup]} interactions x "
            f"{users} users: accuracy {acc:5.1f}% (95% CI {acc - half:.1f}-{acc + half:.1f})  "
            f"(random {100 * k / n:.1f}%, paper {PAPER[setup]}% at m=3{'; ' + verdict if verdict else ''})  "
            f"update {statistics.mean(r[1] for r in results) * 1000:.0f} ms"
        )
    print(f"{time.perf_counter() - started:.0f} s in all")
    print(f"accuracy={statistics.mean(accuracies):.1f}%")


if __name__ == "__main__":
    main()
