"""Small things a user meets at the command line (issue 5/5, "also unchanged from the first probe"),
each run as a real `tiller` process."""

import os
import subprocess
import sys

from tests.helpers import REPO


def tiller(*args: str, home, env=None, input=None):
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=dict(os.environ, TILLER_HOME=str(home), PYTHONPATH=str(REPO), **(env or {})),
        capture_output=True,
        input=input,
        cwd=REPO,
    )


def test_text_that_is_not_utf8_is_one_sentence_not_codec_text(tmp_path):
    bad = os.fsencode("caf") + b"\xe9 intent"
    proc = subprocess.run(
        [sys.executable, "-m", "app", "identities", "add", os.fsdecode(b"\xffx@example.com")],
        env=dict(os.environ, TILLER_HOME=str(tmp_path), PYTHONPATH=str(REPO)),
        capture_output=True,
        cwd=REPO,
    )
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 2
    assert "is not UTF-8 text (byte 0xff" in err
    assert "codec" not in err
    proc = tiller("draft", os.fsdecode(bad), "--no-agent", home=tmp_path)
    assert proc.returncode == 2
    assert b"byte 0xe9 at position 4" in proc.stderr


def test_a_file_name_in_another_encoding_is_still_a_path(tmp_path):
    folder = tmp_path / os.fsdecode(b"Envoy\xe9s")
    (folder / "cur").mkdir(parents=True)
    proc = tiller("import", str(folder), home=tmp_path / "home")
    assert b"not UTF-8 text" not in proc.stderr  # it exists: a path, read as one


def test_an_empty_eml_folder_is_an_error_naming_it(tmp_path):
    empty = tmp_path / "exports"
    empty.mkdir()
    proc = tiller("import", "--kind", "eml", str(empty), home=tmp_path / "home")
    assert proc.returncode == 1
    assert b"no eml messages found there" in proc.stderr


def test_an_import_run_that_does_not_exist_is_said(tmp_path):
    proc = tiller("imports", "99999", home=tmp_path)
    assert proc.returncode == 1
    assert b"no import run 99999" in proc.stderr


def test_a_backend_cannot_take_the_built_in_local_name(tmp_path):
    proc = tiller(
        "backends", "add", "local", "--provider", "openai_compat", "--base-url", "http://127.0.0.1:9/v1",
        "--model", "x", home=tmp_path,
    )  # fmt: skip
    assert proc.returncode != 0
    assert b"built-in embedded model" in proc.stderr


def test_a_key_for_a_backend_that_does_not_exist_is_refused(tmp_path):
    proc = tiller(
        "keys", "set", "nosuch", home=tmp_path, input=b"sk-test\n", env={"TILLER_ALLOW_PLAINTEXT_KEYRING": "1"}
    )
    assert proc.returncode == 1
    assert b"no backend named 'nosuch'" in proc.stderr
