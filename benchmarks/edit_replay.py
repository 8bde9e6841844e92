"""Does learning from edits lower how much the user still changes? A replay, per sender.

    TILLER_HOME=... python benchmarks/edit_replay.py [--sender S ...] [--emails 15] [--batch 3]
        [--backend local] [--adapters DIR] [--out DIR]

For each sender, the newest emails with an intent that the sender's agent was NOT trained on (its
training record names the dataset) are replayed oldest first, in batches (``--distill-intents``
extracts intents for more of them first). Each email is drafted from its intent twice (both at temperature 0 with the same agent
rules, the same large model and the same rule check):

- **without learning**: the agent's rules alone;
- **with learning**: the agent's rules with the scoped rules learned (app/learning/scoped.py) from
  every earlier batch, where each earlier email was "sent" as the final text of its draft; the
  rules are verified only against the sender's emails dated before the email being drafted.

The metric is the word edit distance from the draft to the real email (app/learning/distance.py),
the same number ``tiller edits progress`` shows. Beside it, the report gives the share of the
style aspects the scoped rules are about that the draft gets right (greeting and sign-off as the
real email's, length within the rule check's bounds of the real one): the edit distance of a
60-word email is mostly its content, which no rule about greetings can move.

The rule check repairs every draft, and a draft that still breaks a rule is asked for once more,
as drafting does (``--no-reask`` to save the second request; off, a learned length rule hardly
reaches the draft, because the local model ignores "about N words" and the re-ask gives it a
budget in numbers). The first batch is the same in both arms (nothing learned yet), so its drafts
are shared. The learning arm writes its drafts and scoped rules to a scratch copy of the
database, never to the user's.

With ``--retrain-after N`` the learning arm also retrains its agent as the app does, once N new
emails were sent since the last retrain: ``python -m agent_training retrain`` in a scratch home
with a copy of the sender's adapter and distilled examples, the gate there deciding whether the
next batches get the new adapter. A retrain needs 4 pairs (3 are held out for the gate).

Drafts are cached in ``--out``/drafts.jsonl, so a rerun resumes. Target (issue 6/6): learning
lowers the edit distance of the last batch for at least 5 of 7 senders.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

SEVEN = (
    "kay.mann@enron.com",
    "dutch.quigley@enron.com",
    "bill.williams@enron.com",
    "benjamin.rogers@enron.com",
    "debra.perlingiere@enron.com",
    "gerald.nemec@enron.com",
    "jeff.dasovich@enron.com",
)


def scratch_home(db_path: Path) -> Path:
    """A temporary Tiller home for the learning arm: an online backup of the user's database, and
    the user's models folder linked in (a retrain there trains on the same base model)."""
    home = Path(tempfile.mkdtemp(prefix="tiller-replay-"))
    src, dst = sqlite3.connect(str(db_path)), sqlite3.connect(str(home / "tiller.db"))
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    (home / "models").symlink_to(db_path.parent / "models", target_is_directory=True)
    return home


