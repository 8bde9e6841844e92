"""The first-run path: import -> build training data -> train -> compose, as data the GUI renders.

Each step says what it does, how long it takes on a 2-core laptop (the figures measured for the
README), what, if anything, leaves the computer, and whether it is done, read from the store.
Qt-free, so the start page only draws it and a test can check it without a window.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.store.summary import setup_counts

# The paper's distillation with the embedded instruct model, as the app offers it: the chosen voice's
# newest emails, at the rate measured on 2 cores (16.9 s per email over 100 on 2026-12-02, benchmarks/local_distill.py).
LOCAL_DISTILL_EMAILS = 100
LOCAL_DISTILL_S_PER_EMAIL = 17


@dataclass(frozen=True)
class Step:
    key: str  # the page that does it: import, training, training, compose
    title: str
    does: str
    takes: str
    leaves: str
    done: bool
    status: str


def first_run_steps(db) -> list[Step]:
    from app.agent.profiles import list_profiles
    from app.hardware import training_time_estimate

    counts = setup_counts(db)
    messages, identities, intents, r3 = counts.messages, counts.identities, counts.intents, counts.llm_rules
    trained = [p for p in list_profiles() if p.trained]
    return [
        Step(
            "import",
            "1. Import your sent mail",
            "Reads a Maildir, mbox or .eml folder (or an IMAP account) into Tiller's database on this computer; "
            "a message it cannot read is skipped and counted, never lost.",
            "About 10 s for the 8,900-message sample.",
            "Nothing. (IMAP: Tiller talks to your own mail server only.)",
            messages > 0,
            f"{messages:,} messages, {identities} sending identities" if messages else "No mail yet.",
        ),
        Step(
            "training",
            "2. Build training data",
            "Turns each email you sent into an intent (what it says) and the style rules it shows: measured rules "
            "in seconds, then the paper's method with the local model (intent, zero-shot email, R3 rules).",
            f"Measured rules: under 20 s. The local model: about {LOCAL_DISTILL_S_PER_EMAIL} s per email "
            f"({LOCAL_DISTILL_EMAILS * LOCAL_DISTILL_S_PER_EMAIL // 60} min for the newest {LOCAL_DISTILL_EMAILS}), in the background.",
            "Nothing, with the local model. A cloud model only after you consent; it then receives your sent mail.",
            intents > 0,
            f"{intents:,} emails with an intent, {r3:,} with model-distilled rules" if intents else "Not yet.",
        ),
        Step(
            "training",
            "3. Train your preference agent",
            "Fine-tunes the small agent (Gemma 3 270M, LoRA) to turn an intent into your rules.",
            training_time_estimate(60) + "; it can be cancelled and resumes.",
            "Nothing.",
            bool(trained),
            ", ".join(p.name for p in trained[:3]) + (" …" if len(trained) > 3 else "") if trained else "Not yet.",
        ),
        Step(
            "compose",
            "4. Compose",
            "Your intent -> the agent's rules (on this computer) -> a draft by the large model you pick, checked "
            "against every rule.",
            "About 20 s with the embedded model; a few seconds with a cloud model.",
            "With the embedded model, nothing. With a cloud model, the intent and the rules only (see Privacy ledger).",
            False,
            "Ready." if trained else "Works now with generic rules; better after step 3.",
        ),
    ]


@dataclass(frozen=True)
class Readiness:
    """What is ready for one identity: what the app's header shows, one chip each."""

    address: str | None  # None: all the user's identities together
    emails: int  # sent emails of theirs that can train the agent
    with_intents: int  # of those, with training data (an intent)
    agent: str | None  # "trained 2026-12-05, 60 steps on gemma3-270m" (None: not trained)
    agent_is_shared: bool  # the agent is the profile of all addresses, not this one's own
    voice: str  # "on" | "off" | "not trained"
    backend: str  # the default large model


def readiness(db, address: str | None) -> Readiness | None:
    """What is ready for ``address`` (None: all identities); None when there is no identity yet."""
    from app.agent.profiles import find_profile
    from app.backends.config import default_endpoint_name
    from app.mail.identity import active_identities
    from app.store.summary import identity_data_counts

    addresses = [address] if address else active_identities(db)
    if not addresses:
        return None
    counts = [identity_data_counts(db, a) for a in addresses]
    emails, with_intents = sum(c[0] for c in counts), sum(c[1] for c in counts)
    profile = find_profile(address)
    agent = None
    if profile.trained and profile.record is not None:
        record = profile.record
        when = (record.finished_at or "")[:10]
        base = profile.base_model.stem if profile.base_model else "the embedded base"
        agent = f"trained {when}, {record.steps or '?'} steps on {base}".replace("trained ,", "trained,")
    voice = "not trained" if profile.voice_adapter is None else ("on" if profile.voice_on else "off")
    return Readiness(
        address,
        emails,
        with_intents,
        agent,
        bool(address) and profile.name != address,
        voice,
        default_endpoint_name(db),
    )
