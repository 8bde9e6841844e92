"""Write a PEFT LoRA adapter as a GGUF LoRA adapter that llama.cpp loads (``--lora`` / ``lora_path``).

The format llama.cpp expects (``llama-adapter.cpp``): metadata ``general.architecture`` (the base
model's), ``general.type = adapter``, ``adapter.type = lora``, ``adapter.lora.alpha``; for each
adapted weight ``W`` named ``blk.N.attn_q.weight`` in the base GGUF two tensors
``blk.N.attn_q.weight.lora_a`` (ggml shape [in, rank]) and ``.lora_b`` ([rank, out]). llama.cpp
scales ``B·A`` by alpha / rank, as PEFT does, so the same alpha is written.

Every tensor's shape is checked against the base GGUF before anything is written; the file is
written under a temporary name, read back, loaded once by llama.cpp with the base model, and only
then renamed over the previous adapter, which stays in use until that moment.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np

from app.gguf import GGUFError
from app.gguf import read_gguf_header as _read_header

# Hugging Face module names -> llama.cpp tensor names (same for Gemma 3 and Llama).
HF_TO_GGUF = {
    "self_attn.q_proj": "attn_q",
    "self_attn.k_proj": "attn_k",
    "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output",
    "mlp.gate_proj": "ffn_gate",
    "mlp.up_proj": "ffn_up",
    "mlp.down_proj": "ffn_down",
}
_PEFT_NAME = re.compile(r"layers\.(\d+)\.((?:self_attn|mlp)\.\w+_proj)\.lora_([AB])(?:\.default)?\.weight$")


class AdapterExportError(ValueError):
    pass


def read_gguf_header(path: Path) -> tuple[dict, dict[str, tuple[int, ...]]]:
    """The base GGUF's metadata and tensor shapes (app.gguf), with errors as export errors."""
    try:
        return _read_header(path)
    except GGUFError as exc:
        raise AdapterExportError(str(exc)) from None


def _base_info(base_gguf: Path) -> tuple[str, dict[str, tuple[int, ...]], dict]:
    metadata, shapes = read_gguf_header(base_gguf)
    arch = metadata.get("general.architecture")
    if not arch:
        raise AdapterExportError(f"{base_gguf}: no general.architecture")
    heads = {
        key: int(metadata[f"{arch}.{key}"])
        for key in ("attention.head_count", "attention.head_count_kv")
        if metadata.get(f"{arch}.{key}") is not None
    }
    return arch, shapes, heads


