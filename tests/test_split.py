"""Own words vs previous context, on real Enron messages (exact own text) and on common client formats."""

import pytest

from app.mail.decode import parse_message
from app.mail.split import split_message


def split_file(enron, rel):
    msg = parse_message((enron / "maildir" / rel).read_bytes())
    return split_message(msg.body_text, msg.subject)


def test_plain_note_is_all_own_words_with_its_sign_off(enron):
    s = split_file(enron, "rogers-b/_sent_mail/7.")
    assert s.flags == set()
    assert s.own_text.startswith("Yes you have passed the test - Congratualations.  We have been working very\n")
    assert s.own_text.endswith("some very difficult times.  Talk to you soon.\nLove,\nBen")
    assert s.previous_context == ""


def test_outlook_original_message_reply(enron):
    s = split_file(enron, "dasovich-j/sent_items/1000.")
    assert s.own_text == "Thanks?  Brown going to vote for it?"
    assert "reply" in s.flags
    assert s.previous_context.startswith("-----Original Message-----\nFrom: Cherry, Brian [mailto:BKC7@pge.com]")


def test_forward_with_a_comment_keeps_the_comment_and_sign_off(enron):
    s = split_file(enron, "dasovich-j/sent_items/1011.")
    assert s.own_text == (
        "Not surprising, but thought you might be interested.  "
        "I responded that letting go is a good thing.\n\nBest,\nJeff"
    )
    assert s.flags == {"forward"}  # "FW:"-style Outlook forward: not a pure forward
    assert "Mike Florio" in s.previous_context


def test_outlook_header_block_without_separator(enron):
    s = split_file(enron, "quigley-d/sent_items/100.")
    assert s.own_text == (
        "Hey Bro,\n\nMy wife worked here also and has been let go.\n"
        "I work for the Natural Gas Trading group that they are trying to sell.\n"
        "Should know by the end of the week about my job.\n"
        "I was just talking to Kevin Crawford about you 2 weeks ago when we were in Vegas.\n"
        "Good to know that you are still out there.\nHow are you doing these days ?\n\nDutch"
    )
    assert s.previous_context.startswith(' -----Original Message-----\nFrom: \t"Horn, Brian A." <bhorn@')


def test_lotus_notes_reply_with_indented_name_and_date(enron):
    s = split_file(enron, "nemec-g/sent/791.")
    assert s.own_text == (
        'Joan,  I received a copy of this Exhibit "A" a couple of weeks back.\n'
        "Unfortunately I found the same thing you did, that all San Arroyo properties\nare dedicated."
    )
    assert s.previous_context.startswith("\tJoan Quick\n\t09/11/2000 04:29 PM")


def test_lotus_notes_one_line_attribution(enron):
    s = split_file(enron, "nemec-g/sent/1385.")
    assert s.own_text.startswith("I noticed that there was one bio missing.  So here goes,")
    assert s.own_text.endswith('from BuckCherry and finally, "Our  dive captain".')
    assert s.previous_context.startswith("Ryan.F.Ruppert@EXXON.sprint.com on 01/27/2000 12:39:30 PM\nTo: Gerald Nemec")


@pytest.mark.parametrize("rel", ["dasovich-j/sent_items/10.", "nemec-g/sent/5."])
def test_pure_forwards_are_flagged(enron, rel):
    s = split_file(enron, rel)
    assert s.own_text == ""
    assert {"forward", "pure_forward"} <= s.flags
    assert s.previous_context.startswith("----- Forwarded by ")


def test_gmail_style_attribution_and_quotes():
    body = "Sounds good, see you at 1.\n\nKay\n\nOn Mon, Oct 2, 2000 at 9:14 AM, Bob Smith <bob@x.com>\nwrote:\n> Lunch?\n> Bob\n"
    s = split_message(body)
    assert s.own_text == "Sounds good, see you at 1.\n\nKay"
    assert s.previous_context.startswith("On Mon, Oct 2, 2000 at 9:14 AM")
    assert "reply" in s.flags


