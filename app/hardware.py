"""What this computer's CPU is, for every timing Tiller prints: its model name and the flags that
decide whether bf16 is fast (``avx512_bf16``, ``amx_bf16``). Timings without them cannot be
compared: the same code ran 37x slower in bf16 on a CPU without native bf16."""

from __future__ import annotations

import os
import platform
from pathlib import Path

CPU_FLAGS_OF_NOTE = ("avx512_bf16", "amx_bf16", "avx512f", "avx2")
# set, these make the math libraries ignore what the CPU has (benchmarks emulate a CPU without
# native bf16 with them): a timing says so
ISA_LIMITS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS")


def _read_cpuinfo(cpuinfo: str | None) -> tuple[str, set[str]]:
    """(model name, every flag) from /proc/cpuinfo's text (read when None; empty off Linux)."""
    model, flags = platform.processor() or platform.machine(), set()
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip():
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model, flags


def cpu_flags(cpuinfo: str | None = None) -> set[str]:
    """Every flag the CPU reports (Linux), e.g. ``amx_int8``; an empty set elsewhere."""
    return _read_cpuinfo(cpuinfo)[1]


def cpu_description(cpuinfo: str | None = None) -> dict:
    """``{"model": ..., "flags": [...], "cores": N}``; the flags are those of CPU_FLAGS_OF_NOTE the
    CPU has (Linux: /proc/cpuinfo; elsewhere the model from the platform and no flags)."""
    model, flags = _read_cpuinfo(cpuinfo)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return {"model": model, "flags": [f for f in CPU_FLAGS_OF_NOTE if f in flags], "cores": cores}


def native_bf16(description: dict | None = None) -> bool:
    flags = (description or cpu_description())["flags"]
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cpu_summary(description: dict | None = None) -> str:
    """One line: 'Intel(R) Xeon(R) Processor, 2 cores, native bf16 (avx512_bf16, amx_bf16)'."""
    d = description or cpu_description()
    bf16 = [f for f in d["flags"] if f.endswith("bf16")]
    native = f"native bf16 ({', '.join(bf16)})" if bf16 else "no native bf16"
    limits = [f"{k}={os.environ[k]}" for k in ISA_LIMITS if os.environ.get(k)]
    return f"{d['model']}, {d['cores']} cores, {native}" + (f" (limited by {' '.join(limits)})" if limits else "")


TRAIN_SPEED_FILE = "train-speed.json"  # written by the trainer after each run: this computer's step time


def measured_training_speed() -> dict | None:
    """The last training run's step time on this computer (``s_per_step``, ``batch_size``,
    ``dtype``, ``cpu``), or None before the first run."""
    import json

    from app import paths

    try:
        data = json.loads((paths.home() / "hardware" / TRAIN_SPEED_FILE).read_text())
        return data if isinstance(data, dict) and float(data.get("s_per_step", 0)) > 0 else None
    except (OSError, ValueError, TypeError):
        return None


def training_time_estimate(steps: int) -> str:
    """'About 5 minutes for 60 steps on this computer (measured: 4.8 s a step, bf16)' or, before any
    run, what the first run will do."""
    speed = measured_training_speed()
    if speed is None:
        return (
            f"{steps} steps; the first run measures this computer's speed after two steps and says how long "
            "the rest takes"
        )
    minutes = steps * float(speed["s_per_step"]) / 60
    return (
        f"About {max(1, round(minutes))} minutes for {steps} steps on this computer (measured: "
        f"{float(speed['s_per_step']):.1f} s a step in {speed.get('dtype', '?')})"
    )
