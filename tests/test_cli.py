"""The tiller command line, driven as a user would."""

import pytest
from click.testing import CliRunner

from app.cli import cli


@pytest.mark.slow
def test_demo_runs_the_main_job_from_import_to_a_draft(enron, monkeypatch, tiller_home, capfd):
    monkeypatch.setenv("TILLER_SAMPLE_MAIL", str(enron / "maildir"))
    # the README's demo trains 60 steps, distills 3 emails with the local model and says 52 plainly
    # for the voice stage; one each shows those stages (too few pairs to train the voice stage: the
    # voice adapter's training on real pairs is in test_distill.py; what a brief run learns is in
    # test_agent_training.py)
    result = CliRunner().invoke(cli, ["demo", "--steps", "1", "--local-emails", "1", "--voice-emails", "1"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "│ seen                    │ 9759" in out
    assert "│ stored                  │ 8892" in out
    assert "│ duplicates              │ 866" in out
    assert "MANIFEST.tsv: not-an-email" in out
    assert "kay.mann@enron.com" in out
    assert "8892 messages stored: 8209 written by you, 683 kept as context" in out
    # then the offline distillation (a separate process) built the dataset
    import json

    stats = json.loads((tiller_home / "datasets" / "all" / "measured" / "stats.json").read_text())
    assert (stats["examples"], stats["train"], stats["test"]) == (7734, 6187, 1547)  # 21 pasted-only emails left out
    # then the paper's method with the embedded instruct model for Kay's newest email (a process too)
    trainer_side = capfd.readouterr().out  # the training side runs as a process writing to this terminal
    assert "3/6 The paper's distillation" in out
    assert "Yield: intents " in trainer_side
    r3 = json.loads((tiller_home / "datasets" / "kay.mann_enron.com" / "R3" / "stats.json").read_text())
    assert r3["examples"] == 1
    assert r3["mean_rules_words"] > 3
    # then a brief training run (another process) for Kay Mann's profile, and a draft with its rules
    record = json.loads((tiller_home / "agents" / "kay.mann@enron.com" / "training.json").read_text())
    assert record["steps"] == 1
    assert record["profile"] == "kay.mann@enron.com"
    assert (tiller_home / "agents" / "kay.mann@enron.com" / "adapter.gguf").is_file()
    assert "5/6 Drafting with the agent's rules" in out
    first_draft, voice_stage = out.split("6/6 The voice stage", 1)
    rules_part = first_draft.split("Preference rules (made on this computer)", 1)[1]
    rules, draft = rules_part.split("Draft", 1)
    assert "\n- " in rules
    assert len(draft.strip()) > 20
    assert "Time to a first personal draft" in first_draft  # the headline is not held up by stage 6
    # stage 6: the newest email said plainly (a process), too few pairs, and the way to more
    assert "plain rewrites 1" in trainer_side
    assert "Voice stage not trained" in voice_stage
    assert "the voice stage trains from 20" in " ".join(voice_stage.split())
    assert "tiller demo --voice-emails 13" in voice_stage
    assert not (tiller_home / "agents" / "kay.mann@enron.com" / "voice" / "adapter.gguf").exists()


def test_each_command_is_found_in_its_own_module_and_loads_only_that():
    """`tiller X` imports X's module alone (a start without the backends' SDKs, pydantic and httpx
    took 0.3 s instead of 0.55). The map from command to module must name every command's real
    home. In a fresh process: this one has every module loaded already."""
    import subprocess
    import sys

    code = """
import json, sys, importlib, click
from app.cli.common import COMMAND_MODULES, cli
found = cli.get_command(click.Context(cli), "identities")
heavy = sorted(m for m in ("app.cli.drafting", "app.backends.client", "pydantic", "httpx2") if m in sys.modules)
for module in set(COMMAND_MODULES.values()):
    importlib.import_module(module)
homes = {name: command.callback.__module__ for name, command in cli.commands.items()}
print(json.dumps({"found": found.name, "heavy": heavy, "homes": homes, "listed": cli.list_commands(None)}))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    import json

    from app.cli.common import COMMAND_MODULES

    seen = json.loads(done.stdout)
    assert seen["found"] == "identities"
    assert seen["heavy"] == []
    assert seen["homes"] == COMMAND_MODULES
    assert seen["listed"] == sorted(COMMAND_MODULES)


def test_import_of_a_missing_path_is_a_clear_error():
    result = CliRunner().invoke(cli, ["import", "/no/such/mailbox"])
    assert result.exit_code == 1
    assert "Error: /no/such/mailbox: no such file or directory" in result.output


def test_identities_add_and_remove(enron):
    runner = CliRunner()
    assert runner.invoke(cli, ["import", str(enron / "mbox" / "quigley-d.sent_items.mbox")]).exit_code == 0
    out = runner.invoke(cli, ["identities"]).output
    assert "dutch.quigley@enron.com" in out
    assert "0 kept as context" not in out
    out = runner.invoke(cli, ["identities", "remove", "dutch.quigley@enron.com"]).output
    assert "0 written by you, 506 kept as context" in out
    out = runner.invoke(cli, ["identities", "add", "no.address@enron.com"]).output
    assert "1 written by you" in out
    bad = runner.invoke(cli, ["identities", "add", "not-an-address"])
    assert bad.exit_code == 1
    assert "is not an email address" in bad.output
    # a removed address stays removed when the source is imported again
    runner.invoke(cli, ["import", str(enron / "mbox" / "quigley-d.sent_items.mbox")])
    assert "dutch.quigley" not in runner.invoke(cli, ["identities"]).output


def test_imports_lists_runs_and_skipped_items(enron):
    runner = CliRunner()
    runner.invoke(cli, ["import", str(enron / "raw")])
    out = runner.invoke(cli, ["imports"]).output
    assert "completed" in out
    assert "1189" in out
    out = runner.invoke(cli, ["imports", "1"]).output
    assert "raw/README.md: not-an-email" in out


def test_train_asks_which_voice_when_there_are_several_identities(enron):
    runner = CliRunner()
    assert runner.invoke(cli, ["import", str(enron / "mbox" / "quigley-d.sent_items.mbox")]).exit_code == 0
    assert runner.invoke(cli, ["identities", "add", "no.address@enron.com"]).exit_code == 0
    result = runner.invoke(cli, ["train"])
    assert result.exit_code == 2
    assert "pick one with --sender ADDRESS" in result.output
    assert "dutch.quigley@enron.com" in result.output


def test_draft_refuses_an_empty_intent_and_an_empty_rules_file(tmp_path):
    runner = CliRunner()
    assert "the intent is empty" in runner.invoke(cli, ["draft", "  "]).output
    rules = tmp_path / "rules.txt"
    rules.write_text("# only a comment\n")
    result = runner.invoke(cli, ["draft", "Say hi", "--rules-file", str(rules)])
    assert result.exit_code == 1
    assert f"{rules}: no rules in it" in result.output
