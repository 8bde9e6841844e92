"""``tiller mcp`` (issue 4/5), driven by the MCP SDK's own client over stdio: a real ``tiller mcp``
process, Kay Mann's real mail imported, the Anthropic wire format on 127.0.0.1 as the large model,
and a real Dovecot for the draft saved to the server. Checks what each tool returns, that only the
draft tool reaches the large model, that a save the account does not allow is refused in one line
without connecting, and that every call is in the ledger with what it returned."""

from __future__ import annotations

import json
import os
import shutil
import sys

import anyio
import pytest
from click.testing import CliRunner

from tests.helpers import ANTHROPIC_TEST_KEY, REPO, run_import
from tests.imap_server import Dovecot, dovecot_missing

KAY_PASSWORD = "kay-mcp-pw-5e1f"
EMAIL = "Sylvia -\n\nThe NG Energy contract went to legal this morning. Comments by Friday.\n\nKay"


def _server_env(tiller_home, keyring_file, tmp_path) -> dict:
    """The subprocess finds the test's keyring (keyrings.alt's file keyring, found through
    XDG_DATA_HOME) and its own data folder; nothing of the user's."""
    xdg = tmp_path / "xdg"
    (xdg / "python_keyring").mkdir(parents=True, exist_ok=True)
    if os.path.exists(keyring_file):
        shutil.copy(keyring_file, xdg / "python_keyring" / "keyring_pass.cfg")
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(
        TILLER_HOME=str(tiller_home),
        XDG_DATA_HOME=str(xdg),
        PYTHON_KEYRING_BACKEND="keyrings.alt.file.PlaintextKeyring",
        TILLER_ALLOW_PLAINTEXT_KEYRING="1",
        PYTHONPATH=str(REPO),
    )
    return env


def _call_tools(env: dict, calls: list[tuple[str, dict]]) -> tuple[list[str], list]:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    async def main():
        params = StdioServerParameters(command=sys.executable, args=["-m", "app", "mcp"], env=env, cwd=str(REPO))
        async with Client(params) as client:
            names = sorted(t.name for t in (await client.list_tools()).tools)
            results = [await client.call_tool(name, args, read_timeout_seconds=120) for name, args in calls]
            return names, results

    return anyio.run(main)


def _payload(result):
    assert not result.is_error, result.content
    return json.loads(result.content[0].text)


@pytest.fixture
def kay_home(db, enron, file_keyring, anthropic_server):
    """Kay's sent mail and inbox imported; the default backend is Claude's wire format on 127.0.0.1."""
    from app.cli import cli

    run_import(db, enron / "maildir" / "mann-k")
    runner = CliRunner()
    for args in (
        ["backends", "add", "claude", "--provider", "anthropic", "--model", "claude-test", "--base-url"]
        + [anthropic_server.url],
        ["backends", "default", "claude"],
    ):
        assert runner.invoke(cli, args).exit_code == 0
    assert runner.invoke(cli, ["keys", "set", "claude"], input=ANTHROPIC_TEST_KEY + "\n").exit_code == 0
    return db


def test_the_tools_answer_over_stdio_and_each_call_is_in_the_ledger(
    kay_home, tiller_home, file_keyring, anthropic_server, tmp_path
):
    from app.backends.ledger import Ledger
    from app.store.messages import received_messages

    anthropic_server.reply = lambda prompt: EMAIL
    received = received_messages(kay_home, 5)
    assert received, "Kay's inbox was imported"
    message = received[0]
    env = _server_env(tiller_home, file_keyring.file_path, tmp_path)
    intent = "tell Sylvia the NG Energy contract went to legal this morning and ask for comments by Friday"
    names, (listed, rules, drafted, refused) = _call_tools(
        env,
        [
            ("recent_messages", {"limit": 3}),
            ("style_rules", {"intent": intent, "sender": "kay.mann@enron.com"}),
            ("draft", {"intent": intent, "reply_to_message": message.id, "sender": "kay.mann@enron.com"}),
            ("save_draft", {"text": EMAIL, "intent": intent}),
        ],
    )
    assert names == ["draft", "recent_messages", "save_draft", "style_rules"]
    listing = _payload(listed)["messages"]
    assert [m["id"] for m in listing] == [r.id for r in received[:3]]
    assert set(listing[0]) == {"id", "date", "from", "subject"}  # no text leaves through the listing
    # before the first training: the style measured from Kay's own sent mail, and no model asked
    styled = _payload(rules)
    assert styled["source"] == "measured"
    assert styled["rules"]
    assert not styled["agent_trained"]
    from app.ops.compose import measured_voice_rules

    assert styled["rules"] == measured_voice_rules("kay.mann@enron.com").rules  # computed here, the same
    draft = _payload(drafted)
    assert "went to legal this morning" in draft["draft"]
    assert draft["backend"] == "claude"
    assert draft["recipient"] == message.sender
    assert draft["draft_id"]
    sent = anthropic_server.requests
    assert len(sent) >= 1 and intent in json.dumps(sent[0].json())  # only the draft tool reached the model
    # drafts not allowed on any account: one line that says how, and nothing connects
    assert refused.is_error
    assert "--save-drafts on" in refused.content[0].text
    rows = [r for r in Ledger().entries(limit=50) if r["provider"] == "mcp"]
    assert sorted(r["purpose"] for r in rows) == [
        "mcp draft",
        "mcp recent_messages",
        "mcp save_draft",
        "mcp style_rules",
    ]
    by_purpose = {r["purpose"]: r for r in rows}
    assert json.loads(by_purpose["mcp draft"]["request_payload"])["draft"] == draft["draft"]
    assert by_purpose["mcp save_draft"]["outcome"] == "refused"


@pytest.mark.skipif(dovecot_missing() is not None, reason=dovecot_missing() or "")
def test_save_draft_writes_a_threaded_draft_where_the_account_allows_it(db, enron, tiller_home, file_keyring, tmp_path):
    import email
    from email import policy

    from app.mail.accounts import set_drafts
    from app.mail.imap import ImapAccount
    from app.store.messages import received_messages

    run_import(db, enron / "maildir" / "mann-k" / "inbox")
    message = received_messages(db, 1)[0]
    dovecot = Dovecot({"kay": KAY_PASSWORD}).start()
    try:
        client = dovecot.client("kay")
        client.create_folder("Drafts")
        client.logout()
        account = ImapAccount(
            name="work", host="127.0.0.1", user="kay", port=dovecot.tls_port, ca_file=str(dovecot.cert)
        )
        from app.mail.accounts import add_account

        add_account(db, account, KAY_PASSWORD)
        set_drafts(db, "work", True)
        env = _server_env(tiller_home, file_keyring.file_path, tmp_path)
        _, (saved,) = _call_tools(
            env,
            [
                (
                    "save_draft",
                    {
                        "text": EMAIL,
                        "intent": "the contract went to legal",
                        "reply_to_message": message.id,
                        "sender": "kay.mann@enron.com",
                    },
                )
            ],
        )
        result = _payload(saved)
        assert result == {"account": "work", "folder": "Drafts", "threaded": True, "replaced_earlier_draft": False}
        client = dovecot.client("kay")
        client.select_folder("Drafts", readonly=True)
        fetched = client.fetch(client.search(), ["RFC822"])
        client.logout()
        (raw,) = [d[b"RFC822"] for d in fetched.values()]
        saved_msg = email.message_from_bytes(raw, policy=policy.default)
        from app.store.messages import reply_original

        assert saved_msg["In-Reply-To"] == reply_original(db, message.id).message_id
        assert "went to legal this morning" in saved_msg.get_content()
    finally:
        dovecot.stop()
