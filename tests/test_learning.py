"""Learning from what the user changes (issue 6/6): capture, sent-mail matching, forgetting,
scoped rules, the retrain gate. The large model is scripted (tests/fakes.py) and the sent mail is
imported for real through the file importer; the gate test trains and runs the real agent."""

from __future__ import annotations

import datetime as dt
import sys
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from app.cli import cli
from app.learning import matching, retrain, scoped
from app.learning.capture import record_action
from app.learning.distance import edit_distance
from app.store import drafts as store
from tests.fakes import SCRIPTED
from tests.helpers import run_import

KAY = "kay.mann@enron.com"
SYLVIA = "sylvia.ortiz@enron.com"
BOB = "bob.carter@dynegy.com"
INTENT = "Tell Sylvia the NG Energy contract is ready for legal review and ask for comments by Friday."
DRAFT = (
    "Dear Sylvia,\n\nI am pleased to let you know that the NG Energy contract is now ready for legal review. "
    "Could you please send me your comments by Friday?\n\nBest regards,\nKay"
)
EDITED = "The NG Energy contract is ready for legal review. Comments by Friday?\n\nKay"


@pytest.fixture(autouse=True)
def _fresh_script(script):
    """Every test here starts with an empty script (``script`` and ``scripted_backend``: tests/conftest.py)."""


def _eml(folder, name, *, sender, to, subject, body, when: dt.datetime):
    msg = EmailMessage()
    msg["From"] = f"Kay Mann <{sender}>"
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = f"<{name}@test.tiller>"
    msg.set_content(body)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.eml").write_bytes(bytes(msg))


def _draft(db, *, recipient=SYLVIA, subject="NG contract", text=DRAFT, identity=KAY, created_at=None, rules=None):
    from app.learning.capture import DraftShown, record_drafts

    return record_drafts(
        db,
        identity=identity,
        recipient=recipient,
        subject=subject,
        intent=INTENT,
        previous_email=None,
        agent_rules=rules or ['Greeting: "Dear Sylvia,".', 'Sign-off: "Best regards," then "Kay" on its own line.'],
        scoped_rules=[],
        rules=rules or ['Greeting: "Dear Sylvia,".', 'Sign-off: "Best regards," then "Kay" on its own line.'],
        rules_source="agent",
        profile=identity,
        shown=[DraftShown(text, [], "scripted", "script")],
    )[0]


def _editor(tmp_path, monkeypatch, text: str) -> None:
    """A real $EDITOR: a program that writes ``text`` into the file it is given."""
    script = tmp_path / "editor.py"
    script.write_text(f"import sys\nopen(sys.argv[1], 'w').write({text!r})\n")
    monkeypatch.setenv("EDITOR", f"{sys.executable} {script}")
    monkeypatch.delenv("VISUAL", raising=False)


# -- capture ------------------------------------------------------------------------------------------


