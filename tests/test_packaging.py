"""Packaging: the desktop entry, the installed GUI entry point's smoke test, and (opt-in, slow)
the PyInstaller bundle built by packaging/build_bundle.sh."""

from __future__ import annotations

import configparser
import os
import subprocess
import sys
import tomllib

import pytest

from tests.helpers import REPO


def test_desktop_entry_is_complete_and_runs_the_gui_script():
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str
    entry.read(REPO / "packaging" / "tiller.desktop")
    section = entry["Desktop Entry"]
    for key in ("Type", "Name", "Exec", "Icon", "Categories", "Terminal"):
        assert section.get(key), key
    assert section["Type"] == "Application"
    assert section["Terminal"] == "false"
    assert section["Categories"].endswith(";")
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["gui-scripts"]
    assert section["Exec"].split()[0] in scripts
    assert (REPO / "resources" / "icons" / f"{section['Icon']}.svg").is_file()


def test_the_gui_starts_and_reports(tiller_home):
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen", "TILLER_HOME": str(tiller_home)}
    result = subprocess.run(
        [sys.executable, "-m", "app.gui", "--smoke-test"], capture_output=True, text=True, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Tiller started: 7 pages, 1 backends" in result.stdout
    assert (tiller_home / "gui.ini").is_file()  # the window state was saved on close


@pytest.mark.skipif(
    not os.environ.get("TILLER_BUNDLE_TEST"), reason="builds the PyInstaller bundle (minutes); set TILLER_BUNDLE_TEST=1"
)
def test_the_bundle_builds_and_starts():
    result = subprocess.run(
        ["bash", str(REPO / "packaging" / "build_bundle.sh")], capture_output=True, text=True, timeout=1800
    )
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    assert "bundle OK" in result.stdout


def test_a_wheel_carries_the_prompts_and_finds_them_when_installed(tmp_path):
    """resources/ lives beside the packages in a checkout; a wheel must carry it (as app._resources)
    and the installed code must load prompts from there."""
    import zipfile

    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            str(REPO),
            "-w",
            str(tmp_path / "wheel"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((tmp_path / "wheel").glob("tiller-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "installed")
    prompts = {p.name for p in (REPO / "resources" / "prompts").glob("*.txt")}
    assert prompts
    assert {f"app/_resources/prompts/{p}" for p in prompts} <= names
    assert "app/_resources/icons/tiller.svg" in names
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); from app.prompts import RESOURCES, load_prompt; "
        "print(RESOURCES); print(load_prompt('draft').id)"
    )
    run = subprocess.run(
        [sys.executable, "-S", "-c", code, str(tmp_path / "installed")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [str(tmp_path / "installed" / "app" / "_resources"), "draft.v1"]