def _permute_rows(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's converter reorders the rows of Llama's q/k projections for its rope layout;
    the LoRA B matrix (whose rows are the projection's outputs) must follow the same order."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def gguf_tensors(peft_dir: Path, base_gguf: Path) -> tuple[str, float, dict[str, np.ndarray]]:
    """The adapter's tensors under llama.cpp names, shape-checked against the base GGUF."""
    from safetensors.numpy import load_file

    peft_dir = Path(peft_dir)
    config_file, weights_file = peft_dir / "adapter_config.json", peft_dir / "adapter_model.safetensors"
    if not config_file.is_file() or not weights_file.is_file():
        raise AdapterExportError(
            f"{peft_dir}: not a PEFT adapter folder (adapter_config.json, adapter_model.safetensors)"
        )
    config = json.loads(config_file.read_text())
    if config.get("peft_type") != "LORA":
        raise AdapterExportError(f"{config_file}: peft_type is {config.get('peft_type')!r}, only LORA can be exported")
    if config.get("use_rslora") or config.get("use_dora"):
        raise AdapterExportError(f"{config_file}: rsLoRA/DoRA adapters are not supported by this exporter")
    rank, alpha = int(config["r"]), float(config["lora_alpha"])
    arch, shapes, heads = _base_info(base_gguf)
    raw = load_file(str(weights_file))
    out: dict[str, np.ndarray] = {}
    for name, value in raw.items():
        match = _PEFT_NAME.search(name)
        if not match:
            raise AdapterExportError(f"{weights_file}: tensor {name} is not a LoRA weight of a known projection")
        layer, module, which = match.groups()
        if module not in HF_TO_GGUF:
            raise AdapterExportError(f"{weights_file}: {name}: no llama.cpp tensor for {module}")
        base_name = f"blk.{layer}.{HF_TO_GGUF[module]}.weight"
        if base_name not in shapes:
            raise AdapterExportError(f"{base_gguf.name} has no tensor {base_name} (adapter {name}): wrong base model?")
        array = np.ascontiguousarray(value.astype(np.float32))
        if which == "B" and arch == "llama" and module in ("self_attn.q_proj", "self_attn.k_proj"):
            n_head = (
                heads["attention.head_count"]
                if module.endswith("q_proj")
                else heads.get("attention.head_count_kv", heads["attention.head_count"])
            )
            array = _permute_rows(array, n_head)
        out[f"{base_name}.lora_{which.lower()}"] = array
    if not out:
        raise AdapterExportError(f"{weights_file}: no LoRA tensors")
    for name in sorted(n for n in out if n.endswith(".lora_a")):
        base_name = name[: -len(".lora_a")]
        a, b = out[name], out.get(base_name + ".lora_b")
        if b is None:
            raise AdapterExportError(f"{weights_file}: {base_name} has lora_a but no lora_b")
        n_in, n_out = shapes[base_name][0], shapes[base_name][1]
        # numpy shapes are the reverse of ggml's: A is (rank, in), B is (out, rank)
        if a.shape != (rank, n_in) or b.shape != (n_out, rank):
            raise AdapterExportError(
                f"{base_name}: adapter shapes A{a.shape} B{b.shape} do not fit the base tensor [in {n_in}, out {n_out}] at rank {rank}"
            )
    return arch, alpha, out


def write_adapter_gguf(path: Path, arch: str, alpha: float, tensors: dict[str, np.ndarray]) -> None:
    from gguf import GGUFWriter

    writer = GGUFWriter(str(path), arch)
    writer.add_string("general.type", "adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", float(alpha))
    for name in sorted(tensors):
        writer.add_tensor(name, tensors[name])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def check_adapter_file(path: Path, base_gguf: Path, *, load_in_llama: bool = True) -> dict:
    """Read the written adapter back and (by default) load it with the base model in llama.cpp.
    Returns a summary; raises :class:`AdapterExportError` when it is unusable."""
    fields, tensor_shapes = read_gguf_header(path)
    if fields.get("general.type") != "adapter" or fields.get("adapter.type") != "lora":
        raise AdapterExportError(
            f"{path}: not a LoRA adapter GGUF (general.type {fields.get('general.type')!r}, adapter.type {fields.get('adapter.type')!r})"
        )
    arch, shapes, _ = _base_info(base_gguf)
    if fields.get("general.architecture") != arch:
        raise AdapterExportError(f"{path}: architecture {fields.get('general.architecture')} but the base is {arch}")
    names = list(tensor_shapes)
    for name in names:
        base_name = name.rsplit(".lora_", 1)[0]
        if base_name not in shapes:
            raise AdapterExportError(f"{path}: tensor {name} adapts {base_name}, which {base_gguf.name} does not have")
    if len(names) % 2 or not names:
        raise AdapterExportError(f"{path}: expected pairs of lora_a/lora_b tensors, found {len(names)}")
    if load_in_llama:
        from app.llamacpp import llama_class

        Llama = llama_class()  # noqa: N806 (the class)
        from llama_cpp._utils import suppress_stdout_stderr

        try:
            with suppress_stdout_stderr(disable=False):  # llama.cpp logs a line per adapted tensor
                llm = Llama(model_path=str(base_gguf), lora_path=str(path), n_ctx=64, n_threads=1, verbose=False)
        except Exception as exc:  # llama.cpp reports a bad adapter as a failed load
            raise AdapterExportError(
                f"{path}: llama.cpp could not load the adapter on {base_gguf.name}: {exc}"
            ) from exc
        try:
            llm.eval(llm.tokenize(b"check", add_bos=True))
        finally:
            llm.close()
    return {
        "architecture": arch,
        "alpha": fields.get("adapter.lora.alpha"),
        "tensors": len(names),
        "bytes": path.stat().st_size,
    }


def export_adapter(peft_dir: Path, base_gguf: Path, out_path: Path, *, load_in_llama: bool = True) -> dict:
    """PEFT folder -> validated GGUF adapter at ``out_path`` (atomically replacing any previous one)."""
    out_path = Path(out_path)
    arch, alpha, tensors = gguf_tensors(Path(peft_dir), Path(base_gguf))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.name}.{os.getpid()}.partial")
    try:
        write_adapter_gguf(tmp, arch, alpha, tensors)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        summary = check_adapter_file(tmp, Path(base_gguf), load_in_llama=load_in_llama)
        os.replace(tmp, out_path)
    finally:
        tmp.unlink(missing_ok=True)
    return {**summary, "path": str(out_path)}
