"""The evaluation harness end to end: real agent (Gemma 270M + a trained LoRA) writing rules, a
loopback Claude drafting and judging, real Enron held-out mail, the report and its plots."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from agent_training.distill import Distillation, DistillConfig
from agent_training.evaluate import EvalConfig, Evaluation, bootstrap_interval, style_fidelity
from app import secrets
from app.backends.base import EndpointConfig, Finished, TextDelta
from app.backends.config import save_endpoint
from app.backends.registry import register
from app.rulecheck import check_draft
from tests.fakes import ScriptedProvider, scripted_claude
from tests.helpers import ANTHROPIC_TEST_KEY, KAY, run_import

QUIGLEY = "dutch.quigley@enron.com"


def claude_reply(user_text: str) -> str:
    if "<candidate_a>" in user_text:
        return "<closest>A</closest>"  # a judge biased to the first slot: both orders must cancel it out
    if any(
        k in user_text
        for k in (
            "Put the email",
            "<generic_email>",
            "first-person bullet",
            "Here is an email this person",
            "in that plain, professional style:",
        )
    ):
        return scripted_claude(user_text)  # distillation: intents, zero-shot emails, plain rewrites, R3 and R1 rules
    if "<intent>" not in user_text:  # the compose operation's re-ask after a broken rule
        return "Done.\n\nKay"
    intent = re.search(r"<intent>\s*(.*?)\s*</intent>", user_text, re.S).group(1)
    shots = user_text.count("<example_email>")
    return f"Hi,\n\n{intent}\n\n{'Thanks' if shots else 'Best regards'},\nKay"


@pytest.fixture
def two_senders(db, enron, anthropic_server):
    """Two senders' mail, distilled offline (measured rules) and, for the 10 newest emails each,
    through the loopback Claude (abstractive intents: what an evaluation needs)."""
    for folder in ("mann-k", "quigley-d"):
        run_import(db, enron / "maildir" / folder)
    anthropic_server.reply = claude_reply
    save_endpoint(db, EndpointConfig("claude", "anthropic", "claude-test", anthropic_server.url))
    secrets.set_key("claude", ANTHROPIC_TEST_KEY)
    for sender in (KAY, QUIGLEY):
        for _ in Distillation(db, DistillConfig(sender=sender)).run():
            pass
        for _ in Distillation(
            db, DistillConfig(backend="claude", sender=sender, limit=10, newest_first=True, consent_given_now=True)
        ).run():
            pass
    return db, anthropic_server


def test_extractive_intents_are_refused_and_evaluation_intents_never_carry_the_real_text(db, enron, two_senders):
    from agent_training.evaluate import ExtractiveIntents, held_out_cases
    from agent_training.parsing import copied_run

    for sender in (KAY, QUIGLEY):
        cases, _ = held_out_cases(db, sender, limit=10, seed=0)
        assert cases
        assert all(copied_run(c.intent, c.real, 8) is None for c in cases)
    run_import(db, enron / "maildir" / "williams-w3")
    for _ in Distillation(db, DistillConfig(sender="bill.williams@enron.com")).run():  # offline only
        pass
    with pytest.raises(ExtractiveIntents, match="own sentences.*tiller distill --backend local"):
        held_out_cases(db, "bill.williams@enron.com", limit=10, seed=0)


def test_judge_and_few_shot_need_consent_to_send_real_mail(two_senders, tmp_path):
    db, server = two_senders
    # the fixture's distillation recorded consent for "claude"; another endpoint has none
    save_endpoint(db, EndpointConfig("other claude", "anthropic", "claude-test", server.url))
    secrets.set_key("other claude", ANTHROPIC_TEST_KEY)
    config = EvalConfig(senders=[KAY], backend="other claude", small_backend="claude", out_dir=tmp_path / "r")
    with pytest.raises(PermissionError, match="i-consent-to-send-sent-mail"):
        Evaluation(db, config)
    metrics_only = EvalConfig(
        senders=[KAY],
        backend="other claude",
        small_backend="claude",
        judge_pairs=False,
        methods=("agent", "large_zero_shot"),
        out_dir=tmp_path / "r",
    )
    asked = len(server.requests)
    Evaluation(db, metrics_only)  # nothing real leaves the machine: allowed
    assert len(server.requests) == asked


def _brief_training(tiny_base: dict) -> dict:
    """The reproduction tests' trainer options: one small step of the tiny Gemma 3 per adapter."""
    return dict(batch_size=2, rank=4, max_length=320, checkpoint_every=100, warmup_steps=0, **tiny_base)


