"""No mailbox can stop an import (issue 1/6): hostile messages, file-system traps, races and bad
state each end in a stored or skipped count, or in one sentence, never in a traceback or a hang.

Every case is built from real Enron mail (tests/corpus/hostile/, made by make_hostile_corpus.py).
The CLI is run as a real process (``python -m app``) so that the top-level error path is the one a
user meets. Cases that need a non-root user (read-only files and folders, unreadable directories:
root reads and writes them anyway) run that process as ``nobody`` when the tests run as root.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers import ANTHROPIC_TEST_KEY, REPO, run_import

CORPUS = REPO / "tests" / "corpus" / "hostile"
sys.path.insert(0, str(REPO / "tests" / "corpus"))
from make_hostile_corpus import COMMITTED_MAX_BYTES, hostile_cases  # noqa: E402

# What each case must become. "stored": a row (or a duplicate of the same real message, several
# cases share the VEPCO Message-ID); "skipped": counted with this reason.
SKIPPED = {"multipart-nested-3000.eml": "malformed"}


@contextmanager
def deadline(seconds: int, what: str):
    """Fail (instead of hanging the suite) when the block runs past ``seconds``."""

    def expired(signum, frame):
        raise TimeoutError(f"{what} still running after {seconds} s: a hang")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def tiller(
    *args: str,
    home: Path,
    unprivileged: bool = False,
    timeout: int = 120,
    extra_env: dict | None = None,
    input: str | None = None,
):
    """``tiller ARGS`` as a real process; returns the CompletedProcess (text). ``unprivileged``:
    file permissions apply to it even when the tests run as root (see :func:`without_root_powers`)."""
    env = dict(os.environ, TILLER_HOME=str(home), PYTHONPATH=str(REPO), COLUMNS="200", **(extra_env or {}))
    prefix = without_root_powers() if unprivileged else []
    return subprocess.run(
        [*prefix, sys.executable, "-m", "app", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        input=input,
    )


def without_root_powers() -> list[str]:
    """A command prefix under which permission bits bind: as root, drop the capabilities that
    override them (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) from the child; the child still runs the
    same Python (a user like ``nobody`` could not even reach it under /root)."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without setpriv (util-linux) to drop the permission-override capabilities")
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]


def one_line_error(proc) -> str:
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def build_corpus(root: Path, enron: Path) -> dict[str, str]:
    """A Maildir whose sent folder holds every hostile case; {key: case name}."""
    cur = root / "Sent" / "cur"
    cur.mkdir(parents=True)
    keys = {}
    for name, data in hostile_cases(enron / "maildir").items():
        committed = CORPUS / name
        if len(data) <= COMMITTED_MAX_BYTES:
            assert committed.read_bytes() == data, f"{committed} differs from make_hostile_corpus.py"
        (cur / name).write_bytes(data)
        keys[os.path.join("Sent", "cur", name)] = name
    return keys


@pytest.mark.parametrize("workers", [0, 1], ids=["inline", "worker-process"])
def test_no_hostile_message_stops_an_import(db, tmp_path, enron, workers):
    from app.store.imports import skipped_items

    keys = build_corpus(tmp_path / "mail", enron)
    with deadline(120, "the import of the hostile corpus"):
        result = run_import(db, tmp_path / "mail", workers=workers, my_addresses=["kay.mann@enron.com"])
    c = result.counts
    assert result.status == "completed"
    assert c.adds_up()
    assert c.seen == len(keys)
    skipped = {key: reason for _, key, reason, _ in skipped_items(db, result.run_id)}
    assert {keys[k]: r for k, r in skipped.items()} == SKIPPED
    assert c.stored + c.duplicates == len(keys) - len(SKIPPED)
    # every item is accounted for in the per-item record, so nothing can silently go missing
    recorded = db.execute("SELECT count(*) FROM source_items WHERE source_id = ?", [result.source_id]).fetchone()[0]
    assert recorded == len(keys)
    # RFC 6532: a UTF-8 Message-ID is stored as the characters it encodes, not skipped
    assert db.execute("SELECT count(*) FROM messages WHERE message_id = 'café.31228901@enron.com'").fetchone()[0] == 1
    # raw 8-bit bytes in headers are decoded, not lost
    subject = db.execute("SELECT subject FROM messages WHERE message_id = 'raw-8bit.1@enron.com'").fetchone()[0]
    assert subject == "VEPCO éè ÿ status"
    reply_to = db.execute("SELECT in_reply_to FROM messages WHERE message_id = 'latin1-reply.1@enron.com'").fetchone()[
        0
    ]
    assert reply_to == "\\xe9t\\xe9@enron.com"
    # a raw 8-bit attachment name is read as cp1252, not turned into U+FFFD
    attachment = db.execute(
        "SELECT own_text, attachments FROM messages WHERE message_id = 'att.8bit@enron.com'"
    ).fetchone()
    assert attachment[0] == "See attached."
    assert json.loads(attachment[1])[0]["filename"] == "résumé.pdf"


