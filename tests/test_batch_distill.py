"""Distillation through the providers' batch services, against loopback servers speaking each
wire format (tests/wire/batches.py): Anthropic Message Batches, Gemini batch mode and the OpenAI
Batch API. The chain survives the process that submitted it, stores failures, resubmits what
expired, shows its cost first and records every upload in the ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from agent_training.batch_distill import BatchDistillation
from agent_training.distill import Distillation, DistillConfig
from app import secrets
from app.backends.base import EndpointConfig
from app.backends.batch import BatchUnsupported
from app.backends.config import save_endpoint
from app.backends.ledger import Ledger
from app.backends.prices import batch_price
from app.jobs import CancelToken
from app.store import batches as batch_store
from tests.fakes import scripted_claude
from tests.helpers import ANTHROPIC_TEST_KEY, GEMINI_TEST_KEY, REPO, run_import
from tests.wire.batches import AnthropicBatchServer, GeminiBatchServer, OpenAIBatchServer

KAY = "kay.mann@enron.com"
LIMIT = 4


@pytest.fixture
def kay_db(db, enron):
    run_import(db, enron / "maildir" / "mann-k")
    return db


@pytest.fixture
def claude_batches(kay_db):
    with AnthropicBatchServer(ANTHROPIC_TEST_KEY, scripted_claude) as server:
        save_endpoint(kay_db, EndpointConfig("claude", "anthropic", "claude-sonnet-4-5", server.url))
        secrets.set_key("claude", ANTHROPIC_TEST_KEY)
        yield server


def config(backend="claude", **kw) -> DistillConfig:
    return DistillConfig(backend=backend, sender=KAY, limit=LIMIT, consent_given_now=True, **kw)


def stored(db) -> tuple[int, int, int]:
    ok = lambda table: db.execute(f"SELECT count(*) FROM {table} WHERE status = 'ok'").fetchone()[0]  # noqa: E731
    return (
        ok("intents"),
        ok("baselines"),
        db.execute("SELECT count(*) FROM rules WHERE status = 'ok' AND strategy = 'R3'").fetchone()[0],
    )


def run_chain(job: BatchDistillation) -> list:
    events = []
    assert job.run_until_done(0, CancelToken(), events.append), events
    list(job.finish())
    return events


def test_a_chain_through_anthropic_batches_stores_what_the_one_by_one_path_stores(kay_db, claude_batches):
    job = BatchDistillation(kay_db, config())
    stage, jobs, _ = job.next_stage()
    estimate = job.estimate(stage, jobs)
    assert stage == "intents"
    assert [s.stage for s in estimate.stages] == ["intents", "baselines", "R3", "plain_rewrites"]
    assert all(s.requests == LIMIT for s in estimate.stages)
    assert estimate.stages[0].exact
    assert estimate.input_tokens > 0
    assert estimate.output_tokens_expected <= estimate.output_tokens_max
    # claude-sonnet-4-5 at the batch price: $1.50 / $7.50 per million
    assert estimate.cost(0) == pytest.approx(estimate.input_tokens * 1.5 / 1e6)
    assert any("list price as of" in line for line in estimate.lines())
    assert claude_batches.requests == []  # estimating sends nothing

    job.submit(stage, jobs, estimate)
    events = run_chain(job)
    assert [e.stage for e in events if e.kind == "submitted"] == ["baselines", "R3", "plain_rewrites"]
    assert stored(kay_db) == (LIMIT, LIMIT, LIMIT)
    plain = kay_db.execute("SELECT text FROM plain_rewrites WHERE status = 'ok'").fetchall()
    assert len(plain) == LIMIT
    assert all(p[0].startswith("Dear colleague,") for p in plain)
    rules = kay_db.execute("SELECT rules, source FROM rules WHERE strategy = 'R3' AND status = 'ok'").fetchall()
    assert {r[1] for r in rules} == {"claude|claude-sonnet-4-5|rules_r3.v1"}
    # parsed as one by one: "Keep it short." is dropped where the real email is the longer one
    assert {r[0] for r in rules} <= {"- Keep it short.\n- Skip the greeting.", "- Skip the greeting."}
    rows = batch_store.all_batches(kay_db)
    assert [r.state for r in rows] == ["collected"] * 4
    assert all(r.counts["stored"] == LIMIT for r in rows)
    # every upload is in the ledger, with the sent mail in it, under its own purpose
    ledger = Ledger().entries(limit=100)
    uploads = [r for r in ledger if r["method"] == "POST" and r["url"].endswith("/v1/messages/batches")]
    assert len(uploads) == 4
    assert {r["purpose"] for r in ledger} == {"distill-batch"}
    email = kay_db.execute(
        "SELECT own_text FROM messages WHERE id = (SELECT message_id FROM intents LIMIT 1)"
    ).fetchone()[0]
    assert json.dumps(email.split("\n")[0])[1:-1] in uploads[0]["request_payload"]
    # the same rows as one by one: a rerun without --batch finds nothing left to ask
    sync = Distillation(kay_db, config())
    sent = len(claude_batches.requests)
    list(sync.run())
    assert sync.counts.failed == 0
    assert len(claude_batches.requests) == sent


def test_errors_are_stored_and_expired_requests_go_into_the_next_submission(kay_db, claude_batches):
    claude_batches.book.outcome = lambda custom_id, index: {0: "errored", 1: "expired"}.get(index, "succeeded")
    job = BatchDistillation(kay_db, config())
    stage, jobs, _ = job.next_stage()
    first_ids = [j.custom_id for j in jobs]
    job.submit(stage, jobs)
    assert [e.kind for e in job.check()] == ["running"]  # the first look: still in progress
    events = list(job.check())
    assert [e.kind for e in events] == ["collected", "submitted"]
    collected = events[0]
    rows = batch_store.all_batches(kay_db)
    first = next(r for r in rows if r.batch_id == collected.batch_id)
    assert first.state == "expired"
    assert first.counts == {"stored": 2, "failed": 1, "not_delivered": 1, "unknown": 0}
    failed = kay_db.execute("SELECT error FROM intents WHERE status = 'failed'").fetchall()
    assert len(failed) == 1
    assert "injected error" in failed[0][0]
    # the expired one, and only it, was submitted again for the same stage
    resubmitted = max(rows, key=lambda r: r.id)
    assert resubmitted.stage == "intents"
    assert resubmitted.custom_ids == [first_ids[1]]
    claude_batches.book.outcome = lambda custom_id, index: "succeeded"
    run_chain(job)
    # the errored intent stays failed (not asked again in the chain): 3 emails go all the way
    assert stored(kay_db) == (LIMIT - 1, LIMIT - 1, LIMIT - 1)


def test_a_malformed_batch_answer_is_stored_as_failed_with_its_text(kay_db, claude_batches):
    claude_batches.reply = lambda text: "I am not sure what you want."
    job = BatchDistillation(kay_db, config())
    stage, jobs, _ = job.next_stage()
    job.submit(stage, jobs)
    events = []
    job.run_until_done(0, CancelToken(), events.append)
    row = kay_db.execute("SELECT status, raw, error FROM intents").fetchone()
    assert row[0] == "failed"
    assert row[1] == "I am not sure what you want."
    assert "malformed (batch, one attempt)" in row[2]
    assert job.done()  # nothing is left to ask in the chain: the failures are stored


def test_a_batch_the_provider_fails_is_reported_and_not_sent_again_by_itself(kay_db):
    with GeminiBatchServer(GEMINI_TEST_KEY, scripted_claude) as gemini:
        save_endpoint(kay_db, EndpointConfig("gem", "gemini", "gemini-2.5-flash", gemini.url))
        secrets.set_key("gem", GEMINI_TEST_KEY)
        gemini.book.fail_whole = True
        job = BatchDistillation(kay_db, config("gem"))
        stage, jobs, _ = job.next_stage()
        job.submit(stage, jobs)
        events = []
        assert job.run_until_done(0, CancelToken(), events.append) is False
        # google-genai does not pass the Developer API's error text on; the state says it
        assert events[-1].kind == "failed"
        assert events[-1].message == "JOB_STATE_FAILED"
        assert [r.state for r in batch_store.all_batches(kay_db)] == ["failed"]
        assert len(gemini.book.batches) == 1


def test_a_chain_through_gemini_batch_mode_with_an_error_and_an_expiry(kay_db):
    with GeminiBatchServer(GEMINI_TEST_KEY, scripted_claude) as gemini:
        save_endpoint(kay_db, EndpointConfig("gem", "gemini", "gemini-2.5-flash-lite", gemini.url))
        secrets.set_key("gem", GEMINI_TEST_KEY)
        # the stages of the first test without its last (plain rewrites): what is counted here is the mechanics
        job = BatchDistillation(kay_db, config("gem", plain_rewrites=False))
        stage, jobs, _ = job.next_stage()
        assert job.estimate(stage, jobs).price["input_per_m"] == pytest.approx(0.05)  # flash-lite, not flash
        rounds = iter(range(100))
        gemini.book.outcome = lambda cid, index: (
            {0: "errored", 1: "expired"}.get(index, "succeeded") if next(rounds) < LIMIT else "succeeded"
        )
        job.submit(stage, jobs)
        run_chain(job)
        assert stored(kay_db) == (LIMIT - 1, LIMIT - 1, LIMIT - 1)
        states = [r.state for r in batch_store.all_batches(kay_db)]
        assert sorted(states) == ["collected", "collected", "collected", "expired"]
        sent = [r for r in gemini.requests if ":batchGenerateContent" in r.path]
        assert len(sent) == 4
        assert "systemInstruction" in json.dumps(sent[0].json())


def test_a_chain_through_an_openai_compatible_batch_api(kay_db):
    with OpenAIBatchServer(reply=scripted_claude) as server:
        save_endpoint(kay_db, EndpointConfig("vllm", "openai_compat", "llama-3.3-70b", server.url + "/v1"))
        expired = []

        def outcome(custom_id, index):  # the first baseline asked runs out of time, once
            if custom_id.startswith("baseline") and not expired:
                expired.append(custom_id)
                return "expired"
            return "succeeded"

        server.book.outcome = outcome
        job = BatchDistillation(kay_db, config("vllm", plain_rewrites=False))
        stage, jobs, _ = job.next_stage()
        estimate = job.estimate(stage, jobs)
        assert estimate.price is None
        assert any("does not know" in line for line in estimate.lines())
        job.submit(stage, jobs, estimate)
        run_chain(job)
        assert stored(kay_db) == (LIMIT, LIMIT, LIMIT)
        uploads = [r for r in server.requests if r.path == "/v1/files"]
        assert len(uploads) == 4  # intents, baselines (one expired), the expired baseline again, R3
        assert [r.custom_ids for r in batch_store.all_batches(kay_db) if r.stage == "baselines"][0] == expired
        line = json.loads(server.files["file-1"].decode().splitlines()[0])
        assert line["url"] == "/v1/chat/completions"
        assert line["body"]["model"] == "llama-3.3-70b"


def test_an_endpoint_without_a_batch_api_says_so(kay_db):
    with OpenAIBatchServer(reply=scripted_claude) as server:
        save_endpoint(kay_db, EndpointConfig("plain", "openai_compat", "m", server.url + "/nobatch"))
        job = BatchDistillation(kay_db, config("plain"))
        stage, jobs, _ = job.next_stage()
        with pytest.raises(BatchUnsupported, match="no batch endpoint"):
            job.submit(stage, jobs)
        assert batch_store.all_batches(kay_db) == []
    save_endpoint(kay_db, EndpointConfig("mine", "local", "qwen"))
    with pytest.raises(BatchUnsupported, match="no batch service"):
        BatchDistillation(kay_db, config("mine"))


def test_prices_match_the_longest_model_prefix_and_unknown_models_get_none():
    assert batch_price("gemini", "gemini-2.5-flash-lite-001").input_per_m == pytest.approx(0.05)
    assert batch_price("gemini", "gemini-2.5-flash").output_per_m == pytest.approx(1.25)
    assert batch_price("anthropic", "claude-haiku-4-5-20251001").output_per_m == pytest.approx(2.5)
    assert batch_price("anthropic", "claude-9") is None
    assert batch_price("local", "claude-sonnet-4-5") is None


def _tiller(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "agent_training", "distill", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=120,
    )


@pytest.mark.slow  # three CLI processes and a polling wait (15 s): CI runs it, the fast subset does not
def test_the_cli_submits_after_the_estimate_and_status_finishes_after_the_process_is_gone(kay_db, claude_batches):
    env = {**os.environ, "ANTHROPIC_API_KEY": ANTHROPIC_TEST_KEY, "COLUMNS": "200"}
    base = ["--backend", "claude", "--sender", KAY, "--limit", str(LIMIT), "--i-consent-to-send-sent-mail"]
    refused = _tiller(*base, "--batch", env=env)
    assert refused.returncode != 0
    assert "--yes" in refused.stderr
    assert claude_batches.requests == []
    submitted = _tiller(*base, "--batch", "--yes", env=env)
    assert submitted.returncode == 0, submitted.stderr
    assert "intents: 4 requests" in submitted.stdout
    assert "$" in submitted.stdout
    assert "tiller distill --status" in submitted.stdout
    # a later process, knowing only the database, collects each stage and submits the next
    for _ in range(8):
        status = _tiller("--status", env=env)
        assert status.returncode == 0, status.stderr
        if "writing the datasets" in status.stdout:
            break
    assert "Dataset (R3)" in status.stdout, status.stdout
    assert stored(kay_db) == (LIMIT, LIMIT, LIMIT)
    done = _tiller("--status", env=env)
    assert "No distillation batch is open" in done.stdout
    # a status check naming a backend never starts a distillation of its own (here: the whole mailbox)
    asked = len(claude_batches.requests)
    again = _tiller("--backend", "claude", "--status", env=env)
    assert again.returncode == 0
    assert "No distillation batch is open" in again.stdout
    assert len(claude_batches.requests) == asked
