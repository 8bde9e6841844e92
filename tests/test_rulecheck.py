"""The rule check (issue 2/6): every repair, the re-ask for what cannot be repaired, and no change
at all to a draft that already keeps its rules (checked on real Enron emails against their own
measured rules)."""

from __future__ import annotations

import pytest

from app.measured_style import measure, style_rules
from app.rulecheck import BROKEN, KEPT, REPAIRED, UNCHECKED, check_draft, reask_request, unsupported_sentences
from tests.helpers import run_import


def statuses(result) -> dict[str, str]:
    return {c.rule: c.status for c in result.checks}


def test_the_acceptance_case_from_the_real_window():
    """Seen with the 1.5B model: greeting, placeholder sign-off, too long, an invented clause."""
    draft = (
        "Margaret,\n\nI was wondering if you might want to skip work tomorrow. We could catch up on some old "
        "friends.\n\nBest regards,\n\n[Your Name]\n"
    )
    rules = [
        "No greeting: start directly with the content.",
        "No sign-off and no name at the end.",
        "Length: about 10 words in 1 paragraph.",
    ]
    result = check_draft(draft, rules, recipient="Margaret")
    s = statuses(result)
    assert s["No greeting: start directly with the content."] == REPAIRED
    assert s["No sign-off and no name at the end."] == REPAIRED
    assert s["Length: about 10 words in 1 paragraph."] == BROKEN  # left for the re-ask
    assert (
        result.text
        == "I was wondering if you might want to skip work tomorrow. We could catch up on some old friends.\n"
    )
    assert "[Your Name]" not in result.text
    assert "Margaret" not in result.text
    reask = reask_request(result.broken, result.text)
    assert "Length: between 3 and 17 words in total (yours has 19)" in reask
    assert "at most 17 words" in reask
    assert unsupported_sentences(result.text, "ask Margaret whether she wants to skip work tomorrow") == [
        "We could catch up on some old friends."
    ]


def test_greeting_and_closing_are_replaced_and_placeholders_take_the_signing_name():
    draft = (
        "Here is the email:\n\nSubject: NG contract\n\nDear Sylvia,\n\nThe NG Energy contract is ready for legal "
        "review! Please send comments by Friday.\n\nBest regards,\n[Your Name]"
    )
    rules = [
        'Greeting: "Sylvia," (addresses the recipient as Sylvia).',
        'Sign-off: "Thanks," then "Kay" on its own line.',
        "Punctuation: plain, no exclamation marks.",
    ]
    result = check_draft(draft, rules)
    assert result.text == (
        "Sylvia,\n\nThe NG Energy contract is ready for legal review. Please send comments by Friday.\n\nThanks,\nKay\n"
    )
    assert [c.status for c in result.checks] == [REPAIRED] * 4
    assert result.original == draft  # one click away


@pytest.mark.parametrize(
    "rule, closing",
    [
        ('Sign-off: "Thanks," with no name after it.', "Thanks,"),
        ('No closing phrase; sign with just "Kay".', "Kay"),
    ],
)
def test_each_closing_rule(rule, closing):
    draft = "The contract is ready.\n\nBest regards,\nKay Mann"
    result = check_draft(draft, [rule])
    assert result.text == f"The contract is ready.\n\n{closing}\n"
    assert statuses(result)[rule] == REPAIRED


def test_an_inline_closing_is_split_off():
    draft = "The NG contract is ready for legal review, send comments by Friday. Thanks, Kay"
    result = check_draft(draft, ['Sign-off: "Thanks," then "Kay" on its own line.'])
    assert result.text.endswith("by Friday.\n\nThanks,\nKay\n")