def test_interleaved_reply_keeps_every_unquoted_line():
    body = "Bob wrote:\n> Can you do Tuesday?\nYes, Tuesday works.\n> And bring the contract?\nWill do.\n"
    s = split_message(body)
    assert s.own_text == "Yes, Tuesday works.\nWill do."
    assert s.previous_context == "Bob wrote:\nCan you do Tuesday?\nAnd bring the contract?"
    assert {"reply", "interleaved"} <= s.flags


def test_signature_and_disclaimer_are_cut_but_sign_off_stays():
    body = "Ready for legal review.\n\nThanks,\nKay\n-- \nKay Mann | Enron North America\n713-555-0100\n"
    s = split_message(body)
    assert s.own_text == "Ready for legal review.\n\nThanks,\nKay"
    assert s.signature == "Kay Mann | Enron North America\n713-555-0100"
    body = "See attached.\nKay\n\n**********\nThis e-mail is the property of Enron Corp. and may contain confidential\n"
    s = split_message(body)
    assert s.own_text == "See attached.\nKay"
    assert s.signature.startswith("**********\nThis e-mail is the property of Enron Corp.")


def test_mbox_escaped_from_line_is_not_a_quote():
    s = split_message("We met today.\n>From what I heard, it went well.\nKay")
    assert s.own_text == "We met today.\n>From what I heard, it went well.\nKay"
    assert s.flags == set()


class _EveryCharacter:
    def __contains__(self, item):
        return True


def test_line_prefilters_change_no_split_on_the_real_sample(enron, monkeypatch):
    """The first-character prefilters skip lines no detector can fire on; with them disabled
    (every line checked by every detector) every real message splits the same way."""
    from app.mail import split
    from app.mail.decode import MessageRejected
    from app.mail.sources import open_source

    bodies = []
    for kind in ("maildir", "mbox"):
        for item in open_source(enron / kind).iter_items():
            try:
                msg = parse_message(item.read()[0])
            except MessageRejected:
                continue
            bodies.append((msg.body_text, msg.subject))
    filtered = [split_message(body, subject) for body, subject in bodies]
    # the filters do cut work: many lines start with a character no detector looks for
    lines = [line for body, _ in bodies for line in body.split("\n") if line.strip()]
    skipped = sum(line.lstrip()[0] not in split._DETECTOR_FIRST_CHARS and "/" not in line for line in lines)
    assert skipped > 0.3 * len(lines)
    monkeypatch.setattr(split, "_DETECTOR_FIRST_CHARS", _EveryCharacter())
    monkeypatch.setattr(split, "_FOOTER_FIRST_CHARS", _EveryCharacter())
    unfiltered = [split_message(body, subject) for body, subject in bodies]
    assert len(bodies) > 10000
    assert sum(a != b for a, b in zip(filtered, unfiltered)) == 0


@pytest.mark.parametrize("delimiter", ["-- ", "--"])
def test_signature_delimiter_cuts_at_its_first_use(delimiter):
    body = f"See you there.\n\nKay\n{delimiter}\nKay Mann\nEnron\n{delimiter}\nmore"
    result = split_message(body)
    assert result.own_text == "See you there.\n\nKay"
    assert result.signature == "Kay Mann\nEnron\n--\nmore"  # lines are trimmed


# -- pasted third-party text (splitter v2) ---------------------------------------------------------


def test_a_pasted_news_story_under_a_sign_off_is_not_own_words(enron):
    s = split_file(enron, "dasovich-j/sent_items/137.")  # a note, "Best, Jeff", then a Dow Jones story
    assert s.own_text.endswith("Is the judge's proposed decision available?\nBest,\nJeff")
    assert len(s.own_text.split()) < 20
    assert "pasted" in s.flags
    assert s.previous_context.startswith(
        "FERC Judge Urges Dismissal Of Calif Complaint Vs El Paso\nWASHINGTON -(Dow Jones)-"
    )


