"""IMAP accounts against a real Dovecot on 127.0.0.1 (tests/imap_server.py), seeded with real
Enron mail by IMAP APPEND: first import, incremental import, UIDVALIDITY change, a non-ASCII Sent
folder found by name, a connection cut mid-fetch, a wrong password, an untrusted certificate, and
the server's \\Seen flags untouched. Skipped, with the reason, where Dovecot is not installed."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from tests.imap_server import Dovecot, DroppingProxy, dovecot_missing

pytestmark = pytest.mark.skipif(dovecot_missing() is not None, reason=dovecot_missing() or "")

KAY_PASSWORD = "kay-Imap-pw-7c1e"
MARIE_PASSWORD = "marie-Imap-pw-3b9d"
KAY_TOKEN = "ya29.kay-access-token-0f4e"  # an OAuth2 access token, checked by the server's token-info endpoint


def _files(folder: Path, n: int) -> list[bytes]:
    files = sorted((p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.name)
    return [p.read_bytes() for p in files[:n]]


@pytest.fixture(scope="module")
def server(enron):
    """Kay: 150 of Kay Mann's sent messages in Sent (flagged \\Sent), 60 of her inbox in INBOX.
    Marie: 40 of Dutch Quigley's sent messages in a folder named "Éléments envoyés" (no flag)."""
    dovecot = Dovecot(
        {"kay": KAY_PASSWORD, "marie": MARIE_PASSWORD, "rob": "rob-Imap-pw-5e2a"}, tokens={KAY_TOKEN: "kay"}
    ).start()
    maildir = enron / "maildir"
    sent = _files(maildir / "mann-k" / "sent_items", 190)
    dovecot.seed = {"sent": sent, "inbox": _files(maildir / "mann-k" / "inbox", 60)}
    dovecot.append("kay", "Sent", sent[:150])
    dovecot.append("kay", "INBOX", dovecot.seed["inbox"])
    dovecot.seed["marie"] = _files(maildir / "quigley-d" / "sent_items", 45)
    dovecot.append("marie", "Éléments envoyés", dovecot.seed["marie"][:40])
    dovecot.append("rob", "Archive 2001", _files(maildir / "rogers-b", 12))
    yield dovecot
    dovecot.stop()


def _in_sent(server) -> int:
    """How many messages Kay's Sent holds now (150, or 190 once the first test added 40)."""
    client = server.client("kay")
    try:
        return client.select_folder("Sent", readonly=True)[b"EXISTS"]
    finally:
        client.logout()


def _account(server, name="work", user="kay", **kw):
    from app.mail.imap import ImapAccount

    return ImapAccount(name=name, host="127.0.0.1", user=user, port=server.tls_port, ca_file=str(server.cert), **kw)


def _import(db, name="work", batch_size=250, **options):
    from app.mail.accounts import imap_source
    from app.mail.importer import MailImport

    source = imap_source(db, name, **options)
    job = MailImport(db, source, batch_size=batch_size)
    for _ in job.run():
        pass
    return job.result, source


def _stored(db, folder_like="%") -> int:
    return db.execute(
        "SELECT count(*) FROM messages m JOIN sources s ON s.id = m.source_id WHERE s.kind = 'imap' AND m.folder LIKE ?",
        [folder_like],
    ).fetchone()[0]


def test_add_an_account_import_its_sent_folder_then_only_what_is_new(server, db, tiller_home, file_keyring):
    from app.mail.accounts import add_account

    check = add_account(db, _account(server, context_folders=("INBOX",)), KAY_PASSWORD)
    assert check.sent_folder == "Sent"  # the \Sent flag (RFC 6154)
    result, _ = _import(db)
    counts = result.counts
    assert result.status == "completed"
    assert counts.adds_up()
    assert counts.seen == 150 + 60
    assert counts.stored + counts.duplicates == 210
    assert counts.skipped == 0
    assert "kay.mann@enron.com" in result.new_identities  # the Sent folder says who the user is
    sent_rows = db.execute("SELECT count(*) FROM messages WHERE folder = 'Sent' AND is_sent_folder = 1").fetchone()[0]
    assert sent_rows == _stored(db, "Sent") > 0
    assert db.execute("SELECT count(*) FROM messages WHERE folder = 'INBOX' AND is_sent_folder = 1").fetchone()[0] == 0

    # the password is in the keyring, nowhere in Tiller's folder
    assert file_keyring.get_password("Tiller", "imap:work") == KAY_PASSWORD
    for path in tiller_home.rglob("*"):
        if path.is_file():
            assert KAY_PASSWORD.encode() not in path.read_bytes(), path

    # nothing new: the rerun asks the server for nothing and stores nothing
    again, source = _import(db)
    assert again.counts.seen == 0
    assert again.counts.stored == 0

    # 40 more in Sent: only they are fetched
    server.append("kay", "Sent", server.seed["sent"][150:190])
    third, _ = _import(db)
    assert third.counts.seen == 40
    assert third.counts.stored + third.counts.duplicates == 40
    assert third.counts.already_imported == 0


