"""Importing the real Enron sample: counts per sender, de-duplication, identities, re-import."""

import json
import shutil

import pytest

from app.mail.sources import is_sent_folder
from tests.helpers import run_import

SENT_PER_SENDER = {
    # distinct sent messages per sender after de-duplication (rogers-b: 1,821 sent files -> 956)
    "benjamin.rogers@enron.com": 956,
    "bill.williams@enron.com": 519,
    "debra.perlingiere@enron.com": 2352,
    "dutch.quigley@enron.com": 505,
    "gerald.nemec@enron.com": 2175,
    "jeff.dasovich@enron.com": 1436,
    "kay.mann@enron.com": 266,
}


@pytest.fixture(scope="module")
def imported(tmp_path_factory, enron):
    from app.store import open_database

    db = open_database(tmp_path_factory.mktemp("enron") / "tiller.db")
    result = run_import(db, enron / "maildir")
    return db, result


def _counts_in_db(db, run_id):
    return dict(db.execute("SELECT status, count(*) FROM source_items WHERE run_id = ? GROUP BY status", [run_id]))


def test_seven_sender_maildir_counts_add_up(imported):
    db, result = imported
    c = result.counts
    assert result.status == "completed"
    assert (c.seen, c.stored, c.duplicates, c.skipped) == (9759, 8892, 866, 1)
    assert c.adds_up()
    assert c.skip_reasons == {"not-an-email": 1}  # MANIFEST.tsv sits beside the mail folders
    # the database tells the same story as the counters
    assert _counts_in_db(db, result.run_id) == {"stored": 8892, "duplicate": 866, "skipped": 1}
    assert db["messages"].count == 8892
    run = db["import_runs"].get(result.run_id)
    assert (run["seen"], run["stored"], run["duplicates"], run["skipped"]) == (9759, 8892, 866, 1)


def test_identities_inferred_per_sender_with_exact_message_counts(imported):
    db, _ = imported
    rows = dict(
        db.execute(
            "SELECT i.address, count(m.id) FROM identities i JOIN messages m ON m.identity_id = i.id GROUP BY i.address"
        )
    )
    assert rows == SENT_PER_SENDER
    # quigley-d's sent folder holds one message from no.address@enron.com: not the user
    assert db.execute("SELECT count(*) FROM identities WHERE address = 'no.address@enron.com'").fetchone()[0] == 0
    inbox_own = db.execute(
        "SELECT count(*) FROM messages WHERE folder LIKE '%inbox' AND identity_id IS NOT NULL"
    ).fetchone()[0]
    assert inbox_own == 0


def test_sent_and_sent_mail_duplicates_collapse(imported):
    db, _ = imported
    # which folder each duplicate came from, and which folder holds the message it duplicates
    pairs = db.execute(
        "SELECT rtrim(i.item_key, '0123456789.'), rtrim(m.item_key, '0123456789.'), count(*) "
        "FROM source_items i JOIN messages m ON m.id = i.message_ref WHERE i.status = 'duplicate' GROUP BY 1, 2"
    ).fetchall()
    assert sorted(pairs) == [
        ("rogers-b/inbox/", "mann-k/inbox/", 1),  # one message reached both inboxes
        ("rogers-b/sent/", "rogers-b/_sent_mail/", 865),
    ]
    # the one 'sent' file with no twin in '_sent_mail' is stored
    assert db.execute("SELECT count(*) FROM messages WHERE item_key LIKE 'rogers-b/sent/%'").fetchone()[0] == 1


def test_own_words_and_flags_are_stored(imported):
    db, _ = imported
    row = db.execute(
        "SELECT own_text, previous_context, flags, subject FROM messages WHERE item_key = 'dasovich-j/sent_items/1000.'"
    ).fetchone()
    assert row[0] == "Thanks?  Brown going to vote for it?"
    assert row[1].startswith("-----Original Message-----")
    assert json.loads(row[2]) == ["reply"]
    pure = db.execute(
        "SELECT count(*) FROM messages WHERE identity_id IS NOT NULL AND flags LIKE '%pure_forward%' AND own_text = ''"
    ).fetchone()[0]
    assert pure == 431


def test_reimport_adds_nothing(imported, enron):
    db, _ = imported
    before = db["messages"].count
    again = run_import(db, enron / "maildir")
    assert again.counts.stored == 0
    assert again.counts.duplicates == 0
    assert again.counts.already_imported == 9758
    assert again.counts.skipped == 1  # skipped items are retried, and skipped again
    assert again.counts.adds_up()
    assert db["messages"].count == before


def test_mbox_of_the_same_folder_deduplicates_against_maildir(db, enron):
    first = run_import(db, enron / "maildir" / "quigley-d")
    assert (first.counts.stored, first.counts.duplicates) == (506, 0)
    second = run_import(db, enron / "mbox" / "quigley-d.sent_items.mbox")
    assert (second.counts.seen, second.counts.stored, second.counts.duplicates) == (506, 0, 506)


