"""The agent's base model on the training side: a GGUF for llama.cpp and the same weights for torch.

transformers can read a GGUF (``from_pretrained(dir, gguf_file=...)``), dequantizing it, but that
cost ~45 s and ~3 GB on every load on 2 cores (24 s now that the GGUF is parsed once, from a plain
array view). The first load is therefore saved
as a bf16 safetensors copy beside the GGUF, keyed by the GGUF's name and size, and later loads take
a second or two. The copy is written to a temporary folder and renamed, so a killed conversion
never leaves a half copy that would be mistaken for a good one.

Another base (e.g. Llama 3 8B Instruct, the paper's M_S) is configured as a GGUF plus the matching
Hugging Face folder (``hf_dir``); no conversion is done then.
"""

from __future__ import annotations

import functools
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


def plain_array_reader(reader_class=None):
    """A ``gguf.GGUFReader`` whose file is a plain ndarray view of the memory map, not an
    ``np.memmap``: every field and token it parses is a slice of it, and slicing a memmap runs
    Python code (``__getitem__``, ``__array_finalize__``) each time. For Gemma 3's 262k-token
    vocabulary that was most of the 12 s a parse took on 2 cores (8 s with this; the same fields
    and tensors). The file stays memory-mapped."""
    import gguf
    import numpy as np

    base = reader_class or gguf.GGUFReader

    class PlainArrayReader(base):  # type: ignore[misc,valid-type]
        @property
        def data(self):
            return self._plain_data

        @data.setter
        def data(self, value) -> None:
            self._plain_data = value.view(np.ndarray) if isinstance(value, np.memmap) else value

    return PlainArrayReader


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

    log(f"Converting {base.gguf.name} for training (once; under a minute)…")
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


class TrainingTokenizer:
    """The base model's tokenizer as training uses it (``encode`` without special tokens, the
    ``<bos>``/``<eos>``/``<pad>`` ids, ``decode``), read by ``tokenizers`` itself: about 1 s for
    Gemma 3's 33 MB tokenizer.json where ``AutoTokenizer`` took 3-4 s on 2 cores, parsing the
    same file three times in Python before every training run. The ids are the same
    (tests/test_agent_training.py compares them on real mail)."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        config_file = folder / "tokenizer_config.json"
        config = json.loads(config_file.read_text(encoding="utf-8")) if config_file.is_file() else {}
        self.bos_token_id = self._special_id(config.get("bos_token"))
        self.eos_token_id = self._special_id(config.get("eos_token"))
        self.pad_token_id = self._special_id(config.get("pad_token"))

    def _special_id(self, token) -> int | None:
        if isinstance(token, dict):  # an AddedToken written out in full
            token = token.get("content")
        return self._tokenizer.token_to_id(token) if isinstance(token, str) else None

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return self._tokenizer.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return self._tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def __len__(self) -> int:
        return self._tokenizer.get_vocab_size()


@functools.lru_cache(maxsize=2)
def _read_training_tokenizer(folder: str, mtime_ns: int, size: int) -> TrainingTokenizer:
    """Read once per process for each version of the file: it is never changed after reading
    (no truncation or padding is set on it), and `tiller eval` and `reproduce` train several
    adapters from one base in one process (1.1 s a read on 2 cores)."""
    return TrainingTokenizer(Path(folder))


def training_tokenizer(folder: Path):
    """:class:`TrainingTokenizer` when the folder has a ``tokenizer.json`` with a ``<bos>`` (every
    converted base has); otherwise transformers' own (a user's Hugging Face folder may hold only a
    SentencePiece model)."""
    file = folder / "tokenizer.json"
    if file.is_file():
        st = file.stat()
        tokenizer = _read_training_tokenizer(str(folder.resolve()), st.st_mtime_ns, st.st_size)
        if tokenizer.bos_token_id is not None:
            return tokenizer
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder)
