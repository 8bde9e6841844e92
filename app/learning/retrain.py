"""Retraining the agent from the user's edits, in the background, behind a gate.

When ``RETRAIN_AFTER`` new (draft, final) pairs have come in since the profile's last retrain (or a
forgotten pair was in its training data), the app starts ``python -m agent_training retrain`` as a
process of its own (``start_background``): drafting goes on with the current adapter meanwhile.
The trainer (agent_training/retrain.py) trains a candidate from the current adapter on the
distilled examples plus one corrected example per pair, scores both adapters with :func:`score`
on the newest pairs it held out, and puts the candidate in place only if it does no worse; the
outcome is a row in ``retrains`` (``tiller edits`` shows it).

The score is judge-free: for each held-out pair, on each aspect the user's final email has a
measured rule for (greeting, sign-off, contractions, lower case, exclamation marks, length), the
agent earns 1 if it gave a rule on that aspect and the final email keeps it. Free-form rules earn
nothing and cost nothing.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database

from app import paths
from app.agent.profiles import agents_dir, profile_slug
from app.learning.scoped import rule_status, rules_by_aspect
from app.measured_style import measure, style_rules
from app.rulecheck import KEPT
from app.store import drafts as store
from app.store.locks import StoreLock
from app.store.settings import get_setting, set_setting

# New pairs before a retrain, measured (benchmarks/retrain_gate.py and the edit replay, README
# "Learning from your edits"): a retrain costs 60-80 s of CPU on 2 cores, and the gate tells
# adapters apart only when they differ by 0.27 (3 held out) to 0.23 (4 held out) while retrains
# differ by a median 0.07, so waiting for 20 pairs buys the gate little and makes learning wait
# twice as long. At 10 the gate still catches a regression as large as the constructed one; it
# sharpens as the profile's pairs grow (20% of all of them are held out).
RETRAIN_AFTER = 10
HELD_OUT_SHARE = 0.2
MIN_HELD_OUT = 3
SCORED_ASPECTS = ("greeting", "signoff", "contractions", "case", "punctuation", "length")
DUE_SETTING = "learning.retrain_due"  # profiles whose adapter learned from a pair since forgotten


@dataclass
class PairScore:
    earned: int
    possible: int


def pair_score(agent_rules: list[str], final: str) -> PairScore:
    target = rules_by_aspect(style_rules(measure(final)))
    given = rules_by_aspect(agent_rules)
    possible = earned = 0
    for aspect in SCORED_ASPECTS:
        if aspect not in target:
            continue
        possible += 1
        rule = given.get(aspect)
        if rule is None:
            continue
        earned += rule_status(final, rule) == KEPT
    return PairScore(earned, possible)


def pair_share(agent_rules: list[str], final: str) -> float | None:
    """The share of the final email's measured aspects the rules got right (None: it has none)."""
    s = pair_score(agent_rules, final)
    return s.earned / s.possible if s.possible else None


def score(rules_for, pairs: list[store.DraftRow]) -> float:
    """Mean share of the aspects each final email has that the agent's rules (``rules_for(pair)``)
    got right; see the module docstring."""
    shares = [share for pair in pairs if (share := pair_share(rules_for(pair), pair.final_text or "")) is not None]
    return sum(shares) / len(shares) if shares else 0.0


def held_out_count(pairs: int) -> int:
    return max(MIN_HELD_OUT, round(pairs * HELD_OUT_SHARE))


def split_held_out(pairs: list[store.DraftRow]) -> tuple[list[store.DraftRow], list[store.DraftRow]]:
    """(train, held out): the newest ``HELD_OUT_SHARE`` (at least ``MIN_HELD_OUT``) are held out,
    pairs being oldest first."""
    n = held_out_count(len(pairs))
    if len(pairs) <= n:
        return [], pairs
    return pairs[:-n], pairs[-n:]


def profile_key(identity: str | None) -> str:
    return identity.lower() if identity else "all"


def new_pairs(db: Database, identity: str | None) -> int:
    return len(store.learning_pairs(db, identity)) - store.pairs_at_last_retrain(db, profile_key(identity))


def due(db: Database, identity: str | None, threshold: int = RETRAIN_AFTER) -> bool:
    return new_pairs(db, identity) >= threshold or profile_key(identity) in get_setting(db, DUE_SETTING, [])


def mark_due(db: Database, identity: str | None) -> None:
    """A forgotten pair may be in the adapter: the next check retrains without it."""
    key = profile_key(identity)
    pending = get_setting(db, DUE_SETTING, [])
    if key not in pending and any(r.decision == "kept_new" for r in store.retrains(db, key)):
        set_setting(db, DUE_SETTING, pending + [key])


def clear_due(db: Database, identity: str | None) -> None:
    set_setting(db, DUE_SETTING, [k for k in get_setting(db, DUE_SETTING, []) if k != profile_key(identity)])


def retrain_arguments(
    identity: str | None,
    steps: int | None = None,
    *,
    control_stdin: bool = False,
    rules_backend: str | None = None,
    consent_now: bool = False,
) -> list[str]:
    """Arguments for ``python -m agent_training``."""
    args = ["retrain", "--json"] + (["--control-stdin"] if control_stdin else [])
    if rules_backend:
        args += ["--rules-backend", rules_backend] + (["--i-consent-to-send-sent-mail"] if consent_now else [])
    if identity:
        args += ["--sender", identity]
    if steps:
        args += ["--steps", str(steps)]
    return args


def candidate_dir(identity: str | None) -> Path:
    """Where a retrain trains its candidate adapter (and keeps its checkpoint)."""
    return agents_dir() / f".candidate-{profile_slug(identity)}"


def dataset_path(identity: str | None) -> Path:
    """The retrain's dataset: the user's edited text, kept only until the retrain ends."""
    return agents_dir() / f".retrain-{profile_slug(identity)}.jsonl"


def forget_training_copies(identity: str | None) -> None:
    """An unfinished retrain's dataset and checkpoint hold the user's edited text: forgetting a
    draft removes them (the next retrain starts over without it)."""
    import shutil

    dataset_path(identity).unlink(missing_ok=True)
    shutil.rmtree(candidate_dir(identity), ignore_errors=True)


def log_path(identity: str | None) -> Path:
    return paths.logs_dir() / f"retrain-{profile_slug(identity)}.log"


def retrain_lock(identity: str | None) -> StoreLock:
    """Held by the retraining process for its whole run (the OS drops it if the process dies)."""
    return StoreLock(paths.home() / "locks" / f"retrain-{profile_slug(identity)}.lock")


def running(identity: str | None) -> bool:
    lock = retrain_lock(identity)
    if lock.try_acquire():
        lock.release()
        return False
    return True


def start_background(db: Database, identity: str | None, *, threshold: int = RETRAIN_AFTER) -> subprocess.Popen | None:
    """Start a retrain when one is due and none is running; the process, else None. Its output
    goes to :func:`log_path`; the outcome lands in the ``retrains`` table."""
    if not due(db, identity, threshold) or running(identity):
        return None
    from app.agent.trainer import spawn

    return spawn(retrain_arguments(identity), attach="detached", log=log_path(identity))
