"""Agent training speed and memory against a raw transformers + peft loop, in the same run.

    python benchmarks/train_speed.py [--steps 6] [--batch-size 4] [--sender ADDRESS] [--memory] [--qlora]
                                     [--emulate-no-bf16] [--device cuda] [--data train.jsonl]

Data: Kay Mann's real sent mail from ../shared/data/enron, imported and distilled offline into a
temporary home. Every phase runs in its own process (so peak RSS is its own) on the same examples,
batches and LoRA settings (rank 16 on q/k/v/o/gate/up/down):

- baseline: the textbook loop, ``model(input_ids, labels=labels).loss`` in fp32 (logits for
  every position over the 262k vocabulary);
- baseline-bf16: the same loop with bf16 base weights (separates the two effects);
- tiller-fp32 and tiller-bf16: ``agent_training.finetune`` in each number format (vocabulary
  projection only at the target positions), driven through its generator exactly as ``tiller
  train`` runs it, with its CPU defaults (batches cut at 512 padded tokens, no activation
  checkpointing);
- the probe: which format ``--dtype auto`` picks on this CPU (agent_training/dtype_probe.py), and
  so which of the two Tiller phases is "Tiller as shipped".

Each Tiller phase also reports its load time (process start to the first step: imports, the base
model, the examples) and how many cores it kept busy (CPU seconds per wall second over the steps).
The output starts with the CPU's model and its bf16 flags: compare timings only on one CPU.

``--emulate-no-bf16`` runs every phase with oneDNN, ATen and MKL limited to AVX2
(``ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2``): the kernels a
CPU without AVX-512 and AMX gets. It is an emulation on the same silicon, labelled so in the output, not a measurement of such
a CPU.

``--memory`` adds Tiller with the whole batch at once (``tiller-keep-all``), with batches cut at
1,024 tokens (``tiller-cut-only``) and with activation checkpointing on top of that
(``tiller-checkpointed``); ``--variants`` picks phases by name. Each setting's time and peak RSS
are measured in its own process.

s/step excludes the first step (warm-up). Ratios > 1 mean Tiller is faster / leaner. With
``--qlora`` on a CUDA machine the 4-bit path is timed too, with its peak GPU memory.

``--device cuda`` times the GPU instead: the raw loop in bf16 on the GPU (``baseline-cuda``),
Tiller's LoRA in bf16 (``tiller-cuda``) and, with ``--qlora``, Tiller's 4-bit QLoRA
(``qlora``), each with its peak GPU memory; the ratios are against ``baseline-cuda``. ``--data``
takes a ready ``train.jsonl`` (from ``tiller dataset export``) instead of importing and
distilling the sender's mail first.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
ENRON = Path(os.environ.get("TILLER_ENRON_DATA", REPO.parent / "shared" / "data" / "enron"))
KAY = "kay.mann@enron.com"
SENDER = os.environ.get("TILLER_BENCH_SENDER", KAY)
# Tiller phases: FinetuneConfig memory settings
TILLER_VARIANTS = {
    "tiller-fp32": {"dtype": "fp32"},
    "tiller-bf16": {"dtype": "bf16"},
    # the LoRA dropout of earlier versions (0.05): its masks cost about an eighth of an fp32 step
    "tiller-fp32-dropout": {"dtype": "fp32", "dropout": 0.05},
    "tiller": {},
    "qlora": {},
    "tiller-keep-all": {"gradient_checkpointing": "off", "max_batch_tokens": 1 << 20},
    "tiller-cut-only": {"gradient_checkpointing": "off", "max_batch_tokens": 1024},
    "tiller-checkpointed": {"gradient_checkpointing": "on", "max_batch_tokens": 1024},
}
NO_BF16_ENV = {"ONEDNN_MAX_CPU_ISA": "AVX2", "ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
PROCESS_STARTED = time.time()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_dataset(home: Path) -> Path:
    os.environ["TILLER_HOME"] = str(home)
    from agent_training.dataset import export
    from agent_training.distill import Distillation, DistillConfig
    from app.mail.importer import MailImport
    from app.mail.sources import open_source
    from app.store import open_database

    db = open_database()
    for _ in MailImport(db, open_source(ENRON / "maildir")).run():
        pass
    for _ in Distillation(db, DistillConfig(sender=SENDER)).run():
        pass
    stats = export(db, strategy="measured", sender=SENDER)
    return Path(stats["directory"]) / "train.jsonl"


def phase_baseline(data: Path, steps: int, batch_size: int, dtype: str, device: str = "cpu") -> dict:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from agent_training.base_model import BaseModel, hf_model_dir
    from agent_training.finetune import LORA_TARGETS, FinetuneConfig, batch_order, collate, load_examples

    hf = hf_model_dir(BaseModel.embedded())
    tok = AutoTokenizer.from_pretrained(hf)
    # use_kernels=False as in Tiller: the Hub kernels transformers loads by default need the network
    model = AutoModelForCausalLM.from_pretrained(
        hf, dtype=torch.bfloat16 if dtype == "bf16" else torch.float32, use_kernels=False
    )
    model.to(device)
    model = get_peft_model(
        model,
        LoraConfig(
            r=16,
            lora_alpha=16,
            lora_dropout=FinetuneConfig(dataset=data).dropout,  # Tiller's default: the same LoRA settings
            target_modules=list(LORA_TARGETS),
            task_type="CAUSAL_LM",
        ),
    )
    model.train()
    examples, _ = load_examples(FinetuneConfig(dataset=data, sender=SENDER, max_length=512), tok)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    order = batch_order(len(examples), batch_size, 0, 0)
    times = []
    for step in range(steps):
        ids, labels, mask = collate([examples[i] for i in order[step % len(order)]], tok.pad_token_id or 0)
        ids, labels, mask = ids.to(device), labels.to(device), mask.to(device)
        start = time.perf_counter()
        optimizer.zero_grad()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    result = {
        "s_per_step": sum(times[1:]) / max(1, len(times) - 1),
        "peak_rss_mb": _peak_rss_mb(),
        "last_loss": float(loss),
    }
    if device == "cuda":
        result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return result


def phase_tiller(
    data: Path, steps: int, batch_size: int, quantize: str, out: Path, memory: dict, device: str = "auto"
) -> dict:
    import torch

    from agent_training.finetune import Finetune, FinetuneConfig

    config = FinetuneConfig(
        dataset=data,
        sender=SENDER,
        output=out,
        max_steps=steps,
        batch_size=batch_size,
        rank=16,
        max_length=512,
        quantize=quantize,
        device=device,
        export_gguf=False,
        checkpoint_every=10_000,
        **memory,
    )
    stamps, last, first_step_at, cpu_at = [], None, None, None
    job = Finetune(config)
    for p in job.run():
        if p.phase == "training" and p.loss is None:
            first_step_at = time.time()  # the loop starts: everything before it is loading
        if p.phase == "training" and p.loss is not None:
            stamps.append(time.perf_counter())
            if len(stamps) == 1:
                cpu_at = time.process_time()
            last = p.loss
    steps_wall = stamps[-1] - stamps[0]
    result = {
        "s_per_step": steps_wall / max(1, len(stamps) - 1),
        "peak_rss_mb": _peak_rss_mb(),
        "last_loss": last,
        "dtype": job.dtype_choice.dtype,
        # from the process's start (imports included) to the first step: what a user waits for
        "load_s": (first_step_at or time.time()) - PROCESS_STARTED,
        "cores_busy": (time.process_time() - cpu_at) / steps_wall if steps_wall else None,
        "threads": torch.get_num_threads(),
    }
    try:
        if torch.cuda.is_available():
            result["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    except Exception:
        pass
    return result


def phase_probe() -> dict:
    from agent_training.dtype_probe import measure

    return measure().to_dict()


def run_phase(*args: str, env: dict | None = None) -> dict:
    proc = subprocess.run(
        [sys.executable, __file__, "--phase", *args], capture_output=True, text=True, env=os.environ | (env or {})
    )
    if proc.returncode:
        raise SystemExit(f"phase {args[0]} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--qlora", action="store_true", help="also time 4-bit QLoRA (needs CUDA + bitsandbytes)")
    parser.add_argument("--sender", default=KAY, help="whose mail to train on (default Kay Mann)")
    parser.add_argument("--memory", action="store_true", help="also Tiller without each memory saving")
    parser.add_argument("--skip-baseline", action="store_true", help="Tiller phases only (no ratios)")
    parser.add_argument("--variants", help="comma-separated Tiller phases instead (e.g. tiller,tiller-checkpointed)")
    parser.add_argument(
        "--emulate-no-bf16",
        action="store_true",
        help="run every phase with oneDNN and ATen limited to AVX2, as on a CPU without native bf16",
    )
    parser.add_argument(
        "--skip-bf16",
        action="store_true",
        help="leave out the bf16 phases (default with --emulate-no-bf16, where one bf16 step takes many minutes; "
        "the probe's ratio stands for them)",
    )
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="cuda: time the GPU (raw loop, LoRA, --qlora)"
    )
    parser.add_argument("--data", type=Path, help="a ready train.jsonl instead of importing and distilling")
    parser.add_argument("--phase", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["TILLER_BENCH_SENDER"] = args.sender
    global SENDER
    SENDER = args.sender
    if args.phase:
        name, data, out = args.phase[0], Path(args.phase[1]), Path(args.phase[2])
        if name == "probe":
            result = phase_probe()
        elif name == "baseline-cuda":
            result = phase_baseline(data, args.steps, args.batch_size, "bf16", "cuda")
        elif name.startswith("baseline"):
            result = phase_baseline(data, args.steps, args.batch_size, "bf16" if name.endswith("bf16") else "fp32")
        elif name in ("tiller-cuda", "qlora"):
            quantize = "4bit" if name == "qlora" else "none"
            result = phase_tiller(data, args.steps, args.batch_size, quantize, out, {"dtype": "bf16"}, "cuda")
        else:
            result = phase_tiller(data, args.steps, args.batch_size, "none", out, TILLER_VARIANTS[name], "cpu")
        print(json.dumps(result))
        return

    from app.hardware import cpu_description, cpu_summary

    env = NO_BF16_ENV if args.emulate_no_bf16 else {}
    print(f"CPU: {cpu_summary()}; flags of note: {', '.join(cpu_description()['flags']) or 'none'}")
    if env:
        print("EMULATED: every phase runs with " + " ".join(f"{k}={v}" for k, v in env.items()))
    if args.device == "cuda":
        return main_cuda(args)
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or make_dataset(Path(tmp) / "home")
        print(
            f"data: {data} ({len(Path(data).read_text().splitlines())} examples, "
            f"{args.steps} steps of {args.batch_size}, {os.cpu_count()} cores)"
        )
        probe = run_phase("probe", str(data), str(Path(tmp) / "probe"), env=env)
        auto = probe["dtype"]
        print(
            f"probe: --dtype auto picks {auto} ({probe['reason']}; fp32 {probe['fp32_s'] * 1e3:.1f} ms, "
            f"bf16 {probe['bf16_s'] * 1e3 if probe['bf16_s'] else float('nan'):.1f} ms per probe iteration)"
        )
        skip_bf16 = args.skip_bf16 or args.emulate_no_bf16
        phases = ([] if args.skip_baseline else ["baseline", "baseline-bf16"]) + ["tiller-fp32", "tiller-bf16"]
        if skip_bf16:
            phases = [p for p in phases if not p.endswith("bf16")]
            print("bf16 phases left out (the probe's ratio above stands for them)")
        phases += (["tiller-keep-all", "tiller-cut-only", "tiller-checkpointed"] if args.memory else []) + (
            ["qlora"] if args.qlora else []
        )
        if args.variants:
            phases = [p for p in phases if p.startswith("baseline")] + args.variants.split(",")
        results = {}
        for name in phases:
            results[name] = run_phase(
                name,
                str(data),
                str(Path(tmp) / name),
                "--steps",
                str(args.steps),
                "--batch-size",
                str(args.batch_size),
                "--sender",
                args.sender,
                env=env,
            )
            r = results[name]
            extra = f", peak GPU {r['peak_gpu_mb']:.0f} MB" if "peak_gpu_mb" in r else ""
            if "load_s" in r:
                extra += f", load {r['load_s']:.1f} s, {r['cores_busy']:.2f} cores busy ({r['threads']} threads)"
            print(
                f"{name:14s} {r['s_per_step']:7.2f} s/step   peak RSS {r['peak_rss_mb']:7.0f} MB   last loss {r['last_loss']:.3f}{extra}"
            )
    if f"tiller-{auto}" in results:
        results["tiller"] = results[f"tiller-{auto}"]
    if "tiller" not in results:
        return
    tiller = results["tiller"]
    if "tiller-fp32" in results and "tiller-bf16" in results:
        fp32, bf16 = results["tiller-fp32"]["s_per_step"], results["tiller-bf16"]["s_per_step"]
        print(f"tiller bf16 against fp32 (fp32 s/step / bf16 s/step): {fp32 / bf16:.2f}x; auto picked {auto}")
    for name in ("tiller-keep-all", "tiller-cut-only", "tiller-checkpointed"):
        if name in results:
            r = results[name]
            print(
                f"tiller defaults against {name}: time {tiller['s_per_step'] / r['s_per_step']:.2f}x, "
                f"peak RSS {tiller['peak_rss_mb'] / r['peak_rss_mb']:.2f}x"
            )
    if args.skip_baseline:
        return
    base = results["baseline"]
    print(
        f"speed ratio (baseline fp32 s/step / tiller as shipped, {auto}, s/step): "
        f"{base['s_per_step'] / tiller['s_per_step']:.2f}x"
    )
    if "baseline-bf16" in results:
        best_raw = min(base["s_per_step"], results["baseline-bf16"]["s_per_step"])
        print(f"  against the faster raw loop: {best_raw / tiller['s_per_step']:.2f}x")
    if "baseline-bf16" in results and auto == "bf16":
        print(
            f"  of which bf16: {base['s_per_step'] / results['baseline-bf16']['s_per_step']:.2f}x, "
            f"target-only logits: {results['baseline-bf16']['s_per_step'] / tiller['s_per_step']:.2f}x"
        )
    print(f"memory ratio (baseline peak RSS / tiller peak RSS): {base['peak_rss_mb'] / tiller['peak_rss_mb']:.2f}x")


def main_cuda(args) -> None:
    """The GPU: the raw loop, Tiller's LoRA and (``--qlora``) QLoRA, all bf16, each in its own process."""
    import torch

    if not torch.cuda.is_available():
        raise SystemExit("--device cuda: torch sees no CUDA GPU")
    print(f"GPU: {torch.cuda.get_device_name(0)}; torch {torch.__version__}, CUDA {torch.version.cuda}")
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or make_dataset(Path(tmp) / "home")
        print(
            f"data: {data} ({len(Path(data).read_text().splitlines())} examples, {args.steps} steps of {args.batch_size})"
        )
        phases = (
            (["baseline-cuda"] if not args.skip_baseline else []) + ["tiller-cuda"] + (["qlora"] if args.qlora else [])
        )
        results = {}
        for name in phases:
            steps = ["--steps", str(args.steps), "--batch-size", str(args.batch_size), "--sender", args.sender]
            results[name] = r = run_phase(name, str(data), str(Path(tmp) / name), *steps)
            extra = f", load {r['load_s']:.1f} s" if "load_s" in r else ""
            print(
                f"{name:14s} {r['s_per_step']:7.3f} s/step   peak GPU {r.get('peak_gpu_mb', float('nan')):7.0f} MB   "
                f"last loss {r['last_loss']:.3f}{extra}"
            )
    if "baseline-cuda" in results:
        base = results["baseline-cuda"]
        for name in ("tiller-cuda", "qlora"):
            if name in results:
                r = results[name]
                print(
                    f"{name} against the raw bf16 loop on the GPU: time {base['s_per_step'] / r['s_per_step']:.2f}x, "
                    f"peak GPU memory {base['peak_gpu_mb'] / r['peak_gpu_mb']:.2f}x"
                )
    if "qlora" in results:
        lora, qlora = results["tiller-cuda"], results["qlora"]
        print(
            f"qlora against tiller-cuda: time {lora['s_per_step'] / qlora['s_per_step']:.2f}x, "
            f"peak GPU memory {lora['peak_gpu_mb'] / qlora['peak_gpu_mb']:.2f}x"
        )


if __name__ == "__main__":
    main()