def test_mbox_folder_import_finds_identities_from_file_names(db, enron):
    result = run_import(db, enron / "mbox")
    assert (result.counts.seen, result.counts.stored) == (1127, 1127)
    assert sorted(result.new_identities) == ["bill.williams@enron.com", "dutch.quigley@enron.com"]
    assert is_sent_folder("quigley-d.sent_items")
    assert not is_sent_folder("quigley-d.inbox")


def test_a_sent_folder_imported_on_its_own_is_sent_mail_and_the_order_of_imports_does_not_matter(
    db, enron, tmp_path, monkeypatch
):
    """Importing ".../mann-k/sent_items" itself (before or after the whole mailbox) finds Kay as
    the user; her messages end up with the same identities as after one import of the mailbox."""
    result = run_import(db, enron / "maildir" / "mann-k" / "sent_items")
    assert result.new_identities == ["kay.mann@enron.com"]
    assert db.execute("SELECT DISTINCT folder, is_sent_folder FROM messages").fetchall() == [("sent_items", 1)]
    run_import(db, enron / "maildir" / "mann-k")

    def own(d):
        return sorted(d.execute("SELECT content_key, identity_id IS NOT NULL FROM messages").fetchall())

    from app.store import open_database

    monkeypatch.setenv("TILLER_HOME", str(tmp_path / "single"))
    single = open_database()
    run_import(single, enron / "maildir" / "mann-k")
    assert own(db) == own(single)


def test_raw_crlf_files(db, enron):
    result = run_import(db, enron / "raw")
    c = result.counts
    assert (c.seen, c.stored, c.duplicates, c.skipped) == (1189, 658, 530, 1)
    assert c.skip_reasons == {"not-an-email": 1}  # raw/README.md
    assert db.execute("SELECT count(*) FROM messages WHERE own_text LIKE '%' || char(13) || '%'").fetchone()[0] == 0
    assert db.execute("SELECT count(*) FROM messages WHERE date IS NULL").fetchone()[0] == 0
    # Ken Lay's own sent_items are found although his assistant wrote most of his 'sent' folder
    assert "kenneth.lay@enron.com" in result.new_identities
    assert "rosalee.fleming@enron.com" in result.new_identities
    assert "tori.wells@enron.com" not in result.new_identities  # 14 of 266: an occasional delegate


def test_configured_address_replaces_inference(db, enron, tmp_path):
    src = tmp_path / "lay"
    shutil.copytree(enron / "raw" / "saina2405_history" / "lay-k", src)
    result = run_import(db, src, my_addresses=["Kenneth.Lay@enron.com"])
    assert result.new_identities == []
    own = dict(
        db.execute("SELECT i.address, count(*) FROM messages m JOIN identities i ON i.id = m.identity_id GROUP BY 1")
    )
    assert list(own) == ["kenneth.lay@enron.com"]


def _stored(db):
    messages = db.execute(
        "SELECT item_key, message_id, content_key, date, from_addr, subject, body_text, own_text, previous_context, "
        "signature, flags, attachments, identity_id FROM messages ORDER BY item_key"
    ).fetchall()
    items = db.execute("SELECT item_key, status, reason, detail FROM source_items ORDER BY item_key").fetchall()
    return messages, items


def test_decoding_workers_store_exactly_what_inline_decoding_stores(tmp_path, enron):
    from app.store import open_database

    inline_db = open_database(tmp_path / "inline.db")
    pooled_db = open_database(tmp_path / "pooled.db")
    source = enron / "maildir" / "quigley-d"
    inline = run_import(inline_db, source, workers=0)
    pooled = run_import(pooled_db, source, workers=2)
    assert pooled.counts == inline.counts
    assert inline.counts.stored > 500
    assert _stored(pooled_db) == _stored(inline_db)


def test_a_dead_decoding_worker_costs_nothing(enron):
    """Chunks sent to a worker that died are decoded in the importer's process, in order."""
    from app.mail.decode_workers import DecodingPool, decode_item
    from app.mail.sources import open_source

    items = list(open_source(enron / "maildir" / "mann-k").iter_items())[:600]
    expected = [decode_item(item) for item in items]
    with DecodingPool(2, chunk_size=50) as pool:
        pool._workers[1].process.kill()
        got = list(pool.decode(iter(items), skip=lambda item: item.key == items[3].key))
    assert [item.key for item, _ in got] == [item.key for item in items]
    assert got[3][1] is None
    assert [d for i, (_, d) in enumerate(got) if i != 3] == [d for i, d in enumerate(expected) if i != 3]


def test_the_importer_decodes_while_it_would_wait(enron):
    """Work stealing: chunks the importer decodes itself while a worker is busy (here: still
    starting) come back in source order and equal what the workers give; without polling the
    pool only waits."""
    from app.mail.decode_workers import DecodingPool
    from app.mail.sources import open_source

    items = list(open_source(enron / "maildir" / "mann-k").iter_items())[:600]
    with DecodingPool(1, chunk_size=40) as stealing:
        got = list(stealing.decode(iter(items)))
    with DecodingPool(1, chunk_size=40, steal=False) as waiting:
        expected = list(waiting.decode(iter(items)))
    assert stealing.stolen > 0
    assert waiting.stolen == 0
    assert [item.key for item, _ in got] == [item.key for item in items]
    assert [d for _, d in got] == [d for _, d in expected]


