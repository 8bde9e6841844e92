"""Importing the real Enron sample: counts per sender, de-duplication, identities, re-import."""

import json
import shutil

import pytest

from app.mail.sources import is_sent_folder
from tests.conftest import run_import

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
    assert again.counts.stored == 0 and again.counts.duplicates == 0
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
    assert is_sent_folder("quigley-d.sent_items") and not is_sent_folder("quigley-d.inbox")


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
    own = dict(db.execute("SELECT i.address, count(*) FROM messages m JOIN identities i ON i.id = m.identity_id GROUP BY 1"))
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
    assert pooled.counts == inline.counts and inline.counts.stored > 500
    assert _stored(pooled_db) == _stored(inline_db)


def test_a_dead_decoding_worker_costs_nothing(enron):
    """Chunks sent to a worker that died are decoded in the importer's process, in order."""
    from app.mail.decoding import DecodingPool, decode_item
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
    from app.mail.decoding import DecodingPool
    from app.mail.sources import open_source

    items = list(open_source(enron / "maildir" / "mann-k").iter_items())[:600]
    with DecodingPool(1, chunk_size=40) as stealing:
        got = list(stealing.decode(iter(items)))
    with DecodingPool(1, chunk_size=40, steal=False) as waiting:
        expected = list(waiting.decode(iter(items)))
    assert stealing.stolen > 0 and waiting.stolen == 0
    assert [item.key for item, _ in got] == [item.key for item in items]
    assert [d for _, d in got] == [d for _, d in expected]
