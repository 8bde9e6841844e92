"""Distillation: tagged-output parsing, measured style rules on real Enron mail, the time split,
offline and cloud runs (resumable, traceable, consent-gated), and a run through the real
llama.cpp OpenAI-compatible server."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import replace

import pytest

from agent_training.dataset import Example, export, split_by_time
from agent_training.distill import ConsentRequired, Distillation, DistillConfig
from agent_training.parsing import MalformedAnswer, bullets, extract_tag
from app import secrets
from app.backends.base import EndpointConfig
from app.backends.config import save_endpoint
from app.backends.ledger import Ledger
from app.measured_style import measure, style_rules
from tests.fakes import echoing_claude, scripted_claude
from tests.helpers import ANTHROPIC_TEST_KEY, run_import

KAY = "kay.mann@enron.com"


def run(job):
    for _ in job.run():
        pass
    return job.counts


# -- parsing ---------------------------------------------------------------------------------------


def test_extract_tag_is_robust():
    assert extract_tag("<scratchpad>x</scratchpad>\n<intent>\n- a\n</intent>", "intent") == "- a"
    assert extract_tag("```xml\n<INTENT>- b</Intent>\n```", "intent") == "- b"
    assert extract_tag("<intent>- draft</intent> then <intent>- final</intent>", "intent") == "- final"
    assert extract_tag("thinking…\n<rules>\n- one\n- two", "rules") == "- one\n- two"  # unclosed at the end
    assert extract_tag("<rules>- one\n<thinking>late</thinking>", "rules") == "- one"
    for broken in ("no tags at all", "<intent>   </intent>", "<intent></intent><scratchpad>x</scratchpad>"):
        with pytest.raises(MalformedAnswer) as info:
            extract_tag(broken, "intent")
        assert info.value.raw == broken
    assert extract_tag("nothing", "thinking", required=False) is None


def test_bullets():
    assert bullets("- a\n* b\n1. c\n2) d\n• e") == ["a", "b", "c", "d", "e"]
    assert bullets("- first line\n  continues here\n- second") == ["first line continues here", "second"]
    assert bullets("plain line") == ["plain line"]


# -- measured style on real mail --------------------------------------------------------------------


@pytest.fixture
def kay_db(db, enron):
    run_import(db, enron / "maildir" / "mann-k")
    return db


def _own(db, pattern):
    rows = db.execute("SELECT own_text, signature FROM messages WHERE own_text LIKE ?", [pattern]).fetchall()
    assert len(rows) == 1, pattern
    return rows[0]


def test_measured_style_of_real_messages(kay_db):
    text, sig = _own(kay_db, "KC,%My suggestion re this topic%")
    p = measure(text, sig or "")
    assert (p.greeting, p.greeting_name) == ("KC,", "KC")
    assert (p.signoff, p.signature_name) == ("Thanks,", "Kay")
    assert p.word_count == 23
    assert p.paragraphs == 4
    assert p.contractions == []
    assert p.exclamations == 0
    rules = style_rules(p)
    assert 'Sign-off: "Thanks," then "Kay" on its own line.' in rules
    assert 'Greeting: "KC," (addresses the recipient as KC).' in rules
    assert rules[0] == "Length: about 25 words in 4 paragraphs."  # 23, rounded to 5

    text, sig = _own(kay_db, "My brother just called%")
    p = measure(text, sig or "")
    assert p.greeting is None
    assert p.signoff is None
    assert p.signature_name == "Kay"
    assert p.contractions == ["i'll"]
    assert p.word_count == 54 and p.sentences == 4  # "Ft. Worth" does not end a sentence
    assert 'No closing phrase; sign with just "Kay".' in style_rules(p)
    shorter = style_rules(p, measure("Dear Sylvia,\n\n" + "word " * 200 + "\n\nBest regards,\nKay"))
    assert shorter[0] == "Length: about 55 words in 3 paragraphs (much shorter than a generic draft of 205 words)."
    assert "(a generic draft would open with one)" in shorter[1]


# -- the split ---------------------------------------------------------------------------------------


def test_time_split_per_sender():
    def ex(i, sender, date):
        return Example(i, sender, date, "p", "r", "e", {})

    a = [ex(i, "a", f"2001-01-{i + 1:02d}") for i in range(10)]
    b = [ex(100 + i, "b", f"2000-06-{i + 1:02d}") for i in range(5)]
    train, test = split_by_time(list(reversed(a)) + b)
    for sender, n_train, n_test in (("a", 8, 2), ("b", 4, 1)):
        tr = [e for e in train if e.sender == sender]
        te = [e for e in test if e.sender == sender]
        assert (len(tr), len(te)) == (n_train, n_test)
        assert max(e.date for e in tr) <= min(e.date for e in te)
    # one email distilled with two intent variants is two examples, never on both sides of the cut
    variants = [ex(i, "c", f"2001-02-{i + 1:02d}") for i, n in enumerate((2, 2, 2, 3, 1)) for _ in range(n)]
    train, test = split_by_time(variants)
    assert {e.message_id for e in train} == {0, 1, 2, 3}
    assert {e.message_id for e in test} == {4}


# -- offline -----------------------------------------------------------------------------------------


def test_offline_distillation_is_resumable_traceable_and_sends_nothing(kay_db, tmp_path):
    before = Ledger().last_id()
    counts = run(Distillation(kay_db, DistillConfig(sender=KAY, limit=20)))
    assert counts.intents == 20
    assert counts.measured == 20
    assert counts.failed == 0
    rows = kay_db.execute("SELECT backend, model, prompt_version, source FROM intents").fetchall()
    assert set(rows) == {("offline", "extractive", "intent-extractive.v1", "offline|extractive|intent-extractive.v1")}
    rows = kay_db.execute("SELECT strategy, backend, prompt_version FROM rules").fetchall()
    assert set(rows) == {("measured", "offline", "style-measured.v1")}
    again = run(Distillation(kay_db, DistillConfig(sender=KAY, limit=20)))
    assert (again.intents, again.measured, again.skipped_done) == (0, 0, 40)
    stats = export(kay_db, strategy="measured", sender=KAY, out_dir=tmp_path / "ds")
    assert (stats["train"], stats["test"]) == (16, 4)
    records = [json.loads(line) for line in (tmp_path / "ds" / "train.jsonl").read_text().splitlines()]
    first = records[0]
    assert [m["role"] for m in first["messages"]] == ["user", "assistant"]
    assert first["messages"][0]["content"].endswith("### Preference rules\n")
    assert first["messages"][1]["content"].startswith("- Length: about")
    assert first["meta"]["rules_source"] == "offline|measure|style-measured.v1"
    naive = json.loads((tmp_path / "ds" / "naive_train.jsonl").read_text().splitlines()[0])
    assert naive["messages"][0] == first["messages"][0]
    assert "Length" not in naive["messages"][1]["content"]
    assert Ledger().entries(since_id=before) == []


# -- a cloud backend (Anthropic wire format, scripted tagged answers) -------------------------------


@pytest.fixture
def claude(kay_db, anthropic_server):
    anthropic_server.reply = scripted_claude
    save_endpoint(kay_db, EndpointConfig("claude", "anthropic", "claude-test", anthropic_server.url))
    secrets.set_key("claude", ANTHROPIC_TEST_KEY)
    return anthropic_server


def test_cloud_distillation_needs_recorded_consent(kay_db, claude):
    with pytest.raises(ConsentRequired, match="i-consent-to-send-sent-mail"):
        Distillation(kay_db, DistillConfig(backend="claude", sender=KAY, limit=3))
    assert claude.requests == []
    assert Ledger().last_id() == 0
    Distillation(kay_db, DistillConfig(backend="claude", sender=KAY, limit=3, consent_given_now=True))
    row = kay_db.execute("SELECT backend, scope, statement FROM consents").fetchone()
    assert row[0] == "claude"
    assert row[1] == "distill"
    assert "sent emails" in row[2]
    Distillation(kay_db, DistillConfig(backend="claude", sender=KAY, limit=3))  # recorded: no flag needed now


def test_cloud_distillation_r3_end_to_end(kay_db, claude, tmp_path):
    config = DistillConfig(
        backend="claude", sender=KAY, limit=5, consent_given_now=True, concurrency=3, strategies=("R1", "R2", "R3")
    )
    counts = run(Distillation(kay_db, config))
    assert (counts.intents, counts.baselines, counts.rules, counts.measured, counts.failed) == (5, 5, 15, 5, 0)
    assert counts.plain_rewrites == 5  # the voice stage's input, with the zero-shot emails
    r2 = kay_db.execute("SELECT rules, thinking, baseline_id FROM rules WHERE strategy = 'R2'").fetchone()
    assert r2 == ("- Be terse.", "Terse.", None)
    intent = kay_db.execute(
        "SELECT text, scratchpad, backend, model, prompt_version, temperature, source FROM intents"
    ).fetchone()
    assert intent == (
        "- I will be out\n- ask about the coop",
        "Thinking.",
        "claude",
        "claude-test",
        "intents.v1",
        None,
        "claude|claude-test|intents.v1",
    )  # Claude has no temperature today: recorded as null
    r3 = kay_db.execute(
        "SELECT rules, thinking, baseline_id, prompt_version, dropped FROM rules WHERE strategy = 'R3'"
    ).fetchall()
    assert len(r3) == 5
    assert all(r[1] == "The real one is shorter." and r[2] and r[3] == "rules_r3.v1" for r in r3)
    # "Keep it short." is kept where the real email is shorter than the zero-shot one, and dropped
    # (recorded with the reason) where it is longer: a rule must agree with the difference it claims
    for rules, _, _, _, dropped in r3:
        if "- Keep it short." not in rules.splitlines():
            assert any(
                d.startswith("Keep it short. (contradicts: the real email is longer") for d in json.loads(dropped)
            )
    assert any(r[0] == "- Keep it short.\n- Skip the greeting." for r in r3)
    ledger = Ledger().entries(limit=100)
    assert len(ledger) == 30
    assert {r["purpose"] for r in ledger} == {"distill"}
    stats = export(kay_db, strategy="R3", sender=KAY, out_dir=tmp_path / "r3")
    assert stats["examples"] == 5
    targets = [
        json.loads(line)["messages"][1]["content"]
        for line in (tmp_path / "r3" / "train.jsonl").read_text().splitlines()
    ]
    target = next(t for t in targets if t.startswith("- Keep it short."))
    # LLM rules + measured; "Skip the greeting." gives way to the measured greeting line
    assert target.startswith("- Keep it short.\n- Length: about")
    assert "Skip the greeting" not in target
    assert "than a generic draft of" in target  # measured against the zero-shot baseline
    # rerun: nothing is asked again
    sent = len(claude.requests)
    assert (
        run(
            Distillation(kay_db, DistillConfig(backend="claude", sender=KAY, limit=5, strategies=("R1", "R2", "R3")))
        ).skipped_done
        == 35
    )
    assert len(claude.requests) == sent


def test_cancel_mid_request_stops_cleanly_and_the_rerun_finishes(kay_db, claude):
    from app.jobs import CancelToken
    from tests.wire.server import Fault

    claude.enqueue(Fault.slow(0.0), *[Fault.slow(1.0)] * 4)  # one quick answer, the other request still waiting
    token = CancelToken()
    job = Distillation(
        kay_db,
        DistillConfig(backend="claude", sender=KAY, limit=5, strategies=("R1",), consent_given_now=True, concurrency=2),
        cancel=token,
    )
    for progress in job.run():  # a request in flight when cancel comes must not escape as an error
        if progress.done >= 1:
            token.cancel()
    assert job.counts.intents == 1
    assert job.counts.failed == 0
    stored = kay_db.execute("SELECT COUNT(*) FROM intents").fetchone()[0]
    assert stored == job.counts.intents
    counts = run(Distillation(kay_db, DistillConfig(backend="claude", sender=KAY, limit=5, strategies=("R1",))))
    assert counts.intents == 5 - stored
    assert counts.skipped_done == stored


def test_malformed_answers_are_retried_then_recorded_with_raw_text(kay_db, claude):
    answers = iter(["sorry, no tags", "<intent></intent>"])

    def reply(text):
        if "Here is an email this person wrote" in text:
            return "I am not sure what you want."  # R1 never answers with <rules> here
        return next(answers, None) or scripted_claude(text)

    claude.reply = reply
    counts = run(
        Distillation(
            kay_db,
            DistillConfig(
                backend="claude", sender=KAY, limit=1, strategies=("R1",), consent_given_now=True, concurrency=1
            ),
        )
    )
    assert counts.intents == 1  # third ask succeeded
    assert kay_db.execute("SELECT attempts FROM intents").fetchone()[0] == 3
    # R1 answers never carry <rules> in this script: failed after 3 asks, raw answer kept
    row = kay_db.execute("SELECT status, raw, error, attempts FROM rules WHERE strategy = 'R1'").fetchone()
    assert row[0] == "failed"
    assert row[1] == "I am not sure what you want."
    assert "malformed" in row[2]
    assert row[3] == 3

    # a repeatable run (the reproduction's) leaves the failed row alone; a plain rerun asks again
    asked = len(claude.requests)
    config = DistillConfig(backend="claude", sender=KAY, limit=1, strategies=("R1",), concurrency=1)
    repeat = run(Distillation(kay_db, replace(config, retry_failed=False)))
    assert len(claude.requests) == asked
    assert repeat.failed == 0
    assert repeat.skipped_done == 3
    again = run(Distillation(kay_db, config))
    assert len(claude.requests) == asked + 3
    assert again.failed == 1


def test_a_new_prompt_version_recomputes_only_its_stage(kay_db, claude, tmp_path, monkeypatch):
    import shutil

    import app.prompts

    run(Distillation(kay_db, DistillConfig(backend="claude", sender=KAY, limit=2, consent_given_now=True)))
    prompts = tmp_path / "prompts"
    shutil.copytree(app.prompts.PROMPTS, prompts)
    (prompts / "rules_r3.v2.txt").write_text((prompts / "rules_r3.v1.txt").read_text() + "\nBe brief.\n")
    monkeypatch.setattr(app.prompts, "PROMPTS", prompts)
    sent = len(claude.requests)
    counts = run(Distillation(kay_db, DistillConfig(backend="claude", sender=KAY, limit=2)))
    assert (counts.intents, counts.baselines, counts.rules) == (0, 0, 2)
    assert len(claude.requests) == sent + 2
    versions = sorted(r[0] for r in kay_db.execute("SELECT prompt_version FROM rules WHERE strategy = 'R3'"))
    assert versions == ["rules_r3.v1", "rules_r3.v1", "rules_r3.v2", "rules_r3.v2"]
    # a new baseline prompt redoes the baselines and the R3 rules that depend on them, not the intents
    (prompts / "baseline.v2.txt").write_text((prompts / "baseline.v1.txt").read_text() + "\nBe formal.\n")
    counts = run(Distillation(kay_db, DistillConfig(backend="claude", sender=KAY, limit=2)))
    assert (counts.intents, counts.baselines, counts.rules) == (0, 2, 2)


def test_rules_that_quote_the_email_are_dropped():
    from agent_training.rules import parse_rules

    email = "My brother just called, and my dad has just been admitted to the hospital for a heart problem."
    raw = (
        "<rules>\n- Short sentences.\n- Say: my brother just called, and my dad has just been admitted to the "
        "hospital for a heart problem\n</rules>"
    )
    rules, _, dropped = parse_rules(raw, email)
    assert rules == ["Short sentences."]
    assert len(dropped) == 1


# -- through the real llama.cpp OpenAI-compatible server -------------------------------------------


def test_distillation_through_the_local_openai_compatible_server(kay_db, llama_server):
    save_endpoint(kay_db, EndpointConfig("lab llama", "openai_compat", "gemma-270m", llama_server))
    config = DistillConfig(
        backend="lab llama",
        sender=KAY,
        limit=2,
        strategies=("R1",),
        consent_given_now=True,
        concurrency=1,
        max_tokens=40,
        attempts=2,
    )
    counts = run(Distillation(kay_db, config))
    assert counts.intents + counts.failed >= 2
    rows = kay_db.execute(
        "SELECT i.status, i.raw, i.backend, i.prompt_version, i.temperature, m.own_text FROM intents i"
        " JOIN messages m ON m.id = i.message_id"
    ).fetchall()
    assert len(rows) == 2
    ledger = Ledger().entries(limit=50)
    assert ledger
    assert all(r["url"] == f"{llama_server}/chat/completions" and r["purpose"] == "distill" for r in ledger)
    for status, raw, backend, prompt_version, temperature, own_text in rows:
        assert status in ("ok", "failed")
        assert backend == "lab llama"
        assert prompt_version == "intents.v1"
        assert temperature in (0.7, 1.0, 1.2)
        assert raw.strip(), "the model's answer is kept even when it could not be parsed"
        # with consent, the sent email itself is what went to the server
        first_line = own_text.strip().splitlines()[0][:40]
        assert any(first_line in r["request_payload"] for r in ledger), first_line


@pytest.mark.slow
def test_tiller_distill_runs_the_trainer_side_as_a_process(kay_db, claude):
    import subprocess
    import sys

    from tests.helpers import REPO

    def tiller(*args):
        return subprocess.run(
            [sys.executable, "-m", "app", *args], capture_output=True, text=True, cwd=REPO, timeout=120
        )

    proc = tiller("distill", "--offline", "--limit", "4", "--sender", KAY)
    assert proc.returncode == 0, proc.stderr
    assert "Dataset (measured)" in proc.stdout
    assert "intents 4" in proc.stdout
    proc = tiller("distill", "--backend", "claude", "--limit", "1")
    assert proc.returncode == 1
    assert "i-consent-to-send-sent-mail" in proc.stderr
    assert claude.requests == []
    proc = tiller("distill", "--help")
    assert proc.returncode == 0
    assert "--offline" in proc.stdout


# -- the small local model: JSON under a grammar, intents that are about their email -----------------


def test_small_model_intents_are_refused_when_they_copy_or_miss_the_email(kay_db):
    from agent_training.intents import parse_small_intent

    email, _ = _own(kay_db, "KC,%My suggestion re this topic%")
    facts = sorted(w for w in email.split() if len(w) > 6 and w.isalpha())[:2]
    assert len(facts) == 2, email
    text, _ = parse_small_intent(
        json.dumps(
            {
                "points": [
                    f"talk about {facts[0]}",
                    "To: kc@enron.com",
                    "enron.com",
                    f"  mention   {facts[1]} ",
                    "Subject line: FW: topic",
                ]
            }
        ),
        email,
    )
    assert text == f"- talk about {facts[0]}\n- mention {facts[1]}"  # the header is not what the email says
    # an email with no content word ("Thanks.") cannot share one: its intent is taken as it is
    thanks = kay_db.execute("SELECT own_text FROM messages WHERE own_text = 'Thanks.' LIMIT 1").fetchone()[0]
    assert (
        parse_small_intent(json.dumps({"points": ["thank them for the days off"]}), thanks)[0]
        == "- thank them for the days off"
    )
    # the prompt's instruction echoed back: not about this email at all
    with pytest.raises(MalformedAnswer, match="no content word"):
        parse_small_intent(json.dumps({"points": ["write down its content as short notes"]}), email)
    # eight consecutive words of the email: a copied sentence, not an intent
    run = " ".join(email.split()[:12])
    with pytest.raises(MalformedAnswer, match="copies the email"):
        parse_small_intent(json.dumps({"points": [run]}), email)
    for cut_off in ('{"points": ["talk about', "", '{"notes": []}', '{"points": []}'):
        with pytest.raises(MalformedAnswer):
            parse_small_intent(cut_off, email)


def test_small_model_rules_and_baselines_are_parsed_and_cleaned(kay_db):
    from agent_training.baseline import parse_small_baseline
    from agent_training.rules import parse_small_rules

    email, _ = _own(kay_db, "KC,%My suggestion re this topic%")
    quote = " ".join(email.split()[:12])
    raw = json.dumps(
        {
            "differences": "shorter, no sign-off",
            "rules": [
                "Keep it under 60 words.",
                "Keep it under 60 words.",
                f"Write: {quote}",
                "Keep it under N words.",
                "Start with the initials and a comma.",
                ("Use a formal tone with others, " + "and be clear " * 12)[:140],
            ],
        }
    )
    rules, thinking, dropped = parse_small_rules(raw, email)
    assert rules == ["Keep it under 60 words.", "Start with the initials and a comma."]
    assert thinking == "shorter, no sign-off"
    assert dropped[:2] == [f"Write: {quote}", "Keep it under N words."]
    assert dropped[2].startswith("Use a formal tone") and len(dropped) == 3  # cut off at the length cap
    with pytest.raises(MalformedAnswer):
        parse_small_rules('{"differences": "x", "rules": ["Keep it sh', email)
    assert (
        parse_small_baseline(
            "Here is the email:\n\nSubject: Contract\n\nHi KC,\n\nThe contract is ready.\n\nBest,\n[Your Name]"
        )
        == "Hi KC,\n\nThe contract is ready.\n\nBest,"
    )
    with pytest.raises(MalformedAnswer):
        parse_small_baseline("Here is the email:")


def test_measured_lines_replace_llm_lines_on_the_topics_they_measure():
    from agent_training.rules import merge_with_measured

    measured = (
        "- Length: about 20 words in 1 paragraph.\n- No greeting: start directly with the content.\n"
        '- No closing phrase; sign with just "Kay".\n- Sentences: short, about 7 words each.'
    )
    llm = (
        '- Open with "Hi Sylvia," on its own line.\n- State the request first, then the reason.\n'
        '- End with "Best regards" and your full name.\n- Keep it under 40 words.\n- Use a friendly, direct tone.\n'
        "- Avoid contractions."
    )
    merged, dropped = merge_with_measured(llm, measured)
    assert merged.splitlines() == [
        "- State the request first, then the reason.",
        "- Use a friendly, direct tone.",
        "- Avoid contractions.",
        *measured.splitlines(),
    ]
    assert dropped == [
        'Open with "Hi Sylvia," on its own line.',
        'End with "Best regards" and your full name.',
        "Keep it under 40 words.",
    ]
    # a topic the measured lines do not state stays with the LLM (no contraction line was measured above)
    merged, _ = merge_with_measured(llm, measured + "\n- No contractions.")
    assert "- Avoid contractions." not in merged
    assert merged.endswith("- No contractions.")
    assert merge_with_measured("- Be warm.", "") == ("- Be warm.", [])


@pytest.mark.slow
def test_local_model_distillation_follows_the_papers_method_on_real_mail(kay_db):
    """The built-in ``local`` backend (the embedded instruct model in-process): an abstractive
    intent, a zero-shot baseline, R3 rules and a plain rewrite for Kay Mann's newest email, every
    JSON answer grammar-constrained, nothing sent anywhere. (One email: each costs about 40 s of
    the 1.5B model on 2 cores, and a second one tested nothing the first does not.)"""
    from agent_training.intents import copied_intent

    config = DistillConfig(backend="local", sender=KAY, limit=1, concurrency=1)
    job = Distillation(kay_db, config)
    assert job.small
    counts = run(job)
    assert counts.asked["intents"] == 1
    assert counts.attempts["intents"] >= 1
    newest = [
        r[0]
        for r in kay_db.execute(
            "SELECT id FROM messages WHERE from_addr = ? AND own_text != '' ORDER BY date DESC, id DESC", [KAY]
        )
    ]
    rows = kay_db.execute(
        "SELECT i.message_id, i.status, i.text, i.prompt_version, i.source, i.raw, m.own_text FROM intents i"
        " JOIN messages m ON m.id = i.message_id"
    ).fetchall()
    assert {r[0] for r in rows} <= set(newest[:4])  # the newest emails, not the oldest
    for _, status, text, prompt_version, source, raw, own_text in rows:
        assert prompt_version == "intents_small.v1"
        assert source.startswith("local|embedded|")
        json.loads(raw)  # the grammar: every answer parses
        if status == "ok":
            assert text.startswith("- ")
            assert copied_intent(text, own_text) is None
    assert counts.intents >= 1, counts.failures
    baselines = kay_db.execute("SELECT status, text FROM baselines").fetchall()
    rules = kay_db.execute("SELECT status, rules, raw FROM rules WHERE strategy = 'R3'").fetchall()
    assert baselines, counts.failures
    assert rules, counts.failures
    for status, text, raw in rules:
        json.loads(raw)
        if status == "ok":
            assert text.startswith("- ")
    # the voice stage's input: the real email said again plainly, for the one email distilled
    rewrites = kay_db.execute("SELECT message_id, status, text, source FROM plain_rewrites").fetchall()
    assert [(r[0], r[3].split("|")[0]) for r in rewrites] == [(newest[0], "local")], rewrites
    assert rewrites[0][1] == "ok", rewrites
    assert rewrites[0][2].strip(), rewrites
    assert Ledger().entries(limit=10) == []  # the ledger lists every request that leaves the computer: none


def test_a_rule_set_with_pieces_of_sentences_is_asked_for_again():
    """Issue 2/5: 4 of 10 local R3 sets held fragments emitted as rules ("Use more formal language
    (e. g., ", "instead of", ")"); such a set is refused (re-asked), never trained on."""
    from agent_training.rules import fragment_reason, parse_small_rules

    email = "what day is jen and paula's party?"
    pieces = ["Use more formal language (e. g., ", "instead of", ")"]
    for piece in pieces:
        assert fragment_reason(piece), piece
    raw = json.dumps({"differences": "less formal", "rules": ["Write clearly and concisely.", *pieces]})
    with pytest.raises(MalformedAnswer, match="not a whole instruction"):
        parse_small_rules(raw, email)
    whole = [
        "Write in lower case, with no greeting and no sign-off.",
        'Sign off with "Thanks," then "Kay" on its own line.',
        "Keep it to one short question (under 10 words).",
        "Use contractions (I'm, don't).",
    ]
    assert [fragment_reason(r) for r in whole] == [None] * 4
    rules, _, dropped = parse_small_rules(json.dumps({"differences": "x", "rules": whole}), email)
    # whole, but the sign-off rule points away from this email (it has none): dropped, not refused
    assert rules == [whole[0], *whole[2:]]
    assert dropped[0].startswith(whole[1] + " (contradicts: the real email has no")


def test_voice_pairs_keep_a_zero_shot_email_that_says_what_the_real_one_says_and_refuse_one_that_invents(
    kay_db, claude, tmp_path
):
    """The voice stage's training pairs (zero-shot email -> real email) pass the content guard."""
    claude.reply = lambda prompt: echoing_claude(prompt, invent_when_odd=True)
    config = DistillConfig(backend="claude", sender=KAY, limit=12, consent_given_now=True, plain_rewrites=False)
    run(Distillation(kay_db, config))
    stats = export(kay_db, strategy="R3", sender=KAY, out_dir=tmp_path / "r3")["voice_pairs"]
    both = {k: stats["train"][k] + stats["test"][k] for k in ("pairs", "kept", "refused", "dropped")}
    assert both["pairs"] == 12
    assert both["kept"] + both["refused"] == 12
    # the invented time and place are not in the real email: learning that pair would teach the
    # rewrite to delete them, so it is refused as "dropped"
    assert 0 < both["refused"] == both["dropped"], stats
    assert both["kept"] > 0, stats
    reason = (stats["train"]["samples"] or stats["test"]["samples"])[0]["reason"]
    assert "zero_shot: the rewrite dropped 7" in reason
    assert "ocean" in reason
    lines = (tmp_path / "r3" / "voice_train.jsonl").read_text().splitlines()
    assert len(lines) == stats["train"]["kept"]
    record = json.loads(lines[0])
    prompt, target = record["messages"][0]["content"], record["messages"][1]["content"]
    assert prompt.startswith("### Rewrite in my words\n")
    assert prompt.endswith("### My email\n")
    assert "Ocean Energy" not in prompt
    assert (
        target.strip()
        == kay_db.execute("SELECT own_text FROM messages WHERE id = ?", [record["meta"]["message_id"]])
        .fetchone()[0]
        .strip()
    )
    # the plain rewrites, made from each email itself, hold its facts: the pairs the zero-shot emails
    # lost come back, and only the new stage is asked for (the rest is done)
    asked = len(claude.requests)
    config.plain_rewrites = True
    ids = [r[0] for r in kay_db.execute("SELECT DISTINCT message_id FROM intents ORDER BY message_id LIMIT 3")]
    job = Distillation(kay_db, dataclasses.replace(config, message_ids=tuple(ids)))  # the reproduction's train split
    run(job)
    assert job.counts.plain_rewrites == 3
    assert len(claude.requests) == asked + 3
    assert [r[0] for r in kay_db.execute("SELECT message_id FROM plain_rewrites ORDER BY message_id")] == ids
    job = Distillation(kay_db, config)
    run(job)
    assert job.counts.plain_rewrites == 9
    assert len(claude.requests) == asked + 12
    assert all("in that plain, professional style:" in r.body.decode() for r in claude.requests[asked:])
    again = export(kay_db, strategy="R3", sender=KAY, out_dir=tmp_path / "r3-plain")["voice_pairs"]
    kept_from = {
        k: again["train"]["kept_from"][k] + again["test"]["kept_from"][k] for k in ("plain_rewrite", "zero_shot")
    }
    assert kept_from == {"plain_rewrite": 12, "zero_shot": 0}, again
    record = json.loads((tmp_path / "r3-plain" / "voice_train.jsonl").read_text().splitlines()[0])
    assert "Dear colleague,\n\nI hope you are well." in record["messages"][0]["content"]


def test_emails_said_plainly_without_distilling_add_voice_pairs_older_than_every_test_email(kay_db, claude, tmp_path):
    """`tiller distill --voice-only`: a plain rewrite needs no intent, so the voice stage can learn
    from more emails than the rules cover, at one request an email; they train only when older
    than the sender's first test email (an evaluation of the rules' test split stays clean)."""
    claude.reply = echoing_claude
    config = DistillConfig(backend="claude", sender=KAY, limit=10, newest_first=True, consent_given_now=True)
    run(Distillation(kay_db, config))
    distilled_ids = {r[0] for r in kay_db.execute("SELECT DISTINCT message_id FROM intents")}
    before = export(kay_db, strategy="R3", sender=KAY, out_dir=tmp_path / "before")["voice_pairs"]
    asked = len(claude.requests)
    job = Distillation(kay_db, dataclasses.replace(config, limit=18, voice_only=True))
    run(job)
    new = [r.body.decode() for r in claude.requests[asked:]]
    assert len(new) == 8
    assert all("in that plain, professional style:" in body for body in new)
    assert job.counts.asked == {"plain_rewrites": 8}
    assert job.counts.intents == 0
    assert {r[0] for r in kay_db.execute("SELECT DISTINCT message_id FROM intents")} == distilled_ids
    after = export(kay_db, strategy="R3", sender=KAY, out_dir=tmp_path / "after")
    train, test = after["voice_pairs"]["train"], after["voice_pairs"]["test"]
    assert after["train"] + after["test"] == before["train"]["pairs"] + before["test"]["pairs"]  # rules data unchanged
    # the 8 older emails train, none tests; the guard still reads each pair
    assert train["kept_not_distilled"] > 0, train
    assert test["kept_not_distilled"] == 0, train
    assert train["pairs"] == before["train"]["pairs"] + 8, (before, after)
    assert test == before["test"], (before, after)
    rows = [json.loads(x) for x in (tmp_path / "after" / "voice_train.jsonl").read_text().splitlines()]
    plain_only = [r for r in rows if r["meta"].get("voice_only")]
    assert len(plain_only) == train["kept_not_distilled"]
    first_test = min(
        r["meta"]["date"] for r in map(json.loads, (tmp_path / "after" / "test.jsonl").read_text().splitlines())
    )
    assert all(r["meta"]["date"] < first_test and r["meta"]["message_id"] not in distilled_ids for r in plain_only)
    with pytest.raises(ValueError, match="needs a backend"):
        run(Distillation(kay_db, DistillConfig(sender=KAY, limit=3, voice_only=True)))


@pytest.mark.slow
def test_the_voice_stage_trains_on_voice_pairs_and_rewrites_a_draft_in_llama_cpp(kay_db, claude, tmp_path):
    """The voice adapter trains with the real trainer on the exported pairs, and the compose
    operation runs it through llama.cpp after the large model's draft, guarded."""
    from agent_training.finetune import Finetune, FinetuneConfig
    from app.agent.profiles import VOICE_DIR, find_profile, profile_dir
    from app.agent.template import voice_prompt
    from app.agent.voice import VoiceRewriter
    from app.content_guard import check_rewrite, names_in
    from app.ops.compose import ComposeOperation, ComposeRequest, DraftChecked, VoiceRewritten
    from tests.fakes import SCRIPTED, ScriptedProvider

    claude.reply = echoing_claude
    run(Distillation(kay_db, DistillConfig(backend="claude", sender=KAY, limit=12, consent_given_now=True)))
    export(kay_db, strategy="R3", sender=KAY, out_dir=tmp_path / "r3")
    pairs = tmp_path / "r3" / "voice_train.jsonl"
    assert len(pairs.read_text().splitlines()) >= 8
    job = Finetune(
        FinetuneConfig(
            dataset=pairs,
            sender=KAY,
            output=profile_dir(KAY) / VOICE_DIR,
            max_steps=3,
            batch_size=2,
            rank=4,
            max_length=768,
            checkpoint_every=100,
        )
    )
    list(job.run())
    assert job.result["status"] == "done"
    assert job.result["examples"]["used"] >= 8
    profile = find_profile(KAY)
    assert profile.voice_adapter is not None and profile.voice_on and not profile.trained  # voice only
    draft = (
        "Dear Sylvia,\n\nThe NG contract is ready for legal review. Comments by Friday, please.\n\nBest regards,\nKay"
    )
    intent = "tell Sylvia the NG contract is ready for legal review, comments by Friday"
    result = VoiceRewriter(profile).rewrite(draft, intent=intent, sender=KAY, recipient="Sylvia")
    assert result.rewrite  # llama.cpp wrote something with the voice adapter
    assert result.verdict == check_rewrite(draft, result.rewrite, intent, allowed=names_in(KAY, "Sylvia"))
    assert result.text == (result.rewrite if result.kept else draft)
    # the compose operation runs it after the large model's draft; --no-voice leaves it out
    ScriptedProvider.reset()
    ScriptedProvider.enqueue(draft, draft)
    rules = ("No greeting: start directly with the content.",)
    request = ComposeRequest(intent, recipient="Sylvia", sender=KAY, backend=SCRIPTED, rules=rules)
    events = list(ComposeOperation(request).run())
    voiced = [e for e in events if isinstance(e, VoiceRewritten)]
    assert len(voiced) == 1
    assert voiced[0].draft == draft
    assert isinstance(events[-1], DraftChecked)
    assert events.index(voiced[0]) == len(events) - 2
    # the ranking reaches the voice: half the pairs carry their measured style tags, so this adapter
    # follows tags, and a draft's tags go into its rewrite's prompt
    prompts = [json.loads(x)["messages"][0]["content"] for x in pairs.read_text().splitlines()]
    styled = [p for p in prompts if "\nStyle: " in p]
    assert 0 < len(styled) < len(prompts)
    assert job.result["examples"]["with_style_tags"] == len(styled)
    seen = []

    class Recording(VoiceRewriter):
        def rewrite(self, draft, **kwargs):
            seen.append((self.follows_style, kwargs["style"]))
            return super().rewrite(draft, **kwargs)

    ScriptedProvider.enqueue(draft, draft)
    tagged = dataclasses.replace(request, tag_sets=(("Brief", "Legal"),))
    events = list(ComposeOperation(tagged, voice=lambda sender: Recording(find_profile(sender))).run())
    assert seen == [(True, ("Brief", "Legal"))]
    assert any(isinstance(e, VoiceRewritten) for e in events)
    assert "\nStyle: Brief\n" in voice_prompt(draft, style=("Brief", "Legal"))  # a topic tag is not a style
    profile.set_voice(False)
    events = list(ComposeOperation(request).run())
    assert not any(isinstance(e, VoiceRewritten) for e in events)
    assert not find_profile(KAY).voice_on
    ScriptedProvider.reset()


def test_style_tags_are_measured_from_the_generic_email_to_the_real_one():
    """The voice stage learns the ranking's style tags from what each pair shows: Brief when the
    real email is much shorter than the generic one, Amateurish when it is much less formal."""
    from agent_training.dataset import voice_style_tags

    real = "I will tell them.  Thanks."  # a whole email of one of the 7 senders (read in local-rules.md)
    generic = (
        "Dear colleague,\n\nI hope you are well. I would like to let you know that I will inform them of the "
        "decision at the earliest opportunity. Please do not hesitate to contact me should you have any "
        "questions.\n\nBest regards,\nKay"
    )
    assert voice_style_tags(generic, real) == ("Brief", "Amateurish")
    assert voice_style_tags(real, generic) == ("Thorough", "Professional")
    assert voice_style_tags(generic, generic) == ()


def test_a_rule_that_points_away_from_the_real_email_is_dropped_and_a_set_that_mostly_does_is_asked_again():
    """Issue 2/5: where the model wrote "the real email is less formal", its rule was "Use more formal
    language"; rules about measurable things must agree with the real email."""
    from agent_training.rules import direction_conflict, parse_rules

    real = "what day is jen and paula's party?"
    zero_shot = (
        "Dear Jen and Paula,\n\nI hope this email finds you well. Could you please let me know which day your "
        "party will be held?\n\nBest regards,\nKay"
    )
    assert "less formal" in direction_conflict("Use more formal language", real, zero_shot)
    assert direction_conflict("Keep it casual and short", real, zero_shot) is None
    # read by hand on the local model's rules: "avoid overly formal language" asks for less formality
    assert direction_conflict("The writer should avoid using overly formal language", real, zero_shot) is None
    assert direction_conflict("Use a personal tone instead of business or formal tone", real, zero_shot) is None
    assert "more formal" in direction_conflict("Avoid formal language", zero_shot, real)
    assert "longer" in direction_conflict("Be more concise", zero_shot, real)  # the other way round
    assert "lower case" in direction_conflict("Use proper capitalization", real)
    assert direction_conflict("Write in lowercase", real) is None
    assert "opens with" in direction_conflict("Skip the greeting", "Hi Jen,\n\nWhat day is it?")
    assert "no greeting" in direction_conflict("Open with 'Hi' and the name", real)
    assert "no greeting" in direction_conflict("Always include a greeting (e.g., 'Hello')", real)
    assert "opens with" in direction_conflict("Do not include a greeting", "Hi Jen,\n\nWhat day is it?")
    assert "no exclamation" in direction_conflict("Use exclamation marks for enthusiasm", real)
    assert direction_conflict("Include all necessary details", real, zero_shot) is None  # not measurable
    # read by hand on 105 emails of the 7 senders (2026-12-05): Kay's "That's fine." got these three
    assert "no greeting" in direction_conflict("Start with a warm greeting rather than a professional one", real)
    assert "no sign-off" in direction_conflict("End with a polite closing rather than a formal one", real)
    nemec = (
        "Debra Perelingiere had prepared this contract.  Since it was done so recently, it may not have made it "
        "into the system yet. Thanks for your help.  I'll check Debra's files."
    )
    telegraphic = (
        "Debra Perelingiere prepared the contract. Not in system yet. Thanks. Check Debra files.\n\nSincerely,"
    )
    assert "sentences are longer" in direction_conflict("Shorten sentences", nemec, telegraphic)
    assert direction_conflict("Use short sentences", telegraphic, nemec) is None
    assert "sentences are shorter" in direction_conflict("Write longer sentences", telegraphic, nemec)
    # "avoid long sentences" asks for shorter ones (the first version of this check read it the other way)
    assert direction_conflict("Avoid overly long sentences.", telegraphic, nemec) is None
    assert "sentences are longer" in direction_conflict(
        "Don't use long sentences or complex vocabulary", nemec, telegraphic
    )
    # read by hand after that (2026-12-06): a terse casual note against a chatty zero-shot full of
    # contractions and "!" (the first formality score rated the note the more formal of the two), a
    # rule worded "be formal", and "proper grammar" for an email half of whose sentences start in
    # lower case
    chatty = "Hi Richard,\n\nI'm really excited to meet you! I've always been fascinated by your work.\n\nBest regards,"
    assert "less formal" in direction_conflict("Use a more formal tone", "Cool. Enjoy the travel.", chatty)
    assert "less formal" in direction_conflict(
        "Be formal in your writing style", "this represent a big shake up?", chatty
    )
    assert "lower case" in direction_conflict(
        "Always use proper grammar and punctuation", "sounds good.  Meet at the Briar Club?"
    )
    # a style rule says how to write, not what: a rule naming the email's content is not a style rule
    from agent_training.rules import content_rule

    assert "travel" in content_rule("Mention enjoying travel", "Cool. Enjoy the travel.")
    assert content_rule("Include a short greeting with the recipient's name", "Hi Jen, see you there. Kay") is None
    assert content_rule("Provide updates as soon as possible", "I will send it as soon as possible.") is None
    raw = "<rules>\n- Mention enjoying travel.\n- No greeting.\n- Keep it short.\n</rules>"
    rules, _, dropped = parse_rules(raw, "Cool. Enjoy the travel.", chatty)
    assert rules == ["No greeting.", "Keep it short."]
    assert dropped[0].startswith("Mention enjoying travel. (not a style")
    raw = "<rules>\n- Use more formal language.\n- Ask one direct question.\n- Keep it short.\n</rules>"
    rules, _, dropped = parse_rules(raw, real, zero_shot)
    assert rules == ["Ask one direct question.", "Keep it short."]
    assert dropped == ["Use more formal language. (contradicts: the real email is less formal than the zero-shot one)"]
    raw = "<rules>\n- Use more formal language.\n- Use proper capitalization.\n- Keep it short.\n</rules>"
    with pytest.raises(MalformedAnswer, match="2 of 3 rules point away from the real email"):
        parse_rules(raw, real, zero_shot)


def test_the_voice_pair_count_says_whether_the_voice_stage_can_train_yet():
    """After the demo the export said "Voice stage pairs (train): 0 of 2 kept", which read like a
    failure: it now says the stage needs 20 and how to make more, or that `tiller train` trains it."""
    from agent_training.export_report import voice_pairs_line

    few = voice_pairs_line({"kept": 0, "pairs": 2, "kept_not_distilled": 0})
    assert few.startswith("Voice stage pairs (train): 0 of 2 kept by the content guard")
    assert "trains from 20, so not yet" in few
    assert "--voice-only" in few
    enough = voice_pairs_line({"kept": 21, "pairs": 30, "kept_not_distilled": 16})
    assert "(16 from emails said plainly only)" in enough
    assert "not yet" not in enough
    assert enough.endswith("`tiller train` trains the voice stage after the agent")


def test_the_voice_stage_trains_the_steps_it_was_evaluated_with_unless_told(tiller_home, monkeypatch):
    """One pass (the trainer's default) made 6 steps on the demo's 22 pairs, and that adapter lost
    every fact of the draft; the 7-sender evaluation trained 15. `tiller train --steps 60` trains
    the agent 60 steps, not the voice stage after it."""
    from click.testing import CliRunner

    from agent_training.cli import voice_stage_options
    from agent_training.dataset import VOICE_STEPS
    from app.cli import cli
    from app.cli import training as training_cli

    assert VOICE_STEPS == 15
    assert voice_stage_options({"max_steps": None}, KAY)["max_steps"] == 15
    assert voice_stage_options({"max_steps": 40}, KAY)["max_steps"] == 40  # --stage voice --steps 40
    assert voice_stage_options({}, KAY)["output"] == tiller_home / "agents" / KAY / "voice"

    asked = []

    def trainer(sender, **options):  # what `tiller train` asks the trainer process for, in order
        asked.append((options["stage"], options["max_steps"]))
        return {"phase": "skipped", "message": "recorded"}

    monkeypatch.setattr(training_cli, "run_trainer", trainer)
    pairs = tiller_home / "datasets" / "kay.mann_enron.com" / "R3" / "voice_train.jsonl"
    pairs.parent.mkdir(parents=True)
    pairs.write_text('{"messages": []}\n')
    CliRunner().invoke(cli, ["train", "--sender", KAY, "--steps", "60"])
    assert asked == [("agent", 60), ("voice", None)]
