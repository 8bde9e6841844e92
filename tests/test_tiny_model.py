"""The tiny Gemma 3 that the tests of how training is run use (tests/tiny_model.py) is the same model
in both runtimes: its converted folder is written by hand, not by transformers, so a wrong name,
norm offset or attention scale there would make every test on it test something else."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_the_tiny_model_gives_the_same_logits_in_llama_cpp_and_transformers(tiny_base):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from app.llamacpp import llama_class
    from app.model_files import embedded_base_model

    Llama = llama_class()  # noqa: N806 (the class)
    text = "Intent: tell Sylvia the NG contract is ready for legal review.\nRules:\n- Length: about 20 words."
    tokenizer = AutoTokenizer.from_pretrained(tiny_base["base_hf"])
    ids = tokenizer(text).input_ids
    assert ids[0] == tokenizer.bos_token_id

    # the embedded model's own tokenizer, token for token (its vocabulary alone: no weights loaded)
    embedded = Llama(model_path=str(embedded_base_model()), vocab_only=True, verbose=False)
    try:
        assert embedded.tokenize(text.encode(), add_bos=True) == ids
    finally:
        embedded.close()
    tiny = Llama(model_path=str(tiny_base["base_gguf"]), n_ctx=256, logits_all=True, n_threads=2, verbose=False)
    try:
        assert tiny.tokenize(text.encode(), add_bos=True) == ids
        tiny.eval(ids)
        cpp = np.array(tiny.scores[: len(ids)], dtype=np.float32)
    finally:
        tiny.close()
    model = AutoModelForCausalLM.from_pretrained(tiny_base["base_hf"], dtype=torch.float32)
    with torch.no_grad():
        hf = model(input_ids=torch.tensor([ids])).logits[0].numpy()
    # the GGUF holds the f16 embedding the folder holds in bf16: close, not equal
    corr = np.mean([np.corrcoef(hf[p], cpp[p])[0, 1] for p in range(len(ids))])
    assert corr >= 0.97, corr
    assert np.mean(hf.argmax(-1) == cpp.argmax(-1)) >= 0.9
    config = json.loads((tiny_base["base_hf"] / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"]) == (2, 64)