class Drafter:
    """Drafts through the compose operation with given rules, at temperature 0, cached on disk."""

    def __init__(self, backend: str, cache: Path, max_tokens: int, reask: bool) -> None:
        self.backend, self.cache, self.max_tokens, self.reask = backend, cache, max_tokens, reask
        self.known: dict[str, dict] = {}
        if cache.is_file():
            for line in cache.read_text(encoding="utf-8").splitlines():
                row = json.loads(line)
                self.known[row["key"]] = row
        self.made = 0

    def draft(self, case, rules: list[str]) -> str:
        from app.ops.compose import ComposeOperation, ComposeRequest

        key = hashlib.sha256(
            json.dumps([self.backend, case.message_id, case.intent, rules, self.max_tokens, self.reask]).encode()
        ).hexdigest()
        if key in self.known:
            return self.known[key]["text"]
        op = ComposeOperation(
            ComposeRequest(
                case.intent,
                recipient=case.recipient,
                subject=case.subject,
                previous_email=case.previous,
                backend=self.backend,
                rules=tuple(rules),
                max_tokens=self.max_tokens,
                reask=self.reask,
            ),
            prepare=lambda r: dataclasses.replace(r, options={**r.options, "temperature": 0.0}),
        )
        for _ in op.run():
            pass
        text = op.result.drafts[0].draft.text
        row = {"key": key, "message_id": case.message_id, "rules": rules, "text": text}
        with open(self.cache, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.known[key] = row
        self.made += 1
        return text


@dataclasses.dataclass
class Case:
    message_id: int
    sender: str
    date: str
    recipient: str | None
    subject: str | None
    previous: str | None
    intent: str
    real: str


def cases_for(db, sender: str, n: int, exclude: set[int] = frozenset()) -> list[Case]:
    """The sender's newest ``n`` emails with an intent (the first ok variant of each), oldest
    first, leaving out ``exclude`` (the emails the agent was trained on: replaying those would
    let the agent "remember" what the user sent)."""
    rows = db.execute(
        "SELECT m.id, m.date, m.to_addrs, m.subject, m.previous_context, m.own_text, i.text FROM intents i"
        " JOIN messages m ON m.id = i.message_id WHERE i.status = 'ok' AND m.from_addr = ?"
        " ORDER BY m.date, m.id, i.variant, i.id",
        [sender.lower()],
    ).fetchall()
    seen, out = set(), []
    for message_id, date, to_addrs, subject, previous, own_text, intent in rows:
        if message_id in seen or message_id in exclude or not date or not (own_text or "").strip():
            continue
        seen.add(message_id)
        to = json.loads(to_addrs or "[]")
        out.append(Case(message_id, sender, date, to[0] if to else None, subject, previous, intent, own_text))
    return out[-n:]


def trained_on(sender: str, adapters: Path | None) -> set[int]:
    """Message ids of the examples the sender's adapter was trained on (its training record's
    dataset), empty when that is unknown."""
    from app.agent.profiles import TrainingRecord

    record_file = profile_dir_for(sender, adapters) / "training.json"
    if not record_file.is_file():
        return set()
    dataset = TrainingRecord.read(record_file).dataset
    if not dataset or not Path(dataset).is_file():
        return set()
    ids = set()
    with open(dataset, encoding="utf-8") as fh:
        for line in fh:
            try:
                ids.add(int((json.loads(line).get("meta") or {})["message_id"]))
            except (ValueError, KeyError, TypeError):
                continue
    return ids


def distill_intents(db, sender: str, newest: int, backend: str) -> None:
    """Intents (only: no baselines, no rules) for the sender's ``newest`` emails, the ones that
    have none yet; resumable like ``tiller distill``."""
    from agent_training.distill import Distillation, DistillConfig

    job = Distillation(
        db, DistillConfig(backend=backend, sender=sender, limit=newest, strategies=(), newest_first=True)
    )
    for progress in job.run():
        print(f"{sender}: {progress}", flush=True)


def profile_dir_for(sender: str, adapters: Path | None) -> Path:
    from app.agent.profiles import find_profile

    if adapters and (adapters / sender / "agent").is_dir():
        return adapters / sender / "agent"
    return find_profile(sender).directory


def agent_for(sender: str, adapters: Path | None):
    from app.agent.agent import PreferenceAgent
    from app.agent.profiles import profile_at

    return PreferenceAgent(profile_at(profile_dir_for(sender, adapters), sender))


class ReplayRetrainer:
    """Retrains the learning arm's agent between batches the way the app does: ``python -m
    agent_training retrain --sender S`` as a process of its own, on the scratch home (its database
    holds the replayed pairs), from a copy of the sender's adapter and its distilled examples; the
    gate there decides whether the new adapter is used for the next batches."""

    def __init__(self, home: Path, after: int, steps: int | None, log) -> None:
        self.home, self.after, self.steps, self.log = home, after, steps, log

    def prepare(self, sender: str, adapters: Path | None) -> None:
        import shutil

        from agent_training.dataset import sender_datasets_dir
        from app.agent.profiles import TrainingRecord, profile_slug

        source = profile_dir_for(sender, adapters)
        target = self.home / "agents" / profile_slug(sender)
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)
        record = TrainingRecord.read(source / "training.json") if (source / "training.json").is_file() else None
        dataset = Path(record.dataset) if record and record.dataset else None
        if dataset and dataset.is_file():  # the examples the adapter was trained on: the retrain replays them
            # where agent_training.dataset.default_training_file looks first (its slug, not the profile's)
            folder = self.home / "datasets" / sender_datasets_dir(sender).name / "R3"
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(dataset, folder / "train.jsonl")
            with open(dataset, encoding="utf-8") as fh:
                self.log(f"{sender}: the retrain replays up to {sum(1 for _ in fh)} distilled example(s)")
        else:
            self.log(f"{sender}: no distilled examples found ({dataset}): the retrain learns from edits only")

    def agent(self, sender: str):
        from app.agent.agent import PreferenceAgent
        from app.agent.profiles import profile_at, profile_slug

        return PreferenceAgent(profile_at(self.home / "agents" / profile_slug(sender), sender))

    def run(self, sender: str) -> dict:
        import os
        import subprocess

        started = time.monotonic()
        command = [sys.executable, "-m", "agent_training", "retrain", "--json", "--sender", sender]
        if self.steps:
            command += ["--steps", str(self.steps)]
        done = subprocess.run(
            command,
            cwd=REPO,
            env={**os.environ, "TILLER_HOME": str(self.home)},
            capture_output=True,
            text=True,
        )
        outcome = {"decision": "failed", "seconds": round(time.monotonic() - started, 1)}
        for line in done.stdout.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("phase") == "done":
                outcome.update((event.get("extra") or {}), seconds=outcome["seconds"])
            elif event.get("phase") == "error":
                outcome["note"] = event.get("message")
        if outcome["decision"] == "failed":
            outcome.setdefault(
                "note", (done.stderr or "").strip().splitlines()[-1:] or ["exit " + str(done.returncode)]
            )
        self.log(f"{sender} retrain: {outcome}")
        return outcome


