"""Which number format trains faster on this computer: measured, not assumed.

bf16 *computes* on every CPU torch runs on, but only CPUs with native bf16 instructions
(AVX-512 BF16, AMX: recent Xeons, AMD Zen 4+) run it fast. Elsewhere oneDNN falls back to a slow
path: on a 2-core AMD EPYC with AVX2 only, a 512x640 @ 640x2048 matmul forward and backward ran
at 0.7 GFLOP/s in bf16 against 26 GFLOP/s in fp32 (37x slower), and the trainer, which picked
bf16 because it worked, did not finish its first step in 25 minutes. So the choice is a timing:
a forward and backward through the agent base's own layer shapes (hidden 640, MLP 2048 for
Gemma 3 270M), in fp32 and in bf16, with the threads training will use, and the faster wins.

The measurement takes about a second (a bf16 run that is far behind fp32 is stopped early), and
is cached in the data folder under a key of torch's version, the CPU's model and flags, the thread
count and the shape, so it runs again only when one of those changes.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from app.hardware import cpu_description

CACHE_FILE = "dtype-probe.json"
# bf16 must beat fp32 by this factor to be picked: within noise, fp32 keeps full precision
BF16_MARGIN = 1.1
# Gemma 3 270M (the embedded agent base): hidden size, MLP size, tokens per probe batch
DEFAULT_SHAPE = (640, 2048, 512)
SETTLED_SLOWER = 3.0  # bf16 this much slower on a few tokens: no need to time it at full size
PROBE_SECONDS = 0.6  # fp32 repeats for about this long; bf16 gets the same repeats or a cut-off


@dataclass(frozen=True)
class DtypeChoice:
    dtype: str  # "bf16" or "fp32"
    reason: str  # one sentence for the user, e.g. "bf16 is 37x slower than fp32 on this CPU"
    fp32_s: float | None = None  # seconds per probe iteration
    bf16_s: float | None = None  # None when bf16 does not run at all
    measured: bool = True  # False: asked for (--dtype) or decided without a timing (CUDA)
    cached: bool = False

    @property
    def bf16_speedup(self) -> float | None:
        """fp32 time / bf16 time: > 1 when bf16 is faster."""
        if self.fp32_s and self.bf16_s:
            return self.fp32_s / self.bf16_s
        return None

    def to_dict(self) -> dict:
        return asdict(self) | {"bf16_speedup": self.bf16_speedup}


def choose(fp32_s: float, bf16_s: float | None, margin: float = BF16_MARGIN) -> DtypeChoice:
    """The faster format from two timings (seconds per iteration; bf16 None when it fails)."""
    if bf16_s is None:
        return DtypeChoice("fp32", "bf16 does not run on this CPU", fp32_s, None)
    if bf16_s * margin <= fp32_s:
        return DtypeChoice("bf16", f"bf16 is {fp32_s / bf16_s:.1f}x faster than fp32 on this CPU", fp32_s, bf16_s)
    if bf16_s <= fp32_s:
        return DtypeChoice(
            "fp32", f"bf16 is only {fp32_s / bf16_s:.2f}x faster on this CPU (within noise)", fp32_s, bf16_s
        )
    return DtypeChoice("fp32", f"bf16 is {bf16_s / fp32_s:.1f}x slower than fp32 on this CPU", fp32_s, bf16_s)


def _probe_layers(dtype, shape: tuple[int, int, int]):
    import torch

    hidden, mlp, tokens = shape
    gen = torch.Generator().manual_seed(0)
    # frozen base weights, as in LoRA training: the backward pass computes input gradients only
    weights = [
        (torch.randn(mlp, hidden, generator=gen) * 0.02).to(dtype),  # gate
        (torch.randn(mlp, hidden, generator=gen) * 0.02).to(dtype),  # up
        (torch.randn(hidden, mlp, generator=gen) * 0.02).to(dtype),  # down
        (torch.randn(hidden, hidden, generator=gen) * 0.02).to(dtype),  # an attention projection
    ]
    x = (torch.randn(tokens, hidden, generator=gen)).to(dtype).requires_grad_(True)
    return weights, x


def _iteration(weights, x) -> None:
    import torch.nn.functional as F

    gate, up, down, attn = weights
    h = F.linear(x, attn)
    h = F.linear(F.gelu(F.linear(h, gate), approximate="tanh") * F.linear(h, up), down)
    h.float().square().mean().backward()
    x.grad = None


def time_format(
    dtype_name: str, shape=DEFAULT_SHAPE, *, repeats: int | None = None, give_up_after: float | None = None
):
    """Seconds per forward+backward in ``dtype_name`` ("fp32"/"bf16"), the median of the repeats
    after a warm-up; ``repeats`` None runs for about PROBE_SECONDS. Stops early (returning the mean
    so far) once ``give_up_after`` seconds have passed. Raises RuntimeError when the format fails."""
    import torch

    dtype = torch.bfloat16 if dtype_name == "bf16" else torch.float32
    weights, x = _probe_layers(dtype, shape)
    began = time.perf_counter()
    _iteration(weights, x)  # warm-up: kernel selection, allocation
    first = time.perf_counter() - began
    if give_up_after is not None and first > give_up_after:
        return first
    times: list[float] = []
    target = repeats or max(3, min(50, int(PROBE_SECONDS / max(first, 1e-4))))
    for _ in range(target):
        t0 = time.perf_counter()
        _iteration(weights, x)
        times.append(time.perf_counter() - t0)
        if give_up_after is not None and time.perf_counter() - began > give_up_after:
            return sum(times) / len(times)
    times.sort()
    return times[len(times) // 2]


def measure(shape=DEFAULT_SHAPE) -> DtypeChoice:
    """Time both formats now, in about a second. A first look at a few tokens settles a bf16 that is
    far behind (a slow path spends seconds on a single full-size iteration: 4.4 s against fp32's
    0.04 s when oneDNN is limited to AVX2); otherwise both are timed at full size."""
    hidden, mlp, _ = shape
    small = (hidden, mlp, 32)
    fp32_small = time_format("fp32", small, repeats=5)
    try:
        bf16_small = time_format("bf16", small, repeats=3, give_up_after=max(0.2, fp32_small * 50))
    except RuntimeError:
        return choose(time_format("fp32", shape), None)
    if bf16_small > SETTLED_SLOWER * fp32_small:
        return choose(fp32_small, bf16_small)
    fp32 = time_format("fp32", shape)
    bf16 = time_format("bf16", shape, give_up_after=max(0.5, fp32 * 20))
    return choose(fp32, bf16)


def cache_key(shape, threads: int) -> str:
    import os

    import torch

    from app.hardware import ISA_LIMITS

    cpu = cpu_description()
    parts = {"torch": torch.__version__, "cpu": cpu["model"], "flags": cpu["flags"], "threads": threads, "shape": shape}
    # the math libraries limited by environment (an emulated CPU without native bf16) are another CPU
    parts["limits"] = {k: os.environ[k] for k in ISA_LIMITS if os.environ.get(k)}
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def cpu_dtype(cache_dir: Path | None, shape=DEFAULT_SHAPE, *, measure_fn=measure) -> DtypeChoice:
    """The faster format on this CPU: from the cache when torch, the CPU, the thread count and the
    shape are unchanged, else measured now and cached (``cache_dir`` None: never cached)."""
    import torch

    from app.files import write_atomic

    key = cache_key(list(shape), torch.get_num_threads())
    path = cache_dir / CACHE_FILE if cache_dir else None
    if path is not None and path.is_file():
        try:
            saved = json.loads(path.read_text())
            if saved.get("key") == key:
                c = saved["choice"]
                return DtypeChoice(c["dtype"], c["reason"], c["fp32_s"], c["bf16_s"], True, cached=True)
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable: measure again and overwrite
    choice = measure_fn(shape)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps({"key": key, "cpu": cpu_description(), "choice": choice.to_dict()}, indent=2))
        except OSError:
            pass  # a read-only data folder costs a second per run, nothing more
    return choice


def resolve_dtype(requested: str, device: str, cache_dir: Path | None, shape=DEFAULT_SHAPE) -> DtypeChoice:
    """``requested`` ("auto", "bf16", "fp32") on ``device`` as a :class:`DtypeChoice` with its reason."""
    if requested not in ("auto", "bf16", "fp32"):
        raise ValueError(f"dtype must be auto, bf16 or fp32, not {requested!r}")
    if requested != "auto":
        return DtypeChoice(requested, f"{requested} as asked (--dtype)", measured=False)
    if device == "cuda":
        import torch

        if torch.cuda.is_bf16_supported():
            return DtypeChoice("bf16", "bf16: the GPU supports it natively", measured=False)
        return DtypeChoice("fp32", "fp32: this GPU has no native bf16", measured=False)
    return cpu_dtype(cache_dir, shape)
