"""The IMAP path against a server that misbehaves on purpose (tests/hostile_imap.py), beside the
Dovecot tests: what the 2026-12-05 probe found (issue 5/5), each failing on d4a3385."""

import pytest
from click.testing import CliRunner

from tests.hostile_imap import HostileImapServer

PASSWORD = "PW-s3cret-echo-42"


def _account(server, name="hostile", **kw):
    from app.mail.imap import ImapAccount

    return ImapAccount(name=name, host="127.0.0.1", user="kay", port=server.port, security="plaintext", **kw)


def test_a_password_the_server_echoes_is_never_shown(db):
    """Item 1: `login refused for kay ([AUTHENTICATIONFAILED] wrong password PW-...)` printed it."""
    from app.mail.accounts import AccountError, add_account
    from app.mail.imap import ImapError

    with HostileImapServer("the-right-one", echo_password=True) as server:
        with pytest.raises((ImapError, AccountError)) as caught:
            add_account(db, _account(server), PASSWORD)
        assert server.logins == [PASSWORD]  # the server did get it, and echoed it
    message = str(caught.value)
    assert "login refused for kay" in message
    assert PASSWORD not in message
    assert "[password removed]" in message


def test_the_cli_never_prints_an_echoed_password(db):
    from app.cli import cli

    with HostileImapServer("the-right-one", echo_password=True) as server:
        result = CliRunner().invoke(
            cli,
            [
                "accounts", "add", "hostile", "--imap", "127.0.0.1", "--port", str(server.port), "--user", "kay",
                "--plaintext-unsafe", "--password-stdin",
            ],
            input=PASSWORD + "\n",
        )  # fmt: skip
    assert result.exit_code != 0
    assert PASSWORD not in result.output, result.output
    assert "login refused" in result.output, result.output


def test_redaction_covers_the_base64_form_of_a_token():
    import base64

    from app.mail.imap import redact_secret

    token = "ya29.token-value"
    said = f"[AUTHENTICATIONFAILED] bad token {base64.b64encode(token.encode()).decode()} for {token}"
    assert token not in redact_secret(said, token)
    assert base64.b64encode(token.encode()).decode() not in redact_secret(said, token)


def test_a_password_with_spaces_at_its_ends_is_stored_as_typed(db):
    """Item 7: it passed the login check, was stored stripped, and every later import was refused."""
    from app.mail.accounts import account_secret, add_account, get_account

    typed = "  spaced pass  "
    with HostileImapServer(typed) as server:
        add_account(db, _account(server), typed)
        account = get_account(db, "hostile")
        assert account_secret(account) == typed
        from app.mail.imap import close_client, connect

        close_client(connect(account, account_secret(account)))  # the stored password logs in again
        assert server.logins == [typed, typed]