def aspects_right(draft: str, real: str) -> float:
    """The share of greeting, sign-off and length the draft gets right against the real email
    (the draft measured as sent: preamble and subject lines removed, as style_fidelity does)."""
    from agent_training.evaluate import style_fidelity
    from app.measured_style import measure
    from app.rulecheck import check_draft, length_bounds

    fidelity = style_fidelity(draft, real)
    low, high = length_bounds(measure(real).word_count)
    words = measure(check_draft(draft, []).text).word_count
    return (fidelity["greeting_match"] + fidelity["signoff_match"] + float(low <= words <= high)) / 3


def replay_sender(db, scratch, sender, cases, batch, drafter, adapters, log, retrainer=None) -> dict:
    from app.agent.agent import RulesRequest
    from app.learning import scoped
    from app.learning.capture import DraftShown, record_drafts
    from app.learning.distance import edit_distance
    from app.store import drafts as store

    agent = agent_for(sender, adapters)
    learning_agent = agent  # the learning arm's agent: another one once a retrain keeps a new adapter
    if retrainer:
        retrainer.prepare(sender, adapters)
    trained = bool(agent.profile and agent.profile.trained)
    batches: list[dict] = []
    rows: list = []
    since_retrain = 0
    for start in range(0, len(cases), batch):
        chunk = cases[start : start + batch]
        retrain = None
        if retrainer and start and since_retrain >= retrainer.after:
            retrain = retrainer.run(sender)
            if retrain["decision"] != "failed":  # a refused one (too few pairs yet) is tried again next batch
                since_retrain = 0
            if retrain.get("decision") == "kept_new":
                learning_agent = retrainer.agent(sender)
        if start:  # learn from every earlier email, verified against the sender's mail before this batch
            rows = [r for r in scoped.learn(scratch, before=chunk[0].date).rules if r.identity == sender]
        without, with_, used = [], [], 0
        aspects_without, aspects_with = [], []
        for case in chunk:
            request = RulesRequest(case.intent, case.recipient, case.subject, case.previous)
            agent_rules = agent.rules(request)
            plain = drafter.draft(case, agent_rules)
            learned_agent_rules = agent_rules if learning_agent is agent else learning_agent.rules(request)
            rules, scoped_used = scoped.apply_scoped(learned_agent_rules, scoped.rules_for(rows, case.recipient))
            learned = drafter.draft(case, rules) if rules != agent_rules else plain
            used += bool(scoped_used)
            without.append(edit_distance(plain, case.real))
            with_.append(edit_distance(learned, case.real))
            aspects_without.append(aspects_right(plain, case.real))
            aspects_with.append(aspects_right(learned, case.real))
            # the user "sends" the real email: the learning arm records draft -> final
            (draft_id,) = record_drafts(
                scratch,
                identity=sender,
                recipient=case.recipient,
                subject=case.subject,
                intent=case.intent,
                previous_email=case.previous,
                agent_rules=learned_agent_rules,
                scoped_rules=scoped_used,
                rules=rules,
                rules_source="agent",
                profile=sender,
                shown=[DraftShown(learned, [], drafter.backend, None)],
            )
            with scratch.atomic():
                store.set_final(scratch, draft_id, text=case.real, source="sent", edit_distance=with_[-1], at=case.date)
            since_retrain += 1
        batches.append(
            {
                "emails": len(chunk),
                "first_date": chunk[0].date,
                "without": statistics.mean(without),
                "with": statistics.mean(with_),
                "drafts_with_learned_rules": used,
                "aspects_without": statistics.mean(aspects_without),
                "aspects_with": statistics.mean(aspects_with),
                "scoped_rules": len(rows),
                "retrain": retrain,
                "retrained_agent": learning_agent is not agent,
            }
        )
        log(
            f"{sender} batch {len(batches)}: without {batches[-1]['without']:.3f}, with {batches[-1]['with']:.3f} "
            f"({used} of {len(chunk)} drafts used {len(rows)} learned rule(s)"
            + (", a retrained agent" if learning_agent is not agent else "")
            + f"); {drafter.made} drafts made so far"
        )
    return {"sender": sender, "trained_agent": trained, "batches": batches}