def test_a_rerun_over_the_hostile_corpus_adds_nothing(db, tmp_path, enron):
    build_corpus(tmp_path / "mail", enron)
    first = run_import(db, tmp_path / "mail")
    again = run_import(db, tmp_path / "mail")
    assert again.counts.stored == again.counts.duplicates == 0
    assert again.counts.already_imported == first.counts.stored + first.counts.duplicates
    assert again.counts.skipped == first.counts.skipped  # skipped items are tried again, and skipped again


def test_only_regular_files_are_read_and_large_ones_are_refused_by_size(db, tmp_path, enron):
    from app.mail.sources import MAX_MESSAGE_BYTES
    from app.store.imports import skipped_items

    cur = tmp_path / "mail" / "Sent" / "cur"
    cur.mkdir(parents=True)
    shutil.copy(enron / "maildir" / "mann-k" / "sent_items" / "1.", cur / "real")
    os.mkfifo(cur / "fifo")
    (cur / "zero").symlink_to("/dev/zero")
    (cur / "dangling").symlink_to(tmp_path / "nowhere")
    with open(cur / "huge", "wb") as fh:  # sparse: costs no disk
        fh.truncate(MAX_MESSAGE_BYTES + 1)
    with deadline(60, "an import of a folder with a FIFO and /dev/zero"):
        result = run_import(db, tmp_path / "mail")
    assert result.counts.adds_up()
    assert result.counts.seen == 5
    assert result.counts.stored == 1
    skipped = {key.rsplit("/", 1)[-1]: (reason, detail) for _, key, reason, detail in skipped_items(db, result.run_id)}
    assert skipped["fifo"] == ("not-a-file", "not a regular file (a FIFO)")
    assert skipped["zero"] == ("not-a-file", "not a regular file (a character device)")
    assert skipped["dangling"][0] == "unreadable"
    assert "No such file" in skipped["dangling"][1]
    assert skipped["huge"][0] == "too-large"
    assert "52,428,801 bytes" in skipped["huge"][1]


def test_an_unreadable_directory_is_counted_as_skipped_not_passed_over(tmp_path, enron):
    home, mail = tmp_path / "home", tmp_path / "mail"
    for folder in ("sent_items", "locked"):
        (mail / folder).mkdir(parents=True)
        for n in ("1.", "2."):
            shutil.copy(enron / "maildir" / "mann-k" / "sent_items" / n, mail / folder / n)
    os.chmod(mail / "locked", 0)
    try:
        proc = tiller("import", str(mail), "--me", "kay.mann@enron.com", home=home, unprivileged=True)
    finally:
        os.chmod(mail / "locked", 0o755)
    assert proc.returncode == 0, proc.stderr
    db = sqlite3.connect(home / "tiller.db")
    seen, stored, skipped = db.execute("SELECT seen, stored, skipped FROM import_runs").fetchone()
    assert (seen, stored, skipped) == (3, 2, 1)
    key, reason, detail = db.execute(
        "SELECT item_key, reason, detail FROM source_items WHERE status = 'skipped'"
    ).fetchone()
    assert key == "locked/"
    assert reason == "unreadable"
    assert "cannot be listed" in detail
    assert "locked/" in proc.stdout


