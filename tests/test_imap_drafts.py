"""Drafts saved to the mail server (issue 4/5) against a real Dovecot on 127.0.0.1: threaded under
the message answered, flagged \\Draft, replacing only Tiller's own earlier draft, nothing else on the
server changed, a Drafts folder found by its flag or its name in another language, a refused write
as one line, nothing attempted while the account's scope is off, and the APPEND in the ledger."""

from __future__ import annotations

import email
from email import policy

import pytest

from app.mail.imap_drafts import (
    TILLER_HEADER,
    DraftsOff,
    Original,
    draft_key,
    draft_message,
    find_drafts_folder,
    reply_subject,
    save_draft,
)
from tests.imap_server import Dovecot, dovecot_missing

KAY_PASSWORD = "kay-Drafts-pw-91ab"
LENA_PASSWORD = "lena-Drafts-pw-2c7d"
ORIGINAL = Original(
    message_id="<1234.JavaMail.evans@thyme>",
    references="<1000.JavaMail.evans@thyme> <1100.JavaMail.evans@thyme>",
    subject="RE: Re: NG contract",
    from_addr="Sylvia Campos <sylvia.campos@enron.com>",
    date="Mon, 3 Dec 2001 10:02:00 -0600",
    text="Kay,\nIs the NG contract ready for legal?\nSylvia",
)


def test_the_message_threads_and_carries_one_signature():
    key = draft_key("work", ORIGINAL.message_id, "")
    raw = draft_message(
        "It is: legal has it since Friday.\n\nKay",
        from_addr="kay.mann@enron.com",
        to=None,
        subject=None,
        original=ORIGINAL,
        key=key,
        signature="Kay",
        now=0,
    )
    msg = email.message_from_bytes(raw, policy=policy.default)
    assert msg["Subject"] == "Re: NG contract"
    assert msg["To"] == "Sylvia Campos <sylvia.campos@enron.com>"
    assert msg["In-Reply-To"] == ORIGINAL.message_id
    assert msg["References"].split() == [*ORIGINAL.references.split(), ORIGINAL.message_id]
    assert msg["Message-ID"].endswith("@tiller.draft>")
    assert msg[TILLER_HEADER] == key
    body = msg.get_content()
    assert body.count("\nKay") == 1  # the draft already ends with the signature: not added twice
    assert "> Is the NG contract ready for legal?" in body
    assert "sylvia.campos@enron.com> wrote:" in body
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # CRLF throughout
    assert reply_subject("Aw: Re: AW: Angebot") == "Re: Angebot"
    assert reply_subject(None) == "Re:"


def test_the_drafts_folder_is_found_by_flag_then_by_name():
    assert find_drafts_folder([((b"\\HasNoChildren",), "/", "INBOX"), ((b"\\Drafts",), "/", "Work")]) == "Work"
    assert find_drafts_folder([((), "/", "INBOX"), ((), "/", "Entwürfe")]) == "Entwürfe"
    assert find_drafts_folder([((), ".", "INBOX"), ((), ".", "INBOX.Brouillons")]) == "INBOX.Brouillons"
    assert find_drafts_folder([((), "/", "INBOX"), ((), "/", "Sent")]) is None


pytestmark_dovecot = pytest.mark.skipif(dovecot_missing() is not None, reason=dovecot_missing() or "")


@pytest.fixture(scope="module")
def server(enron):
    dovecot = Dovecot({"kay": KAY_PASSWORD, "lena": LENA_PASSWORD}).start()
    inbox = sorted(p for p in (enron / "maildir" / "mann-k" / "inbox").iterdir() if p.is_file())[:5]
    dovecot.append("kay", "INBOX", [p.read_bytes() for p in inbox])
    sent = sorted(p for p in (enron / "maildir" / "mann-k" / "sent_items").iterdir() if p.is_file())[:10]
    dovecot.append("kay", "Sent", [p.read_bytes() for p in sent])
    client = dovecot.client("kay")
    client.create_folder("Drafts")  # flagged \Drafts by the server's configuration
    client.logout()
    client = dovecot.client("lena")
    client.create_folder("Entwürfe")  # no \Drafts flag: found by its German name
    client.logout()
    yield dovecot
    dovecot.stop()


