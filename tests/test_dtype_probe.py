"""The number format is picked by measurement (agent_training/dtype_probe.py), not by whether bf16
computes: on CPUs without native bf16 it computes 37x slower."""

import json

import pytest

from agent_training import dtype_probe
from agent_training.dtype_probe import DtypeChoice, choose, cpu_dtype, resolve_dtype
from app.hardware import cpu_description, cpu_summary, native_bf16


def test_a_much_slower_bf16_picks_fp32_and_says_by_how_much():
    # the probe's figures on the 2-core AMD EPYC without native bf16: 26 against 0.7 GFLOP/s
    choice = choose(fp32_s=0.020, bf16_s=0.74)
    assert choice.dtype == "fp32"
    assert choice.reason == "bf16 is 37.0x slower than fp32 on this CPU"


def test_a_faster_bf16_is_picked_only_beyond_the_noise_margin():
    assert choose(fp32_s=0.020, bf16_s=0.010).dtype == "bf16"
    assert choose(fp32_s=0.020, bf16_s=0.010).reason == "bf16 is 2.0x faster than fp32 on this CPU"
    within_noise = choose(fp32_s=0.020, bf16_s=0.019)
    assert within_noise.dtype == "fp32"
    assert "within noise" in within_noise.reason


def test_a_bf16_that_fails_picks_fp32():
    assert choose(fp32_s=0.02, bf16_s=None) == DtypeChoice("fp32", "bf16 does not run on this CPU", 0.02, None)


@pytest.fixture(autouse=True)
def unlimited_math_libraries(monkeypatch):
    """The tests below set the ISA limits themselves (a benchmark run may have them set)."""
    from app.hardware import ISA_LIMITS

    for name in ISA_LIMITS:
        monkeypatch.delenv(name, raising=False)


def test_the_choice_is_measured_once_and_cached_per_cpu_and_torch(tmp_path, monkeypatch):
    calls = []

    def stub_measure(shape):
        calls.append(shape)
        return choose(0.02, 0.74)

    first = cpu_dtype(tmp_path, measure_fn=stub_measure)
    second = cpu_dtype(tmp_path, measure_fn=stub_measure)
    assert (first.dtype, first.cached, second.dtype, second.cached) == ("fp32", False, "fp32", True)
    assert len(calls) == 1
    # another CPU (or torch, or thread count) measures again
    monkeypatch.setattr(dtype_probe, "cpu_description", lambda: {"model": "Other CPU", "flags": [], "cores": 8})
    third = cpu_dtype(tmp_path, measure_fn=stub_measure)
    assert not third.cached
    assert len(calls) == 2
    saved = json.loads((tmp_path / dtype_probe.CACHE_FILE).read_text())
    assert saved["choice"]["reason"] == "bf16 is 37.0x slower than fp32 on this CPU"


def test_a_damaged_cache_is_measured_again(tmp_path):
    (tmp_path / dtype_probe.CACHE_FILE).write_text("{not json")
    choice = cpu_dtype(tmp_path, measure_fn=lambda shape: choose(0.01, 0.005))
    assert choice.dtype == "bf16"
    assert not choice.cached


def test_an_explicit_dtype_overrides_the_measurement(tmp_path):
    choice = resolve_dtype("bf16", "cpu", tmp_path)
    assert (choice.dtype, choice.measured, choice.reason) == ("bf16", False, "bf16 as asked (--dtype)")
    with pytest.raises(ValueError, match="dtype must be auto, bf16 or fp32"):
        resolve_dtype("fp16", "cpu", tmp_path)


def test_the_real_probe_times_both_formats_in_seconds():
    import time

    began = time.monotonic()
    choice = dtype_probe.measure()
    assert time.monotonic() - began < 30
    assert choice.fp32_s > 0
    assert choice.dtype in ("bf16", "fp32")
    if choice.bf16_s is not None:  # the faster one won, or fp32 within the margin
        assert (choice.dtype == "bf16") == (choice.bf16_s * dtype_probe.BF16_MARGIN <= choice.fp32_s)


def test_the_cpu_description_reads_model_and_bf16_flags():
    cpuinfo = "model name\t: AMD EPYC 7B13\nflags\t\t: fpu sse avx2 fma\n"
    d = cpu_description(cpuinfo)
    assert d["model"] == "AMD EPYC 7B13"
    assert d["flags"] == ["avx2"]
    assert not native_bf16(d)
    assert cpu_summary(d).endswith("no native bf16")
    xeon = cpu_description("model name : Xeon\nflags : avx2 avx512f avx512_bf16 amx_bf16\n")
    assert native_bf16(xeon)
    assert "native bf16 (avx512_bf16, amx_bf16)" in cpu_summary(xeon)


def test_limiting_the_math_libraries_is_another_cpu_for_the_cache(tmp_path, monkeypatch):
    """A run with oneDNN limited to AVX2 (an emulated CPU without native bf16) reused a native
    'bf16 is 4.2x faster' and trained in bf16 at a fraction of fp32's speed."""
    calls = []
    cpu_dtype(tmp_path, measure_fn=lambda shape: calls.append(1) or choose(0.04, 0.009))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    again = cpu_dtype(tmp_path, measure_fn=lambda shape: calls.append(1) or choose(0.004, 0.27))
    assert len(calls) == 2
    assert again.dtype == "fp32"
    assert not again.cached
