"""A tiny Gemma 3 for the tests that check how training is run, not what it learns.

The embedded Gemma 3 270M trains at 4-8 s a step on a 2-core CPU without native bf16, and a test of
cancel, kill-and-resume, a trainer that outlives its parent, or a GUI page's wiring paid that for
every step while checking nothing the step's size changes. This writes a real GGUF of the same
architecture and with the embedded model's own tokenizer (every metadata field is copied; only the
sizes change) and seeded random weights: llama.cpp loads it, transformers converts it through the
same code path as the embedded base, and the app trains and drafts with it as with any model the
user puts in the agent-base role. Its rules are noise, so a test that checks what the agent
*learned* keeps the real model (``conftest.kay_agent``).
"""

from __future__ import annotations

import os
from pathlib import Path

# 2 layers of width 64: about 17M parameters, 16.8M of them the 262k-token embedding.
TINY_SIZES = {"block_count": 2, "embedding_length": 64, "feed_forward_length": 128, "head_count": 2, "head_dim": 32}


def tiny_base(models: Path, seed: int = 0) -> tuple[Path, Path]:
    """(GGUF, its converted Hugging Face folder) of the tiny Gemma 3, made once per models folder.

    The folder is the one ``agent_training.base_model.hf_model_dir`` would make from the GGUF, with
    its marker, so a test that puts the GGUF in the agent-base role skips the conversion (whose
    262k-token tokenizer alone costs ~17 s) as a user's second training run does. The tokenizer is
    the embedded model's converted one; the weights are the GGUF's, in transformers' names
    (checked against a real conversion: transformers takes the same matrices and norm - 1).
    """
    from agent_training.base_model import CONVERTED_MARKER, BaseModel, converted_dir, hf_model_dir

    embedded = BaseModel.embedded()
    gguf_path = models / "tiny-gemma3-test.gguf"
    folder = converted_dir(BaseModel(gguf_path))
    if gguf_path.is_file() and (folder / CONVERTED_MARKER).is_file():
        return gguf_path, folder
    tensors = write_tiny_gemma3(embedded.gguf, gguf_path, seed)
    _write_converted(tensors, hf_model_dir(embedded, log=lambda _: None), folder, BaseModel(gguf_path).source_key())
    return gguf_path, folder


def _write_converted(tensors: dict, embedded_hf: Path, folder: Path, source_key: dict) -> None:
    import json
    import shutil

    import numpy as np
    import torch
    from safetensors.torch import save_file

    from agent_training.base_model import CONVERTED_MARKER
    from app.files import write_atomic_dir

    config = json.loads((embedded_hf / "config.json").read_text())
    sizes = TINY_SIZES
    layers = sizes["block_count"]
    config.update(
        hidden_size=sizes["embedding_length"],
        intermediate_size=sizes["feed_forward_length"],
        num_attention_heads=sizes["head_count"],
        num_key_value_heads=1,
        head_dim=sizes["head_dim"],
        query_pre_attn_scalar=sizes["head_dim"],  # llama.cpp scales attention by 1/sqrt(head_dim)
        num_hidden_layers=layers,
        layer_types=config["layer_types"][:layers],
        max_position_embeddings=2048,
        _model_name_or_path="Tiny random Gemma 3 (tests)",
    )
    names = {
        "token_embd": "model.embed_tokens",
        "output_norm": "model.norm",
        "attn_norm": "input_layernorm",
        "attn_q": "self_attn.q_proj",
        "attn_k": "self_attn.k_proj",
        "attn_v": "self_attn.v_proj",
        "attn_q_norm": "self_attn.q_norm",
        "attn_k_norm": "self_attn.k_norm",
        "attn_output": "self_attn.o_proj",
        "post_attention_norm": "post_attention_layernorm",
        "ffn_norm": "pre_feedforward_layernorm",
        "ffn_gate": "mlp.gate_proj",
        "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
        "post_ffw_norm": "post_feedforward_layernorm",
    }
    state = {}
    for gguf_name, array in tensors.items():
        stem = gguf_name.removesuffix(".weight")
        if stem.startswith("blk."):
            _, layer, part = stem.split(".", 2)
            name = f"model.layers.{layer}.{names[part]}.weight"
        else:
            name = f"{names[stem]}.weight"
        data = array.astype(np.float32)
        if "norm" in stem:
            data = data - 1.0  # llama.cpp's Gemma norms hold 1 + w
        state[name] = torch.from_numpy(data).to(torch.bfloat16).contiguous()

    def fill(tmp: Path) -> None:
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        for name in ("generation_config.json", "tokenizer.json", "tokenizer_config.json"):
            shutil.copy(embedded_hf / name, tmp / name)
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / CONVERTED_MARKER).write_text(json.dumps(source_key))

    write_atomic_dir(folder, fill)