def _aspects(batches: list[dict]) -> str:
    if "aspects_without" not in batches[0]:
        return "-"  # results of a run before the column existed
    before = statistics.mean(x["aspects_without"] for x in batches)
    after = statistics.mean(x["aspects_with"] for x in batches)
    return f"{before:.2f} -> {after:.2f}"


def _retrains(batches: list[dict]) -> str:
    done = [b["retrain"] for b in batches if b.get("retrain")]
    if not done:
        return "-"
    return "; ".join(
        f"{r['decision']}"
        + (f" {r['new_score']:.2f} vs {r['old_score']:.2f}" if r.get("new_score") is not None else "")
        + f" ({r['seconds']:.0f} s)"
        for r in done
    )


def report(results: list[dict], args, elapsed: float) -> str:
    lines = [
        "# Edit replay: how much of each draft the user still changes, with and without learning",
        "",
        f"Command: `python benchmarks/edit_replay.py {' '.join(sys.argv[1:])}` · backend `{args.backend}` · "
        f"{args.emails} newest emails per sender the agent was not trained on, batches of {args.batch} · "
        f"re-ask {'on' if args.reask else 'off'} · "
        f"retrain {f'after {args.retrain_after} emails' if args.retrain_after else 'off'} · {elapsed / 60:.1f} min",
        "",
        "Word edit distance from the draft to the real email (0 = sent as drafted, 1 = all rewritten), mean per "
        "batch; the first batch has nothing learned yet, so both arms share its drafts. Aspects right: the share of "
        "greeting, sign-off and length (within the rule check's bounds) the drafts get right against the real "
        "emails, the aspects the learned rules are about.",
        "",
        "| sender | agent | batch means without learning | with learning | drafts that used learned rules | "
        "last batch: with - without | batches 2+: with - without | aspects right, batches 2+: without -> with | "
        "retrains (gate: new vs current on the held-out edits) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    won_last = won_rest = 0
    for r in results:
        b = r["batches"]
        if len(b) < 2:
            continue
        last = b[-1]["with"] - b[-1]["without"]
        rest = statistics.mean(x["with"] for x in b[1:]) - statistics.mean(x["without"] for x in b[1:])
        won_last += last < 0
        won_rest += rest < 0
        lines.append(
            f"| {r['sender']} | {'trained' if r['trained_agent'] else 'base model'} | "
            + " / ".join(f"{x['without']:.3f}" for x in b)
            + " | "
            + " / ".join(f"{x['with']:.3f}" for x in b)
            + f" | {sum(x['drafts_with_learned_rules'] for x in b)} of {sum(x['emails'] for x in b[1:])}"
            + f" | {last:+.3f} | {rest:+.3f} | {_aspects(b[1:])} | {_retrains(b)} |"
        )
    lines += [
        "",
        f"Learning lowers the last batch's edit distance for **{won_last} of {len(results)} senders** "
        f"(target: 5 of 7), and the mean over the batches after the first for {won_rest} of {len(results)}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sender", action="append", help="Replay this sender (repeatable; default: the 7).")
    parser.add_argument(
        "--emails", type=int, default=12, help="The newest N emails per sender (with an intent, not trained on)."
    )
    parser.add_argument("--batch", type=int, default=3, help="Emails per batch (learning happens between batches).")
    parser.add_argument("--backend", default="local")
    parser.add_argument("--max-tokens", type=int, default=300)
    parser.add_argument(
        "--no-reask",
        dest="reask",
        action="store_false",
        help="Do not re-ask when a draft breaks a rule the check cannot repair (drafting does re-ask; off, a "
        "learned length rule hardly reaches the draft: the local model ignores 'about N words').",
    )
    parser.add_argument(
        "--retrain-after",
        type=int,
        default=0,
        help="Retrain the learning arm's agent (the app's retrain and gate) once this many new emails were sent "
        "since the last retrain (0: never; a retrain needs 4 pairs, 3 being held out for the gate).",
    )
    parser.add_argument("--retrain-steps", type=int, help="Steps per retrain (default: the retrain's own).")
    parser.add_argument("--adapters", type=Path, help="A folder of profiles, <sender>/agent (tiller eval's adapters/).")
    parser.add_argument(
        "--distill-intents",
        type=int,
        default=0,
        metavar="SPARE",
        help="First extract intents (with --backend) for the newest emails the agent was not trained on, "
        "--emails of them plus SPARE for those that fail or are skipped (writes intents to the database).",
    )
    parser.add_argument("--out", type=Path, default=Path("edit-replay"))
    parser.add_argument("--report-only", action="store_true", help="Write report.md from --out/results.json again.")
    args = parser.parse_args()
    if args.report_only:
        results = json.loads((args.out / "results.json").read_text())
        text = report(results, args, float(json.loads((args.out / "elapsed.json").read_text())["seconds"]))
        (args.out / "report.md").write_text(text)
        print(text)
        return

    from app import paths
    from app.store.db import open_database

    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    db = open_database()
    home = scratch_home(paths.database_path())
    scratch = open_database(home / "tiller.db")
    for table in ("draft_events", "drafts", "scoped_rules", "refused_matches", "retrains"):  # start from no edits
        scratch.execute(f"DELETE FROM {table}")
    drafter = Drafter(args.backend, args.out / "drafts.jsonl", args.max_tokens, args.reask)
    retrainer = ReplayRetrainer(home, args.retrain_after, args.retrain_steps, print) if args.retrain_after else None
    results = []
    for sender in args.sender or SEVEN:
        trained = trained_on(sender, args.adapters)
        if args.distill_intents:
            distill_intents(db, sender, len(trained) + args.emails + args.distill_intents, args.backend)
        cases = cases_for(db, sender, args.emails, exclude=trained)
        print(
            f"{sender}: {len(cases)} emails to replay, none of them among the {len(trained)} the agent was trained on"
        )
        if len(cases) < 2 * args.batch:
            print(f"{sender}: {len(cases)} emails with an intent, too few for two batches; skipped", flush=True)
            continue
        results.append(replay_sender(db, scratch, sender, cases, args.batch, drafter, args.adapters, print, retrainer))
        (args.out / "results.json").write_text(json.dumps(results, indent=2))
    elapsed = time.monotonic() - started
    (args.out / "elapsed.json").write_text(json.dumps({"seconds": elapsed}))
    text = report(results, args, elapsed)
    (args.out / "report.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
