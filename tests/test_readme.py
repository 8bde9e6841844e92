"""The README's two set-up commands are the ones that work: .ci/run runs the second verbatim."""

import re

from tests.helpers import REPO


def _commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    setup = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", setup, re.S)]


def test_readme_has_exactly_two_setup_commands_and_ci_runs_the_second():
    commands = _commands()
    assert len(commands) == 2
    ci_lines = [
        line
        for line in (REPO / ".ci" / "run").read_text().splitlines()
        if line and not line.startswith(("#", "set ", "cd ", ".ci/system_packages"))
    ]
    assert ".ci/system_packages" in (REPO / ".ci" / "run").read_text()  # Dovecot for the IMAP tests
    assert ci_lines[0] == commands[1]
    # then the core's own tests in a venv holding the core alone (tests/test_architecture.py checks it is bare)
    assert len(ci_lines) == 2
    assert "pip install -q -e '.[core-test]'" in ci_lines[1]
    assert "TILLER_BARE_CORE=1" in ci_lines[1]
    listed = [
        line for line in (REPO / ".ci" / "core_tests").read_text().splitlines() if line and not line.startswith("#")
    ]
    assert listed
    assert all((REPO / path).is_file() for path in listed)
    assert commands[0].endswith("tiller demo")


def _readme_lines(prefix: str) -> list[str]:
    """Every inline or block command in the README and the user guide (docs/guide) that starts with
    ``prefix``."""
    text = "\n".join(p.read_text() for p in [REPO / "README.md", *sorted((REPO / "docs" / "guide").glob("*.md"))])
    found = re.findall(r"`(" + re.escape(prefix) + r"[^`]*)`", text)
    found += [
        line.strip()
        for block in re.findall(r"```bash\n(.*?)```", text, re.S)
        for line in block.splitlines()
        if line.strip().startswith(prefix)
    ]
    return found


def test_the_readmes_train_commands_parse_in_both_training_clis():
    """The README's `tiller train ... --dataset ... --out ...` lines are what the paper's baselines
    need; both commands take every training option (one definition, app/agent/train_options.py)."""
    import shlex

    from agent_training.cli import train_command as trainer_train
    from app.agent.trainer import train_arguments
    from app.cli.training import train_command as tiller_train

    lines = _readme_lines("tiller train")
    assert any("--dataset" in line and "--out" in line for line in lines), lines
    for line in lines:
        args = [a for a in shlex.split(line.replace("[", "").replace("]", ""))[2:] if a != "|"]
        args = [{"S": "kay.mann@enron.com", "N": "3", "ADDRESS": "kay.mann@enron.com"}.get(a, a) for a in args]
        ctx = tiller_train.make_context("tiller train", list(args))  # an unknown option raises here
        # sender and the app's own choices (which profile; whether a voice run follows) are not forwarded
        values = {k: v for k, v in ctx.params.items() if k not in ("sender", "all_senders", "no_voice")}
        # what tiller train forwards, the trainer reads back as the same values
        forwarded = train_arguments(sender=ctx.params["sender"], **values)
        back = trainer_train.make_context("agent_training train", forwarded[1:])
        for key, value in values.items():
            assert back.params[key] == value, (line, key)


def test_training_option_defaults_are_the_finetune_configs():
    from dataclasses import fields

    from agent_training.finetune import FinetuneConfig
    from app.agent.train_options import TRAINING_OPTIONS

    defaults = {f.name: f.default for f in fields(FinetuneConfig)}
    for opt in TRAINING_OPTIONS:
        assert opt.field in defaults, opt.flag
        if opt.field != "dataset":
            assert (False if opt.is_flag else opt.default) == defaults[opt.field], opt.flag


def test_the_checked_in_cli_reference_is_what_the_commands_generate():
    """docs/cli.md is generated from the commands (packaging/cli_reference.py), so it cannot drift:
    a changed option or help text without regenerating it fails here."""
    import subprocess
    import sys

    from tests.helpers import REPO

    generated = subprocess.run(
        [sys.executable, str(REPO / "packaging" / "cli_reference.py")],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    checked_in = (REPO / "docs" / "cli.md").read_text()
    assert generated == checked_in, "docs/cli.md is out of date: python packaging/cli_reference.py > docs/cli.md"
    assert "### tiller draft" in generated
    assert "--save [ACCOUNT]" in generated
    assert "### agent_training train" in generated
