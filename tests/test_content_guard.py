"""The content guard (app/content_guard.py): a rewrite that changes only the voice is kept, one that
drops or invents a name, number, date or link is refused; on real Enron mail, an email against
itself or lower-cased passes and the same email without one of its numbers fails."""

from __future__ import annotations

import re

import pytest

from app.content_guard import body_lines, check_rewrite, content_fidelity, facts
from app.store.messages import own_texts
from tests.helpers import run_import

INTENT = "- tell Sylvia the NG contract is ready for legal review\n- comments by Friday 3:30 pm\n- the fee is $1,200"
DRAFT = (
    "Dear Sylvia,\n\nI hope this email finds you well. The NG contract is now ready for legal review. "
    "Could you please send your comments by Friday at 3:30 PM? The fee comes to $1,200.\n\n"
    "Best regards,\nAssistant"
)


def test_a_rewrite_that_only_changes_the_voice_is_kept():
    rewrite = "Sylvia -\n\nNG contract is ready for legal review. Comments by Fri 3:30 pls; fee is $1200.\n\nKay"
    verdict = check_rewrite(DRAFT, rewrite, INTENT, allowed=("Kay",))
    assert verdict.kept, verdict.reason
    # greeting and sign-off are voice: gone or changed, the draft's facts are still all there
    assert check_rewrite(DRAFT, rewrite.replace("Sylvia -\n\n", ""), INTENT, allowed=("Kay", "Sylvia")).kept


@pytest.mark.parametrize(
    "generic, real",
    [  # Kay Mann's plain rewrites and her emails (the demo's voice pairs, 2026-12-06), shortened
        ("Thank you,\n\nKay", "Gracias,\n\nKay"),
        (
            "I understand your concern about Michael and his private school. I have removed his speech therapy.",
            "I owe it to Michael to keep him in private school. We've already eliminated his speech therapy. "
            "Geez, I sound pathetic.",
        ),
        ("Everything is in order for Ben.", "Probably fine for Ben. Additionally, nothing changed."),
    ],
)
def test_how_someone_sounds_is_not_a_fact(generic, real):
    verdict = check_rewrite(generic, real, "", allowed=("Kay",))
    assert not verdict.invented, verdict.reason
    assert not facts(real).names - {"michael", "ben"}


@pytest.mark.parametrize(
    "change, caught",
    [
        (("3:30", ""), "3:30"),  # a time dropped
        (("$1200", "the usual fee"), "1200"),  # an amount dropped
        (("Fri ", ""), "friday"),  # a day dropped
        (("legal review", "a look"), "legal"),  # the intent's content word dropped
        (("NG contract", "contract"), "ng"),  # a name dropped
    ],
)
def test_a_rewrite_that_drops_a_fact_is_refused(change, caught):
    rewrite = "Sylvia -\n\nNG contract is ready for legal review. Comments by Fri 3:30 pls; fee is $1200.\n\nKay"
    verdict = check_rewrite(DRAFT, rewrite.replace(*change), INTENT, allowed=("Kay",))
    assert not verdict.kept, verdict
    assert caught in verdict.dropped, verdict
    assert "dropped" in verdict.reason
    assert "the draft is kept" in verdict.reason


def test_a_rewrite_that_invents_a_fact_is_refused():
    # the zero-shot email: a party time and place nobody mentioned
    intent = "- what day is jen and paula's party?"
    draft = "What day is Jen and Paula's party?"
    rewrite = "The party for Jen and Paula will be held today at 7 PM in the Ocean Energy Conference Center."
    verdict = check_rewrite(draft, rewrite, intent)
    assert not verdict.kept, verdict
    assert {"7", "today", "ocean"} <= set(verdict.invented), verdict
    fidelity = content_fidelity(intent, rewrite)
    assert {"7", "today", "ocean"} <= set(fidelity.invented)
    assert fidelity.share == 1.0
    # a lower-case name is a content word when it has four letters or more ("jen" is not caught)
    assert content_fidelity(intent, "When is the party?").missing == ("paula",)


def test_facts_are_read_the_way_people_write_them():
    f = facts("See https://example.com/x, mail kay.mann@enron.com. Two meetings on Dec 3 and Tues; 15% of 1,000.50.")
    assert f.links == {"https://example.com/x", "kay.mann@enron.com"}
    assert f.numbers == {"2", "3", "15", "1000.50"}
    assert f.dates == {"december", "tuesday"}
    # "May" the month, "may" the verb
    assert facts("We may meet.").dates == frozenset()
    assert facts("Due in May.").dates == {"may"}
    assert body_lines("Hi Bob,\n\nThe deal closed.\n\nThanks,\nKay") == ["", "The deal closed.", ""]


@pytest.fixture(scope="module")
def kay_emails(tmp_path_factory, enron):
    from app.store import open_database

    db = open_database(tmp_path_factory.mktemp("guard") / "tiller.db")
    run_import(db, enron / "maildir" / "mann-k")
    texts = [t for t in own_texts(db, "kay.mann@enron.com") if len(t.split()) >= 5]
    db.conn.close()
    assert len(texts) > 150
    return texts


def test_on_real_mail_the_same_words_pass_and_a_lost_number_is_caught(kay_emails):
    with_numbers = 0
    for text in kay_emails:
        assert check_rewrite(text, text).kept, text
        assert check_rewrite(text, text.lower()).kept, text  # case is voice, not content
        body = "\n".join(body_lines(text))
        number = re.search(r"(?<![\w.])\d[\d,]*(?![\w])", body)
        if number:
            with_numbers += 1
            cut = text.replace(number.group(0), "", 1)
            if number.group(0) not in cut:
                assert not check_rewrite(text, cut).kept, text
    assert with_numbers > 20