def test_a_note_above_a_wire_story_stays_and_the_headline_goes_with_the_story(enron):
    s = split_file(enron, "dasovich-j/sent_items/646.")
    assert s.own_text == "Doesn't look good."
    assert s.previous_context.startswith("USA: Shares of NewPower plummet in midday trade.")


def test_an_email_that_is_only_an_article_has_no_own_words(enron):
    s = split_file(enron, "dasovich-j/sent_items/762.")  # a Reuters story, nothing of Jeff's
    assert s.own_text == ""
    assert "pasted" in s.flags
    assert "empty_body" not in s.flags
    assert "(C) Reuters Limited 2001." in s.previous_context


@pytest.mark.parametrize("rel", ["dasovich-j/sent_items/747.", "dasovich-j/sent_items/851."])
def test_long_reports_the_sender_wrote_stay_own_words(enron, rel):
    # Jeff's own 500-word legislative report and his own proposal under a row of asterisks
    s = split_file(enron, rel)
    assert "pasted" not in s.flags
    assert len(s.own_text.split()) > 250
    assert s.previous_context == ""


def test_lotus_notes_header_with_to_on_the_date_line(enron):
    s = split_file(enron, "dasovich-j/sent_items/271.")
    assert s.own_text == "This looks like LA Times/Wall Street Journal material......"
    assert s.previous_context.lstrip().startswith("Steve C Hall/ENRON@enronXgate 07/09/2001 01:29 PM")


def test_mail_split_by_an_older_splitter_is_split_again_and_stale_distillation_goes(db, enron, tmp_path):
    """A mailbox imported before splitter v2 gets the new own words when the database is opened;
    rows distilled from the old words (which held a pasted article) are dropped, others kept."""
    import json
    import shutil

    from app.store import open_database
    from tests.helpers import run_import

    folder = tmp_path / "dasovich-j" / "sent_items"
    folder.mkdir(parents=True)
    for name in ("137.", "747."):
        shutil.copy(enron / "maildir" / "dasovich-j" / "sent_items" / name, folder / name)
    run_import(db, tmp_path / "dasovich-j")
    rows = {r[1]: r[0] for r in db.execute("SELECT id, own_text LIKE 'Another defeat%' FROM messages")}
    pasted_id, own_id = rows[1], rows[0]
    article_own_text = db.execute("SELECT body_text FROM messages WHERE id = ?", [pasted_id]).fetchone()[0].strip()
    # as splitter v1 left it: the story was own words, and distillation had used them
    db.execute(
        "UPDATE messages SET parser_version = 1, flags = ?, own_text = ? WHERE id = ?",
        [json.dumps(["html"]), article_own_text, pasted_id],
    )
    db.execute("UPDATE messages SET parser_version = 1 WHERE id = ?", [own_id])
    for message_id in (pasted_id, own_id):
        intent = db.execute(
            "INSERT INTO intents (message_id, variant, text, status, source) VALUES (?, 0, 'x', 'ok', 's')",
            [message_id],
        ).lastrowid
        db.execute(
            "INSERT INTO rules (message_id, intent_id, strategy, rules, status, source) VALUES (?, ?, 'R3', '- x', 'ok', 's')",
            [message_id, intent],
        )
    db.conn.close()
    reopened = open_database()
    own, flags, version = reopened.execute(
        "SELECT own_text, flags, parser_version FROM messages WHERE id = ?", [pasted_id]
    ).fetchone()
    assert own.endswith("Best,\nJeff")
    assert set(json.loads(flags)) == {"html", "pasted"}
    assert version == 2
    distilled = dict(reopened.execute("SELECT message_id, count(*) FROM intents GROUP BY message_id").fetchall())
    assert distilled == {own_id: 1}  # the pasted one's intent and rules are gone; the other's stay
    assert reopened.execute("SELECT count(*) FROM rules WHERE message_id = ?", [pasted_id]).fetchone()[0] == 0
    reopened.conn.close()
