"""The agent's base model on the training side: a GGUF for llama.cpp and the same weights for torch.

transformers can read a GGUF (``from_pretrained(dir, gguf_file=...)``), dequantizing it, but that
costs ~45 s and ~3 GB on every load (the tokenizer alone ~17 s). The first load is therefore saved
as a bf16 safetensors copy beside the GGUF, keyed by the GGUF's name and size, and later loads take
a second or two. The copy is written to a temporary folder and renamed, so a killed conversion
never leaves a half copy that would be mistaken for a good one.

Another base (e.g. Llama 3 8B Instruct, the paper's M_S) is configured as a GGUF plus the matching
Hugging Face folder (``hf_dir``); no conversion is done then.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from app.files import write_atomic_dir
from app.model_files import embedded_base_model, models_dir

CONVERTED_MARKER = "tiller-source.json"


@dataclass(frozen=True)
class BaseModel:
    gguf: Path
    hf_dir: Path | None = None  # a matching Hugging Face model folder; None: converted from the GGUF

    @classmethod
    def embedded(cls) -> BaseModel:
        return cls(embedded_base_model())

    @classmethod
    def resolve(cls, gguf: str | Path | None, hf_dir: str | Path | None = None) -> BaseModel:
        if gguf is None:
            return cls(embedded_base_model(), Path(hf_dir) if hf_dir else None)
        path = Path(gguf).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"base model GGUF not found: {path}")
        return cls(path.resolve(), Path(hf_dir).expanduser() if hf_dir else None)

    def source_key(self) -> dict:
        stat = self.gguf.stat()
        return {"gguf": self.gguf.name, "bytes": stat.st_size}


def converted_dir(base: BaseModel) -> Path:
    return models_dir() / "hf" / f"{base.gguf.stem}-bf16"


@contextmanager
def gguf_parsed_once():
    """transformers reads a GGUF's metadata three times for one conversion (tokenizer, config,
    weights); for Gemma 3's 262k-token vocabulary each read took ~17 s on 2 cores. Inside this
    block the ``gguf`` package hands out one reader per file (it only reads a memory map)."""
    import gguf

    original = gguf.GGUFReader
    readers: dict = {}

    def reader(path, *args, **kwargs):
        key = (str(path), args, tuple(sorted(kwargs.items())))
        if key not in readers:
            readers[key] = original(path, *args, **kwargs)
        return readers[key]

    gguf.GGUFReader = reader
    try:
        yield
    finally:
        gguf.GGUFReader = original


def hf_model_dir(base: BaseModel, *, log=print) -> Path:
    """A folder ``from_pretrained`` loads quickly: ``base.hf_dir``, or the cached bf16 conversion of
    the GGUF (made now if missing or made from a different file)."""
    if base.hf_dir is not None:
        if not (base.hf_dir / "config.json").is_file():
            raise FileNotFoundError(f"not a Hugging Face model folder (no config.json): {base.hf_dir}")
        return base.hf_dir
    target = converted_dir(base)
    marker = target / CONVERTED_MARKER
    if marker.is_file():
        try:
            if json.loads(marker.read_text()) == base.source_key():
                return target
        except (OSError, json.JSONDecodeError):
            pass
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log(f"Converting {base.gguf.name} for training (once; about a minute)…")
    folder, name = str(base.gguf.parent), base.gguf.name
    with gguf_parsed_once():
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.bfloat16, use_kernels=False)
    state = loaded.state_dict()
    packed = [k for k, v in state.items() if not v.is_floating_point()]
    if packed:  # transformers kept GGUF blocks (its optional `kernels` package): not trainable
        raise RuntimeError(
            f"{base.gguf.name}: transformers kept {len(packed)} weights packed; uninstall `kernels` to convert"
        )
    # Rebuilt from a clean config: the copy is a plain bf16 model, not "quantized with gguf"
    # (transformers refuses to save or train a model that carries the GGUF quantizer).
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    # Built on the meta device: no random initialisation of weights that are overwritten at once
    # (normal_ over the 262k-row embedding took minutes on a slow 2-core CPU); assign=True adopts
    # the loaded tensors as the parameters.
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in missing if k not in ("lm_head.weight",)]  # tied to the embeddings
    if missing or unexpected:
        raise RuntimeError(f"{base.gguf.name}: conversion mismatch, missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.tie_weights()
    del loaded, state

    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / CONVERTED_MARKER).write_text(json.dumps(base.source_key()))

    write_atomic_dir(target, fill)  # a converted folder half-written, or missing, is never seen
    return target