def _owners(db):
    return dict(
        db.execute("SELECT m.item_key, i.address FROM messages m LEFT JOIN identities i ON i.id = m.identity_id")
    )


def test_identities_given_while_storing_equal_the_inference_over_the_whole_source(imported):
    """The identities stored with each message (guessed as the import goes, settled at its end)
    are exactly what inferring from the finished source and assigning afterwards gives."""
    from app.mail.identity import assign_identities, infer_identities

    db, result = imported
    as_stored = _owners(db)
    identities = list(db.execute("SELECT address, origin, sent_count, display_name FROM identities ORDER BY address"))
    assert not any(origin == "provisional" for _, origin, _, _ in identities)
    db.execute("BEGIN")  # rolled back below: the module's other tests share this database
    try:
        db.execute("UPDATE messages SET identity_id = NULL")
        db.execute("DELETE FROM identities")
        assert sorted(infer_identities(db, result.source_id)) == sorted(result.new_identities)
        assign_identities(db)
        assert _owners(db) == as_stored
        again = list(db.execute("SELECT address, origin, sent_count, display_name FROM identities ORDER BY address"))
        assert again == identities
    finally:
        db.execute("ROLLBACK")


def _eml(sender: str, n: int) -> bytes:
    return (
        f"From: {sender}\r\nTo: someone@example.com\r\nSubject: note {n}\r\n"
        f"Message-ID: <{n}.{sender}>\r\nDate: Mon, 1 Jan 2001 10:{n % 60:02d}:00 +0000\r\n\r\n"
        f"Body number {n} from {sender}.\r\n"
    ).encode()


def test_a_guess_the_whole_folder_does_not_bear_out_is_dropped(db, tmp_path):
    """An assistant who wrote the first two messages of a sent folder looks like its owner until
    the folder is done (2 of 32 is under the 10% rule): the guess goes, their mail is context."""
    for folder, senders in {
        "sent": ["pa@example.com"] * 2 + ["boss@example.com"] * 30,
        "work": ["pa@example.com", "boss@example.com"],
    }.items():
        (tmp_path / "box" / folder).mkdir(parents=True)
        for n, sender in enumerate(senders):
            (tmp_path / "box" / folder / f"{n:03d}.eml").write_bytes(_eml(sender, n + (100 if folder == "work" else 0)))
    result = run_import(db, tmp_path / "box")
    assert result.new_identities == ["boss@example.com"]
    assert list(db.execute("SELECT address, origin, sent_count FROM identities")) == [
        ("boss@example.com", "inferred", 30)
    ]
    owners = _owners(db)
    assert sum(o == "boss@example.com" for o in owners.values()) == 31
    assert sum(o is None for o in owners.values()) == 3


def test_guesses_left_by_a_killed_import_are_settled_by_the_next(db, tmp_path):
    """A hard kill leaves provisional identities behind; the next import confirms those a source
    bears out and drops the rest, without inferring anything new for other sources."""
    from app.mail.identity import settle_leftover_guesses

    box = tmp_path / "box" / "sent"
    box.mkdir(parents=True)
    for n in range(12):
        (box / f"{n:03d}.eml").write_bytes(_eml("boss@example.com" if n else "pa@example.com", n))
    run_import(db, tmp_path / "box")
    with db.atomic():  # what a kill between two batches leaves: a confirmed guess still provisional, a wrong one
        db.execute("UPDATE identities SET origin = 'provisional'")
        pa = db.execute(
            "INSERT INTO identities (address, origin, sent_count) VALUES ('pa@example.com', 'provisional', 0)"
        ).lastrowid
        db.execute("UPDATE messages SET identity_id = ? WHERE from_addr = 'pa@example.com'", [pa])
        settle_leftover_guesses(db)
    assert list(db.execute("SELECT address, origin FROM identities")) == [("boss@example.com", "inferred")]
    assert set(_owners(db).values()) == {"boss@example.com", None}


def test_settling_the_guesses_is_one_transaction(db, tmp_path, monkeypatch):
    """A failure while settling leaves the guesses as they were (the next import settles them),
    not half settled: dropped guesses with their messages' owners not yet fixed."""
    import app.mail.identity as identity

    box = tmp_path / "box" / "sent"
    box.mkdir(parents=True)
    for n in range(32):
        (box / f"{n:03d}.eml").write_bytes(_eml("pa@example.com" if n < 2 else "boss@example.com", n))

    def fail(db):
        raise RuntimeError("disk full")

    monkeypatch.setattr(identity, "assign_identities", fail)
    with pytest.raises(RuntimeError):
        run_import(db, tmp_path / "box")
    assert sorted(db.execute("SELECT address, origin FROM identities")) == [
        ("boss@example.com", "provisional"),
        ("pa@example.com", "provisional"),
    ]
    monkeypatch.undo()
    run_import(db, tmp_path / "box")
    assert list(db.execute("SELECT address, origin FROM identities")) == [("boss@example.com", "inferred")]
    assert sum(o == "boss@example.com" for o in _owners(db).values()) == 30
