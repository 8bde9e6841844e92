"""The file $EDITOR leaves behind is read with care (issue 5/5 item 11): a /dev/zero link grew to
1.7 GB, a FIFO hung, and non-UTF-8 bytes made Tiller throw the user's edit away."""

import os
import stat
import sys

import click
import pytest

from app.cli.drafting import MAX_EDIT_BYTES, edit_in_editor


def _editor(tmp_path, monkeypatch, body: str) -> None:
    """$EDITOR: a real program that does ``body`` to the file it is given (as $1 / sys.argv[1])."""
    script = tmp_path / "editor.py"
    script.write_text("import os, sys\npath = sys.argv[1]\n" + body)
    monkeypatch.setenv("EDITOR", f"{sys.executable} {script}")
    monkeypatch.delenv("VISUAL", raising=False)


def test_a_latin1_edit_is_kept_not_lost(tmp_path, monkeypatch):
    _editor(tmp_path, monkeypatch, "open(path, 'wb').write('Grüße, Kay – à bientôt'.encode('latin-1', 'replace'))\n")
    assert edit_in_editor("draft") == "Grüße, Kay ? à bientôt"


def test_a_link_to_dev_zero_is_refused_at_once_and_says_where_the_file_is(tmp_path, monkeypatch):
    _editor(tmp_path, monkeypatch, "os.remove(path)\nos.symlink('/dev/zero', path)\n")
    with pytest.raises(click.ClickException) as caught:
        edit_in_editor("draft")
    assert "not a regular file" in caught.value.message
    assert "kept at" in caught.value.message


def test_a_fifo_does_not_hang(tmp_path, monkeypatch):
    _editor(tmp_path, monkeypatch, "os.remove(path)\nos.mkfifo(path)\n")
    with pytest.raises(click.ClickException) as caught:
        edit_in_editor("draft")
    assert "not a regular file" in caught.value.message


def test_an_edit_over_the_limit_is_kept_on_disk(tmp_path, monkeypatch):
    _editor(tmp_path, monkeypatch, f"open(path, 'w').write('x' * {MAX_EDIT_BYTES + 10})\n")
    with pytest.raises(click.ClickException) as caught:
        edit_in_editor("draft")
    kept = caught.value.message.rsplit("kept at ", 1)[1]
    assert os.path.getsize(kept) == MAX_EDIT_BYTES + 10
    assert stat.S_ISREG(os.stat(kept).st_mode)