def _account(server, user="kay", **kw):
    from app.mail.imap import ImapAccount

    return ImapAccount(
        name=f"{user}-mail", host="127.0.0.1", user=user, port=server.tls_port, ca_file=str(server.cert), **kw
    )


def _mailbox_state(server, user) -> dict:
    """Every folder's (UID, flags, size) list: what must not change except the Drafts folder."""
    client = server.client(user)
    try:
        state = {}
        for _, _, name in client.list_folders():
            client.select_folder(name, readonly=True)
            uids = client.search()
            fetched = client.fetch(uids, ["FLAGS", "RFC822.SIZE"]) if uids else {}
            state[name] = sorted((uid, tuple(sorted(d[b"FLAGS"])), d[b"RFC822.SIZE"]) for uid, d in fetched.items())
        return state
    finally:
        client.logout()


def _drafts(server, user, folder) -> list:
    client = server.client(user)
    try:
        client.select_folder(folder, readonly=True)
        uids = client.search()
        fetched = client.fetch(uids, ["FLAGS", "RFC822"]) if uids else {}
        return [(d[b"FLAGS"], email.message_from_bytes(d[b"RFC822"], policy=policy.default)) for d in fetched.values()]
    finally:
        client.logout()


@pytestmark_dovecot
def test_a_threaded_draft_lands_in_drafts_and_replaces_only_tillers_own(server, tiller_home):
    from app.backends.ledger import Ledger

    account = _account(server, save_drafts=True)
    # a draft the user wrote in their own client: never touched
    server.append("kay", "Drafts", [b"From: kay.mann@enron.com\r\nSubject: mine\r\n\r\nmy own draft\r\n"])
    before = _mailbox_state(server, "kay")
    key = draft_key(account.name, ORIGINAL.message_id, "")
    first = draft_message(
        "It is ready.\n\nKay", from_addr="kay.mann@enron.com", to=None, subject=None, original=ORIGINAL, key=key
    )
    saved = save_draft(account, KAY_PASSWORD, first, key)
    assert saved.folder == "Drafts"
    assert saved.replaced == 0
    drafts = _drafts(server, "kay", "Drafts")
    ours = [(flags, m) for flags, m in drafts if m[TILLER_HEADER] == key]
    assert len(drafts) == 2
    assert len(ours) == 1
    flags, msg = ours[0]
    assert b"\\Draft" in flags
    assert b"\\Seen" in flags
    assert msg["In-Reply-To"] == ORIGINAL.message_id
    assert msg["Subject"] == "Re: NG contract"
    # drafting the same reply again replaces Tiller's draft, and only it
    second = draft_message(
        "It is ready; legal has it.\n\nKay",
        from_addr="kay.mann@enron.com",
        to=None,
        subject=None,
        original=ORIGINAL,
        key=key,
    )
    assert save_draft(account, KAY_PASSWORD, second, key).replaced == 1
    drafts = _drafts(server, "kay", "Drafts")
    assert sorted(m["Subject"] for _, m in drafts) == ["Re: NG contract", "mine"]
    assert "legal has it" in next(m for _, m in drafts if m[TILLER_HEADER] == key).get_content()
    after = _mailbox_state(server, "kay")
    assert {k: v for k, v in after.items() if k != "Drafts"} == {k: v for k, v in before.items() if k != "Drafts"}
    # the APPENDs are in the privacy ledger: which server and folder, and the message as sent
    rows = [r for r in Ledger().entries(limit=10) if r["purpose"] == "save-draft"]
    assert len(rows) == 2
    assert all(r["method"] == "APPEND" and r["url"].endswith(f":{server.tls_port}/Drafts") for r in rows)
    assert "legal has it" in rows[0]["request_payload"] or "legal has it" in rows[1]["request_payload"]


