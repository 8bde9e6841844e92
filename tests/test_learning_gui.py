"""Learning from edits in the desktop app (issue 6/6): the Compose page records what the user
does with a draft, the Your edits page shows, unmatches and forgets. The large model is scripted."""

from __future__ import annotations

import datetime as dt

from app.store import drafts as store
from tests.helpers import run_import
from tests.test_learning import DRAFT, EDITED, INTENT, KAY, SYLVIA, _draft, _eml


def test_the_compose_page_records_the_draft_the_edit_and_the_copy_and_the_edits_page_forgets(
    qtbot, db, scripted_backend, script
):
    from PySide6.QtCore import Qt

    from app.gui.window import MainWindow

    win = MainWindow()
    qtbot.addWidget(win)
    win.show()
    page = win.compose
    win.show_page(page)
    page.refresh()
    page.backend.setCurrentText(scripted_backend)
    page.form.recipient.setText(SYLVIA)
    page.form.subject.setText("NG contract")
    page.intent.setPlainText(INTENT)
    page.rules_editor.set_rules(['Greeting: "Dear Sylvia,".'])
    page.rules_editor.made_for = page.inputs()
    script.enqueue(DRAFT, "Dear Sylvia,\n\nA second draft.\n\nBest regards,\nKay")
    with qtbot.waitSignal(page.sig_draft_finished, timeout=30_000):
        qtbot.mouseClick(page.draft_button, Qt.LeftButton)
    (d,) = store.drafts(db)
    assert d.status == "shown"
    assert d.rules == ['Greeting: "Dear Sylvia,".']
    assert d.rules_source == "given"
    page.output.setPlainText(EDITED)  # the user edits the draft in the box, then copies it
    qtbot.mouseClick(page.draft.copy, Qt.LeftButton)
    d = store.draft(db, d.id)
    assert d.status == "copied"
    assert d.final_text == EDITED
    assert d.final_source == "edit"
    assert [a for _, a, _ in store.events(db, d.id)] == ["shown", "edited", "copied"]
    qtbot.waitUntil(lambda: page._learn_job is not None and not page._learn_job.running, timeout=10_000)
    assert store.scoped_rules(db)  # learned in the background from the edit
    # a second draft, discarded
    with qtbot.waitSignal(page.sig_draft_finished, timeout=30_000):
        qtbot.mouseClick(page.draft_button, Qt.LeftButton)
    qtbot.mouseClick(page.draft.discard, Qt.LeftButton)
    assert page.output.toPlainText() == ""
    assert store.drafts(db)[0].status == "discarded"
    # the Edits page lists both, plots the week, and forgets the edited one and what it taught
    edits = win.edits
    win.show_page(edits)
    assert edits.table.rowCount() == 2
    assert edits.plot.weeks
    assert edits.rules.count() >= 1
    row = next(r for r in range(2) if edits.table.item(r, 0).text() == str(d.id))
    edits.table.selectRow(row)
    edits.forget_selected(confirm=False)
    assert store.draft(db, d.id) is None
    assert store.scoped_rules(db) == []
    assert edits.table.rowCount() == 1


def test_the_edits_page_undoes_a_wrong_match(qtbot, db, tmp_path):
    from app.gui.edits_page import EditsPage

    draft_id = _draft(db)
    soon = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
    _eml(tmp_path / "s" / "Sent", "sent", sender=KAY, to=SYLVIA, subject="NG contract", body=EDITED, when=soon)
    run_import(db, tmp_path / "s", my_addresses=[KAY])
    page = EditsPage()
    qtbot.addWidget(page)
    assert "message" in page.table.item(0, 6).text()
    page.table.selectRow(0)
    page.unmatch_selected()
    assert store.draft(db, draft_id).sent_message_id is None
    assert page.table.item(0, 6).text() == "-"
    assert page.status.text() == "1 match(es) undone."
