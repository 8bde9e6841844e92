"""Fine-tune the preference agent: LoRA on the CPU, QLoRA (bitsandbytes 4-bit) where CUDA is present.

A config dataclass and a generator (:class:`Finetune`.run) that yields :class:`TrainProgress`;
the CLI (``python -m agent_training train``) turns those into a rich bar or JSON lines for the app.

Why it is written this way:
- Loss only on the rules: the prompt (intent + metadata) is context, so its labels are masked, and
  the vocabulary projection (262k rows for Gemma 3) is computed only at the target positions,
  not for every prompt token: about half the CPU time of a full-logits forward.
- bf16 base weights where the hardware supports them (about half the step time of fp32); the
  LoRA weights stay fp32 (PEFT keeps adapters in fp32) so small updates are not rounded away.
- bitsandbytes cannot quantize straight from a GGUF: QLoRA loads the bf16 copy that
  :mod:`agent_training.base_model` converts once. Its 4-bit layers lose their gradients after a
  forward in eval mode on some builds, so training never switches the model to eval.
- Checkpoints (adapter + optimizer + RNG + step) are written atomically every
  ``checkpoint_every`` steps and when cancelled; a rerun of the same config resumes from them.
  The data order is a function of (seed, epoch), so a resumed run sees the same batches.
- The result is written only when complete: the PEFT folder, then the GGUF adapter, which is
  validated against the base model before it replaces the one in use.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from agent_training.dtype_probe import DtypeChoice
from app.agent.profiles import ADAPTER_FILE, TRAINING_FILE, TrainingRecord, profile_dir, profile_slug
from app.agent.template import AGENT_TEMPLATE_VERSION, RULES_END, VOICE_STYLE_PREFIX
from app.agent.trainer import TrainerEvent
from app.clock import utc_now
from app.files import sha256_file, write_atomic, write_atomic_dir
from app.jobs import CancelToken

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
CHECKPOINT_DIR = "checkpoint"
PEFT_DIR = "peft"
INIT_WEIGHTS_FILE = "adapter_model.safetensors"  # what peft's save_pretrained writes


@dataclass
class FinetuneConfig:
    dataset: Path  # chat-format JSONL from `distill` (train.jsonl)
    sender: str | None = None  # train on this sender's examples only (one profile per sender)
    output: Path | None = None  # profile folder; default <data>/agents/<sender or all>
    base_gguf: Path | None = None  # default: the embedded Gemma 3 270M
    base_hf: Path | None = None  # matching Hugging Face folder for a non-embedded base
    rank: int | None = None  # default: 16 on CPU, 256 with CUDA (the paper's rank = alpha = 256)
    alpha: float | None = None  # default: = rank
    # LoRA dropout. 0 by default: its random masks (one per adapted layer and piece) were 12% of an
    # fp32 step on 2 cores (torch profiler, 2026-12-05), and a run of about one epoch barely needs
    # the regularisation; the retrain from edits, which repeats its few examples, keeps 0.05
    dropout: float = 0.0
    lr: float = 1e-3  # LoRA on a 270M model takes a high rate; the paper used 2e-4 at 8B
    epochs: float = 1.0
    max_steps: int | None = None  # stop after this many optimizer steps (brief runs)
    batch_size: int | None = None  # default: 4 on CPU, 8 with CUDA
    grad_accum: int = 1
    max_length: int | None = None  # tokens; longer examples are skipped and counted. Default 512 CPU, 1024 CUDA
    warmup_steps: int = 10
    limit: int | None = None  # only the first N usable examples
    target_modules: tuple[str, ...] = LORA_TARGETS
    quantize: str = "auto"  # auto: 4-bit QLoRA when CUDA is present; "4bit"; "none"
    dtype: str = "auto"  # auto: the faster on this hardware, measured (agent_training/dtype_probe.py); bf16; fp32
    seed: int = 0
    checkpoint_every: int = 25
    threads: int | None = None
    device: str = "auto"  # auto, cpu, cuda
    # Memory (neither changes what is learned, so neither is part of the run's fingerprint):
    # on: activations recomputed in the backward pass (about 1 GB less, about 40% slower); auto: off
    gradient_checkpointing: str = "auto"
    # a step's batch is cut into pieces of at most N padded tokens; CPU default: max_length
    max_batch_tokens: int | None = None
    export_gguf: bool = True
    fresh: bool = False  # ignore a matching checkpoint and start over
    # a PEFT folder (a profile's peft/) whose LoRA weights the run starts from instead of fresh
    # ones: a retrain from the user's edits continues the current adapter (agent_training/retrain.py)
    init_adapter: Path | None = None
    # seconds the whole run (loading included) may take: after two steps the step time is measured
    # and the number of steps cut to fit (never below MIN_BUDGET_STEPS); None: no budget
    time_budget_s: float | None = None

    def resolved(self) -> FinetuneConfig:
        """The config with hardware defaults filled in (what is recorded and fingerprinted)."""
        return self.resolve()[0]

    def resolve(self) -> tuple[FinetuneConfig, DtypeChoice]:
        """:meth:`resolved` and how its number format was chosen (measured on this CPU for auto)."""
        import torch

        from agent_training.dtype_probe import resolve_dtype

        cuda = torch.cuda.is_available()
        device = self.device if self.device != "auto" else ("cuda" if cuda else "cpu")
        if device == "cuda" and not cuda:
            raise ValueError("device cuda was asked for, but torch sees no CUDA GPU")
        quantize = (
            self.quantize if self.quantize != "auto" else ("4bit" if device == "cuda" and _bnb_available() else "none")
        )
        if quantize == "4bit" and device != "cuda":
            raise ValueError("4-bit QLoRA needs a CUDA GPU (bitsandbytes); use --quantize none on the CPU")
        if quantize not in ("4bit", "none"):
            raise ValueError(f"quantize must be auto, 4bit or none, not {quantize!r}")
        dtype_choice = resolve_dtype(self.dtype, device, hardware_cache_dir())
        dtype = dtype_choice.dtype
        rank = self.rank or (256 if device == "cuda" else 16)
        max_length = self.max_length or (1024 if device == "cuda" else 512)
        checkpointing = self.gradient_checkpointing
        if checkpointing == "auto":
            # measured (benchmarks/train_speed.py, 1,080 examples, batch 4, 2 cores): cutting batches at
            # 512 tokens alone peaks at 3.4 GB and is the fastest setting; checkpointing on top costs ~40%
            checkpointing = "off"
        if checkpointing not in ("on", "off"):
            raise ValueError(f"gradient checkpointing must be auto, on or off, not {checkpointing!r}")
        out = FinetuneConfig(
            **{
                **asdict(self),
                "device": device,
                "quantize": quantize,
                "dtype": dtype,
                "rank": rank,
                "alpha": float(self.alpha or rank),
                "batch_size": self.batch_size or (8 if device == "cuda" else 4),
                "max_length": max_length,
                "gradient_checkpointing": checkpointing,
                "max_batch_tokens": self.max_batch_tokens or (None if device == "cuda" else max_length),
                "output": Path(self.output) if self.output else profile_dir(self.sender),
                "dataset": Path(self.dataset),
                "target_modules": tuple(self.target_modules),
            }
        )
        if out.rank < 1 or out.batch_size < 1 or out.grad_accum < 1 or out.max_length < 16 or out.lr <= 0:
            raise ValueError("rank, batch size, grad accumulation must be >= 1, max length >= 16 and lr > 0")
        if out.max_batch_tokens is not None and out.max_batch_tokens < out.max_length:
            raise ValueError(
                f"max batch tokens ({out.max_batch_tokens}) must be at least max length ({out.max_length})"
            )
        if out.time_budget_s is not None and out.time_budget_s <= 0:
            raise ValueError("the time budget must be a positive number of seconds")
        return out, dtype_choice


def hardware_cache_dir() -> Path | None:
    """Where measurements of this computer are kept (the data folder), None when it cannot be used."""
    try:
        from app.paths import home

        return home() / "hardware"
    except Exception:  # an unusable data folder is reported by the steps that need it, not here
        return None


def _bnb_available() -> bool:
    try:
        import bitsandbytes  # noqa: F401
    except Exception:
        return False
    return True


# The progress event is the wire format to the app: one definition, on the app side.
TrainProgress = TrainerEvent


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]  # -100 on the prompt


def load_examples(config: FinetuneConfig, tokenizer) -> tuple[list[Example], dict]:
    """Tokenized (prompt, rules) pairs; counts what was used and what was skipped, and why."""
    counts = {"read": 0, "used": 0, "other_sender": 0, "too_long": 0, "malformed": 0}
    examples: list[Example] = []
    path = Path(config.dataset)
    if not path.is_file():
        raise FileNotFoundError(f"training data not found: {path} (run `tiller distill` first)")
    sender = config.sender.lower() if config.sender else None
    with open(path, encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(_bounded_lines(fh, MAX_DATASET_LINE), 1):
            if not line.strip():
                continue
            counts["read"] += 1
            try:
                if line is _TOO_LONG:
                    raise ValueError("line too long")
                record = json.loads(line)
                messages = record["messages"]
                prompt = next(m["content"] for m in messages if m["role"] == "user")
                target = next(m["content"] for m in messages if m["role"] == "assistant")
            except (ValueError, KeyError, StopIteration, TypeError):
                counts["malformed"] += 1
                if counts["malformed"] <= 3:
                    print(f"{path}:{lineno}: not a chat record with a user and an assistant turn; skipped")
                continue
            if sender and (record.get("meta") or {}).get("sender", "").lower() != sender:
                counts["other_sender"] += 1
                continue
            prompt_ids = [tokenizer.bos_token_id] + tokenizer.encode(prompt, add_special_tokens=False)
            target_ids = tokenizer.encode(target.rstrip("\n") + "\n" + RULES_END, add_special_tokens=False)
            if len(prompt_ids) + len(target_ids) > config.max_length:
                counts["too_long"] += 1
                continue
            examples.append(Example(prompt_ids + target_ids, [-100] * len(prompt_ids) + target_ids))
            counts["used"] += 1
            # a voice stage that saw style tags follows them at drafting (app/agent/voice.py)
            if "\n" + VOICE_STYLE_PREFIX in prompt:
                counts["with_style_tags"] = counts.get("with_style_tags", 0) + 1
            if config.limit and counts["used"] >= config.limit:
                break
    if not examples:
        who = f" for {config.sender}" if config.sender else ""
        raise ValueError(f"{path}: no usable training examples{who} ({counts})")
    return examples, counts


# A field added to FinetuneConfig later goes here with its default: at that default it stays out of
# the fingerprint, so runs finished before it existed are still found finished. (Adding
# ``init_adapter`` without this made every earlier adapter train again on a rerun.)
FINGERPRINT_OMITTED_AT_DEFAULT: dict[str, object] = {"time_budget_s": None}


def fingerprint(config: FinetuneConfig, dataset_digest: str) -> str:
    """What makes two runs the same run (so a checkpoint may be resumed)."""
    keys = {
        k: v
        for k, v in asdict(config).items()
        if not (k in FINGERPRINT_OMITTED_AT_DEFAULT and v == FINGERPRINT_OMITTED_AT_DEFAULT[k])
        and k
        not in (
            "fresh",
            "threads",
            "checkpoint_every",
            "export_gguf",
            "output",
            "gradient_checkpointing",
            "max_batch_tokens",
        )
    }
    keys = {k: str(v) for k, v in keys.items()}
    keys["dataset_digest"] = dataset_digest
    if config.init_adapter:  # the same path may hold other weights after a retrain swapped them in
        keys["init_adapter_digest"] = sha256_file(Path(config.init_adapter) / INIT_WEIGHTS_FILE)
    keys["template"] = AGENT_TEMPLATE_VERSION
    return hashlib.sha256(json.dumps(keys, sort_keys=True).encode()).hexdigest()[:16]


def batch_order(n_examples: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    order = list(range(n_examples))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return [order[i : i + batch_size] for i in range(0, n_examples, batch_size)]


def pieces_by_tokens(batch: list[Example], max_tokens: int | None) -> list[list[Example]]:
    """The batch cut into consecutive pieces whose padded size (rows x longest row) stays within
    ``max_tokens``; one piece when there is no limit. A piece holds at least one example."""
    if max_tokens is None:
        return [batch]
    pieces: list[list[Example]] = [[]]
    for example in batch:
        piece = pieces[-1]
        width = max([len(e.input_ids) for e in piece] + [len(example.input_ids)])
        if piece and width * (len(piece) + 1) > max_tokens:
            pieces.append([example])
        else:
            piece.append(example)
    return pieces


def target_count(example: Example) -> int:
    return sum(1 for label in example.labels if label != -100)


def collate(examples: list[Example], pad_id: int):
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), -100, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return ids, labels, mask


def target_loss(causal_lm, input_ids, labels, attention_mask):
    """Mean next-token cross-entropy over the target tokens, projecting to the vocabulary only
    at the positions that predict one (the decoder runs once over the whole sequence)."""
    import torch
    import torch.nn.functional as F

    hidden = causal_lm.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
    next_labels = labels[:, 1:]
    where = next_labels != -100
    picked = hidden[:, :-1][where]
    logits = causal_lm.lm_head(picked).float()
    cap = getattr(causal_lm.config, "final_logit_softcapping", None)
    if cap:
        logits = torch.tanh(logits / cap) * cap
    return F.cross_entropy(logits, next_labels[where]), int(where.sum())


def get_quantization_config(config: FinetuneConfig):
    """bitsandbytes 4-bit NF4 settings for QLoRA, or None when the base is not quantized."""
    if config.quantize != "4bit":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16 if config.dtype == "bf16" else torch.float32,
    )


def get_peft_config(config: FinetuneConfig):
    """The LoRA adapter trained on top of the frozen base."""
    from peft import LoraConfig

    return LoraConfig(
        r=config.rank,
        lora_alpha=config.alpha,
        lora_dropout=config.dropout,
        target_modules=list(config.target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )


def enable_activation_checkpointing(model) -> None:
    """Recompute each decoder layer in the backward pass (non-reentrant; transformers 5.24 renamed
    the method, 5.23 has only the old name)."""
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def load_adapter_weights(model, folder: Path) -> None:
    """Put a saved adapter's LoRA weights into ``model`` (same targets and rank, else one clear error)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    path = folder / INIT_WEIGHTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no adapter weights to start from (retrain the profile from scratch)")
    try:
        result = set_peft_model_state_dict(model, load_file(str(path)))
    except RuntimeError as exc:  # torch's "size mismatch for ..." when the rank differs
        raise ValueError(
            f"{path}: the adapter does not fit this run ({str(exc).splitlines()[-1].strip()}); "
            "use the rank it was trained with (--rank)"
        ) from None
    if getattr(result, "unexpected_keys", None):
        raise ValueError(f"{path}: {len(result.unexpected_keys)} weights fit no layer of this model")