def test_non_utf8_file_and_folder_names_are_stored_and_still_found_on_rerun(db, tmp_path, enron):
    root = tmp_path / "mail"
    folder = os.path.join(os.fsencode(root), b".Envoy\xe9s", b"cur")  # a Latin-1 Maildir++ sent folder
    os.makedirs(folder)
    data = (enron / "maildir" / "mann-k" / "sent_items" / "1.").read_bytes()
    with open(os.path.join(folder, b"1.r\xe9sum\xe9:2,S"), "wb") as fh:
        fh.write(data)
    result = run_import(db, root)
    assert (result.counts.stored, result.counts.skipped) == (1, 0)
    folder_name, is_sent, key = db.execute("SELECT folder, is_sent_folder, item_key FROM messages").fetchone()
    assert folder_name == "Envoyés" and is_sent == 1  # read as cp1252, so it is still a sent folder
    assert key == ".Envoy\\xe9s/cur/1.r\\xe9sum\\xe9:2,S"
    again = run_import(db, root)
    assert (again.counts.already_imported, again.counts.stored) == (1, 0)


def test_a_damaged_mbox_separator_is_a_warning_on_the_merged_message(db, tmp_path, enron):
    from app.mail.sources import MboxSource

    data = (enron / "mbox" / "quigley-d.inbox.mbox").read_bytes()
    clean = sum(1 for _ in MboxSource(enron / "mbox" / "quigley-d.inbox.mbox").iter_items())
    at = data.index(b"\nFrom ", data.index(b"\nFrom ") + 1) + 1
    damaged = tmp_path / "damaged.mbox"
    damaged.write_bytes(data[:at] + b"Frxm" + data[at + 4 :])
    result = run_import(db, damaged)
    assert result.counts.seen == clean - 1  # two messages merged into one item ...
    warned = db.execute(
        "SELECT detail FROM source_items WHERE reason = 'warning' AND source_id = ?", [result.source_id]
    ).fetchall()
    assert len(warned) == 1 and "damaged 'From ' separator" in warned[0][0]  # ... and said so


def test_an_empty_path_is_a_usage_error_not_the_current_folder(tmp_path):
    proc = tiller("import", "", home=tmp_path / "home")
    assert proc.returncode == 2
    assert "PATH is empty" in proc.stderr
    assert (
        not (tmp_path / "home" / "tiller.db").exists()
        or sqlite3.connect(tmp_path / "home" / "tiller.db").execute("SELECT count(*) FROM import_runs").fetchone()[0]
        == 0
    )


def _messages(db_path: Path) -> list[tuple]:
    db = sqlite3.connect(db_path)
    try:
        return sorted(db.execute("SELECT message_id, content_key, own_text, identity_id IS NOT NULL FROM messages"))
    finally:
        db.close()


def test_two_imports_at_once_give_the_database_one_import_gives(tmp_path, enron):
    mail = enron / "maildir" / "mann-k"
    single = tmp_path / "single"
    assert tiller("import", str(mail), home=single).returncode == 0
    both = tmp_path / "both"
    # the same source twice, and an overlapping one (a subfolder of it), all at the same moment
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "app", "import", str(path)],
            cwd=REPO,
            env=dict(os.environ, TILLER_HOME=str(both), PYTHONPATH=str(REPO)),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for path in (mail, mail, mail / "sent_items")
    ]
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs):
        assert proc.returncode == 0, err
        assert "Traceback" not in out + err
    assert _messages(both / "tiller.db") == _messages(single / "tiller.db")
    db = sqlite3.connect(both / "tiller.db")
    runs = db.execute("SELECT status, seen, stored, duplicates, skipped, already_imported FROM import_runs").fetchall()
    assert [r[0] for r in runs] == ["completed"] * 3
    assert all(r[1] == sum(r[2:]) for r in runs)  # every run's counts add up
    assert db.execute("SELECT count(*) FROM sources").fetchone()[0] == 2


def test_the_import_lock_waits_for_the_holder_and_can_be_cancelled(db, tmp_path, enron):
    from app.jobs import CancelToken
    from app.mail.importer import MailImport
    from app.mail.sources import open_source
    from app.store.locks import import_lock

    lock = import_lock(Path(os.environ["TILLER_HOME"]) / "tiller.db")
    assert lock.try_acquire()
    token = CancelToken()
    job = MailImport(db, open_source(enron / "maildir" / "mann-k" / "sent_items"), cancel=token)
    messages = []
    for progress in job.run():
        messages.append(progress.message)
        token.cancel()
    assert job.result.status == "cancelled"
    assert "waiting for another import" in messages[0]
    assert f"pid {os.getpid()}" in messages[0]
    lock.release()
    assert db.execute("SELECT count(*) FROM messages").fetchone()[0] == 0