def write_tiny_gemma3(source: Path, target: Path, seed: int = 0) -> dict:
    """A Gemma 3 GGUF at ``target`` with ``source``'s metadata and tokenizer, TINY_SIZES and random
    weights (written to a temporary name and renamed: a half-written file is never loaded); returns
    its tensors by GGUF name (reading them back would parse the 262k-token vocabulary again, 8 s)."""
    import gguf
    import numpy as np

    arch = "gemma3"
    sizes = TINY_SIZES
    embd, ff, heads, head_dim = (
        sizes["embedding_length"],
        sizes["feed_forward_length"],
        sizes["head_count"],
        sizes["head_dim"],
    )
    from agent_training.base_model import plain_array_reader

    reader = plain_array_reader()(source)  # 8 s for the 262k-token vocabulary, not 12
    arch_field = reader.fields[gguf.Keys.General.ARCHITECTURE]
    if arch_field.contents() != arch:
        raise ValueError(f"{source}: a {arch_field.contents()} model, not {arch}")
    replaced = {
        f"{arch}.block_count": sizes["block_count"],
        f"{arch}.embedding_length": embd,
        f"{arch}.feed_forward_length": ff,
        f"{arch}.attention.head_count": heads,
        f"{arch}.attention.head_count_kv": 1,
        f"{arch}.attention.key_length": head_dim,
        f"{arch}.attention.value_length": head_dim,
        f"{arch}.context_length": 2048,
        "general.name": "Tiny random Gemma 3 (tests)",
        "general.size_label": "17M",
        "general.file_type": int(gguf.LlamaFileType.MOSTLY_F16),
    }
    tmp = target.with_name(f"{target.name}.{os.getpid()}.part")  # two workers may build it at once
    writer = gguf.GGUFWriter(tmp, arch)
    for field in reader.fields.values():
        if field.name == gguf.Keys.General.ARCHITECTURE or field.name.startswith("GGUF."):
            continue
        kind = field.types[0]
        sub = field.types[-1] if kind == gguf.GGUFValueType.ARRAY else None
        value = replaced.get(field.name, field.contents())
        writer.add_key_value(field.name, value, kind, sub_type=sub)

    rng = np.random.default_rng(seed)
    vocab = len(reader.fields["tokenizer.ggml.tokens"].data)

    def matrix(rows: int, cols: int) -> np.ndarray:
        return (rng.standard_normal((rows, cols)) * 0.02).astype(np.float32)

    # llama.cpp's Gemma norms hold 1 + w (the converter adds the 1): ones are HF's zero-initialised norms
    ones = np.ones
    tensors: list[tuple[str, np.ndarray]] = [
        ("token_embd.weight", (rng.standard_normal((vocab, embd)) * 0.02).astype(np.float16)),
        ("output_norm.weight", ones(embd, dtype=np.float32)),
    ]
    for i in range(sizes["block_count"]):
        b = f"blk.{i}"
        tensors += [
            (f"{b}.attn_norm.weight", ones(embd, dtype=np.float32)),
            (f"{b}.attn_q.weight", matrix(heads * head_dim, embd)),
            (f"{b}.attn_k.weight", matrix(head_dim, embd)),
            (f"{b}.attn_v.weight", matrix(head_dim, embd)),
            (f"{b}.attn_q_norm.weight", ones(head_dim, dtype=np.float32)),
            (f"{b}.attn_k_norm.weight", ones(head_dim, dtype=np.float32)),
            (f"{b}.attn_output.weight", matrix(embd, heads * head_dim)),
            (f"{b}.post_attention_norm.weight", ones(embd, dtype=np.float32)),
            (f"{b}.ffn_norm.weight", ones(embd, dtype=np.float32)),
            (f"{b}.ffn_gate.weight", matrix(ff, embd)),
            (f"{b}.ffn_up.weight", matrix(ff, embd)),
            (f"{b}.ffn_down.weight", matrix(embd, ff)),
            (f"{b}.post_ffw_norm.weight", ones(embd, dtype=np.float32)),
        ]
    for name, data in tensors:
        writer.add_tensor(name, data)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    tmp.replace(target)
    return dict(tensors)