def test_the_server_keeps_its_flags_and_its_mail(server, db):
    from app.mail.accounts import add_account

    def state():
        client = server.client("kay")
        try:
            out = {}
            for folder in ("Sent", "INBOX"):
                client.select_folder(folder, readonly=True)
                out[folder] = client.get_flags(client.search("ALL"))
            return out
        finally:
            client.logout()

    before = state()
    assert all(b"\\Seen" not in flags for folder in before.values() for flags in folder.values())
    add_account(db, _account(server, name="peek", context_folders=("INBOX",)), KAY_PASSWORD)
    _import(db, "peek")
    assert state() == before  # no \Seen set, nothing moved or deleted


def test_a_non_ascii_sent_folder_is_found_by_name_and_a_changed_uidvalidity_doubles_nothing(server, db):
    from app.mail.accounts import add_account

    check = add_account(db, _account(server, name="marie", user="marie"), MARIE_PASSWORD)
    assert check.sent_folder == "Éléments envoyés"  # no \Sent flag: found by its French name
    first, _ = _import(db, "marie")
    assert first.counts.seen == 40
    assert first.counts.adds_up()
    assert "dutch.quigley@enron.com" in first.new_identities
    messages_before = db.execute("SELECT count(*) FROM messages").fetchone()[0]

    # the folder is deleted and made again: a new UIDVALIDITY, the same 40 messages plus 5 new ones
    client = server.client("marie")
    try:
        client.delete_folder("Éléments envoyés")
    finally:
        client.logout()
    server.append("marie", "Éléments envoyés", server.seed["marie"])
    again, _ = _import(db, "marie")
    assert again.counts.seen == 45 and again.counts.adds_up()  # read again from the start
    assert again.counts.duplicates >= 40  # the 40 known ones are recognised, not stored twice
    assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == messages_before + again.counts.stored
    assert again.counts.stored <= 5


def test_without_a_recognisable_sent_folder_the_user_is_asked_to_name_one(server, db):
    from app.mail.accounts import add_account
    from app.mail.imap import ImapError

    check = add_account(db, _account(server, name="rob", user="rob"), "rob-Imap-pw-5e2a")
    assert check.sent_folder is None
    assert "Archive 2001" in check.folders
    with pytest.raises(ImapError, match="no Sent folder found.*--sent-folder NAME.*Archive 2001"):
        _import(db, "rob")
    assert db["import_runs"].count == 0  # asked before anything was written
    add_account(db, _account(server, name="rob", user="rob", sent_folder="Archive 2001"), "rob-Imap-pw-5e2a")
    result, _ = _import(db, "rob")
    assert result.counts.seen == 12
    assert result.counts.adds_up()


def test_a_connection_cut_mid_fetch_reconnects_and_loses_or_doubles_nothing(server, db):
    """Cut five times, each time after messages arrived: more cuts than the 3 reconnects allowed in
    a row, which count from the last message that arrived (the import failed at the fourth)."""
    from app.mail.accounts import add_account

    proxy = DroppingProxy(server.tls_port, drop_after=40_000, drops=5)  # a few batches each time
    try:
        account = _account(server, name="flaky")
        add_account(db, account, KAY_PASSWORD)
        db.execute("UPDATE accounts SET port = ? WHERE name = 'flaky'", [proxy.port])
        total = _in_sent(server)
        result, source = _import(db, "flaky", batch_messages=5)
        assert proxy.dropped == 5
        assert source.reconnected == 5
        assert result.status == "completed"
        assert result.counts.seen == total
        keys = [
            r[0]
            for r in db.execute(
                "SELECT item_key FROM source_items i JOIN sources s ON s.id = i.source_id WHERE s.location LIKE ?",
                [f"imap://kay@127.0.0.1:{proxy.port}"],
            )
        ]
        assert len(keys) == len(set(keys)) == total
    finally:
        proxy.close()


