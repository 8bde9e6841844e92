"""Atomic writers: a reader sees the old content or the new, and a failure never loses the old."""

import os

import pytest

from app.files import write_atomic_dir


def _fill(files: dict[str, str]):
    def fill(tmp):
        for name, text in files.items():
            (tmp / name).write_text(text)

    return fill


def test_a_folder_is_replaced_whole(tmp_path):
    target = tmp_path / "adapter"
    write_atomic_dir(target, _fill({"a": "old", "b": "old"}))
    write_atomic_dir(target, _fill({"a": "new"}))
    assert {p.name: p.read_text() for p in target.iterdir()} == {"a": "new"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]  # no partial or old folder left


def test_a_failed_fill_or_swap_keeps_the_old_folder(tmp_path, monkeypatch):
    target = tmp_path / "adapter"
    write_atomic_dir(target, _fill({"a": "old"}))

    def broken(tmp):
        (tmp / "a").write_text("half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic_dir(target, broken)
    assert (target / "a").read_text() == "old"
    # the second rename (new folder into place) fails after the old one was moved aside
    real_replace = os.replace

    def replace(src, dst):
        if str(src).endswith(".partial"):
            raise OSError("rename refused")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(OSError, match="rename refused"):
        write_atomic_dir(target, _fill({"a": "new"}))
    assert (target / "a").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter"]


def test_training_record_reads_older_and_newer_records_and_names_a_broken_one(tmp_path):
    """training.json is the contract between the trainer process and the app: typed, tolerant of
    keys it does not know (a newer trainer) or lacks (an older one), and a damaged one is named."""
    import json

    from app.agent.profiles import TRAINING_FILE, TrainingRecord, profile_at

    folder = tmp_path / "kay"
    folder.mkdir()
    (folder / TRAINING_FILE).write_text(
        json.dumps(
            {
                "profile": "kay@x.com",
                "steps": 60,
                "examples": {"used": 76},
                "first_loss": 2.5,
                "final_loss": 0.9,
                "from_the_future": 1,
            }
        )
    )
    profile = profile_at(folder, "fallback")
    assert profile.name == "kay@x.com"
    assert profile.record.steps == 60
    assert profile.record.examples_used == 76
    assert profile.record.adapter_sha256 is None and not profile.trained  # no adapter.gguf yet
    record = TrainingRecord(profile="all", steps=3, examples={"used": 2})
    record.write(folder / TRAINING_FILE)
    assert TrainingRecord.read(folder / TRAINING_FILE) == record
    (folder / TRAINING_FILE).write_text("[1, 2")
    with pytest.raises(ValueError, match=r"training.json: unreadable training record"):
        profile_at(folder, "kay")
