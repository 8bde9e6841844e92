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
    assert PASSWORD not in message and "[password removed]" in message


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
    assert PASSWORD not in result.output and "login refused" in result.output, result.output


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