def test_when_reconnecting_is_not_enough_a_rerun_resumes_from_the_last_stored_uid(server, db):
    from app.mail.accounts import add_account
    from app.mail.imap import ImapError

    proxy = DroppingProxy(server.tls_port, drop_after=200_000)
    try:
        add_account(db, _account(server, name="cut"), KAY_PASSWORD)
        total = _in_sent(server)
        db.execute("UPDATE accounts SET port = ? WHERE name = 'cut'", [proxy.port])
        with pytest.raises(ImapError, match="failed 1 times.*run the import again"):
            _import(db, "cut", batch_size=25, batch_messages=20, reconnects=0)
        kept = db.execute(
            "SELECT count(*) FROM source_items i JOIN sources s ON s.id = i.source_id WHERE s.kind = 'imap' "
            "AND s.location = ?",
            [f"imap://kay@127.0.0.1:{proxy.port}"],
        ).fetchone()[0]
        assert 0 < kept < total  # committed batches stay
        rerun, _ = _import(db, "cut")
        assert rerun.counts.seen == total - kept
        assert rerun.counts.already_imported == 0
        stored_keys = db.execute(
            "SELECT count(DISTINCT item_key) FROM source_items i JOIN sources s ON s.id = i.source_id "
            "WHERE s.location = ?",
            [f"imap://kay@127.0.0.1:{proxy.port}"],
        ).fetchone()[0]
        assert stored_keys == total
    finally:
        proxy.close()


def test_a_message_over_the_size_limit_is_counted_and_skipped_without_being_downloaded(server, db):
    from app.mail.accounts import add_account

    add_account(db, _account(server, name="sizes", user="marie"), MARIE_PASSWORD)
    result, source = _import(db, "sizes", max_message_bytes=2_000)  # the limit is 50 MiB; 2 kB makes it bite
    counts = result.counts
    assert counts.adds_up()
    assert counts.skipped == counts.skip_reasons["too-large"] > 0
    assert counts.stored > 0
    detail = db.execute("SELECT detail FROM source_items WHERE reason = 'too-large' LIMIT 1").fetchone()[0]
    assert "over the 2,000-byte limit" in detail
    assert "not downloaded" in detail


def test_cancel_stops_after_the_current_batch_and_the_rerun_fetches_the_rest(server, db):
    from app.jobs import CancelToken
    from app.mail.accounts import add_account, imap_source
    from app.mail.importer import MailImport

    add_account(db, _account(server, name="cancelled"), KAY_PASSWORD)
    total = _in_sent(server)
    token = CancelToken()
    job = MailImport(db, imap_source(db, "cancelled", batch_messages=10), cancel=token, batch_size=10)
    for progress in job.run():
        if progress.done >= 25:
            token.cancel()
    assert job.result.status == "cancelled"
    first = job.result.counts.seen
    assert 25 <= first < total
    rest, _ = _import(db, "cancelled")
    assert rest.counts.adds_up()
    assert first + rest.counts.seen == total
    assert rest.counts.already_imported == 0
    keys = db.execute(
        "SELECT count(DISTINCT item_key), count(*) FROM source_items i JOIN sources s ON s.id = i.source_id "
        "WHERE s.location = ?",
        [f"imap://kay@127.0.0.1:{server.tls_port}"],
    ).fetchone()
    assert keys[0] == keys[1] == total  # every message once


def test_a_wrong_password_says_so_and_writes_nothing(server, db, file_keyring):
    from app.mail.accounts import add_account
    from app.mail.imap import ImapError

    before = {t: db[t].count for t in ("accounts", "sources", "import_runs", "messages")}
    with pytest.raises(ImapError, match="login refused for kay.*app password") as caught:
        add_account(db, _account(server, name="typo"), "not-the-password")
    assert "not-the-password" not in str(caught.value)
    assert {t: db[t].count for t in before} == before
    assert file_keyring.get_password("Tiller", "imap:typo") is None


def test_an_untrusted_certificate_is_refused_unless_the_user_trusts_it(server, db):
    from app.mail.accounts import add_account
    from app.mail.imap import ImapAccount, ImapError

    plain = ImapAccount(name="selfsigned", host="127.0.0.1", user="kay", port=server.tls_port)
    with pytest.raises(ImapError, match="certificate is not trusted.*--tls-ca"):
        add_account(db, plain, KAY_PASSWORD)
    assert db["accounts"].count == 0
    unsafe = ImapAccount(name="selfsigned", host="127.0.0.1", user="kay", port=server.tls_port, verify_tls=False)
    assert unsafe.unsafe
    assert "not verified" in unsafe.unsafe[0]
    assert add_account(db, unsafe, KAY_PASSWORD).sent_folder == "Sent"  # the user opted in