def test_contractions_lower_case_and_exclamations():
    text = (
        "I am sending the draft today. It is ready for review and I will call you tomorrow about the schedule "
        "for the closing and the final numbers from the team!"
    )
    result = check_draft(
        text,
        [
            "Uses contractions (i'm, it's).",
            "Writes in lower case: sentences start without a capital letter.",
            "Punctuation: plain, no exclamation marks.",
        ],
    )
    assert result.text.startswith("I'm sending the draft today. it's ready for review and I'll call you")
    assert result.text.rstrip().endswith("team.")
    assert all(c.status == REPAIRED for c in result.checks[1:])
    expanded = check_draft("We don't have it. It's late and I'm out, so we'll see.", ["No contractions."])
    assert expanded.text.strip() == "We do not have it. It is late and I am out, so we will see."


def test_rules_it_cannot_read_are_reported_not_guessed():
    result = check_draft("Fine by me.", ["Warm, collegial tone with a light touch of humour."])
    assert statuses(result)["Warm, collegial tone with a light touch of humour."] == UNCHECKED
    assert result.kept_share() == 1.0


def _sent_emails(db, enron) -> list[tuple[str, str | None]]:
    """(text, signature) of 300 of Kay Mann's and Jeff Dasovich's sent emails, imported into ``db``."""
    run_import(db, enron / "maildir" / "mann-k")
    run_import(db, enron / "maildir" / "dasovich-j")
    return db.execute(
        "SELECT own_text, signature FROM messages WHERE is_sent_folder = 1 AND length(own_text) BETWEEN 20 AND 3000 "
        "ORDER BY id LIMIT 300"
    ).fetchall()


def test_a_draft_that_keeps_its_rules_is_never_touched(db, enron):
    """Real emails checked against the rules measured from themselves: every checkable rule is
    kept and not one character changes. 300 of Kay Mann's and Jeff Dasovich's sent emails."""
    rows = _sent_emails(db, enron)
    assert len(rows) == 300
    changed = []
    for text, signature in rows:
        rules = style_rules(measure(text, signature or ""))
        result = check_draft(text, rules)
        broken = [(c.rule, c.note) for c in result.checks if c.status not in (KEPT, UNCHECKED)]
        if broken or result.text.strip() != text.strip():
            changed.append((text[:80], broken))
    assert changed == []


def test_every_rule_written_from_real_mail_reads_back_with_its_values(db, enron):
    """One grammar (app/rule_grammar.py) writes and reads the measured rules: each line written for
    300 real emails (paired with another email as the generic draft, for the comparisons) reads
    back as a measured form on the aspect its start names, with the very values measured, and a
    closing or greeting rule written again from what was read is the same line. A wording changed
    on one side only fails here, where before it left drafts unchecked without a sound."""
    from app.rule_grammar import about, closing_rule, greeting_rule, parse_rule, rule_aspect

    rows = _sent_emails(db, enron)
    profiles = [measure(text, signature or "") for text, signature in rows]
    assert len(profiles) == 300
    kinds = set()
    for real, generic in zip(profiles, profiles[1:] + profiles[:1]):
        for rule in style_rules(real, generic):
            form = parse_rule(rule)
            if rule.startswith("Uses this sender's recurring phrases"):
                assert form is None  # a hint for the large model: nothing checks it
                continue
            assert form is not None, rule
            kinds.add(form.kind)
            assert form.aspect == rule_aspect(rule), rule
            if form.kind == "length":
                assert (form.words, form.paragraphs) == (about(real.word_count), real.paragraphs), rule
            elif form.kind == "sentences":
                assert form.words == round(real.avg_sentence_words), rule
            elif form.aspect == "greeting":
                assert form.text == real.greeting, rule
                assert greeting_rule(form.text, real.greeting_name, generic_has_one=bool(generic.greeting)) == rule
            elif form.aspect == "signoff":
                assert (form.text, form.name) == (real.signoff, real.signature_name), rule
                assert closing_rule(form.text, form.name) == rule
    # the sample has every form but the lower-case habit, which is rare in this mail
    assert kinds >= {"length", "greeting", "no_greeting", "signoff_and_name", "name_only", "no_signoff", "sentences"}
    assert kinds >= {"contractions", "no_contractions", "plain_punctuation", "punctuation"}