@pytestmark_dovecot
def test_a_drafts_folder_in_another_language_is_found_by_name(server, tiller_home):
    account = _account(server, user="lena", save_drafts=True)
    key = draft_key(account.name, None, "hallo")
    saved = save_draft(
        account,
        LENA_PASSWORD,
        draft_message("Hallo", from_addr="lena@example.org", to="a@b.c", subject="Hi", original=None, key=key),
        key,
    )
    assert saved.folder == "Entwürfe"
    assert len(_drafts(server, "lena", "Entwürfe")) == 1


@pytestmark_dovecot
def test_a_refused_write_is_one_line_and_the_scope_off_connects_to_nothing(server, tiller_home):
    from app.mail.imap import ImapError

    account = _account(server, save_drafts=True, drafts_folder="Nowhere")
    key = draft_key(account.name, None, "x")
    message = draft_message("x", from_addr="kay.mann@enron.com", to="a@b.c", subject="x", original=None, key=key)
    with pytest.raises(ImapError) as refused:
        save_draft(account, KAY_PASSWORD, message, key)
    assert "refused to save the draft in 'Nowhere'" in str(refused.value)
    assert "\n" not in str(refused.value)
    before = _mailbox_state(server, "kay")
    with pytest.raises(DraftsOff, match="--save-drafts on"):
        save_draft(_account(server), "wrong password: never used", message, key)
    assert _mailbox_state(server, "kay") == before


@pytestmark_dovecot
def test_tiller_draft_replies_to_an_imported_message_and_saves_it_threaded(server, db, scripted_backend, script):
    """The whole path a user takes: an account with its inbox as context, `tiller inbox`, a reply
    drafted to one of its messages and saved to Drafts only once the account allows it."""
    from click.testing import CliRunner

    from app.cli import cli

    runner = CliRunner()
    flags = ["--imap", "127.0.0.1", "--user", "kay", "--port", str(server.tls_port), "--tls-ca", str(server.cert)]
    added = runner.invoke(
        cli,
        ["accounts", "add", "work", *flags, "--context-folder", "INBOX", "--password-stdin"],
        input=KAY_PASSWORD + "\n",
    )
    assert added.exit_code == 0, added.output
    imported = runner.invoke(cli, ["import", "imap:work"])
    assert imported.exit_code == 0, imported.output
    inbox = runner.invoke(cli, ["inbox", "--limit", "3"])
    assert inbox.exit_code == 0
    assert "subject" in inbox.output
    (message_id, header, subject) = db.execute(
        "SELECT id, message_id, subject FROM messages WHERE identity_id IS NULL AND message_id IS NOT NULL "
        "ORDER BY date DESC LIMIT 1"
    ).fetchone()
    args = [
        "draft",
        "Say the contract goes to legal today",
        "--backend",
        scripted_backend,
        "--reply-to-message",
        str(message_id),
        "--from",
        "kay.mann@enron.com",
        "--save",
    ]
    refused = runner.invoke(cli, args)
    assert refused.exit_code != 0
    assert "--save-drafts on" in refused.output
    assert script.requests == []
    turned_on = runner.invoke(cli, ["accounts", "set", "work", "--save-drafts", "on", "--yes"])
    assert turned_on.exit_code == 0
    assert "deletes only a draft it added itself" in turned_on.output
    script.enqueue("The contract goes to legal today.\n\nKay")
    saved = runner.invoke(cli, args)
    assert saved.exit_code == 0, saved.output
    assert "Saved to work in Drafts as a threaded reply" in saved.output
    ours = [m for _, m in _drafts(server, "kay", "Drafts") if m["In-Reply-To"] == header]
    assert len(ours) == 1
    assert "contract goes to legal today" in ours[0].get_content()
    assert ours[0]["Subject"].startswith("Re: ")
    assert not ours[0]["Subject"].lower().startswith("re: re:")
