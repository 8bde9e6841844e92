"""The on-machine backends with the real embedded model: llama.cpp in-process (``local``) and the
real llama-cpp-python OpenAI-compatible server (``openai_compat``); and all four providers
through the one drafting call site."""

from __future__ import annotations

import time

import pytest

from app import secrets
from app.backends.base import EndpointConfig, GenerationRequest
from app.backends.client import complete, generate
from app.backends.config import save_endpoint
from app.backends.errors import Cancelled
from app.backends.ledger import Ledger
from app.drafting import DraftInput, build_request, draft
from app.jobs import CancelToken
from tests.helpers import ANTHROPIC_TEST_KEY, GEMINI_TEST_KEY

REQUEST = GenerationRequest.simple(
    "You write short, friendly emails.",
    "Write a short email to Sylvia saying the NG contract is ready for legal review.",
    max_tokens=40,
    temperature=0.0,
    seed=7,
)


def test_openai_compatible_server_streams_and_completes(llama_server):
    endpoint = EndpointConfig("llama.cpp server", "openai_compat", "gemma-270m", llama_server)
    before = Ledger().last_id()
    gen = generate(REQUEST, endpoint)
    pieces = list(gen)
    assert len(pieces) > 3
    assert "".join(pieces) == gen.completion.text
    assert gen.completion.finish_reason in {"stop", "length"}
    whole = complete(REQUEST, endpoint)
    assert whole.text.strip()
    assert whole.output_tokens
    assert whole.output_tokens <= 40
    rows = Ledger().entries(since_id=before)
    assert len(rows) == 2
    assert all(r["url"] == f"{llama_server}/chat/completions" for r in rows)
    assert all("NG contract" in r["request_payload"] and r["outcome"] == "ok" for r in rows)


@pytest.mark.slow
def test_local_backend_runs_in_process_and_sends_nothing(db):
    before = Ledger().last_id()
    gen = generate(REQUEST, "local")
    text = "".join(gen)
    assert text.strip()
    assert not text.startswith(" ")
    assert gen.completion.provider == "local"
    assert gen.completion.finish_reason in {"stop", "length"}
    assert gen.completion.model == "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"  # the embedded instruct model
    assert Ledger().entries(since_id=before) == [], "an in-process model must not appear as a request that left"
    # same seed, temperature 0: the same answer (the runtime keeps the model loaded between calls)
    assert complete(REQUEST, "local").text == text.strip()


def _long_real_thread(enron, at_least: int) -> str:
    """Real Enron messages joined until they are ``at_least`` characters: a long thread being answered."""
    texts, size = [], 0
    for path in sorted((enron / "maildir" / "mann-k").rglob("*")):
        if path.is_file() and size < at_least:
            texts.append(path.read_text(encoding="latin-1").split("\n\n", 1)[-1])
            size += len(texts[-1])
    return "\n-----Original Message-----\n".join(texts)


@pytest.mark.slow
def test_a_long_email_being_answered_is_cut_to_fit_the_models_context(db, enron):
    """A long thread overflows the context: the quoted email is shortened (its beginning kept), the
    intent stays whole, and the draft is written instead of failing. A 512-token context keeps this
    test short; the default 2,048 fails the same way with a thread of 8,000 characters."""
    from app.agent.runtime import RUNTIME
    from app.backends.local import CUT_MARK, LocalProvider, fit_request

    thread = _long_real_thread(enron, 3_000)
    intent = "tell Sylvia the NG contract is ready for legal review"
    request = build_request(DraftInput(intent, recipient="Sylvia", previous_email=thread), max_tokens=24)
    endpoint = EndpointConfig(
        "small context", "local", "embedded", options={"n_ctx": 512, "temperature": 0.0, "seed": 3}
    )
    provider = LocalProvider(endpoint, None, None)
    options = provider.Options(**endpoint.options, max_tokens=24)
    spec = provider._spec(options)

    def count(r):
        return RUNTIME.count_tokens(spec, provider._render(spec, r, options)[0])

    assert count(request) > 512
    fitted = fit_request(request, count, 512 - 24)
    assert count(fitted) <= 512 - 24
    quoted = fitted.messages[-1].content
    assert CUT_MARK in quoted
    assert intent in quoted
    assert thread[:200] in quoted  # the newest message of the thread, kept
    assert complete(request, endpoint).text.strip()  # the backend cuts it itself


@pytest.mark.slow
def test_local_generation_cancels_between_tokens(db):
    token = CancelToken()
    long = GenerationRequest.simple(
        "You write long emails.",
        "Write a very long email about the quarterly report.",
        max_tokens=400,
        temperature=0.8,
        seed=1,
    )
    gen = generate(long, "local", cancel=token)
    received = []
    with pytest.raises(Cancelled):
        for piece in gen:
            received.append(piece)
            if len(received) == 3:
                cancelled_at = time.monotonic()
                token.cancel()
    assert time.monotonic() - cancelled_at < 0.5
    assert len(received) == 3
    # the runtime lock was released: the next request runs
    assert complete(REQUEST, "local").text


def test_all_four_providers_through_one_drafting_call_site(db, llama_server, anthropic_server, gemini_server):
    save_endpoint(db, EndpointConfig("claude", "anthropic", "claude-test", anthropic_server.url))
    save_endpoint(db, EndpointConfig("gemini", "gemini", "gemini-test", gemini_server.url))
    save_endpoint(db, EndpointConfig("home llama", "openai_compat", "gemma-270m", llama_server, {"max_tokens": 30}))
    save_endpoint(db, EndpointConfig("offline", "local", "embedded", None, {"max_tokens": 30, "temperature": 0.0}))
    secrets.set_key("claude", ANTHROPIC_TEST_KEY)
    secrets.set_key("gemini", GEMINI_TEST_KEY)
    inp = DraftInput(intent="the NG contract is ready for legal review", recipient="Sylvia", rules=("Sign off 'Kay'.",))
    providers = {}
    for name in ("claude", "gemini", "home llama", "offline"):
        gen = draft(inp, name)
        text = "".join(gen)
        assert text.strip(), name
        providers[name] = gen.completion.provider
    assert providers == {"claude": "anthropic", "gemini": "gemini", "home llama": "openai_compat", "offline": "local"}
    for server in (anthropic_server, gemini_server):
        body = server.requests[-1].body.decode()
        assert "NG contract" in body
        assert "Sign off" in body
        assert "Sylvia" in body
