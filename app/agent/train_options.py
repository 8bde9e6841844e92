"""The training options, defined once for ``tiller train`` and ``python -m agent_training train``.

The app starts the trainer as its own process and never imports ``agent_training``, so the
definition lives here, as data: each option's flag, the :class:`agent_training.finetune.FinetuneConfig`
field it sets, its type, default and help. Both commands are decorated with :func:`training_options`;
``tiller train`` passes every value on to the trainer process unchanged (:func:`trainer_arguments`),
so an option can no longer exist in one command and be missing from the other. A test checks the
defaults against ``FinetuneConfig``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click


@dataclass(frozen=True)
class TrainingOption:
    flag: str  # --batch-size
    field: str  # FinetuneConfig field (and the click parameter name)
    type: Any = None
    default: Any = None  # None: FinetuneConfig decides (often by hardware)
    help: str = ""
    is_flag: bool = False


TRAINING_OPTIONS: tuple[TrainingOption, ...] = (
    TrainingOption(
        "--dataset",
        "dataset",
        click.Path(path_type=Path, dir_okay=False),
        help="Chat-format train.jsonl (default: the newest from `distill`; naive_train.jsonl for the "
        "paper's naive fine-tune baseline).",
    ),
    TrainingOption(
        "--out",
        "output",
        click.Path(path_type=Path, file_okay=False),
        help="Profile folder (default: <data>/agents/<sender or all>).",
    ),
    TrainingOption(
        "--base-gguf",
        "base_gguf",
        click.Path(path_type=Path, dir_okay=False),
        help="Base model GGUF (default: the model in the agent-base role, the embedded Gemma 3 270M).",
    ),
    TrainingOption(
        "--base-hf",
        "base_hf",
        click.Path(path_type=Path, file_okay=False),
        help="Hugging Face folder matching --base-gguf (else converted from it).",
    ),
    TrainingOption("--steps", "max_steps", int, help="Stop after N optimizer steps (overrides --epochs)."),
    TrainingOption("--epochs", "epochs", float, 1.0, "Passes over the training examples."),
    TrainingOption("--rank", "rank", int, help="LoRA rank (default 16 on CPU, 256 with CUDA)."),
    TrainingOption("--alpha", "alpha", float, help="LoRA alpha (default: = rank)."),
    TrainingOption("--lr", "lr", float, 1e-3, "Learning rate."),
    TrainingOption("--batch-size", "batch_size", int, help="Examples per step (default 4 on CPU, 8 with CUDA)."),
    TrainingOption("--grad-accum", "grad_accum", int, 1, "Gradient accumulation steps."),
    TrainingOption(
        "--max-length",
        "max_length",
        int,
        help="Token limit per example; longer ones are skipped and counted (default 512 CPU, 1024 CUDA).",
    ),
    TrainingOption("--limit", "limit", int, help="Only the first N usable examples."),
    TrainingOption(
        "--quantize",
        "quantize",
        click.Choice(["auto", "4bit", "none"]),
        "auto",
        "auto: 4-bit QLoRA when CUDA and bitsandbytes are present.",
    ),
    TrainingOption(
        "--dtype",
        "dtype",
        click.Choice(["auto", "bf16", "fp32"]),
        "auto",
        "auto: the faster of the two on this computer, measured once (bf16 is 37x slower on CPUs without native bf16).",
    ),
    TrainingOption("--device", "device", click.Choice(["auto", "cpu", "cuda"]), "auto", "Where to train."),
    TrainingOption("--threads", "threads", int, help="CPU threads for torch (default: all cores)."),
    TrainingOption(
        "--gradient-checkpointing",
        "gradient_checkpointing",
        click.Choice(["auto", "on", "off"]),
        "auto",
        "Recompute activations in the backward pass instead of keeping them (about 1 GB less on the CPU, "
        "about 40% slower); auto: off.",
    ),
    TrainingOption(
        "--max-batch-tokens",
        "max_batch_tokens",
        int,
        help="Cut a step's batch into pieces of at most N padded tokens: the same update in less memory and "
        "less padding (default on the CPU: --max-length, 512; no limit with CUDA).",
    ),
    TrainingOption(
        "--time-budget",
        "time_budget_s",
        float,
        help="Seconds the whole run may take, loading included: after two steps the step time is measured and "
        "the number of steps cut to fit (never below 10); the run says what it chose.",
    ),
    TrainingOption("--seed", "seed", int, 0, "Seed for the adapter's initialisation and the example order."),
    TrainingOption("--checkpoint-every", "checkpoint_every", int, 25, "Save a checkpoint every N steps (to resume)."),
    TrainingOption("--fresh", "fresh", is_flag=True, help="Ignore a saved checkpoint and start over."),
)


def training_options(command: Callable) -> Callable:
    """Add every training option to a click command (as keyword parameters named by ``field``)."""
    for opt in reversed(TRAINING_OPTIONS):
        if opt.is_flag:
            command = click.option(opt.flag, opt.field, is_flag=True, help=opt.help)(command)
        else:
            command = click.option(
                opt.flag,
                opt.field,
                type=opt.type,
                default=opt.default,
                show_default=opt.default is not None,
                help=opt.help,
            )(command)
    return command


def trainer_arguments(values: dict) -> list[str]:
    """The trainer's command line for option ``values`` (by field; None and False are left out)."""
    args: list[str] = []
    for opt in TRAINING_OPTIONS:
        value = values.get(opt.field)
        if value is None or value is False:
            continue
        args += [opt.flag] if opt.is_flag else [opt.flag, str(value)]
    return args


def stage_option(fn):
    """``--stage agent|voice``: which adapter a training run makes (both CLIs take it)."""
    return click.option(
        "--stage",
        type=click.Choice(["agent", "voice"]),
        default="agent",
        show_default=True,
        help="agent: intent -> your rules; voice: the large model's draft -> your words (needs zero-shot emails "
        "from `tiller distill --backend NAME`).",
    )(fn)
