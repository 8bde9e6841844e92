"""The reply's language (issue 4/5): read from the thread, else the intent; said to the large model
as a rule; checked in the draft. Measured on hand-written thread messages in 15 languages
(tests/data/thread_languages.jsonl, each with a reference translation) and real English mail."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.language import detect, guess, reply_language, rule_language
from app.ops.compose import ComposeOperation, ComposeRequest, Reasking, RulesReady, VoiceRewritten
from app.rulecheck import BROKEN, KEPT, UNCHECKED, check_draft
from tests.fakes import SCRIPTED, ScriptedProvider

THREADS = [json.loads(line) for line in (Path(__file__).parent / "data" / "thread_languages.jsonl").open()]


@pytest.fixture(autouse=True)
def script():
    ScriptedProvider.reset()
    yield ScriptedProvider
    ScriptedProvider.reset()


def test_hand_written_thread_messages_are_told_or_left_alone_never_mistaken():
    told = {}
    for item in THREADS:
        found = detect(item["text"])
        assert found is None or found.code == item["language"], (item["text"], found)
        told[item["text"]] = found
        # the reference translation is English, or too unsure to act on
        english = detect(item["english"])
        assert english is None or english.code == "en", (item["english"], english)
    # measured 24 of 26 (a six-word Swedish and a Norwegian line are below the confidence acted on)
    assert sum(found is not None for found in told.values()) >= 22


def test_real_english_mail_is_never_given_another_language(enron):
    from app.mail.decode import parse_message
    from app.mail.split import split_message

    files = sorted((enron / "maildir").glob("*/sent_items/*"))[::5][:250]
    assert len(files) >= 200
    others = []
    for path in files:
        message = parse_message(path.read_bytes())
        own = split_message(message.body_text, message.subject).own_text
        found = detect(own)
        if found is not None and found.code != "en":
            others.append((path.name, found, own[:60]))
        # as a thread: an English thread with an English intent adds no rule
        assert found is not None and found.code != "en" or reply_language("send Kay the figures", own) is None
    assert others == []


def test_the_thread_decides_then_the_intent():
    german = THREADS[0]["text"]
    by_thread = reply_language("tell Sylvia I will review the contract by Friday", german)
    assert by_thread.language.code == "de"
    assert by_thread.source == "thread"
    assert by_thread.rule() == "Language: German (the thread's language)."
    # an English thread answered with a German request: the thread wins, so the rule is said
    english_thread = "Hi Kay, the contract is attached. Can you review it by Friday? Thanks, Sylvia"
    reply = reply_language("sag Sylvia, dass ich den Vertrag bis Freitag prüfe", english_thread)
    assert reply.language.code == "en"
    assert reply.source == "thread"
    # no thread: the request's language
    assert reply_language("dis à Claire que le contrat est prêt pour le service juridique").language.code == "fr"
    # English with English: nothing to say; too short to tell: nothing either
    assert reply_language("tell Sylvia the contract is ready", english_thread) is None
    assert reply_language("Danke!") is None
    assert guess("ok") is None
    # asked for by name or code
    assert reply_language("x", german, asked="Italian").language.code == "it"
    assert rule_language("Language: Italian (as asked).") == "it"
    assert rule_language("No greeting.") is None


def test_the_rule_check_breaks_a_draft_in_another_language_and_keeps_one_in_the_right_one():
    rule = "Language: German (the thread's language)."
    english = check_draft("Hi Sylvia,\n\nThe contract is ready for legal review. Comments by Friday please.\n", [rule])
    check = next(c for c in english.checks if c.rule == rule)
    assert check.status == BROKEN
    assert "English" in check.note
    german = check_draft(
        "Hallo Sylvia,\n\nder Vertrag ist bereit für die Rechtsabteilung. Bitte bis Freitag.\n", [rule]
    )
    assert next(c for c in german.checks if c.rule == rule).status == KEPT
    short = check_draft("Danke!\n", [rule])
    assert next(c for c in short.checks if c.rule == rule).status == UNCHECKED


ENGLISH_DRAFT = "Hi Sylvia,\n\nThe contract is ready for legal review. Please send comments by Friday.\n\nKay"
GERMAN_DRAFT = (
    "Hallo Sylvia,\n\nder Vertrag ist bereit für die Prüfung. Bitte schick mir deine Anmerkungen bis Freitag.\n\nKay"
)


def test_a_reply_is_asked_for_in_the_threads_language_and_asked_again_when_it_is_not(script):
    script.enqueue(ENGLISH_DRAFT, GERMAN_DRAFT)
    request = ComposeRequest(
        "tell Sylvia the contract is ready and ask for comments by Friday",
        recipient="Sylvia",
        previous_email=THREADS[0]["text"],
        backend=SCRIPTED,
        rules=("No greeting: start directly with the content.",),
    )
    op = ComposeOperation(request)
    events = list(op.run())
    ready = next(e for e in events if isinstance(e, RulesReady))
    assert ready.rules[-1] == "Language: German (the thread's language)."
    assert ready.language.language.code == "de"
    assert "Language: German" in str(script.requests[0].messages[-1].content)
    reask = next(e for e in events if isinstance(e, Reasking))
    assert [c.rule for c in reask.broken] == [ready.rules[-1]]
    assert "Language: German" in str(script.requests[1].messages[-1].content)
    final = op.result.drafts[0].draft
    assert final.reasked and final.text.startswith("der Vertrag")  # the greeting removed as the rule asks


def test_no_language_rule_for_an_english_reply_and_none_when_switched_off(script):
    script.enqueue(ENGLISH_DRAFT, GERMAN_DRAFT)
    op = ComposeOperation(ComposeRequest("tell Sylvia the contract is ready", backend=SCRIPTED, rules=()))
    events = list(op.run())
    assert next(e for e in events if isinstance(e, RulesReady)).rules == []
    off = ComposeOperation(
        ComposeRequest("tell Sylvia", previous_email=THREADS[0]["text"], backend=SCRIPTED, rules=(), language=None)
    )
    assert next(e for e in off.run() if isinstance(e, RulesReady)).rules == []


def test_a_voice_rewrite_in_another_language_is_refused_and_the_large_models_reply_kept(script):
    """The voice adapter learned the user's English; the content guard refuses its English rewrite of
    a German reply, since the German draft's words are gone (umlauts included: "Prüfung" is one word)."""
    from tests.test_compose import ScriptedVoice

    voice = ScriptedVoice("Sylvia - contract ready, comments by Friday pls.\n\nKay")  # guard-clean, but English
    script.enqueue(GERMAN_DRAFT)
    op = ComposeOperation(
        ComposeRequest(
            "tell Sylvia the contract is ready and ask for comments by Friday",
            previous_email=THREADS[0]["text"],
            backend=SCRIPTED,
            rules=(),
        ),
        voice=lambda sender: voice,
    )
    events = list(op.run())
    voiced = next(e for e in events if isinstance(e, VoiceRewritten))
    assert not voiced.kept
    assert voiced.text == GERMAN_DRAFT
    assert "prüfung" in voiced.reason
    assert op.result.drafts[0].draft.text.startswith("Hallo Sylvia")
