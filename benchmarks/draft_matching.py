"""Where to draw the line when a sent email is matched to the draft it came from.

    TILLER_HOME=... python benchmarks/draft_matching.py [--window-days 14]

A true pair is a zero-shot email the local model wrote from a distilled intent (a draft nobody
edited: the hardest case, since the user rewrote all of it) and the real email the intent came from.
A near miss is the same zero-shot email against every other email its sender wrote within
``--window-days`` of the real one (what the matcher meets when a sender writes several emails a
day). For each similarity (content-word Dice, and 1 - word edit distance) it prints the
distributions and, per threshold, the share of true pairs found and of near misses wrongly taken.
The threshold in app/learning/matching.py is the lowest that takes no near miss here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window-days", type=float, default=14.0)
    args = parser.parse_args()

    from app.learning.distance import content_similarity, edit_distance
    from app.store.db import open_database

    db = open_database()
    pairs = db.execute(
        "SELECT m.id, m.from_addr, m.date, m.own_text, m.to_addrs, b.text FROM baselines b JOIN intents i ON i.id = b.intent_id "
        "JOIN messages m ON m.id = i.message_id WHERE b.status = 'ok' AND m.date IS NOT NULL"
    ).fetchall()
    if not pairs:
        sys.exit("no zero-shot baselines in this database: run `tiller distill --backend local` first")
    window = dt.timedelta(days=args.window_days)
    true_scores: dict[str, list[float]] = {"dice": [], "1-edit": []}
    miss_scores: dict[str, list[float]] = {"dice": [], "1-edit": []}
    top1 = {"any recipient": [0, 0], "same recipient": [0, 0]}  # [real email ranked first, cases]
    same_recipient_misses: list[float] = []
    for mid, sender, date, real, to, zero_shot in pairs:
        when = dt.datetime.fromisoformat(date)
        true_dice = content_similarity(zero_shot, real)
        true_scores["dice"].append(true_dice)
        true_scores["1-edit"].append(1 - edit_distance(zero_shot, real))
        others = db.execute(
            "SELECT own_text, to_addrs FROM messages WHERE from_addr = ? AND id != ? AND date BETWEEN ? AND ? "
            "AND own_text != ''",
            [sender, mid, (when - window).isoformat(), (when + window).isoformat()],
        ).fetchall()
        recipients = set(json.loads(to or "[]"))
        best_any = best_same = 0.0
        for other, other_to in others:
            dice = content_similarity(zero_shot, other)
            miss_scores["dice"].append(dice)
            miss_scores["1-edit"].append(1 - edit_distance(zero_shot, other))
            best_any = max(best_any, dice)
            if recipients & set(json.loads(other_to or "[]")):
                same_recipient_misses.append(dice)
                best_same = max(best_same, dice)
        for name, best in (("any recipient", best_any), ("same recipient", best_same)):
            top1[name][0] += true_dice > best
            top1[name][1] += 1
    print(f"{len(pairs)} true pairs, {len(miss_scores['dice'])} near misses (same sender, ±{args.window_days:g} days)")
    for name in ("dice", "1-edit"):
        t, m = sorted(true_scores[name]), sorted(miss_scores[name])
        print(
            f"\n{name}: true pairs median {statistics.median(t):.3f} (10th pct {t[len(t) // 10]:.3f}); "
            f"near misses median {statistics.median(m):.3f}, 99th pct {m[int(len(m) * 0.99)]:.3f}, max {m[-1]:.3f}"
        )
        print(f"{'threshold':>10} {'found':>7} {'wrong':>7}")
        for threshold in (0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40, 0.50):
            found = sum(s >= threshold for s in t) / len(t)
            wrong = sum(s >= threshold for s in m) / len(m) if m else 0.0
            print(f"{threshold:>10.2f} {found:>7.1%} {wrong:>7.2%}")
    m = sorted(same_recipient_misses)
    print(
        f"\nnear misses to the same recipient: {len(m)}"
        + (f", dice max {m[-1]:.3f}, 99th pct {m[int(len(m) * 0.99)]:.3f}" if m else "")
    )
    for threshold in (0.05, 0.10, 0.15, 0.20):
        found = sum(s >= threshold for s in true_scores["dice"]) / len(pairs)
        wrong = sum(s >= threshold for s in m) / len(m) if m else 0.0
        print(f"{threshold:>10.2f} {found:>7.1%} {wrong:>7.2%}")
    for name, (first, cases) in top1.items():
        print(f"the real email scores above every near miss ({name}): {first} of {cases} ({first / cases:.0%})")


if __name__ == "__main__":
    main()