# -- bad state: one sentence and exit code 3, never a traceback ------------------------------------


def test_a_garbage_database_names_the_file_and_what_is_left_to_do(tmp_path, enron):
    """With no backup to restore, the advice is to import again, not `tiller check --restore` (which
    this test asked for until issue 5/5 item 14: a restore that can only fail)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "tiller.db").write_bytes(b"this is not a database, it is a shopping list\n" * 100)
    proc = tiller("import", str(enron / "maildir" / "mann-k" / "sent_items"), home=home)
    assert proc.returncode == 3
    line = one_line_error(proc)
    assert str(home / "tiller.db") in line
    assert "damaged" in line
    assert "import your mail again" in line
    assert "tiller check --restore" not in line
    # with a sound backup beside it, the restore is the advice
    _sound_backup(home)
    line = one_line_error(tiller("import", str(enron / "maildir" / "mann-k" / "sent_items"), home=home))
    assert "tiller check --restore" in line


def test_a_zero_byte_database_is_a_new_empty_one(tmp_path, enron):
    home = tmp_path / "home"
    home.mkdir()
    (home / "tiller.db").write_bytes(b"")
    proc = tiller("import", str(enron / "maildir" / "mann-k" / "sent_items"), home=home)
    assert proc.returncode == 0, proc.stderr


def test_tiller_home_pointing_at_a_file(tmp_path):
    home = tmp_path / "a-file"
    home.write_text("not a folder")
    proc = tiller("identities", home=home)
    assert proc.returncode == 3
    assert "TILLER_HOME" in one_line_error(proc)
    assert "not a folder" in proc.stderr


@pytest.mark.parametrize("what", ["database file", "data folder"])
def test_a_read_only_store_is_one_sentence(tmp_path, enron, what):
    home = tmp_path / "home"
    mail = enron / "maildir" / "mann-k" / "sent_items"
    assert tiller("import", str(mail / ".."), "--me", "kay.mann@enron.com", home=home).returncode == 0
    if what == "database file":
        os.chmod(home / "tiller.db", 0o444)  # the folder stays writable, the file is not
    else:
        os.chmod(home, 0o555)
    before = _messages(home / "tiller.db")
    try:
        proc = tiller("import", str(REPO / "tests" / "corpus" / "hostile"), home=home, unprivileged=True)
    finally:
        os.chmod(home, 0o755)
        os.chmod(home / "tiller.db", 0o644)
    assert proc.returncode == 3, proc.stderr
    line = one_line_error(proc)
    assert "read-only" in line or "cannot open" in line.lower() or "Permission denied" in line, line
    assert _messages(home / "tiller.db") == before  # nothing lost


def test_a_full_disk_is_one_sentence_marks_the_run_failed_and_loses_nothing(tmp_path, enron):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CI runs as root)")
    home = tmp_path / "small-disk"
    home.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(home)], capture_output=True).returncode:
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        mail = enron / "maildir" / "mann-k"
        proc = tiller("import", str(mail), home=home)
        assert proc.returncode == 3, proc.stderr
        line = one_line_error(proc)
        assert "full" in line
        assert "run the same command again" in line
        assert "cannot rollback" not in proc.stderr
        subprocess.run(["mount", "-o", "remount,size=256m", str(home)], check=True)
        again = tiller("import", str(mail), home=home)
        assert again.returncode == 0, again.stderr
        db = sqlite3.connect(home / "tiller.db")
        statuses = [r[0] for r in db.execute("SELECT status FROM import_runs ORDER BY id")]
        assert statuses == ["failed", "completed"]
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        db.close()
        clean = tmp_path / "clean"
        assert tiller("import", str(mail), home=clean).returncode == 0
        assert _messages(home / "tiller.db") == _messages(clean / "tiller.db")
    finally:
        subprocess.run(["umount", "-l", str(home)], capture_output=True)


def test_debug_shows_the_traceback(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "tiller.db").write_bytes(b"garbage" * 1000)
    proc = tiller("--debug", "identities", home=home)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr
    assert "DatabaseError" in proc.stderr


# -- backups and tiller check ------------------------------------------------------------------------


def test_an_import_keeps_a_backup_that_check_restore_puts_back(tmp_path, enron):
    home = tmp_path / "home"
    mail = enron / "maildir" / "mann-k"
    assert tiller("import", str(mail / "sent_items"), home=home).returncode == 0
    assert tiller("import", str(mail / "inbox"), home=home).returncode == 0
    after_first = None
    backup = home / "tiller.db.bak"
    with sqlite3.connect(backup) as bak:  # taken before the second import: holds the first one's mail only
        after_first = bak.execute("SELECT count(*) FROM messages").fetchone()[0]
        assert bak.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert 0 < after_first < len(_messages(home / "tiller.db"))
    ok = tiller("check", home=home)
    assert ok.returncode == 0
    assert "integrity check ok" in ok.stdout
    assert "Everything checked is sound" in ok.stdout
    # damage the middle of the database: check says so and what to do
    size = (home / "tiller.db").stat().st_size
    with open(home / "tiller.db", "r+b") as fh:
        fh.seek(size // 2)
        fh.write(os.urandom(8192))
        fh.seek(100)
        fh.write(b"\xff" * 100)
    damaged = tiller("check", home=home)
    assert damaged.returncode == 3
    assert "problem" in damaged.stdout
    assert "tiller check --restore" in damaged.stdout
    restored = tiller("check", "--restore", home=home)
    assert restored.returncode == 0, restored.stderr
    assert "ok: " in restored.stdout
    assert len(_messages(home / "tiller.db")) == after_first
    assert list(home.glob("tiller.db.damaged-*"))  # the damaged file is kept, not deleted


def test_check_finds_an_adapter_that_differs_from_its_record(tmp_path):
    import hashlib
    import json

    home = tmp_path / "home"
    profile = home / "agents" / "kay.mann@enron.com"
    profile.mkdir(parents=True)
    adapter = profile / "adapter.gguf"
    adapter.write_bytes(b"GGUF" + os.urandom(4096))
    record = {
        "profile": "kay.mann@enron.com",
        "adapter": {"path": str(adapter)},
        "adapter_sha256": hashlib.sha256(adapter.read_bytes()).hexdigest(),
        "adapter_bytes": 4100,
    }
    (profile / "training.json").write_text(json.dumps(record))
    assert tiller("check", home=home).returncode == 0
    with open(adapter, "r+b") as fh:
        fh.seek(10)
        fh.write(b"\x00\x01")
    proc = tiller("check", home=home)
    assert proc.returncode == 3
    assert "sha256 differs" in proc.stdout
    assert "train again" in proc.stdout


# -- console text is never markup ----------------------------------------------------------------


@pytest.mark.slow
def test_markup_in_user_text_is_printed_as_text_by_every_command(tmp_path, enron, anthropic_server):
    home = tmp_path / "home"
    hostile = "[/x]"
    mail = tmp_path / f"mail{hostile}" / "Sent"
    mail.mkdir(parents=True)
    shutil.copy(enron / "maildir" / "mann-k" / "sent_items" / "1.", mail / "[bold]1.")
    (mail / "[bold]empty").write_bytes(b"")  # (a file name cannot hold the "/" of "[/x]")
    steps = [
        ("import", str(mail.parent), "--me", "kay.mann@enron.com"),
        ("imports",),
        ("imports", "1"),
        ("identities",),
        (
            "backends",
            "add",
            "b1",
            "--provider",
            "anthropic",
            "--model",
            f"claude{hostile}",
            "--base-url",
            f"{anthropic_server.url}/{hostile}",
        ),
        ("backends", "list"),
        ("keys",),
        ("backends", "test", "b1"),
        ("ledger",),
        ("ledger", "--show", "1"),
        ("backends", "remove", "b1"),
        ("ledger",),
        ("draft", f"tell Sylvia {hostile} is ready", "--no-agent", "--backend", "nope"),
    ]
    key = {"ANTHROPIC_API_KEY": ANTHROPIC_TEST_KEY}  # a subprocess has no test keyring: the env var is looked up last
    for step in steps:
        proc = tiller(*step, home=home, extra_env=key)
        out = proc.stdout + proc.stderr
        assert "Traceback" not in out, (step, out)
        assert "MarkupError" not in out, (step, out)
        assert "closing tag" not in out, (step, out)
        assert proc.returncode in (0, 1), (step, out)
    listed = tiller("imports", "1", home=home).stdout
    assert "[bold]empty" in listed
    assert hostile in listed
    ledger = tiller("ledger", home=home)
    assert hostile in ledger.stdout.replace("\n", "") or "[/x" in ledger.stdout


# -- reads on the user's behalf are bounded, arguments are checked ---------------------------------


def test_reply_and_rules_files_must_be_small_regular_files(tmp_path):
    home = tmp_path / "home"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big.txt"
    with open(big, "wb") as fh:
        fh.truncate(64 << 20)
    cases = [
        ("--reply-to", "/dev/zero", "regular file"),
        ("--rules-file", "/dev/zero", "regular file"),
        ("--reply-to", str(fifo), "regular file"),
        ("--rules-file", str(fifo), "regular file"),
        ("--reply-to", str(big), "at most"),
    ]
    for option, path, says in cases:
        proc = tiller("draft", "tell Sylvia it is ready", option, path, home=home, timeout=60)
        assert proc.returncode == 1, (option, path, proc.stderr)
        assert says in one_line_error(proc), (option, path, proc.stderr)


def test_bad_arguments_are_one_line_errors(tmp_path, enron):
    home = tmp_path / "home"
    proc = tiller("import", str(enron / "maildir" / "mann-k"), "--me", "not an address", home=home)
    assert proc.returncode == 2
    assert "not an email address" in proc.stderr
    assert "Traceback" not in proc.stderr
    proc = tiller(
        "backends", "add", "x", "--provider", "openai_compat", "--base-url", "http://[::1", "--model", "m", home=home
    )
    assert proc.returncode == 1
    assert "not a valid URL" in one_line_error(proc)


def test_two_processes_adding_the_same_identity_never_collide(tmp_path):
    home = tmp_path / "home"
    assert tiller("identities", home=home).returncode == 0
    results = []

    def add():
        results.append(tiller("identities", "add", "kay.mann@enron.com", home=home))

    threads = [threading.Thread(target=add) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.returncode for r in results] == [0] * 4, [r.stderr for r in results]
    db = sqlite3.connect(home / "tiller.db")
    assert db.execute("SELECT count(*) FROM identities").fetchone()[0] == 1


# -- tiller check --restore: only when it helps (issue 5/5 items 12-14) -------------------------------


def _two_imports(home: Path, enron: Path) -> None:
    mail = enron / "maildir" / "mann-k"
    assert tiller("import", str(mail / "sent_items"), home=home).returncode == 0
    assert tiller("import", str(mail / "inbox"), home=home).returncode == 0


def test_restore_refuses_a_healthy_database_unless_forced(tmp_path, enron):
    """Item 13: it rolled back the last import without asking and named the healthy file damaged-."""
    home = tmp_path / "home"
    _two_imports(home, enron)
    before = len(_messages(home / "tiller.db"))
    refused = tiller("check", "--restore", home=home)
    assert refused.returncode == 1, refused.stderr
    assert "passes its integrity check" in refused.stderr, refused.stderr
    assert "--force" in refused.stderr
    assert len(_messages(home / "tiller.db")) == before
    assert not list(home.glob("tiller.db.damaged-*"))
    forced = tiller("check", "--restore", "--force", home=home)
    assert forced.returncode == 0, forced.stderr
    assert len(_messages(home / "tiller.db")) < before
    assert list(home.glob("tiller.db.replaced-*"))
    assert not list(home.glob("tiller.db.damaged-*"))


def test_restore_waits_for_no_import(tmp_path, enron):
    """Item 12: run during an import, the import's rows went into the renamed file."""
    from app.store.locks import import_lock

    home = tmp_path / "home"
    _two_imports(home, enron)
    _damage(home / "tiller.db")
    lock = import_lock(home / "tiller.db")
    assert lock.try_acquire()  # an import in progress holds it
    try:
        refused = tiller("check", "--restore", home=home)
    finally:
        lock.release()
    assert refused.returncode == 1, refused.stderr
    assert "an import is writing" in refused.stderr, refused.stderr
    assert not list(home.glob("tiller.db.damaged-*"))
    assert tiller("check", "--restore", home=home).returncode == 0