def test_the_cli_stores_every_draft_and_edit_keeps_what_the_user_saved(
    db, scripted_backend, script, tmp_path, monkeypatch
):
    _editor(tmp_path, monkeypatch, EDITED)
    script.enqueue(DRAFT)
    rules = tmp_path / "rules.txt"
    rules.write_text("- No contractions.\n")
    result = CliRunner().invoke(
        cli,
        [
            "draft",
            INTENT,
            "--to",
            SYLVIA,
            "--subject",
            "NG contract",
            "--from",
            KAY,
            "--backend",
            scripted_backend,
            "--rules-file",
            str(rules),
            "--edit",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Your email" in result.output
    assert "Comments by Friday?" in result.output
    (d,) = store.drafts(db)
    assert (d.identity, d.recipient, d.subject, d.intent) == (KAY, SYLVIA, "NG contract", INTENT)
    assert d.rules == ["No contractions."]
    assert d.rules_source == "given"
    assert d.backend == "scripted"
    assert d.text.startswith("Dear Sylvia,")
    assert d.status == "edited"
    assert d.final_source == "edit"
    assert d.final_text == EDITED
    assert d.edit_distance == pytest.approx(edit_distance(d.text, EDITED))
    assert [a for _, a, _ in store.events(db, d.id)] == ["shown", "edited"]
    # the edit taught scoped rules for Sylvia at once (no greeting, signed "Kay")
    assert {r.aspect for r in store.scoped_rules(db)} >= {"greeting", "signoff"}
    shown = CliRunner().invoke(cli, ["edits", "show", str(d.id)]).output
    assert "Comments by Friday?" in shown
    assert "edited" in shown


def test_recording_can_be_turned_off(db, scripted_backend, script):
    assert CliRunner().invoke(cli, ["edits", "off"]).exit_code == 0
    script.enqueue("Fine.\n\nKay")
    result = CliRunner().invoke(cli, ["draft", "say it is fine", "--no-agent", "--backend", scripted_backend])
    assert result.exit_code == 0, result.output
    assert store.drafts(db) == []
    assert "Recording is off" in CliRunner().invoke(cli, ["edits"]).output


def test_an_unknown_action_is_refused_and_a_sent_draft_stays_sent(db):
    draft_id = _draft(db)
    with pytest.raises(ValueError, match="unknown draft action"):
        record_action(db, draft_id, "printed")
    after = record_action(db, draft_id, "copied", EDITED)
    assert after.status == "copied"
    assert after.final_text == EDITED
    assert record_action(db, draft_id, "discarded").status == "discarded"


# -- matching sent mail ---------------------------------------------------------------------------


def test_sent_mail_is_matched_to_its_draft_and_a_near_miss_or_another_identity_is_not(db, tmp_path):
    draft_id = _draft(db)
    other_id = _draft(db, recipient=BOB, subject="Pipeline capacity", text="Bob, the pipeline capacity numbers are in.")
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    sent = tmp_path / "sent"
    # the true one: the user rewrote the draft before sending it
    _eml(sent, "true", sender=KAY, to=SYLVIA, subject="RE: NG contract", body=EDITED, when=soon)
    # a near miss: same identity, recipient and day, another subject and content
    _eml(sent, "near", sender=KAY, to=SYLVIA, subject="Lunch", body="Are we still on for lunch on Tuesday?", when=soon)
    # another identity sending the same words to Bob
    _eml(
        sent,
        "other",
        sender="jeff.dasovich@enron.com",
        to=BOB,
        subject="Pipeline capacity",
        body="Bob, the pipeline capacity numbers are in.",
        when=soon,
    )
    result = run_import(db, sent, my_addresses=[KAY])
    assert [(d, m) for d, m, _ in result.drafts_matched] == [(draft_id, _message_id(db, "true"))]
    d = store.draft(db, draft_id)
    assert d.status == "sent"
    assert d.final_source == "sent"
    assert d.final_text.strip() == EDITED
    assert d.match_similarity >= matching.THRESHOLD_SAME_SUBJECT
    assert store.draft(db, other_id).sent_message_id is None  # same words, wrong identity


def test_without_a_subject_only_the_content_tells_a_near_miss_from_the_sent_draft(db, tmp_path):
    draft_id = _draft(db, subject=None)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    # same identity, recipient and day: only the words differ
    _eml(
        tmp_path / "a" / "Sent",  # the user's sent mail: only a sent folder may hold a draft's sent version
        "lunch",
        sender=KAY,
        to=SYLVIA,
        subject="Lunch",
        body="Are we still on for lunch on Tuesday?",
        when=soon,
    )
    assert run_import(db, tmp_path / "a", my_addresses=[KAY]).drafts_matched == []
    _eml(tmp_path / "b" / "Sent", "sent", sender=KAY, to=SYLVIA, subject="Contract", body=EDITED, when=soon)
    (match,) = run_import(db, tmp_path / "b", my_addresses=[KAY]).drafts_matched
    assert match[0] == draft_id
    assert match[2] >= matching.THRESHOLD


def test_a_message_from_the_user_in_the_inbox_is_never_a_drafts_sent_version(db, tmp_path):
    """Issue 5/5 item 10: a forged Inbox message (From: the user, same subject and recipient,
    similarity 0.77) replaced the user's own edit as training text."""
    draft_id = _draft(db)
    record_action(db, draft_id, "edited", EDITED)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    forged = EDITED.replace("Friday", "Monday") + "\nPS: wire the deposit to the new account."
    _eml(tmp_path / "mail" / "INBOX", "forged", sender=KAY, to=SYLVIA, subject="NG contract", body=forged, when=soon)
    assert run_import(db, tmp_path / "mail", my_addresses=[KAY]).drafts_matched == []
    d = store.draft(db, draft_id)
    assert d.final_text == EDITED
    assert d.final_source == "edit"
    assert d.sent_message_id is None


def test_a_sent_version_that_replaces_the_users_edit_is_said(db, tmp_path):
    draft_id = _draft(db)
    record_action(db, draft_id, "edited", EDITED)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    _eml(
        tmp_path / "m" / "Sent", "s1", sender=KAY, to=SYLVIA, subject="NG contract", body=EDITED + " Thanks.", when=soon
    )
    result = run_import(db, tmp_path / "m", my_addresses=[KAY])
    assert result.edits_replaced == [draft_id]
    assert "replaces your edit" in [detail for _, a, detail in store.events(db, draft_id) if a == "sent"][0]


def test_a_wrong_match_is_undone_and_never_made_again(db, tmp_path):
    draft_id = _draft(db)
    record_action(db, draft_id, "edited", EDITED)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    _eml(tmp_path / "a" / "Sent", "sent1", sender=KAY, to=SYLVIA, subject="NG contract", body=EDITED, when=soon)
    run_import(db, tmp_path / "a", my_addresses=[KAY])
    assert store.draft(db, draft_id).sent_message_id is not None
    out = CliRunner().invoke(cli, ["edits", "unmatch", str(draft_id)])
    assert out.exit_code == 0, out.output
    d = store.draft(db, draft_id)
    assert d.sent_message_id is None
    assert d.final_text == EDITED
    assert d.final_source == "edit"
    assert d.status == "edited"
    # the same message seen again (another import of it) is not matched again
    refused = store.SentCandidate(_message_id(db, "sent1"), soon.isoformat(), KAY, [SYLVIA], "NG contract", EDITED)
    assert matching.match_sent_mail(db, [refused]).matched == []


def test_a_draft_is_not_matched_to_mail_sent_before_it_or_weeks_later(db):
    draft_id = _draft(db)
    d = store.draft(db, draft_id)
    created = dt.datetime.fromisoformat(d.created_at)
    for when in (created - dt.timedelta(hours=1), created + dt.timedelta(days=matching.WINDOW_DAYS + 1)):
        msg = store.SentCandidate(10**6, when.isoformat(), KAY, [SYLVIA], "NG contract", EDITED)
        assert matching.score(d, msg, {KAY}) is None
    assert matching.score(d, store.SentCandidate(1, created.isoformat(), KAY, [SYLVIA], "NG contract", EDITED), {KAY})


def _message_id(db, name: str) -> int:
    (row,) = db.execute("SELECT id FROM messages WHERE message_id LIKE ?", [f"%{name}@test.tiller%"]).fetchall()
    return row[0]


# -- forgetting ---------------------------------------------------------------------------------------


def test_forgetting_a_draft_removes_it_and_what_it_taught(db):
    draft_id = _draft(db)
    record_action(db, draft_id, "edited", EDITED)
    scoped.learn(db)
    assert store.scoped_rules(db)
    result = CliRunner().invoke(cli, ["edits", "forget", str(draft_id)])
    assert result.exit_code == 0
    assert "Forgot 1 draft(s); 0 scoped rule(s) remain." in result.output
    assert store.draft(db, draft_id) is None
    assert store.events(db, draft_id) == []
    assert store.scoped_rules(db) == []
    assert store.learning_pairs(db) == []
    assert CliRunner().invoke(cli, ["edits", "forget", str(draft_id)]).exit_code == 1


def test_forgetting_reaches_the_backup_and_set_aside_copies_and_the_files_bytes(db, tiller_home):
    """Issue 5/5 item 9: the forgotten text stayed in tiller.db.bak (and in tiller.db.damaged-*)."""
    import shutil

    from app.store.backup import take_backup

    secret = "Sylvia's private phone is 713-555-0199"
    draft_id = _draft(db)
    record_action(db, draft_id, "edited", f"{EDITED}\n{secret}")
    db_path = tiller_home / "tiller.db"
    take_backup(db.conn, db_path)  # as an import or migration does
    shutil.copy(tiller_home / "tiller.db.bak", tiller_home / "tiller.db.damaged-20261205-101010")
    assert all(secret.encode() in p.read_bytes() for p in tiller_home.glob("tiller.db.*"))
    result = CliRunner().invoke(cli, ["edits", "forget", str(draft_id)])
    assert result.exit_code == 0, result.output
    for path in [db_path, *tiller_home.glob("tiller.db*")]:
        assert secret.encode() not in path.read_bytes(), f"{path.name} still holds the forgotten text"
    assert db.execute("PRAGMA secure_delete").fetchone()[0] == 1


def test_forget_says_the_ledger_keeps_what_was_sent():
    result = CliRunner().invoke(cli, ["edits", "forget", "--help"])
    assert "privacy ledger" in result.output
    assert "every copy" in result.output


def test_forgetting_a_pair_an_adapter_learned_from_makes_a_retrain_due(db):
    draft_id = _draft(db)
    record_action(db, draft_id, "edited", EDITED)
    run = store.start_retrain(db, KAY, 1, 0)
    store.finish_retrain(db, run, "kept_new", old_score=0.1, new_score=0.2, note="test")
    assert not retrain.due(db, KAY)
    # an unfinished retrain left its copy of the edited text behind
    retrain.dataset_path(KAY).write_text(EDITED)
    (retrain.candidate_dir(KAY) / "checkpoint").mkdir(parents=True)
    CliRunner().invoke(cli, ["edits", "forget", "--all"])
    assert retrain.due(db, KAY)
    assert not retrain.dataset_path(KAY).exists()
    assert not retrain.candidate_dir(KAY).exists()


# -- scoped rules -----------------------------------------------------------------------------------


def test_an_edit_gives_rules_for_that_recipient_only(db):
    draft_id = _draft(db)
    record_action(db, draft_id, "edited", EDITED)
    report = scoped.learn(db)
    by_aspect = {r.aspect: r for r in report.rules}
    assert by_aspect["greeting"].rule.startswith("No greeting")
    assert by_aspect["greeting"].scope == "recipient"
    assert by_aspect["signoff"].rule == 'No closing phrase; sign with just "Kay".'
    assert all(r.scope_value == SYLVIA for r in report.rules)
    agent_rules = ['Greeting: "Dear Sylvia,".', "Uses contractions (I'm).", 'Sign-off: "Best regards," then "Kay".']
    for_sylvia, used = scoped.apply_scoped(agent_rules, scoped.rules_for(report.rules, f"Sylvia Ortiz <{SYLVIA}>"))
    assert for_sylvia[0].startswith("No greeting")
    assert for_sylvia[1] == "Uses contractions (I'm)."
    assert 'No closing phrase; sign with just "Kay".' in for_sylvia
    assert used
    # the edit also cut the email from 36 words to 13: that joins as a length rule for Sylvia
    assert for_sylvia[3] == by_aspect["length"].rule == "Length: about 13 words in 2 paragraphs."
    assert len(for_sylvia) == 4
    for_bob, used = scoped.apply_scoped(agent_rules, scoped.rules_for(report.rules, BOB))
    assert for_bob == agent_rules
    assert used == []


def test_the_compose_operation_drafts_with_the_learned_rules_for_the_recipient(db, script):
    from app.ops.compose import ComposeOperation, ComposeRequest

    record_action(db, _draft(db), "edited", EDITED)
    scoped.learn(db)

    class Agent:
        profile = None

        def rules(self, request, cancel=None):
            return ['Greeting: "Dear Sylvia,".', 'Sign-off: "Best regards," then "Kay" on its own line.']

    script.enqueue(
        "Dear Sylvia,\n\nThe contract is ready.\n\nBest regards,\nKay", "Dear Bob,\n\nReady.\n\nBest regards,\nKay"
    )
    op = ComposeOperation(
        ComposeRequest(INTENT, recipient=SYLVIA, sender=KAY, backend=SCRIPTED, learned=True), agent=lambda s: Agent()
    )
    list(op.run())
    assert op.rules_ready.scoped
    assert op.rules_ready.rules[0].startswith("No greeting")
    assert op.result.drafts[0].draft.text == "The contract is ready.\n\nKay\n"  # repaired to the learned rules
    bob = ComposeOperation(
        ComposeRequest(INTENT, recipient=BOB, sender=KAY, backend=SCRIPTED, learned=True), agent=lambda s: Agent()
    )
    list(bob.run())
    assert bob.rules_ready.scoped == []
    assert bob.rules_ready.rules == Agent().rules(None)
    assert bob.result.drafts[0].draft.text.startswith("Dear Sylvia,")  # the agent's greeting rule, kept


def test_a_rule_the_users_real_mail_contradicts_is_not_kept(db, tmp_path):
    # Kay's real emails to Sylvia all open "Hi Sylvia,": one edit dropping the greeting is a one-off
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=60)
    for n in range(4):
        _eml(
            tmp_path / "old",
            f"old{n}",
            sender=KAY,
            to=SYLVIA,
            subject=f"Item {n}",
            body=f"Hi Sylvia,\n\nHere is item {n} for the file.\n\nKay",
            when=old + dt.timedelta(days=n),
        )
    run_import(db, tmp_path / "old", my_addresses=[KAY])
    record_action(db, _draft(db), "edited", EDITED)
    report = scoped.learn(db)
    assert "greeting" not in {r.aspect for r in report.rules}
    (rejected,) = [r for r in report.rejected if r[2].startswith("No greeting")]
    assert rejected[3] == 4 and rejected[4] == 0  # checked on 4 emails, kept by none
    assert "signoff" in {r.aspect for r in report.rules}  # "Kay" alone is what those emails do


def test_the_same_change_to_several_recipients_becomes_a_domain_and_then_an_all_rule(db):
    for who in ("a.one@enron.com", "b.two@enron.com", "c.three@dynegy.com"):
        record_action(db, _draft(db, recipient=who), "edited", EDITED)
    rows = scoped.learn(db).rules
    scopes = {(r.scope, r.scope_value) for r in rows if r.rule.startswith("No greeting")}
    assert ("domain", "enron.com") in scopes
    assert ("all", "") in scopes
    out = CliRunner().invoke(cli, ["edits", "rules"]).output
    assert "enron.com" in out
    assert "all your mail" in out


def test_drafts_cut_to_several_recipients_give_an_all_mail_length_rule_unless_the_mail_says_otherwise(db, tmp_path):
    # three recipients, each draft cut to a few words: the finals differ in length (no two
    # length corrections read the same), and still say one thing, "shorter"
    long_draft = DRAFT + " " + " ".join(["I hope this finds you well and that the week is going smoothly."] * 3)
    finals = (
        "Ready for legal. Kay",
        "Contract ready for legal review. Kay",
        "The NG contract is ready for legal review, comments by Friday please? Kay",
    )
    for who, final in zip(("a.one@enron.com", "b.two@enron.com", "c.three@dynegy.com"), finals):
        record_action(db, _draft(db, recipient=who, text=long_draft), "edited", final)
    rows = [r for r in scoped.learn(db).rules if r.aspect == "length"]
    by_scope = {(r.scope, r.scope_value): r.rule for r in rows}
    assert by_scope[("all", "")] == "Length: about 6 words."  # the median of 4, 6 and 13 words
    assert by_scope[("domain", "enron.com")] == "Length: about 5 words."  # the median of 4 and 6
    assert all(r.rule.startswith("Length: about") for r in rows)
    assert scoped.rules_for(rows, "someone.new@elsewhere.com")[0].rule == "Length: about 6 words."

    # one recipient lengthened, two cut: the rule follows the two
    record_action(db, _draft(db, recipient="c.three@dynegy.com", text="Ready. Kay"), "edited", DRAFT + " " + DRAFT)
    rows = [r for r in scoped.learn(db).rules if r.aspect == "length" and r.scope != "recipient"]
    assert [(r.scope, r.rule) for r in rows] == [("domain", "Length: about 5 words.")]  # 2 recipients: no all-mail

    # the user's real mail is long: the edits to three people do not overrule it
    old = dt.datetime.now(dt.UTC) - dt.timedelta(days=60)
    for n in range(4):
        body = "Hi,\n\n" + " ".join(
            f"Point {n}.{k} of the contract needs another look before we sign." for k in range(6)
        )
        _eml(
            tmp_path / "old",
            f"long{n}",
            sender=KAY,
            to=f"p{n}@enron.com",
            subject=f"Item {n}",
            body=body + "\n\nKay",
            when=old + dt.timedelta(days=n),
        )
    run_import(db, tmp_path / "old", my_addresses=[KAY])
    record_action(db, _draft(db, recipient="d.four@enron.com", text=long_draft), "edited", "Ready. Kay")
    report = scoped.learn(db)
    assert not [r for r in report.rules if r.aspect == "length" and r.scope != "recipient"]
    assert any(scope in ("all", "domain") and rule.startswith("Length:") for scope, _, rule, _, _ in report.rejected)


# -- the online metric -------------------------------------------------------------------------------


def test_edit_distance_counts_changed_words():
    assert edit_distance("Thanks, Kay", "Thanks, Kay") == 0.0
    assert edit_distance("Thanks, Kay", "Thanks. Kay") == pytest.approx(1 / 3)  # the comma is a token
    assert edit_distance("", "anything") == 1.0
    assert edit_distance("one two three four", "one three four") == pytest.approx(1 / 4)


def test_progress_shows_the_weekly_edit_distance(db):
    record_action(db, _draft(db), "edited", EDITED)
    out = CliRunner().invoke(cli, ["edits", "progress"]).output
    week = dt.datetime.now(dt.UTC).isocalendar()
    assert f"{week[0]}-W{week[1]:02d}" in out
    assert "%" in out


# -- retraining ---------------------------------------------------------------------------------------


def test_a_retrain_is_due_after_enough_new_pairs(db):
    for n in range(retrain.RETRAIN_AFTER - 1):
        record_action(db, _draft(db, recipient=f"r{n}@enron.com"), "edited", EDITED)
    assert retrain.new_pairs(db, KAY) == retrain.RETRAIN_AFTER - 1
    assert not retrain.due(db, KAY)
    record_action(db, _draft(db), "edited", EDITED)
    assert retrain.due(db, KAY)
    run = store.start_retrain(db, KAY, retrain.RETRAIN_AFTER, 4)
    store.finish_retrain(db, run, "kept_old", old_score=0.5, new_score=0.4, note="worse")
    assert retrain.new_pairs(db, KAY) == 0
    assert not retrain.due(db, KAY)


def test_the_edit_replay_retrain_replays_the_adapters_distilled_examples(tiller_home, tmp_path):
    """benchmarks/edit_replay.py copies an eval adapter and its dataset into a scratch home; the
    retrain must find those examples there (the dataset folder's slug is not the profile's)."""
    import json

    from agent_training.retrain import distilled_examples
    from app.agent.profiles import TrainingRecord

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import edit_replay

    dataset = tmp_path / "agent.jsonl"
    rows = [{"messages": [], "meta": {"sender": KAY, "date": f"2001-12-0{d}"}} for d in (1, 2)]
    dataset.write_text("".join(json.dumps(r) + "\n" for r in rows))
    profile = tmp_path / "adapters" / KAY / "agent"
    profile.mkdir(parents=True)
    TrainingRecord(profile=KAY, dataset=str(dataset)).write(profile / "training.json")
    said = []
    edit_replay.ReplayRetrainer(tiller_home, after=3, steps=None, log=said.append).prepare(KAY, tmp_path / "adapters")
    assert [r["meta"]["date"] for r in distilled_examples(KAY, 10)] == ["2001-12-02", "2001-12-01"], said


def test_the_gate_benchmark_reuses_the_unlearned_arms_rules_from_a_replay(tmp_path):
    """benchmarks/retrain_gate.py scores the adapter in use with the rules an edit replay drafted
    from: the first row per email in its cache (the learning arm's rows come after and carry
    learned rules, which are not the adapter's)."""
    import json

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import retrain_gate

    drafts = tmp_path / "drafts.jsonl"
    rows = [
        {"message_id": 7, "rules": ["No greeting: start directly with the content."], "text": "a"},
        {"message_id": 7, "rules": ['Greeting: "Hi Sylvia,".'], "text": "b"},
    ]
    drafts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    cache = retrain_gate.RuleCache(tmp_path / "rules.jsonl", drafts)
    assert cache.get(KAY, 7, make=lambda: pytest.fail("generated")) == rows[0]["rules"]
    assert cache.get(KAY, 8, make=lambda: ["made"]) == ["made"]
    assert cache.seeded == 1
    again = retrain_gate.RuleCache(tmp_path / "rules.jsonl", None)
    assert again.get(KAY, 8, make=lambda: pytest.fail("generated again")) == ["made"]


def test_the_gate_score_rewards_rules_the_final_email_keeps():
    final = "The NG Energy contract is ready for legal review. Comments by Friday?\n\nKay"
    right = ["No greeting: start directly with the content.", 'No closing phrase; sign with just "Kay".']
    wrong = ['Greeting: "Dear Sylvia,".', 'Sign-off: "Best regards," then "Kay" on its own line.']
    good, bad = retrain.pair_score(right, final), retrain.pair_score(wrong, final)
    assert good.possible == bad.possible >= 2
    assert good.earned == 2
    assert bad.earned == 0


def test_the_retrain_gate_keeps_the_current_adapter_when_the_new_one_does_worse(db, kay_agent):
    """Constructed: five edits push Kay's agent towards "Dear X, ... Best regards, Kay Mann", the
    opposite of how Kay writes, and the three newest (held out) are Kay's usual short notes. The
    candidate learns the five and scores lower on the three: the current adapter stays."""
    import shutil

    from agent_training.retrain import Retrain, RetrainConfig
    from app.agent.profiles import ADAPTER_FILE, profile_dir
    from app.files import sha256_file

    _, folder, _ = kay_agent
    shutil.copytree(folder, profile_dir(KAY))
    before = sha256_file(profile_dir(KAY) / ADAPTER_FILE)
    topics = [
        ("ben.jacoby@enron.com", "Ben", "the Dynegy term sheet is attached"),
        ("suzanne.adams@enron.com", "Suzanne", "I will miss the 2pm meeting"),
        ("sheila.tweed@enron.com", "Sheila", "the turbine contract draft is ready"),
        ("carlos.sole@enron.com", "Carlos", "the LLC agreement needs a signature"),
        ("lisa.bills@enron.com", "Lisa", "the payment schedule changed"),
        ("rose.engeldorf@enron.com", "Rose", "the ESA is back from the lender"),
        ("john.schwartzenburg@enron.com", "John", "the consent form went out today"),
        ("roseann.engeldorf@enron.com", "Roseann", "we need the GE comments by noon"),
    ]
    for n, (address, name, what) in enumerate(topics):
        if n < 5:
            final = (
                f"Dear {name},\n\nI hope this message finds you well. I wanted to let you know that {what}. Please "
                "do not hesitate to reach out if you have any questions or would like to discuss any aspect of "
                "this further at your convenience.\n\nBest regards,\nKay Mann"
            )
        else:
            final = f"{what[0].upper() + what[1:]}. Let me know if that works for you."
        draft_id = _draft(db, recipient=address, subject=None, text=f"Hello {name}, {what}. Thanks, Kay")
        record_action(db, draft_id, "edited", final)
    job = Retrain(db, RetrainConfig(sender=KAY, steps=10, lr=3e-3))
    events = list(job.run())
    assert job.result["decision"] == "kept_old", job.result
    assert job.result["old_score"] > job.result["new_score"]
    assert sha256_file(profile_dir(KAY) / ADAPTER_FILE) == before  # the adapter in use is untouched
    (run,) = store.retrains(db, KAY)
    assert run.decision == "kept_old"
    assert run.pairs == 8
    assert run.held_out == 3
    assert "did worse" in run.note
    assert any(e.phase == "training" and e.step == 10 for e in events)
    assert not (profile_dir(KAY).parent / f".candidate-{KAY}").exists()
    assert not retrain.due(db, KAY)


def test_a_sent_candidate_the_user_never_picked_teaches_the_tag_selector(db, tmp_path):
    pytest.importorskip("torch", reason="the tag selector's text encoder needs the train extra")
    from app.learning.capture import DraftShown, record_drafts
    from app.ranking.selector import learned_preferences, load_selector, state_path

    tag_sets = [["Brief", "Status update", "Serious"], ["Thorough", "Friendly and personal", "Humorous"]]
    ids = record_drafts(
        db,
        identity=KAY,
        recipient=SYLVIA,
        subject="NG contract",
        intent=INTENT,
        previous_email=None,
        agent_rules=[],
        scoped_rules=[],
        rules=[],
        rules_source="agent",
        profile=KAY,
        shown=[
            DraftShown("The NG Energy contract is ready for legal review. Comments by Friday?", tag_sets[0]),
            DraftShown("Hi Sylvia! Fun news: the NG Energy contract is finally ready for legal review.", tag_sets[1]),
        ],
    )
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    _eml(tmp_path / "s" / "Sent", "sent", sender=KAY, to=SYLVIA, subject="NG contract", body=EDITED, when=soon)
    result = run_import(db, tmp_path / "s", my_addresses=[KAY])
    assert [d for d, _, _ in result.drafts_matched] == [ids[0]]
    assert state_path(KAY).is_file()
    weights = dict(learned_preferences(load_selector(KAY), 40))
    assert all(weights[t] > 0 for t in tag_sets[0])
    assert all(weights[t] < 0 for t in tag_sets[1])


@pytest.mark.slow
def test_a_due_retrain_starts_in_the_background_once(db):
    import os
    import signal
    import time

    for n in range(5):
        record_action(db, _draft(db, recipient=f"r{n}@enron.com"), "edited", EDITED)
    assert retrain.start_background(db, KAY) is None  # 5 new pairs: not due at the default
    proc = retrain.start_background(db, KAY, threshold=5)
    assert proc is not None
    try:
        deadline = time.monotonic() + 120
        while not (retrain.running(KAY) and store.retrains(db, KAY)) and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert retrain.running(KAY), retrain.log_path(KAY).read_text()
        assert retrain.start_background(db, KAY, threshold=5) is None  # one at a time
        (row,) = store.retrains(db, KAY)
        assert row.decision == "running"
        assert row.pairs == 5
        assert row.held_out == 3
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not retrain.running(KAY)  # the OS dropped the lock with the process


def test_r3_rules_from_draft_and_final_join_the_target_and_are_asked_once(db, scripted_backend, script):
    from agent_training.retrain import ask_r3_rules, edit_example
    from app.backends.config import get_endpoint
    from app.jobs import CancelToken

    draft_id = _draft(db)
    record_action(db, draft_id, "edited", EDITED)
    endpoint = get_endpoint(db, scripted_backend)
    script.enqueue(
        "<thinking>The real email is much shorter and skips the pleasantries.</thinking>\n"
        "<rules>\n- Get to the point in the first sentence.\n- Ask for the deadline as a short question.\n</rules>"
    )
    (event,) = list(ask_r3_rules(db, store.learning_pairs(db), endpoint, CancelToken()))
    assert event.phase == "rules"
    assert event.total_steps == 1
    request = script.requests[0]
    sent = "\n".join(m.content for m in request.messages)
    assert DRAFT.splitlines()[2] in sent and "Comments by Friday?" in sent  # draft as baseline, final as real
    pair = store.draft(db, draft_id)
    assert pair.r3_rules == ["Get to the point in the first sentence.", "Ask for the deadline as a short question."]
    target = edit_example(pair, endpoint)["messages"][1]["content"]
    assert target.startswith("- Get to the point in the first sentence.")
    assert "No greeting" in target
    assert "No greeting" in edit_example(pair)["messages"][1]["content"]  # without a backend: measured only
    assert "Get to the point" not in edit_example(pair)["messages"][1]["content"]
    assert list(ask_r3_rules(db, [pair], endpoint, CancelToken())) == []  # cached: nothing asked again
    record_action(db, draft_id, "edited", EDITED + "\nThanks")  # a new final text asks again
    script.enqueue("<rules>\n- Thank them briefly at the end.\n</rules>")
    assert len(list(ask_r3_rules(db, store.learning_pairs(db), endpoint, CancelToken()))) == 1


def test_r3_rules_from_a_cloud_backend_need_consent_before_anything_is_sent(db):
    from agent_training.retrain import Retrain, RetrainConfig
    from app.backends.base import EndpointConfig
    from app.backends.config import save_endpoint
    from app.consent import ConsentRequired

    save_endpoint(db, EndpointConfig("claude", "anthropic", "claude-test", "http://127.0.0.1:9"))
    for n in range(5):
        record_action(db, _draft(db, recipient=f"r{n}@enron.com"), "edited", EDITED)
    with pytest.raises(ConsentRequired, match="--i-consent-to-send-sent-mail"):
        list(Retrain(db, RetrainConfig(sender=KAY, rules_backend="claude")).run())
    assert store.retrains(db) == []
    assert not retrain.running(KAY)


def test_a_retrain_that_cannot_start_is_logged_to_the_data_folder(db, tiller_home, monkeypatch):
    """Issue 3/5: the warning went to an unconfigured logger, i.e. nowhere."""
    from app import logs
    from app.learning import loop, retrain

    def refuse(db, identity):
        raise OSError("no trainer Python in this bundle")

    monkeypatch.setattr(retrain, "start_background", refuse)
    logs.configure()
    assert loop.maybe_retrain(db, {"kay.mann@enron.com"}) == []
    text = (tiller_home / "logs" / "tiller.log").read_text()
    assert "WARNING tiller.learning: retrain of kay.mann@enron.com not started: no trainer Python" in text