def load_for_training(config: FinetuneConfig, hf_dir: Path):
    """The base model with fresh LoRA weights, and its tokenizer."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from agent_training.base_model import training_tokenizer

    tokenizer = training_tokenizer(hf_dir)
    # use_kernels=False: no kernels fetched from the Hub (agent_training/__init__.py says why)
    kwargs = {"dtype": torch.bfloat16 if config.dtype == "bf16" else torch.float32, "use_kernels": False}
    quantization = get_quantization_config(config)
    if quantization is not None:
        kwargs["quantization_config"] = quantization
        kwargs["device_map"] = {"": 0}
    model = AutoModelForCausalLM.from_pretrained(hf_dir, **kwargs)
    checkpointing = config.gradient_checkpointing == "on"
    if quantization is not None:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=checkpointing)
    elif config.device == "cuda":
        model.to("cuda")
    if checkpointing:
        # Keep only each layer's input for the backward pass and recompute the rest there: the
        # activations were most of the CPU peak. Non-reentrant, so the frozen base needs no
        # input gradients for the LoRA weights inside a layer to get theirs.
        enable_activation_checkpointing(model)
    model = get_peft_model(model, get_peft_config(config))
    model.train()
    return model, tokenizer


@dataclass
class StepResult:
    loss: float  # mean cross-entropy over the step's target tokens
    tokens: int  # tokens processed (prompt and target, without padding)


class StepAbandoned(Exception):
    """A cancel arrived between the pieces of a step: the step's gradients are dropped and the
    weights are those of the last finished step."""


def accumulate_gradients(causal_lm, batches: list[list[Example]], config, device, pad_id, cancel=None):
    """The gradients of one optimizer step over ``batches`` (the grad-accumulation micro-batches,
    each weighing the same); returns (mean loss, tokens). A batch over ``max_batch_tokens`` is cut
    into pieces, each piece's loss weighted by its share of the batch's target tokens: the same
    gradient as the whole batch at once, in less memory. ``cancel`` is checked before each piece
    (:class:`StepAbandoned`, the gradients cleared)."""
    loss_sum, tokens = 0.0, 0
    for batch in batches:
        batch_targets = sum(target_count(e) for e in batch)
        for piece in pieces_by_tokens(batch, config.max_batch_tokens):
            if cancel is not None and cancel.cancelled:
                for p in causal_lm.parameters():
                    p.grad = None
                raise StepAbandoned
            ids, labels, mask = (t.to(device) for t in collate(piece, pad_id))
            loss, n_targets = target_loss(causal_lm, ids, labels, mask)
            weight = n_targets / batch_targets / len(batches)
            (loss * weight).backward()
            loss_sum += float(loss.detach()) * weight
            tokens += int(mask.sum())
    return loss_sum, tokens


def apply_update(params, optimizer, scheduler) -> None:
    """The optimizer step on the accumulated gradients, which it then clears."""
    import torch

    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def training_step(causal_lm, params, optimizer, scheduler, batches: list[list[Example]], config, device, pad_id):
    """One optimizer step over ``batches``: :func:`accumulate_gradients` then :func:`apply_update`."""
    optimizer.zero_grad(set_to_none=True)
    loss, tokens = accumulate_gradients(causal_lm, batches, config, device, pad_id)
    apply_update(params, optimizer, scheduler)
    return StepResult(loss, tokens)


def linear_schedule(total: int, warmup_steps: int):
    """The learning-rate factor per step: linear warm-up, then linear decay to 10 %."""
    warmup = min(warmup_steps, max(0, total // 10))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.1, 1 - 0.9 * (step - warmup) / max(1, total - warmup))

    return factor


def lora_state(model) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.named_parameters() if v.requires_grad}


MAX_DATASET_LINE = 1 << 20  # characters; one example is a few kB
_TOO_LONG = "<line too long>"


def _bounded_lines(fh, limit: int):
    """The file's lines, each read with at most ``limit`` characters in memory; a longer line is
    passed over and stands as ``_TOO_LONG`` (counted malformed, named by line number)."""
    while line := fh.readline(limit):
        if len(line) >= limit and not line.endswith("\n"):
            while (rest := fh.readline(limit)) and not rest.endswith("\n"):
                pass
            yield _TOO_LONG
            continue
        yield line


def write_json_atomic(path: Path, data: dict) -> None:
    write_atomic(path, json.dumps(data, indent=2, default=str))


class Checkpointer:
    """The resumable state of one run (adapter, optimizer, scheduler, RNG, step, loss history) in
    ``folder``, written atomically; only a run with the same fingerprint resumes from it."""

    def __init__(self, folder: Path, fingerprint: str, log=print):
        self.folder, self.fingerprint, self.log = folder, fingerprint, log

    def save(self, model, optimizer, scheduler, step: int, history: list, rng=None, plan: dict | None = None) -> None:
        """``rng``: torch's RNG state at the start of the next step (default: now); ``plan``: what a
        time budget decided (the total steps), so a resumed run keeps it."""
        import torch

        def fill(tmp: Path) -> None:
            torch.save(lora_state(model), tmp / "adapter.pt")
            torch.save(
                {
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "torch_rng": rng if rng is not None else torch.get_rng_state(),
                },
                tmp / "optimizer.pt",
            )
            state = {"fingerprint": self.fingerprint, "step": step, "history": history}
            if plan:
                state["plan"] = plan
            write_json_atomic(tmp / "state.json", state)

        write_atomic_dir(self.folder, fill)

    def restore(self, model, optimizer, scheduler) -> tuple[int, list, dict] | None:
        """(step, loss history, plan) after loading the saved state into the objects; None to start over."""
        import torch

        state_file = self.folder / "state.json"
        if not state_file.is_file():
            return None
        try:
            state = json.loads(state_file.read_text())
        except (OSError, json.JSONDecodeError):
            self.log(f"{state_file}: unreadable checkpoint, starting over")
            return None
        if state.get("fingerprint") != self.fingerprint:
            self.log("The checkpoint is from a different configuration or dataset: starting over (it is replaced).")
            return None
        weights = torch.load(self.folder / "adapter.pt", weights_only=True)
        named = dict(model.named_parameters())
        with torch.no_grad():
            for name, value in weights.items():
                named[name].copy_(value.to(named[name].device, named[name].dtype))
        opt = torch.load(self.folder / "optimizer.pt", weights_only=False)
        optimizer.load_state_dict(opt["optimizer"])
        scheduler.load_state_dict(opt["scheduler"])
        torch.set_rng_state(opt["torch_rng"])
        return state["step"], state["history"], state.get("plan") or {}

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def finished_record(out: Path, fingerprint: str, config: FinetuneConfig) -> TrainingRecord | None:
    """The training record when this exact run already finished (and its adapter is there)."""
    if config.fresh or not (out / TRAINING_FILE).is_file():
        return None
    try:
        record = TrainingRecord.read(out / TRAINING_FILE)
    except ValueError:
        return None
    if record.fingerprint != fingerprint:
        return None
    if config.export_gguf and not (out / ADAPTER_FILE).is_file():
        return None
    return record


MIN_BUDGET_STEPS = 10  # a time budget never cuts a run below this many steps (the agent learns too little)
BUDGET_MEASURE_STEPS = 2  # steps timed before a time budget fits the run (the first one includes warm-up)
BUDGET_REFIT_EVERY = 5  # and then refitted every this many steps on the mean step time so far


def fit_steps_to_budget(
    total: int, step: int, s_per_step: float, remaining_s: float, min_steps: int = MIN_BUDGET_STEPS
) -> int:
    """How many steps in all a run may take when ``step`` are done, a step takes ``s_per_step`` and
    ``remaining_s`` seconds of the budget are left: never more than ``total``, never fewer than
    ``min_steps`` (or ``total`` when that is smaller), never fewer than the steps already done."""
    fit = step + int(max(0.0, remaining_s) // max(s_per_step, 1e-9))
    return max(step, min(total, max(fit, min(total, min_steps))))


def budget_message(plan: dict, sender: str | None = None) -> str:
    """What a time budget chose and what the user gives up, in one sentence."""
    total, requested, budget_s = plan["total"], plan["requested"], plan["budget_s"]
    budget = f"{budget_s / 60:g}-minute" if budget_s >= 120 else f"{budget_s:.0f}-second"
    head = f"A step takes {plan['s_per_step']:.1f} s on this computer"
    if total >= requested:
        return f"{head}: all {requested} steps fit the {budget} budget."
    return (
        f"{head}: {total} of {requested} steps fit the {budget} budget, so the agent "
        f"sees {total / requested:.0%} of the examples it would have (the full run: tiller train "
        f"{f'--sender {sender} ' if sender else ''}--steps {requested})."
    )


def record_training_speed(s_per_step: float, config: FinetuneConfig, dtype: str) -> None:
    """This computer's measured step time, for the app's estimates (app/hardware.py)."""
    from app.hardware import TRAIN_SPEED_FILE, cpu_summary

    folder = hardware_cache_dir()
    if folder is None or config.device != "cpu":
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        speed = {"s_per_step": round(s_per_step, 2), "batch_size": config.batch_size, "dtype": dtype}
        write_json_atomic(folder / TRAIN_SPEED_FILE, speed | {"cpu": cpu_summary(), "measured_at": utc_now()})
    except OSError:
        pass  # only an estimate is lost


@dataclass(frozen=True)
class _Progress:
    """What a checkpoint of the last finished step holds besides the weights and the optimizer."""

    step: int
    history: list
    rng: object  # torch's RNG state at the start of the next step
    plan: dict  # what a time budget decided ({} without one)


class Finetune:
    """``for progress in Finetune(config, cancel).run(): ...``; ``result`` holds the summary at the end.

    A cancel is seen between the pieces of a step (the step is dropped) and at step boundaries;
    :meth:`emergency_checkpoint` saves the last finished step from another thread (the trainer
    process calls it before a forced exit, agent_training/lifeline.py)."""

    def __init__(self, config: FinetuneConfig, cancel: CancelToken | None = None, log=print) -> None:
        import threading

        self.requested = config
        self.cancel = cancel or CancelToken()
        self.log = log
        self.result: dict | None = None
        self.model = self.tokenizer = None
        self.dtype_choice: DtypeChoice | None = None
        self._update_lock = threading.Lock()  # held while weights, optimizer and step count change
        self._objects: tuple | None = None  # (checkpointer, model, optimizer, scheduler) while training
        self._progress: _Progress | None = None  # the last finished step, swapped whole under the lock
        self._saved_step: int | None = None

    def _save(self, step: int, history: list, rng, plan: dict) -> None:
        """A checkpoint of the state after ``step`` finished steps (caller holds the update lock)."""
        checkpointer, model, optimizer, scheduler = self._objects
        if self._saved_step == step:
            return
        checkpointer.save(model, optimizer, scheduler, step, history, rng=rng, plan=plan)
        self._saved_step = step

    def emergency_checkpoint(self, timeout: float = 30.0) -> int | None:
        """Save the last finished step now, from any thread; the step it saved, or None (nothing to
        save yet, or the update did not finish within ``timeout``)."""
        if not self._update_lock.acquire(timeout=timeout):
            return None
        try:
            if self._progress is None:
                return None
            last = self._progress
            self._save(last.step, last.history, last.rng, last.plan)
            return last.step
        finally:
            self._update_lock.release()

    def run(self) -> Iterator[TrainProgress]:
        import torch

        from agent_training.base_model import BaseModel, hf_model_dir

        began = time.monotonic()  # a time budget counts from here: loading is part of the wait
        if self.requested.threads:
            torch.set_num_threads(self.requested.threads)
        config, choice = self.requested.resolve()  # the number format: measured once per computer (~1 s)
        self.dtype_choice = choice
        dtype_extra = {"dtype": choice.dtype, "dtype_reason": choice.reason, "threads": torch.get_num_threads()}
        if choice.bf16_speedup is not None:
            dtype_extra["bf16_speedup"] = round(choice.bf16_speedup, 3)
        out: Path = config.output
        out.mkdir(parents=True, exist_ok=True)
        base = BaseModel.resolve(config.base_gguf, config.base_hf)
        if not Path(config.dataset).is_file():
            raise FileNotFoundError(f"training data not found: {config.dataset} (run `tiller distill` first)")
        digest = sha256_file(Path(config.dataset))
        print_id = fingerprint(config, digest)
        done = finished_record(out, print_id, config)
        if done is not None:
            self.result = {"status": "done", "already": True, **done.to_dict()}
            yield TrainProgress(
                "done",
                done.steps,
                done.steps,
                loss=done.final_loss,
                message=f"already trained with this data and configuration: {out / ADAPTER_FILE}",
            )
            return

        yield TrainProgress(
            "loading", message=f"base model {base.gguf.name} in {choice.dtype} ({choice.reason})", extra=dtype_extra
        )
        load_began = time.monotonic()
        hf_dir = hf_model_dir(base, log=self.log)
        torch.manual_seed(config.seed)
        model, tokenizer = load_for_training(config, hf_dir)
        self.model, self.tokenizer = model, tokenizer  # for callers that inspect the result (tests, eval)
        examples, counts = load_examples(config, tokenizer)
        load_s = time.monotonic() - load_began
        batches_per_epoch = math.ceil(len(examples) / config.batch_size)
        total = max(1, math.ceil(config.epochs * max(1, batches_per_epoch // config.grad_accum)))
        if config.max_steps:  # overrides epochs (the data repeats if it must)
            total = config.max_steps
        requested_total = total
        if config.init_adapter:
            load_adapter_weights(model, Path(config.init_adapter))
            self.log(f"Starting from the adapter in {config.init_adapter}")
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, linear_schedule(total, config.warmup_steps))
        checkpointer = Checkpointer(out / CHECKPOINT_DIR, print_id, self.log)
        if config.fresh:
            checkpointer.clear()
        resumed = checkpointer.restore(model, optimizer, scheduler)
        step, history, plan = resumed or (0, [], {})
        if plan.get("total"):  # a time budget fitted this run before it was stopped: keep its plan
            total = plan["total"]
            scheduler.lr_lambdas = [linear_schedule(total, config.warmup_steps)]
        if resumed:
            self.log(f"Resuming at step {step} of {total} from {checkpointer.folder}")
            self._saved_step = step
        self._objects = (checkpointer, model, optimizer, scheduler)
        self._progress = _Progress(step, list(history), torch.get_rng_state(), plan)
        yield TrainProgress(
            "training",
            step,
            total,
            message=f"{counts['used']} examples",
            extra={"counts": counts, "resumed_at": step if resumed else None, "load_s": round(load_s, 1)} | dtype_extra,
        )

        causal_lm = model.get_base_model()
        device = next(p for p in model.parameters()).device
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        started, tokens_done, steps_done_here = time.monotonic(), 0, 0
        cpu_started = time.process_time()
        order_epoch, order = -1, []
        while step < total:
            rng = self._progress.rng
            if self.cancel.cancelled:
                yield from self._stop_cancelled(step, total, history, rng, plan)
                return
            batches = []
            for micro in range(config.grad_accum):
                epoch, within = divmod(step * config.grad_accum + micro, batches_per_epoch)
                if epoch != order_epoch:  # the order is a function of (seed, epoch): shuffle once per epoch
                    order_epoch, order = epoch, batch_order(len(examples), config.batch_size, config.seed, epoch)
                batches.append([examples[i] for i in order[within]])
            step_began = time.monotonic()
            try:
                loss, tokens = accumulate_gradients(causal_lm, batches, config, device, pad_id, self.cancel)
            except StepAbandoned:
                torch.set_rng_state(rng)  # the dropped step's dropout draws are undone too
                yield from self._stop_cancelled(step, total, history, rng, plan)
                return
            with self._update_lock:
                apply_update(params, optimizer, scheduler)
                step += 1
                history.append({"step": step, "loss": round(loss, 5), "lr": scheduler.get_last_lr()[0]})
                self._progress = _Progress(step, list(history), torch.get_rng_state(), plan)
            steps_done_here += 1
            tokens_done += tokens
            now = time.monotonic()
            elapsed = now - started
            extra = {
                "s_per_step": round(elapsed / steps_done_here, 3),
                # CPU seconds per wall second over the run so far: how many cores the trainer keeps busy
                "cores_busy": round((time.process_time() - cpu_started) / elapsed, 2) if elapsed else None,
            }
            message = ""
            if steps_done_here == 1:
                first_step_done = now  # later steps are timed from here: the first one includes warm-up
            if (
                plan.get("budget_s")
                and steps_done_here > BUDGET_MEASURE_STEPS
                and steps_done_here % BUDGET_REFIT_EVERY == 0
                and step < total
            ):
                # steps differ in length (the batches do): refit on the mean so far, so a plan made on
                # one quick step does not overrun (a 4-minute demo ran 264 s on its first plan)
                s_per_step = (now - first_step_done) / (steps_done_here - 1)
                refit = fit_steps_to_budget(plan["requested"], step, s_per_step, plan["budget_s"] - (now - began))
                if refit != total:
                    total = plan["total"] = refit
                    scheduler.lr_lambdas = [linear_schedule(total, config.warmup_steps)]
                    self._progress = replace(self._progress, plan=plan)
            if config.time_budget_s and not plan and steps_done_here == BUDGET_MEASURE_STEPS and step < total:
                s_per_step = now - step_began  # the second step: the first one includes warm-up
                plan = {
                    "requested": requested_total,
                    "total": fit_steps_to_budget(total, step, s_per_step, config.time_budget_s - (now - began)),
                    "s_per_step": round(s_per_step, 2),
                    "budget_s": config.time_budget_s,
                }
                total = plan["total"]
                scheduler.lr_lambdas = [linear_schedule(total, config.warmup_steps)]
                self._progress = replace(self._progress, plan=plan)
                message = budget_message(plan, config.sender)
                extra["plan"] = plan
            yield TrainProgress(
                "training",
                step,
                total,
                loss=round(loss, 4),
                tokens_per_s=round(tokens_done / elapsed if elapsed else 0, 1),
                eta_s=round(elapsed / steps_done_here * (total - step), 1),
                message=message,
                extra=extra,
            )
            if step % config.checkpoint_every == 0 and step < total:
                with self._update_lock:
                    self._save(step, list(history), torch.get_rng_state(), plan)

        if steps_done_here:
            record_training_speed(elapsed / steps_done_here, config, choice.dtype)
        yield TrainProgress("saving", step, total, message="writing the adapter")
        peft_dir = out / PEFT_DIR
        write_atomic_dir(peft_dir, lambda tmp: model.save_pretrained(tmp))
        adapter_info = None
        if config.export_gguf:
            from agent_training.export_gguf import export_adapter

            yield TrainProgress("exporting", step, total, message="GGUF adapter for llama.cpp")
            adapter_info = export_adapter(peft_dir, base.gguf, out / ADAPTER_FILE)
        record = training_record(config, base.gguf, hf_dir, print_id, digest, counts, step, history, adapter_info)
        record.write(out / TRAINING_FILE)
        with self._update_lock:
            self._progress = None  # nothing left to save: a late forced exit keeps the finished run as it is
            checkpointer.clear()
        self.result = {
            "status": "done",
            **record.to_dict(),
            "dtype": choice.to_dict(),
            "load_s": round(load_s, 1),
            "plan": plan or None,
        }
        yield TrainProgress("done", step, total, loss=record.final_loss, message=str(out / ADAPTER_FILE))

    def _stop_cancelled(self, step: int, total: int, history: list, rng, plan: dict) -> Iterator[TrainProgress]:
        with self._update_lock:
            self._save(step, list(history), rng, plan)
        checkpoint = self._objects[0].folder
        yield TrainProgress("cancelled", step, total, message=f"checkpoint saved at step {step}")
        self.result = {"status": "cancelled", "step": step, "total_steps": total, "checkpoint": str(checkpoint)}


def training_record(
    config: FinetuneConfig,
    base_gguf: Path,
    hf_dir: Path,
    print_id: str,
    dataset_digest: str,
    counts: dict,
    steps: int,
    history: list[dict],
    adapter_info: dict | None,
) -> TrainingRecord:
    """What the app reads about a finished run (``training.json``)."""
    adapter = config.output / ADAPTER_FILE
    return TrainingRecord(
        profile=config.sender.lower() if config.sender else "all",
        slug=profile_slug(config.sender),
        base_gguf=str(base_gguf),
        base_hf=str(hf_dir),
        template_version=AGENT_TEMPLATE_VERSION,
        fingerprint=print_id,
        dataset=str(config.dataset),
        dataset_sha256=dataset_digest,
        examples=counts,
        config={k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()},
        steps=steps,
        first_loss=history[0]["loss"] if history else None,
        final_loss=history[-1]["loss"] if history else None,
        loss_history=history,
        adapter=adapter_info,
        adapter_sha256=sha256_file(adapter) if adapter_info is not None else None,
        adapter_bytes=adapter.stat().st_size if adapter_info is not None else None,
        finished_at=utc_now(),
    )
