"""GGUF adapter export against the real embedded base GGUF, with synthetic PEFT adapters (fast)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agent_training.export_gguf import AdapterExportError, export_adapter, read_gguf_header

LAYERS, HIDDEN, Q_OUT, KV_OUT, FFN = 18, 640, 1024, 256, 2048


def fake_peft(
    folder: Path, *, rank=4, alpha=8, scale=0.0, wrong: str | None = None, modules=("q_proj", "v_proj")
) -> Path:
    from safetensors.numpy import save_file

    outs = {"q_proj": Q_OUT, "k_proj": KV_OUT, "v_proj": KV_OUT}
    rng = np.random.default_rng(0)
    tensors = {}
    for layer in range(LAYERS):
        for module in modules:
            n_out = outs[module]
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            a = rng.normal(0, 0.02, (rank, HIDDEN)).astype(np.float32)
            b = (rng.normal(0, 1, (n_out, rank)) * scale).astype(np.float32)
            if wrong and layer == 3 and module == wrong:
                b = np.zeros((n_out + 1, rank), np.float32)
            tensors[f"{prefix}.lora_A.weight"] = a
            tensors[f"{prefix}.lora_B.weight"] = b
    folder.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(folder / "adapter_model.safetensors"))
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": rank, "lora_alpha": alpha}))
    return folder


@pytest.fixture(scope="module")
def base():
    from app.model_files import embedded_base_model

    return embedded_base_model()


def test_adapter_metadata_names_and_shapes_match_llama_cpp(tmp_path, base):
    info = export_adapter(fake_peft(tmp_path / "peft"), base, tmp_path / "adapter.gguf")
    meta, shapes = read_gguf_header(tmp_path / "adapter.gguf")
    assert meta["general.architecture"] == "gemma3"
    assert meta["general.type"] == "adapter"
    assert meta["adapter.type"] == "lora"
    assert meta["adapter.lora.alpha"] == 8.0
    assert len(shapes) == info["tensors"] == LAYERS * 2 * 2
    assert shapes["blk.0.attn_q.weight.lora_a"] == (HIDDEN, 4)  # ggml order: [in, rank]
    assert shapes["blk.0.attn_q.weight.lora_b"] == (4, Q_OUT)  # [rank, out]
    _, base_shapes = read_gguf_header(base)
    assert base_shapes["blk.0.attn_q.weight"] == (HIDDEN, Q_OUT)


def test_a_shape_mismatch_names_the_tensor_and_keeps_the_adapter_in_use(tmp_path, base):
    export_adapter(fake_peft(tmp_path / "good"), base, tmp_path / "adapter.gguf")
    in_use = (tmp_path / "adapter.gguf").read_bytes()
    with pytest.raises(AdapterExportError, match=r"blk\.3\.attn_v\.weight: adapter shapes"):
        export_adapter(fake_peft(tmp_path / "bad", wrong="v_proj"), base, tmp_path / "adapter.gguf")
    assert (tmp_path / "adapter.gguf").read_bytes() == in_use
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter.gguf", "bad", "good"]  # no partial file left


def test_not_an_adapter_folder_is_a_clear_error(tmp_path, base):
    with pytest.raises(AdapterExportError, match="not a PEFT adapter folder"):
        export_adapter(tmp_path, base, tmp_path / "adapter.gguf")
    folder = fake_peft(tmp_path / "p")
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "IA3", "r": 4, "lora_alpha": 4}))
    with pytest.raises(AdapterExportError, match="only LORA"):
        export_adapter(folder, base, tmp_path / "adapter.gguf")


@pytest.mark.slow
def test_llama_cpp_applies_the_exported_adapter(tmp_path, base):
    """A zero B leaves the model as it is; a large one changes its logits: the adapter is applied."""
    from app.llamacpp import llama_class

    Llama = llama_class()  # noqa: N806 (the class)

    export_adapter(fake_peft(tmp_path / "zero", scale=0.0), base, tmp_path / "zero.gguf")
    export_adapter(fake_peft(tmp_path / "big", scale=2.0), base, tmp_path / "big.gguf")

    def last_logits(lora):
        llm = Llama(
            model_path=str(base),
            lora_path=str(lora) if lora else None,
            n_ctx=64,
            n_threads=2,
            logits_all=True,
            verbose=False,
        )
        try:
            llm.eval(llm.tokenize(b"Thanks for the update on the contract", add_bos=True))
            return np.array(llm.scores[llm.n_tokens - 1])
        finally:
            llm.close()

    plain, zero, big = last_logits(None), last_logits(tmp_path / "zero.gguf"), last_logits(tmp_path / "big.gguf")
    np.testing.assert_allclose(zero, plain, atol=1e-3)
    assert np.abs(big - plain).max() > 1.0


def test_the_plain_array_reader_reads_every_field_and_tensor_the_memmap_reader_reads(tmp_path):
    """The conversion parses the base GGUF with ``plain_array_reader`` (agent_training/base_model.py):
    12 s -> 8 s for the embedded model's 262k-token vocabulary, and the converted folder came out
    byte for byte the same. Here: the same fields, parts and tensors as gguf's own reader."""
    import gguf

    from agent_training.base_model import plain_array_reader

    path = tmp_path / "fields.gguf"
    writer = gguf.GGUFWriter(path, "gemma3")
    writer.add_array("tokenizer.ggml.tokens", ["<pad>", "<bos>", "héllo", "", "▁world", "日本"])
    writer.add_array("tokenizer.ggml.scores", [0.0, -1.5, 2.25, 0.0, 3.0, -7.0])
    writer.add_array("tokenizer.ggml.token_type", [3, 3, 1, 1, 1, 1])
    writer.add_uint32("gemma3.block_count", 2)
    writer.add_float32("gemma3.attention.layer_norm_rms_epsilon", 1e-6)
    writer.add_string("general.name", "reader check")
    writer.add_tensor("token_embd.weight", np.arange(24, dtype=np.float16).reshape(6, 4))
    writer.add_tensor("output_norm.weight", np.linspace(-1, 1, 4, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()

    theirs, ours = gguf.GGUFReader(path), plain_array_reader()(path)
    assert isinstance(theirs.data, np.memmap)
    assert type(ours.data) is np.ndarray  # what makes it faster
    assert list(ours.fields) == list(theirs.fields)
    for name, field in theirs.fields.items():
        mine = ours.fields[name]
        assert (mine.offset, mine.types, mine.data) == (field.offset, field.types, field.data), name
        assert len(mine.parts) == len(field.parts)
        assert all(np.array_equal(a, b) for a, b in zip(mine.parts, field.parts)), name
        assert mine.contents() == field.contents(), name
    assert [t.name for t in ours.tensors] == [t.name for t in theirs.tensors]
    for mine, tensor in zip(ours.tensors, theirs.tensors):
        assert (mine.tensor_type, list(mine.shape), mine.data_offset) == (
            tensor.tensor_type,
            list(tensor.shape),
            tensor.data_offset,
        )
        assert np.array_equal(mine.data, tensor.data)
    assert ours.fields["tokenizer.ggml.tokens"].contents()[2] == "héllo"