def _kay_messages(enron, n: int) -> list[bytes]:
    files = sorted((enron / "maildir" / "mann-k" / "sent_items").iterdir())[:n]
    return [f.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") for f in files]


def _import_account(db, server, name="hostile"):
    from app.mail.accounts import add_account, imap_source
    from app.mail.importer import MailImport

    add_account(db, _account(server, name=name), PASSWORD)
    job = MailImport(db, imap_source(db, name))
    for _ in job.run():
        pass
    return job.result


def test_one_malformed_fetch_item_costs_that_item_only(db, enron):
    """Item 2: `* 5 FETCH )))(((` (ProtocolError) or `RFC822.SIZE NIL` (TypeError) stored 0 of the
    folder, on every rerun."""
    messages = _kay_messages(enron, 8)
    folders = {b"INBOX": (b"", []), b"Sent": (b"\\Sent", messages)}
    with HostileImapServer(PASSWORD, folders=folders, garbage_fetch={5}, nil_size={3}) as server:
        result = _import_account(db, server)
    counts = result.counts
    assert (counts.stored, counts.skipped) == (6, 2), counts
    assert counts.skip_reasons["malformed"] == 2
    details = [r[0] for r in db.execute("SELECT detail FROM source_items WHERE status = 'skipped' ORDER BY item_key")]
    assert any("RFC822.SIZE NIL" in d for d in details), details
    assert any("could not be read" in d for d in details), details


def test_a_folder_name_that_is_not_modified_utf7_is_shown_escaped_and_skipped(db, enron):
    """Item 5: one `&ZZZ-invalid` folder made `accounts add`, `test` and every import fail."""
    from app.mail.accounts import probe

    folders = {b"INBOX": (b"", []), b"&ZZZ-invalid": (b"", []), b"Sent": (b"\\Sent", _kay_messages(enron, 3))}
    with HostileImapServer(PASSWORD, folders=folders) as server:
        check = probe(_account(server), PASSWORD)
        assert check.sent_folder == "Sent"
        assert "INBOX" in check.folders
        assert check.skipped_folders
        assert "&ZZZ-invalid" in check.skipped_folders[0]
        assert _import_account(db, server).counts.stored == 3


@pytest.mark.parametrize("uidvalidity", [None, "abc"])
def test_a_missing_or_non_numeric_uidvalidity_is_one_sentence(db, enron, uidvalidity):
    """Item 8: KeyError / ValueError came out as an internal error."""
    from app.mail.imap import ImapError

    folders = {b"Sent": (b"\\Sent", _kay_messages(enron, 2))}
    with (
        HostileImapServer(PASSWORD, folders=folders, uidvalidity=uidvalidity) as server,
        pytest.raises(ImapError) as caught,
    ):
        _import_account(db, server)
    said = str(caught.value)
    assert "'Sent'" in said, said
    assert "no usable UIDVALIDITY" in said or "made no sense" in said, said
    assert "\n" not in said


@pytest.mark.slow  # waits out a server that trickles on purpose (7 deadlines of 1 s): CI runs it, the fast subset does not
def test_a_trickling_server_cannot_hold_an_import(db, enron, monkeypatch):
    """Item 3: one byte every 5-20 s never tripped the 60 s read timeout; the import hung. Then a
    message the server trickles out stopped every import at it, after four deadlines each (about
    8 minutes at the default 120 s): it is now asked for alone and skipped as unreadable, and the
    next import asks for it again. A server that sends nothing in time still stops the import."""
    import time

    from app.mail import imap
    from app.mail.accounts import imap_source
    from app.mail.imap import ImapError
    from app.mail.importer import MailImport

    monkeypatch.setattr(imap, "COMMAND_DEADLINE_S", 1.0)
    monkeypatch.setattr(imap, "MIN_BYTES_PER_S", 10**9)
    from imapclient import IMAPClient

    # A LOGOUT on a connection cut mid-answer waited out the rest of the trickle: one more
    # deadline per attempt (16.9 s with a 2 s deadline; 16 minutes at the default 120 s).
    logouts_that_failed: list[str] = []
    log_out = IMAPClient.logout

    def logout(client):
        try:
            return log_out(client)
        except Exception as exc:
            logouts_that_failed.append(f"{type(exc).__name__}: {exc}")
            raise

    monkeypatch.setattr(IMAPClient, "logout", logout)
    folders = {b"Sent": (b"\\Sent", _kay_messages(enron, 3))}
    with HostileImapServer(PASSWORD, folders=folders, trickle={2}) as server:
        began = time.monotonic()
        first = _import_account(db, server)
        took = time.monotonic() - began
        counts = first.counts
        assert first.status == "completed"
        assert (counts.stored, counts.skipped, counts.skip_reasons["unreadable"]) == (2, 1, 1), counts
        assert took < 10  # two failed batches, then the message alone: 3 deadlines of 1 s
        detail = db.execute("SELECT detail FROM source_items WHERE status = 'skipped'").fetchone()[0]
        assert "sends too slowly" in detail
        assert "the next import asks for it again" in detail
        server.trickle.clear()  # the server recovered
        job = MailImport(db, imap_source(db, "hostile"))
        for _ in job.run():
            pass
    assert (job.result.counts.stored, job.result.counts.skipped) == (1, 0), job.result.counts
    assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 3
    assert logouts_that_failed == []
    # a server that sends no message in time: the reconnects run out, one message is skipped on the way
    with HostileImapServer(PASSWORD, folders=folders, trickle={1, 2, 3}) as server:
        began = time.monotonic()
        with pytest.raises(ImapError) as caught:
            _import_account(db, server, name="stalled")
        took = time.monotonic() - began
    assert took < 12  # 4 deadlines of 1 s
    assert "failed 4 times" in str(caught.value)
    assert "sends too slowly" in str(caught.value)
    assert "run the import again" in str(caught.value)
    assert logouts_that_failed == []


def test_cancel_stops_an_import_waiting_on_the_server_at_once(db, enron):
    """Item 3: Ctrl-C did not stop it (alive 300 s later; twice: 268 s)."""
    import threading
    import time

    from app.jobs import CancelToken
    from app.mail.accounts import add_account, imap_source
    from app.mail.importer import MailImport

    folders = {b"Sent": (b"\\Sent", _kay_messages(enron, 3))}
    with HostileImapServer(PASSWORD, folders=folders, trickle={1}) as server:
        add_account(db, _account(server), PASSWORD)
        token = CancelToken()
        job = MailImport(db, imap_source(db, "hostile"), cancel=token)
        threading.Timer(1.0, token.cancel).start()
        began = time.monotonic()
        for _ in job.run():
            pass
    assert time.monotonic() - began < 10
    assert job.result.status == "cancelled"


def test_a_literal_over_the_cap_is_not_read_and_costs_that_message_only(db, enron):
    """Item 4: a server that announced a few KB and sent 400 MB grew the importer to 461 MB."""
    from app.mail.accounts import add_account, get_account
    from app.mail.imap import ImapSource
    from app.mail.importer import MailImport

    folders = {b"Sent": (b"\\Sent", _kay_messages(enron, 4))}
    with HostileImapServer(PASSWORD, folders=folders, huge_literal={2: 8 << 20}) as server:
        add_account(db, _account(server), PASSWORD)
        source = ImapSource(get_account(db, "hostile"), PASSWORD, max_message_bytes=1 << 20)
        job = MailImport(db, source)
        for _ in job.run():
            pass
    counts = job.result.counts
    assert (counts.stored, counts.skipped, counts.skip_reasons["too-large"]) == (3, 1, 1), counts
    detail = db.execute("SELECT detail FROM source_items WHERE status = 'skipped'").fetchone()[0]
    assert "over the" in detail
    assert "not downloaded" in detail


def test_messages_skipped_on_a_glitch_are_fetched_again_once_the_server_recovers(db, enron):
    """Item 6: they were below the recorded highest UID, so 20 of 30 were lost for good."""
    from app.mail.accounts import imap_source
    from app.mail.importer import MailImport

    folders = {b"Sent": (b"\\Sent", _kay_messages(enron, 6))}
    with HostileImapServer(PASSWORD, folders=folders, garbage_fetch={2, 5}) as server:
        first = _import_account(db, server)
        assert (first.counts.stored, first.counts.skipped) == (4, 2)
        server.garbage_fetch.clear()  # the server recovered
        job = MailImport(db, imap_source(db, "hostile"))
        for _ in job.run():
            pass
    assert (job.result.counts.stored, job.result.counts.skipped) == (2, 0)
    assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 6
    assert db.execute("SELECT count(*) FROM source_items WHERE status = 'skipped'").fetchone()[0] == 0


def test_a_locked_or_failing_keyring_is_said_not_called_a_missing_password(db, monkeypatch):
    """Item 8: a locked keyring was reported as "no password"; another error as an internal one."""
    import keyring

    from app.mail.accounts import AccountError, account_secret
    from app.mail.imap import ImapAccount

    account = ImapAccount(name="work", host="127.0.0.1", user="kay")

    def locked(*args):
        raise keyring.errors.KeyringLocked("locked")

    monkeypatch.setattr(keyring, "get_password", locked)
    with pytest.raises(AccountError, match="is locked: unlock it"):
        account_secret(account)

    def broken(*args):
        raise TypeError("backend bug")

    monkeypatch.setattr(keyring, "get_password", broken)
    with pytest.raises(AccountError, match="failed when asked for the password: TypeError: backend bug"):
        account_secret(account)


def test_an_unreadable_folder_list_is_one_sentence(db):
    """Item 8: `LIST => unexpected response` came out as an internal error."""
    from app.mail.accounts import probe
    from app.mail.imap import ImapError

    with (
        HostileImapServer(PASSWORD, garbage_list=True) as server,
        pytest.raises(ImapError, match="list of folders made no sense"),
    ):
        probe(_account(server), PASSWORD)