def test_xoauth2_logs_in_with_a_pasted_access_token_and_an_expired_one_says_so(server, db, file_keyring):
    from app.mail.accounts import add_account
    from app.mail.imap import ImapError

    check = add_account(db, _account(server, name="oauth", auth="xoauth2"), KAY_TOKEN)
    assert check.sent_folder == "Sent"
    assert file_keyring.get_password("Tiller", "imap:oauth") == KAY_TOKEN
    result, _ = _import(db, "oauth")
    assert result.status == "completed"
    assert result.counts.seen == _in_sent(server)
    # last: after a refused login Dovecot slows the next ones from this address for a few seconds
    with pytest.raises(ImapError, match="access token may have expired"):
        add_account(db, _account(server, name="stale", auth="xoauth2"), "ya29.expired")


def test_starttls_on_the_plain_port(server, db):
    from app.mail.accounts import add_account

    account = _account(server, name="starttls", security="starttls")
    account = type(account)(**{**account.__dict__, "port": server.port})
    assert add_account(db, account, KAY_PASSWORD).sent_folder == "Sent"


def test_the_cli_adds_lists_tests_imports_and_removes_an_account(server, tiller_home):
    from app.cli import cli

    runner = CliRunner()

    def add(name, password):
        flags = ["--imap", "127.0.0.1", "--port", str(server.tls_port), "--user", "kay", "--tls-ca", str(server.cert)]
        return runner.invoke(cli, ["accounts", "add", name, *flags, "--password-stdin"], input=password + "\n")

    added = add("home", KAY_PASSWORD)
    assert added.exit_code == 0, added.output
    assert "sent mail: Sent" in added.output
    assert KAY_PASSWORD not in added.output
    listed = runner.invoke(cli, ["accounts", "list"])
    assert "home" in listed.output
    assert "127.0.0.1" in listed.output
    assert runner.invoke(cli, ["accounts", "test", "home"]).exit_code == 0
    first = runner.invoke(cli, ["import", "imap:home"])
    assert first.exit_code == 0, first.output
    assert "stored" in first.output
    assert "kay.mann@enron.com" in first.output
    second = runner.invoke(cli, ["import", "imap:home"])
    assert second.exit_code == 0
    assert " seen " in second.output
    missing = runner.invoke(cli, ["import", "imap:nobody"])
    assert missing.exit_code != 0
    assert "no account named 'nobody'" in missing.output
    wrong = add("bad", "wrong")
    assert wrong.exit_code == 1
    assert "login refused" in wrong.output
    assert len(wrong.output.strip().splitlines()) == 1
    assert runner.invoke(cli, ["accounts", "remove", "home"]).exit_code == 0
    assert "No accounts yet" in runner.invoke(cli, ["accounts", "list"]).output


@pytest.mark.slow  # the Qt app
def test_the_import_page_imports_from_a_mail_server_then_only_what_is_new(server, tiller_home, qtbot):
    pytest.importorskip("PySide6")
    from PySide6.QtCore import Qt

    from app.gui.import_page import ImportPage

    page = ImportPage()
    qtbot.addWidget(page)
    page.show()
    assert not page.server_box.isVisible()  # no account yet: the form waits for its button
    qtbot.mouseClick(page.choose_server, Qt.LeftButton)
    assert page.server_box.isVisible()
    page.account.setEditText("office")
    page.host.setText("127.0.0.1")
    page.port.setValue(server.tls_port)
    page.user.setText("kay")
    page.ca_file.setText(str(server.cert))
    page.password.setText("wrong password")
    qtbot.mouseClick(page.server_import, Qt.LeftButton)
    qtbot.waitUntil(lambda: not page.job.running, timeout=60_000)
    assert "login refused for kay" in page.preview.text()
    assert page.last_result is None

    page.password.setText(KAY_PASSWORD)
    page.security.setCurrentIndex(2)  # plain text: the page says it is unsafe
    assert "Unsafe" in page.risk.text()
    page.security.setCurrentIndex(0)
    assert page.risk.text() == ""
    with qtbot.waitSignal(page.sig_import_finished, timeout=60_000) as first:
        qtbot.mouseClick(page.server_import, Qt.LeftButton)
    assert first.args[0].status == "completed"
    assert first.args[0].counts.seen == _in_sent(server)
    assert page.password.text() == "" and "office" in page._accounts  # stored; the field forgets it
    # the account is remembered: pick it and import again, no password typed
    page.account.setCurrentText("office")
    with qtbot.waitSignal(page.sig_import_finished, timeout=60_000) as second:
        qtbot.mouseClick(page.server_import, Qt.LeftButton)
    assert second.args[0].counts.seen == 0
    reopened = ImportPage()  # with an account stored, the form shows at once
    qtbot.addWidget(reopened)
    reopened.show()
    assert reopened.server_box.isVisible()
    assert reopened.account.findText("office") >= 0