@pytest.mark.slow
def test_reproduce_trains_the_baselines_and_reports_every_method_for_two_senders(
    two_senders, kay_agent, tiny_base, tmp_path
):
    """``tiller eval --reproduce``: R1 rules distilled, the naive fine-tune and the R1 agent trained
    per sender on emails older than every held-out one, then every method evaluated."""
    from agent_training.eval_methods import METHODS
    from agent_training.evaluate import held_out_cases
    from agent_training.reproduce import ReproduceConfig, Reproduction
    from app.agent.profiles import profile_slug

    db, server = two_senders
    _, agent_dir, _ = kay_agent
    out = tmp_path / "report"
    # the small model's zero-shot drafts come from another endpoint (the same model as M_L is left out)
    save_endpoint(db, EndpointConfig("claude small", "anthropic", "claude-test", server.url))
    secrets.set_key("claude small", ANTHROPIC_TEST_KEY)

    def reproduction() -> Reproduction:
        config = EvalConfig(
            senders=[KAY, QUIGLEY],
            backend="claude",
            small_backend="claude small",
            limit=2,
            seed=7,
            out_dir=out,
            # one trained agent serves both senders here (training a second costs minutes); the
            # permutation matrix is still computed from real drafts of each agent/sender pair
            agents={KAY: agent_dir, QUIGLEY: agent_dir},
            consent_given_now=True,
            naive_max_tokens=48,  # the 1-step naive model rarely stops by itself: its drafts cost seconds each
        )
        # the baselines on the tiny Gemma 3: this checks what is trained on which emails and reported,
        # not how well (that is `tiller eval --reproduce` on the real model: docs/benchmarks)
        return Reproduction(
            db,
            ReproduceConfig(
                config, distill=10, distill_backend="claude", steps=1, train_options=_brief_training(tiny_base)
            ),
        )

    job = reproduction()
    events = list(job.run())
    trained = {f"{m}:{s}" for m in ("naive_finetune", "r1_agent") for s in (KAY, QUIGLEY)}
    assert set(job.trained) == trained
    assert all(r["status"] == "done" for r in job.trained.values())
    assert {"drafting", "judging", "report", "distill dutch.quigley", "train r1_agent kay.mann"} <= {
        e.stage for e in events
    }
    # every training example is older than every held-out email (the same split the evaluation holds out)
    for sender in (KAY, QUIGLEY):
        held, _ = held_out_cases(db, sender, 2, 7)
        first_held = min(c.date for c in held)
        for method in ("agent", "naive_finetune", "r1_agent"):
            rows = [
                json.loads(line)
                for line in (out / "datasets" / profile_slug(sender) / f"{method}.jsonl").read_text().splitlines()
            ]
            assert rows
            assert all(r["meta"]["date"] < first_held and r["meta"]["sender"] == sender for r in rows)
            assert not {r["meta"]["message_id"] for r in rows} & {c.message_id for c in held}
        r1 = (out / "datasets" / profile_slug(sender) / "r1_agent.jsonl").read_text()
        assert "Be terse." in r1 and "Keep it short." not in r1  # R1 targets, not R3's
    results = json.loads((out / "results.json").read_text())
    assert set(results["metrics"]) == set(METHODS)
    # the first-slot bias of the judge cancels out exactly: every pair scores 0.5
    for other in [m for m in METHODS if m != "agent"]:
        win = results["agent_win_rate"][other]
        assert win["n"] == 4
        assert win["win_rate"] == 0.5
        assert win["low"] == win["high"] == 0.5
    # the real_rules ceiling drafts with the rules distilled from the held-out email itself
    real_rules = [
        d
        for d in map(json.loads, (out / "drafts.jsonl").read_text().splitlines())
        if d["key"].startswith("draft|compose.v1|real_rules|")
    ]
    # (the scripted R3 rules plus the measured lines; "Keep it short." is dropped at distillation where the
    # held-out email is longer than the zero-shot one, and "Skip the greeting." gives way to the measured line)
    assert len(real_rules) == 4
    assert all(d["rules"] for d in real_rules)
    assert sum("Keep it short." in d["rules"] for d in real_rules) >= 2
    assert results["stages"]["score"] == "authorship"
    assert "rules_gap" in results["stages"]
    report_text = (out / "report.md").read_text()
    for needle in ("| paper |", "0.841", "Where the agent gains or loses", "## Runtime", "tiller eval --reproduce"):
        assert needle in report_text, needle
    assert all(0 <= m["similarity"] <= 1.0001 for m in results["metrics"].values())
    # few-shot prompts carried real emails; the scripted model signs them "Thanks" (Kay's own sign-off)
    drafts = [json.loads(line) for line in (out / "drafts.jsonl").read_text().splitlines()]
    few_shot = [d for d in drafts if d["key"].startswith("draft|compose.v1|large_few_shot")]
    assert len(few_shot) == 4
    assert all("Thanks," in d["text"] for d in few_shot)
    agent_drafts = [d for d in drafts if d["key"].startswith("draft|compose.v1|agent")]
    assert len(agent_drafts) == 8 and all(d["rules"] for d in agent_drafts)  # 4 own + 4 permuted
    naive = [d for d in drafts if d["key"].startswith("draft|compose.v1|naive_finetune")]
    assert len(naive) == 4
    assert all(d["model"].startswith("agent:naive_finetune:") for d in naive)
    # the drafts scored are the app's: checked against the agent's rules and repaired, the original kept
    for d in agent_drafts:
        assert d["original"].startswith("Hi,")
        assert d["checks"]
        after, before = check_draft(d["text"], d["rules"]), check_draft(d["original"], d["rules"])
        assert len(after.broken) <= len(before.broken)
    compliance = results["rule_compliance"]["agent"]
    assert compliance["drafts"] == 4
    assert compliance["kept_after"] >= compliance["kept_before"]
    assert set(results["rule_compliance"]) == {"agent", "r1_agent", "real_rules"}  # zero-shot ones have no rules
    # the judge-free authorship score: calibrated per sender on real held-out mail, for every method
    author = results["authorship"]
    assert {KAY, QUIGLEY} <= set(author["calibration"])
    assert set(author["methods"]) == set(results["metrics"])
    for c in (author["calibration"][KAY], author["calibration"][QUIGLEY]):
        assert c["ceiling"] > c["floor"]
        assert c["own_n"] > 5
    assert all(a["n"] == 4 for a in author["methods"].values())
    heat = results["permutation"]
    assert len(heat["authorship"]) == 2
    assert 0 <= heat["authorship_diagonal_wins"] <= 2
    assert heat["senders"] == [KAY, QUIGLEY]
    assert len(heat["normalized"]) == 2
    assert max(max(row) for row in heat["normalized"]) == pytest.approx(1.0)
    report = (out / "report.md").read_text()
    for needle in (
        "claude (anthropic, claude-test)",
        "Judge:",
        "kept after repair",
        "## Sender permutation",
        "similarity.png",
        "permutation.png",
        "95% CI",
        str(agent_dir),
        "calibrated authorship",
    ):
        assert needle in report, needle
    # paired differences against M_L zero-shot, on the same emails, for every metric and method
    paired = results["paired"]
    assert set(paired) == set(METHODS) - {"large_zero_shot"}
    for metrics in paired.values():
        assert {"similarity", "content_fidelity", "voice_match", "authorship"} <= set(metrics)
        for d in metrics.values():
            assert d["n"] == 4
            assert d["low"] <= d["mean"] <= d["high"]
            assert d["detectable"] >= 0
    assert all(0 <= m["content_fidelity"] <= 1 and 0 <= m["voice_match"] <= 1 for m in results["metrics"].values())
    assert "## Paired differences against M_L zero-shot" in report
    assert "| content_fidelity |" in report
    # the agent was given (one for both senders) and has no voice stage; the examples method needs M_L
    # on this computer: both are said to be not run, and why
    assert "agent_voice not run: no voice stage trained for" in report
    assert results["voice_stage"] is None
    assert "agent_examples not run" in report
    assert "claude is anthropic" in report
    assert (out / "similarity.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "permutation.png").stat().st_size > 5000
    # a rerun trains nothing and asks no model anything
    asked = len(server.requests)
    again = reproduction()
    list(again.run())
    assert set(again.trained) == trained
    assert all(r.get("already") for r in again.trained.values())
    assert len(server.requests) == asked


def test_voice_match_and_paired_differences():
    from agent_training.evaluate import paired_differences, voice_match

    real = "sylvia - contract's ready for legal. comments by fri pls.\nkay"
    assert voice_match(real, real) == pytest.approx(1.0)
    generic = "Dear Sylvia,\n\nI hope this email finds you well. The contract is ready for legal review.\n\nBest regards,\nKay"
    assert voice_match(generic, real) < voice_match("sylvia - contract ready for legal, comments fri.\nkay", real)
    per_method = {
        "large_zero_shot": {"similarity": [0.5, 0.5, 0.5, 0.5]},
        "agent": {"similarity": [0.6, 0.7, 0.6, 0.7]},
    }
    d = paired_differences(per_method, ["agent", "large_zero_shot"], seed=0)["agent"]["similarity"]
    assert d["mean"] == pytest.approx(0.15)
    assert d["better"] == 4
    assert 0.099 <= d["low"] <= d["high"] <= 0.201
    assert d["detectable"] == pytest.approx(2.8 * np.std([0.1, 0.2, 0.1, 0.2], ddof=1) / 2)
    assert paired_differences(per_method, ["agent"], seed=0) == {}  # no baseline run: nothing to pair with


def test_style_fidelity_and_interval():
    real = "Sylvia,\n\nThe NG contract is ready for legal review. I'll send it over.\n\nKay"
    same = style_fidelity(real, real)
    assert same["length_error"] == 0
    assert same["greeting_match"] == 1
    assert same["signoff_match"] == 1
    other = style_fidelity(
        "Dear Ms. Smith,\n\nI am pleased to inform you that the contract is ready.\n\nBest regards,\nKay", real
    )
    assert other["greeting_match"] == 0
    assert other["length_error"] > 0
    assert other["contraction_rate_diff"] > 0
    # measured on the email the user would send: a preamble and a subject line are not its first line
    wrapped = style_fidelity(
        "Here is the email:\n\nSubject: RE: NG contract\n\nDear Sylvia,\n\nThe contract is ready."
        "\n\nBest regards,\nKay",
        real,
    )
    assert wrapped["greeting_match"] == 0  # "Dear Sylvia," is not Kay's "Sylvia,"
    assert style_fidelity("Subject: NG contract\n\n" + real, real)["greeting_match"] == 1
    low, high = bootstrap_interval([1, 0, 1, 1, 0.5, 1, 0, 1], seed=0)
    assert 0 <= low < 0.7 < high <= 1


def test_the_report_counts_the_senders_the_agent_wins():
    from agent_training.eval_report import senders_won

    per_sender = {
        "a@x|agent": {"authorship": 0.5},
        "a@x|large_zero_shot": {"authorship": 0.2},
        "b@x|agent": {"authorship": 0.1},
        "b@x|large_zero_shot": {"authorship": 0.3},
        "c@x|agent": {"authorship": 0.4},
        "c@x|large_zero_shot": {"authorship": 0.4},  # a tie is not a win
    }
    assert senders_won(per_sender) == [
        "",
        "- The agent's mean authorship beats large_zero_shot for **1 of 3 senders** (a).",
    ]


def _results(scores: dict[str, list[float]], fidelity: dict[str, float], invented: dict[str, float] | None = None):
    """An evaluation's results from per-email authorship (7 senders, 2 emails each, in order) and a
    content fidelity per method, through the same paired statistics the evaluation uses."""
    from agent_training.evaluate import paired_differences

    senders = [f"s{i}@x" for i in range(7)]
    methods = list(scores)
    per_method = {m: {"authorship": v, "content_fidelity": [fidelity[m]] * len(v)} for m, v in scores.items()}
    return {
        "config": {"senders": senders},
        "metrics": {
            m: {
                "authorship": float(np.mean(v)),
                "content_fidelity": fidelity[m],
                "invented": (invented or {}).get(m, 0.0),
            }
            for m, v in scores.items()
        },
        "metrics_per_sender": {
            f"{s}|{m}": {"authorship": float(np.mean(v[2 * i : 2 * i + 2]))}
            for m, v in scores.items()
            for i, s in enumerate(senders)
        },
        "paired": paired_differences(per_method, methods, seed=0),
        "paired_vs_agent": paired_differences(per_method, methods, seed=0, baseline="agent", only=("agent_voice",)),
    }


def test_the_decision_names_the_pipeline_that_meets_every_target_and_otherwise_keeps_the_agent():
    """Issue 2/5: "the pipeline the app uses by default is whichever wins"; if the voice stage loses
    it stays off. The targets are checked on the paired statistics, per sender and per pipeline."""
    from agent_training.eval_report import decide, decision_lines

    rng = np.random.default_rng(0)
    zero = list(rng.uniform(0.2, 0.4, 14))
    agent = [z + 0.02 * (-1) ** i for i, z in enumerate(zero)]  # no better than M_L zero-shot
    voice = [a + 0.3 + rng.uniform(-0.02, 0.02) for a in agent]  # far better, on every email
    naive = [v + 0.05 for v in voice]
    fidelity = {"large_zero_shot": 0.8, "agent": 0.8, "agent_voice": 0.78, "naive_finetune": 0.4}
    scores = {"large_zero_shot": zero, "agent": agent, "agent_voice": voice, "naive_finetune": naive}
    decision = decide(_results(scores, fidelity))
    assert decision["default"] == "agent_voice"
    assert decision["why"] == "agent_voice meets every target"
    missed = [c["target"] for c in decision["targets"]["agent"] if not c["met"]]
    assert missed == [
        "authorship above M_L zero-shot for 6+ of 7 senders",
        "paired authorship difference, 95% interval above 0",
        "authorship within 0.1 of the naive fine-tune",
    ]
    assert decision["add_ons"]["agent_voice"]["on"]
    # the same voice gain, but it invents a date in some drafts: no pipeline meets every target, and
    # the voice stage is on for its measured gain over the agent alone
    decision = decide(_results(scores, fidelity, invented={"agent_voice": 0.1}))
    assert decision["default"] == "agent_voice"
    assert decision["why"].startswith("no pipeline meets every target")
    # a voice stage that drops content (0.8 -> 0.6) is off, however much it sounds like the user
    decision = decide(_results(scores, {**fidelity, "agent_voice": 0.6}))
    assert decision["default"] == "agent"
    assert not decision["add_ons"]["agent_voice"]["on"]
    text = "\n".join(decision_lines(decision))
    assert (
        "| content fidelity within 0.05 of M_L zero-shot | met: 0.800 vs 0.800 | **missed**: 0.600 vs 0.800 |" in text
    )
    assert "Default: **agent**: no pipeline meets every target" in text
    # without M_L zero-shot there is nothing to decide against
    assert decide({"metrics": {"agent": {"authorship": 0.5}}}) is None


def test_a_method_named_twice_runs_once():
    # `--method agent --method agent` doubled the agent's drafts in every table and narrowed its
    # bootstrap interval (seen in the 7-sender reproduction of 2026-12-02)
    config = EvalConfig(senders=[KAY, KAY], methods=("agent", "large_zero_shot", "agent"))
    assert config.methods == ("agent", "large_zero_shot")
    assert config.senders == [KAY]


class EchoOnThisComputer(ScriptedProvider):
    """The loopback Claude's answers, as a model on this computer (leaves_machine False): what the
    own-examples method needs, and it records every request."""

    id = "echo-local"
    label = "answers like claude_reply, on this computer (tests)"

    def stream_once(self, request, options, cancel):
        self.requests.append(request)
        text = claude_reply(str(request.messages[-1].content))
        for piece in re.findall(r"\S+\s*|\s+", text):
            yield TextDelta(piece)
        yield Finished("stop", model="echo")


register(EchoOnThisComputer)


@pytest.mark.slow  # trains two adapters and runs the voice stage in llama.cpp
def test_reproduce_trains_the_voice_stage_and_measures_it_and_own_examples_on_a_local_model(
    two_senders, tiny_base, tmp_path
):
    """Issue 2/5: --reproduce trains the voice stage on (plain rewrite -> real email) pairs older than
    every held-out email; agent_voice runs that stage on the agent's very M_L draft (replayed, not
    asked again), and agent_examples gives M_L the sender's own nearest emails, only on this computer."""
    from agent_training.evaluate import held_out_cases
    from agent_training.reproduce import ReproduceConfig, Reproduction
    from app.agent.profiles import VOICE_DIR, profile_at, profile_slug

    db, server = two_senders
    save_endpoint(db, EndpointConfig("echo", "echo-local", "echo"))
    EchoOnThisComputer.reset()
    out = tmp_path / "report"
    config = EvalConfig(
        senders=[KAY],
        backend="echo",
        limit=2,
        seed=7,
        out_dir=out,
        methods=("agent", "agent_voice", "agent_examples", "large_zero_shot"),
        permutation=False,
        judge_pairs=False,
    )
    # on the tiny Gemma 3: which pairs train what, and what is measured, not how well
    options = _brief_training(tiny_base)
    job = Reproduction(
        db,
        ReproduceConfig(config, distill=10, distill_backend="claude", steps=1, train_options=options, voice_emails=4),
    )
    list(job.run())
    assert set(job.trained) == {f"agent:{KAY}", f"voice:{KAY}"}  # nothing else was asked for
    agent_dir = out / "adapters" / profile_slug(KAY) / "agent"
    assert profile_at(agent_dir, KAY).voice_adapter == agent_dir / VOICE_DIR / "adapter.gguf"
    held, _ = held_out_cases(db, KAY, 2, 7)
    rows = [json.loads(x) for x in (out / "datasets" / profile_slug(KAY) / "voice.jsonl").read_text().splitlines()]
    # the plain rewrites (the loopback model's "Dear colleague, ... <the email>") pass the content guard
    first_held = min(c.date for c in held)
    assert rows, ([r["meta"]["date"] for r in rows], first_held)
    assert all(r["meta"]["date"] < first_held for r in rows), ([r["meta"]["date"] for r in rows], first_held)
    assert all("Dear colleague," in r["messages"][0]["content"] for r in rows)
    # --voice-emails 4: four older emails, not distilled, said plainly for the voice stage alone
    older = [r for r in rows if r["meta"].get("voice_only")]
    assert len(job.voice_only_ids[KAY]) == 4
    assert 0 < len(older) <= 4
    assert {r["meta"]["message_id"] for r in older} <= set(job.voice_only_ids[KAY])
    assert not db.execute(  # the fixture's offline (extractive) intents cover every email: no other
        f"SELECT 1 FROM intents WHERE source NOT LIKE 'offline|%' AND message_id IN ({','.join('?' * 4)})",
        list(job.voice_only_ids[KAY]),
    ).fetchall()
    assert "--voice-emails 4" in json.loads((out / "results.json").read_text())["command"]
    drafts = {
        d["key"].split("|")[2] + "|" + d["key"].split("|")[-1]: d
        for d in map(json.loads, (out / "drafts.jsonl").read_text().splitlines())
    }
    for case in held:
        agent, voiced = drafts[f"agent|{case.message_id}"], drafts[f"agent_voice|{case.message_id}"]
        # the voice stage rewrote the agent's own first draft, with the agent's rules
        assert voiced["voice"]["draft"] == agent["original"]
        assert voiced["rules"] == agent["rules"]
        examples = drafts[f"agent_examples|{case.message_id}"]
        assert examples["rules"] == agent["rules"]
    # M_L was asked for agent, agent_examples and large_zero_shot (and re-asks), never for agent_voice
    prompts = [str(r.messages[-1].content) for r in EchoOnThisComputer.requests]
    with_examples = [p for p in prompts if "<example_email>" in p]
    assert len(with_examples) >= 2
    assert all(p.count("<example_email>") == 3 for p in with_examples)
    assert sum("<intent>" in p for p in prompts) == 3 * len(held)
    results = json.loads((out / "results.json").read_text())
    assert {"agent_voice", "agent_examples"} <= set(results["paired"])
    assert results["voice_stage"]["rewrites"] == len(held)
    # the voice stage and the own examples against the agent alone, and the decision they feed
    assert set(results["paired_vs_agent"]) == {"agent_voice", "agent_examples"}
    assert set(results["decision"]["targets"]) == {"agent", "agent_voice", "agent_examples"}
    assert "## Decision: which pipeline drafts by default" in (out / "report.md").read_text()
    EchoOnThisComputer.reset()
