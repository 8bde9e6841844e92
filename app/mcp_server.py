"""Tiller's voice for other assistants: ``tiller mcp`` serves the Model Context Protocol over stdio
(the official Python SDK), so Claude Desktop, Claude Code or any MCP client can ask for the user's
style without being given the user's mail.

The tools, and exactly what each returns to the client (nothing else leaves Tiller through it):

- ``style_rules(intent, recipient?, sender?, reply_to_message?)``: the preference rules for that
  email, computed on this computer (the trained agent's, or the style measured from the user's own
  sent mail before the first training), with the reply's language. No large model is asked.
- ``draft(intent, recipient?, subject?, reply_to_message?, sender?, backend?)``: the whole compose
  operation (app/ops/compose.py) with the configured backend: rules, draft, voice stage, rule check.
  Returns the draft, its rules and what the check found. The drafting request goes to the backend
  as it does from ``tiller draft`` (intent, details, rules; for a reply, the message answered).
- ``save_draft(text, intent, reply_to_message?, recipient?, subject?, sender?, account?)``: saves
  ``text`` to the account's Drafts folder, threaded, only when the user allowed it for that
  account (``tiller accounts set NAME --save-drafts on``). Returns the folder.
- ``recent_messages(limit?, search?)``: received messages to reply to: id, date, sender and
  subject only (no text), so the client can name ``reply_to_message``.

Every call is a row in the privacy ledger (``tiller ledger``): the tool, and the JSON it returned
to the client, which is what left Tiller. A failure the user can fix is returned as one line
(an MCP tool error), never a traceback.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from app.exceptions import TillerError

SERVER_NAME = "tiller"
INSTRUCTIONS = (
    "Tiller knows how the user writes email. Ask style_rules for the rules of an email you will write "
    "yourself, or draft for a whole email written in the user's voice; save_draft puts a draft in the user's "
    "mail client (never sends it). recent_messages lists received mail to reply to."
)


class ToolFailure(TillerError):
    """A failure to report to the client in one line (unknown message, drafts not allowed...)."""


def _original(db, reply_to_message: int | None):
    if reply_to_message is None:
        return None
    from app.store.messages import reply_original

    original = reply_original(db, reply_to_message)
    if original is None:
        raise ToolFailure(f"reply_to_message {reply_to_message}: no such message (recent_messages lists them)")
    return original


def _request(db, intent: str, *, recipient=None, subject=None, reply_to_message=None, sender=None, backend=None):
    from app.ops.compose import ComposeRequest

    if not intent or not intent.strip():
        raise ToolFailure("intent is empty: say what the email should tell the recipient")
    original = _original(db, reply_to_message)
    if original is not None:
        from app.mail.imap_drafts import reply_defaults

        recipient, subject = reply_defaults(original.from_addr, original.subject, recipient, subject)
    request = ComposeRequest(
        intent,
        recipient=recipient,
        subject=subject,
        previous_email=original.text if original else None,
        sender=sender,
        backend=backend,
        learned=True,
    )
    return request, original


def style_rules(
    intent: str, recipient: str | None = None, sender: str | None = None, reply_to_message: int | None = None
) -> dict:
    from app.ops.compose import ComposeOperation
    from app.store import open_database

    db = open_database()
    try:
        request, _ = _request(db, intent, recipient=recipient, reply_to_message=reply_to_message, sender=sender)
    finally:
        db.conn.close()
    ready = ComposeOperation(request).rules()
    return {
        "rules": ready.rules,
        "source": ready.source,  # agent (trained on the user's mail) | measured (before the first training)
        "profile": ready.profile,
        "agent_trained": ready.trained,
        "language": ready.language.language.name if ready.language else None,
    }


def draft(
    intent: str,
    recipient: str | None = None,
    subject: str | None = None,
    reply_to_message: int | None = None,
    sender: str | None = None,
    backend: str | None = None,
) -> dict:
    from app.learning.capture import record_compose
    from app.ops.compose import ComposeOperation
    from app.store import open_database

    db = open_database()
    try:
        request, _ = _request(
            db,
            intent,
            recipient=recipient,
            subject=subject,
            reply_to_message=reply_to_message,
            sender=sender,
            backend=backend,
        )
        op = ComposeOperation(request)
        try:
            for _ in op.run():
                pass
        except (FileNotFoundError, ValueError) as exc:  # a missing model file, a voice stage not trained
            raise ToolFailure(str(exc)) from None
        ids = record_compose(db, request, op.result, op.rules_ready)
    finally:
        db.conn.close()
    done = op.result.drafts[0]
    return {
        "draft": done.draft.text,
        "subject": request.subject,
        "recipient": request.recipient,
        "rules": op.result.rules,
        "rules_source": op.rules_ready.source,
        "broken_rules": [f"{c.rule} ({c.note})" if c.note else c.rule for c in done.draft.broken],
        "voice_stage": None if done.voice is None else {"used": done.voice.kept, "reason": done.voice.reason},
        "backend": done.backend,
        "model": done.model,
        "draft_id": ids[0] if ids else None,
    }


def save_draft(
    text: str,
    intent: str,
    reply_to_message: int | None = None,
    recipient: str | None = None,
    subject: str | None = None,
    sender: str | None = None,
    account: str | None = None,
) -> dict:
    from app.mail.imap_drafts import drafts_account, save_reply
    from app.store import open_database

    if not text or not text.strip():
        raise ToolFailure("text is empty: nothing to save")
    db = open_database()
    try:
        original = _original(db, reply_to_message)
        chosen = drafts_account(db, account)  # raises before connecting when drafts are not allowed
    finally:
        db.conn.close()
    saved = save_reply(
        chosen, text, intent=intent, sender=sender, recipient=recipient, subject=subject, original=original
    )
    return {
        "account": chosen.name,
        "folder": saved.folder,
        "threaded": original is not None,
        "replaced_earlier_draft": bool(saved.replaced),
    }


def recent_messages(limit: int = 20, search: str | None = None) -> dict:
    from app.store import open_database
    from app.store.messages import received_messages

    db = open_database()
    try:
        rows = received_messages(db, max(1, min(int(limit), 100)), search)
    finally:
        db.conn.close()
    return {"messages": [{"id": r.id, "date": r.date, "from": r.sender, "subject": r.subject} for r in rows]}


TOOLS: dict[str, Callable[..., Any]] = {
    "style_rules": style_rules,
    "draft": draft,
    "save_draft": save_draft,
    "recent_messages": recent_messages,
}


def recorded(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with a ledger row per call: what it returned to the client (or the error it reported),
    written before the answer leaves, as every outgoing request is. An error the user can act on
    (any TillerError: no such message, drafts not allowed, the backend refused) goes to the client
    as one line."""
    import functools

    from mcp.server.mcpserver.exceptions import ToolError

    from app.backends.ledger import Ledger, finish_not_http

    @functools.wraps(fn)
    def call(*args, **kwargs):
        started = time.monotonic()
        error = None
        try:
            result = fn(*args, **kwargs)
            payload = json.dumps(result, ensure_ascii=False)
        except TillerError as exc:
            error = str(exc)
            payload = error
        ledger = Ledger()
        row = ledger.insert_sent(
            backend="mcp-client",
            provider="mcp",
            model=None,
            purpose=f"mcp {name}",
            method="TOOL",
            url=f"stdio:{name}",
            request_headers=json.dumps({"arguments": sorted(k for k, v in kwargs.items() if v is not None)}),
            request_bytes=len(payload.encode()),
            request_payload=payload,
        )
        finish_not_http(ledger, row, started, error)
        if error is not None:
            raise ToolError(error)
        return result

    return call