def test_a_one_word_email_gets_singular_rules_that_are_still_checked():
    rules = style_rules(measure("Done."))
    assert "Length: about 1 word in 1 paragraph." in rules
    assert "Sentences: short, about 1 word each." in rules
    result = check_draft("Thanks so much for sending the contract over this morning, it helps a lot.", rules)
    assert statuses(result)["Length: about 1 word in 1 paragraph."] == BROKEN


def test_spaces_at_line_ends_are_taken_out_of_the_email():
    """The embedded model closed a draft with "Thanks,  " (a Markdown line break) above "Kay"."""
    from app.rulecheck import check_draft

    checked = check_draft("It is ready.  \n\nThanks,  \nKay  ", ['Sign-off: "Thanks," then "Kay" on its own line.'])
    assert checked.text == "It is ready.\n\nThanks,\nKay\n"


def test_measuring_and_checking_read_closing_lines_with_one_lexicon():
    """The measured style and the rule check knew different sign-offs: "Best wishes," measured as
    no sign-off at all, so the user's own closing could never become a rule. One list now."""
    from app.measured_style import measure

    email = "Sylvia,\n\nThe contract is ready for legal review.\n\nBest wishes,\nKay"
    assert measure(email).signoff == "Best wishes,"
    assert measure("Sylvia,\n\nSee you then.\n\nLater,\nKay").signoff == "Later,"
    # "later" opens sentences too: only a line that is the word alone closes an email
    assert measure("Sylvia,\n\nThe contract is ready.\nLater today we meet.").signoff is None


def test_a_closing_remark_about_the_rules_is_not_part_of_the_email():
    """The demo's local model (2026-12-06) ended its draft, and its re-asked draft, with a remark on
    how it kept its instructions; the re-asked one went out with it as the email's last line."""
    original = (
        "Sure, here's the email body based on your specifications:\n\n"
        "NG Energy contract is ready for legal review and ask Sylvia to send comments by Friday.\n\n"
        "This meets the specified length (10 words), no greeting, no sign-off, short sentences of about 8 words "
        "each, and does not include any names or recurring phrases"
    )
    checked = check_draft(original, ["Length: about 10 words in 1 paragraph."])
    assert checked.text == "NG Energy contract is ready for legal review and ask Sylvia to send comments by Friday.\n"
    reasked = check_draft(
        "NG Energy contract ready for legal review by Friday.\n"
        "This meets the specified length and no greeting, short sentences of about 8 words each.",
        [],
    )
    assert reasked.text == "NG Energy contract ready for legal review by Friday.\n"
    assert reasked.checks[0].status == "repaired"
    assert "removed 'This meets the specified length" in reasked.checks[0].note
    # an email's own last line that only sounds alike stays
    for email in (
        "The turbine contract is signed.\nThis meets the deadline Sylvia asked for.\n",
        "The consent form went out today.\nThe draft follows the requirements of the lender.\n",
    ):
        assert check_draft(email, []).text == email


def test_the_sentence_check_says_the_band_it_accepts():
    """README command 1 printed "kept Sentences: short, about 8 words each. (about 17 words per
    sentence)": a verdict that read as wrong without the band it was measured against."""
    rule = "Sentences: short, about 8 words each."
    long_sentence = "The NG Energy contract is ready for legal review and ask Sylvia to send comments by Friday."
    (kept,) = check_draft(long_sentence, [rule]).checks[1:]
    assert kept.status == KEPT
    assert kept.note == "about 17 words per sentence (about 8 asked: 1-18 accepted)"
    (broken,) = check_draft(" ".join([long_sentence.replace(".", ",")] * 2) + ".", [rule]).checks[1:]
    assert broken.status == BROKEN
    assert broken.note.endswith("(about 8 asked: 1-18 accepted)")