def test_with_database_and_backup_damaged_the_advice_is_not_the_restore(tmp_path, enron):
    """Item 14: the error sent the user to `tiller check --restore`, the command that had just failed."""
    home = tmp_path / "home"
    _two_imports(home, enron)
    _damage(home / "tiller.db")
    _damage(home / "tiller.db.bak")
    checked = tiller("check", home=home)
    assert checked.returncode == 3
    assert "the backup is damaged too" in checked.stdout
    assert "tiller check --restore" not in checked.stdout
    restore = tiller("check", "--restore", home=home)
    assert restore.returncode == 1
    assert "damaged too" in restore.stderr
    assert "import again" in restore.stderr
    opened = tiller("imports", home=home)
    assert opened.returncode == 3
    assert "tiller check --restore" not in opened.stderr + opened.stdout
    assert "import your mail again" in opened.stderr + opened.stdout


def _damage(path: Path) -> None:
    size = path.stat().st_size
    with open(path, "r+b") as fh:
        fh.seek(size // 2)
        fh.write(os.urandom(8192))
        fh.seek(100)
        fh.write(b"\xff" * 100)


def _sound_backup(home: Path) -> None:
    with sqlite3.connect(home / "tiller.db.bak") as bak:
        bak.execute("CREATE TABLE t (x)")


def test_a_different_message_reusing_a_message_id_is_stored_with_a_warning(db, tmp_path, enron):
    """Issue 5/5 item 16: 16 of 20 such pairs were dropped as duplicates, even with another sender
    and body. A true copy (same id, same content) is still one message."""
    import re

    sent = sorted((enron / "maildir" / "mann-k" / "sent_items").iterdir())
    first, second = sent[3].read_bytes(), sent[4].read_bytes()
    first_id = re.search(rb"^Message-ID: *(.+?)\r?$", first, re.M | re.I).group(1)
    forged = re.sub(rb"^(Message-ID: *).+?(\r?)$", rb"\g<1>" + first_id + rb"\g<2>", second, count=1, flags=re.M | re.I)
    assert forged != second
    mailbox = tmp_path / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (mailbox / sub).mkdir(parents=True)
    (mailbox / "cur" / "1").write_bytes(first)
    (mailbox / "cur" / "2").write_bytes(forged)
    (mailbox / "cur" / "3").write_bytes(first)  # a real copy
    result = run_import(db, mailbox)
    assert (result.counts.stored, result.counts.duplicates, result.counts.warnings) == (2, 1, 1)
    rows = db.execute("SELECT message_id FROM messages ORDER BY id").fetchall()
    assert rows == [(first_id.decode().strip().strip("<>"),), (None,)]
    detail = db.execute("SELECT detail FROM source_items WHERE reason = 'warning'").fetchone()[0]
    assert "also names another stored message" in detail
    assert run_import(db, mailbox).counts.stored == 0  # a rerun adds nothing


def test_an_mbox_body_line_of_exactly_one_mebibyte_does_not_split_the_message(db, tmp_path, enron):
    """Issue 5/5 item 17: the newline that ends a line of k x 1 MiB was taken for a blank line, so
    an unescaped "From " line after it started a new message."""
    first = sorted((enron / "maildir" / "mann-k" / "sent_items").iterdir())[0].read_bytes().replace(b"\r\n", b"\n")
    header, _, body = first.partition(b"\n\n")
    long_line = b"x" * (1 << 20)
    mbox = tmp_path / "long.mbox"
    mbox.write_bytes(
        b"From kay.mann@enron.com Mon Dec 31 10:00:00 2001\n" + header + b"\n\n" + body + b"\n" + long_line + b"\n"
        b"From the desk of Kay: this line is part of the body\n\n"
    )
    from app.mail.sources import open_source

    assert open_source(mbox).estimate() == 1
    result = run_import(db, mbox)
    assert (result.counts.seen, result.counts.stored) == (1, 1), result.counts
