"""What the distilled data gives the voice stage and the agent, read off a distilled mailbox.

    tiller distill --backend local --sender ADDRESS --limit 16     # or a cloud backend
    python benchmarks/voice_pairs.py [--sender ADDRESS] [--show 8]

For every email with a zero-shot email (the R3 path): whether the (zero-shot -> real) pair passes the
content guard (app/content_guard.py) and so would train the voice stage, and why not; for every R3
rule set: the share of rules that agree in direction with the real email (agent_training/rules.py:
direction_conflict) and that are whole instructions. Prints samples to read by hand. Reads the
database of ``$TILLER_HOME`` (read-only); changes nothing.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    from agent_training.rules import direction_conflict, fragment_reason, rule_lines
    from app import paths
    from app.content_guard import check_rewrite, names_in

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sender")
    parser.add_argument("--show", type=int, default=8, help="samples to print")
    args = parser.parse_args()
    db = sqlite3.connect(f"file:{paths.database_path()}?mode=ro", uri=True)
    where, params = ("AND m.from_addr = ?", [args.sender]) if args.sender else ("", [])
    rows = db.execute(
        "SELECT m.id, m.from_addr, m.to_addrs, m.own_text, i.text, b.text, b.source, r.rules, r.dropped "
        "FROM baselines b JOIN intents i ON i.id = b.intent_id JOIN messages m ON m.id = i.message_id "
        "LEFT JOIN rules r ON r.intent_id = i.id AND r.strategy = 'R3' AND r.status = 'ok' "
        f"WHERE b.status = 'ok' {where} ORDER BY m.id",
        params,
    ).fetchall()
    if not rows:
        raise SystemExit("no zero-shot emails in this database: run `tiller distill --backend NAME` first")
    sources = Counter(r[6].split("|")[0] for r in rows)
    print(f"{len(rows)} emails with a zero-shot email ({', '.join(f'{k} {v}' for k, v in sources.items())})")
    kept, reasons, samples = 0, Counter(), []
    for _id, sender, to, real, intent, zero_shot, _src, _rules, _dropped in rows:
        recipients = ", ".join(json.loads(to or "[]"))
        verdict = check_rewrite(zero_shot, real, intent, allowed=names_in(sender, recipients))
        kept += verdict.kept
        if not verdict.kept:
            reasons["dropped" if verdict.dropped else "added"] += 1
            samples.append((verdict.reason, zero_shot, real))
    print(f"voice pairs passing the content guard: {kept} of {len(rows)} ({kept / len(rows):.0%})")
    print(
        f"refused: {reasons['dropped']} where the real email lacks a fact of the zero-shot one, {reasons['added']} other"
    )
    for reason, zero_shot, real in samples[: args.show]:
        print(f"  - {reason}\n      zero-shot: {zero_shot[:140]!r}\n      real:      {real[:140]!r}")
    with_rules = [r for r in rows if r[7]]
    total = agree = whole = 0
    conflicts = Counter()
    listed = []
    for _id, _s, _to, real, _intent, zero_shot, _src, rules, dropped in with_rules:
        stored = rule_lines(rules)
        earlier = [d.split(" (contradicts: ")[0] for d in json.loads(dropped or "[]") if "(contradicts:" in d]
        for rule in stored + earlier:
            total += 1
            why = direction_conflict(rule, real, zero_shot)
            agree += why is None
            whole += fragment_reason(rule) is None
            if why:
                conflicts[why.split(" (")[0]] += 1
        listed.append((real, stored, earlier))
    if total:
        print(
            f"R3 rules (as the model wrote them, {len(with_rules)} sets): {total} rules; agree in direction "
            f"{agree} ({agree / total:.0%}); whole instructions {whole} ({whole / total:.0%})"
        )
        for why, n in conflicts.most_common(6):
            print(f"  {n} x {why}")
        for real, stored, earlier in listed[: args.show]:
            print(f"  real: {real[:100]!r}\n    kept: {stored}\n    dropped as contradicting: {earlier}")


if __name__ == "__main__":
    main()
