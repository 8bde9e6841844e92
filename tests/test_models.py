"""Models as data (issue 2/6): both embedded models assemble from their chunk packages and are
verified, a mismatch is refused with a message naming the packages, a user's GGUF can be
registered and chosen, and the local backend prompts a chat model through its own template."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
from click.testing import CliRunner

from app.cli import cli
from app.model_files import (
    EMBEDDED_MODELS,
    ModelIntegrityError,
    assemble_embedded,
    describe_gguf,
    embedded_model,
    list_models,
    model_for_role,
    register_model,
    use_model,
)


def test_both_embedded_models_assemble_verified_with_what_their_headers_say(shared_models):
    base = embedded_model("gemma-3-270m-base")
    instruct = embedded_model("qwen2.5-coder-1.5b-instruct")
    assert base.stat().st_size == 253_113_024
    assert instruct.stat().st_size == 1_117_320_768
    b, q = describe_gguf(base), describe_gguf(instruct)
    assert (b["architecture"], b["chat_template"], b["quantization"]) == ("gemma3", False, "Q4_K_M")
    assert (q["architecture"], q["chat_template"], q["quantization"]) == ("qwen2", True, "Q4_K_M")
    assert q["display_name"] == "Qwen2.5 Coder 1.5B Instruct GGUF"


def test_a_checksum_mismatch_is_refused_and_nothing_is_left_behind(tmp_path):
    real = EMBEDDED_MODELS["gemma-3-270m-base"]
    wrong = dataclasses.replace(real, sha256="0" * 64)
    target = tmp_path / "model.gguf"
    with pytest.raises(ModelIntegrityError, match="sha256 .* expected 0{64}: .*reinstall them: pip install"):
        assemble_embedded(wrong, target)
    assert list(tmp_path.iterdir()) == []  # no half-made or wrong file under any name
    with pytest.raises(ModelIntegrityError, match="hold 253,113,024 bytes, expected 1,000"):
        assemble_embedded(dataclasses.replace(real, size=1000), target)
    missing = dataclasses.replace(real, chunk_modules=("tiller_no_such_chunk_package",))
    with pytest.raises(ModelIntegrityError, match="not installed: pip install"):
        assemble_embedded(missing, target)


def test_a_users_gguf_is_registered_listed_chosen_and_forgotten(db, shared_models, tmp_path):
    # a deep folder, as under pytest-xdist: the table must fold the path, not squeeze the license out
    mine = tmp_path / ("a-long-folder-name-" * 6) / "my-model.gguf"
    mine.parent.mkdir()
    shutil.copy(embedded_model("gemma-3-270m-base"), mine)
    info = register_model(db, mine, "drafting", name="my-model")
    assert (info.architecture, info.chat_template, info.embedded) == ("gemma3", False, False)
    assert model_for_role(db, "drafting") == "qwen2.5-coder-1.5b-instruct"
    use_model(db, "drafting", "my-model")
    assert model_for_role(db, "drafting") == "my-model"
    runner = CliRunner()
    listed = runner.invoke(cli, ["models", "--verify"])
    assert listed.exit_code == 0, listed.output
    for expected in ("gemma-3-270m-base", "qwen2.5-coder-1.5b-instruct", "my-model", "verified"):
        assert expected in listed.output.replace("\n", " ") or expected[:10] in listed.output, expected
    assert "Apache-2.0" in listed.output, listed.output
    assert str(mine) in listed.output, listed.output
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("hello")
    bad = runner.invoke(cli, ["models", "add", str(not_gguf)])
    assert bad.exit_code == 1
    assert "not a GGUF model file" in bad.output
    # a download cut off inside the header (a real GGUF's first 4 KB): a sentence, not a struct.error
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(mine.read_bytes()[:4096])
    for bad_file in (cut, tmp_path / "empty.gguf"):
        bad_file.touch()
        bad = runner.invoke(cli, ["models", "add", str(bad_file)])
        assert bad.exit_code == 1, bad.output
        assert "not a GGUF model file" in bad.output, bad.output
        assert bad.exception is None or isinstance(bad.exception, SystemExit)
    assert runner.invoke(cli, ["models", "remove", "my-model"]).exit_code == 0
    assert model_for_role(db, "drafting") == "qwen2.5-coder-1.5b-instruct"
    assert [m.name for m in list_models(db) if not m.embedded] == []


def test_check_finds_an_added_model_that_changed(db, shared_models, tmp_path):
    mine = tmp_path / "mine.gguf"
    shutil.copy(embedded_model("gemma-3-270m-base"), mine)
    register_model(db, mine, "drafting", name="mine")
    assert CliRunner().invoke(cli, ["check"]).exit_code == 0
    with open(mine, "r+b") as fh:
        fh.seek(1 << 20)
        fh.write(b"\x00" * 64)
    result = CliRunner().invoke(cli, ["check"])
    assert result.exit_code == 3
    assert "model mine: sha256 differs" in result.output


@pytest.mark.slow
def test_the_local_backend_uses_the_chat_template_of_an_instruct_model_and_completion_for_a_base_model(shared_models):
    from app.agent.runtime import RUNTIME, ModelSpec
    from app.backends.base import GenerationRequest
    from app.backends.local import chat_messages, completion_prompt

    request = GenerationRequest.simple("You write emails.", "Write one line to Sam: lunch at noon.")
    chat = RUNTIME.chat_prompt(ModelSpec.of(embedded_model("qwen2.5-coder-1.5b-instruct")), chat_messages(request))
    assert chat is not None
    prompt, stops = chat
    assert prompt.startswith("<|im_start|>system\nYou write emails.<|im_end|>")
    assert prompt.endswith("<|im_start|>assistant\n")
    assert "<|im_end|>" in stops
    assert RUNTIME.chat_prompt(ModelSpec.of(embedded_model("gemma-3-270m-base")), chat_messages(request)) is None
    assert completion_prompt(request).endswith("Response:")
    RUNTIME.close()