def build_server():
    """The MCP server with Tiller's tools (stdio: ``build_server().run()``)."""
    from mcp.server import MCPServer

    server = MCPServer(SERVER_NAME, instructions=INSTRUCTIONS)
    for name, fn in TOOLS.items():
        server.tool(name=name, description=DESCRIPTIONS[name])(recorded(name, fn))
    return server


DESCRIPTIONS = {
    "style_rules": "The user's style rules for an email (made on the user's computer from their own sent mail), "
    "with the reply's language. Nothing is sent to any model.",
    "draft": "A whole email in the user's voice: Tiller's rules, the user's configured large model, Tiller's voice "
    "stage and rule check. Returns the draft and its rules.",
    "save_draft": "Save an email as a draft in the user's mail client (their server's Drafts folder), threaded under "
    "reply_to_message when given. Never sends. Only for accounts where the user allowed it.",
    "recent_messages": "Received messages the user can reply to, newest first: id, date, sender, subject (no text).",
}


def client_config(command: str, args: tuple[str, ...] = ()) -> dict:
    """What an MCP client's configuration holds to start Tiller (Claude Desktop's mcpServers form):
    ``command`` with ``args`` before the ``mcp`` subcommand (``python -m app mcp``)."""
    return {"mcpServers": {SERVER_NAME: {"command": command, "args": [*args, "mcp"]}}}
