"""Drafting never sends the user's sent mail: sentinels planted in real imported sent mail must not
appear in any request that reaches a backend, as captured by the servers and by the ledger."""

from __future__ import annotations

import hashlib

from app import secrets
from app.backends.base import EndpointConfig
from app.backends.config import save_endpoint
from app.backends.ledger import Ledger
from app.drafting import DraftInput, draft
from tests.helpers import ANTHROPIC_TEST_KEY, GEMINI_TEST_KEY, run_import


def _plant_sentinels(enron, tmp_path, count=40):
    """Copy real sent mail of one sender into a Maildir, adding a unique sentinel line to each body."""
    source = enron / "maildir" / "quigley-d" / "sent_items"
    target = tmp_path / "mail" / "quigley-d" / "sent_items"
    target.mkdir(parents=True)
    sentinels = []
    for path in sorted(source.iterdir())[:count]:
        raw = path.read_bytes()
        head, sep, body = raw.partition(b"\n\n")
        sentinel = "SENTINEL" + hashlib.sha256(path.name.encode()).hexdigest()[:12].upper()
        sentinels.append(sentinel)
        (target / path.name).write_bytes(head + sep + f"{sentinel} stays on this machine.\n".encode() + body)
    return tmp_path / "mail", sentinels


def test_no_sentinel_from_sent_mail_leaves_the_machine(
    db, enron, tmp_path, anthropic_server, gemini_server, llama_server
):
    mailbox, sentinels = _plant_sentinels(enron, tmp_path)
    result = run_import(db, mailbox, my_addresses=("dutch.quigley@enron.com",))
    assert result.counts.stored >= 35
    stored = "\n".join(r[0] for r in db.execute("SELECT own_text FROM messages WHERE identity_id IS NOT NULL"))
    planted = [s for s in sentinels if s in stored]
    assert len(planted) >= 35, "the sentinels must be in the user's stored own words, or this test proves nothing"

    save_endpoint(db, EndpointConfig("claude", "anthropic", "claude-test", anthropic_server.url))
    save_endpoint(db, EndpointConfig("gemini", "gemini", "gemini-test", gemini_server.url))
    save_endpoint(db, EndpointConfig("lab", "openai_compat", "gemma-270m", llama_server, {"max_tokens": 24}))
    secrets.set_key("claude", ANTHROPIC_TEST_KEY)
    secrets.set_key("gemini", GEMINI_TEST_KEY)

    # A drafting-style request as the app makes it: the user's intent, a recipient and subject taken
    # from their real mail, and rules (on-device agent output, here written by hand).
    row = db.execute(
        "SELECT to_addrs, subject FROM messages WHERE from_addr = 'dutch.quigley@enron.com' AND subject != '' LIMIT 1"
    ).fetchone()
    inp = DraftInput(
        intent="ask Joey to change deal V96295 from gas daily to a nymex swap",
        recipient=row[0],
        subject=row[1],
        rules=("Lower-case, terse, no greeting.", "No sign-off."),
    )
    before = Ledger().last_id()
    for backend in ("claude", "gemini", "lab"):
        assert "".join(draft(inp, backend)).strip()

    outgoing = [r.body.decode("utf-8", "replace") for s in (anthropic_server, gemini_server) for r in s.requests]
    ledger_rows = Ledger().entries(since_id=before)
    outgoing += [r["request_payload"] + r["url"] + r["request_headers"] for r in ledger_rows]
    assert len(ledger_rows) == 3 and "V96295" in outgoing[0]  # the intent itself was sent, as it must be
    for text in outgoing:
        for sentinel in sentinels:
            assert sentinel not in text, f"sent mail left the machine: {sentinel}"
