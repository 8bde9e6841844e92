"""llama.cpp runs on every CPU: on Intel AMX CPUs its AMX weight repacking crashes the first decode
(llama.cpp #20824), so app/llamacpp.py keeps the weights in plain buffers there."""

import subprocess
import sys
from pathlib import Path

from app.llamacpp import amx_cpu


def test_amx_is_told_by_the_cpu_flag():
    assert amx_cpu({"avx2", "amx_int8", "amx_tile"})
    assert not amx_cpu({"avx2", "avx512f", "avx512_bf16"})
    assert not amx_cpu(set())


def test_the_embedded_base_model_generates_on_this_cpu(shared_models):
    """In its own process: a crash here is a segmentation fault, which would end pytest itself."""
    code = (
        "from app.llamacpp import llama_class\n"
        "from app.model_files import embedded_base_model\n"
        "llm = llama_class()(str(embedded_base_model()), n_ctx=256, n_threads=2, verbose=False)\n"
        "print('OUT', llm('The contract is', max_tokens=6, temperature=0)['choices'][0]['text'].strip() != '')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=Path(__file__).parent.parent
    )
    assert proc.returncode == 0, f"llama.cpp died with {proc.returncode}: {proc.stderr[-1500:]}"
    assert "OUT True" in proc.stdout


# A schema the 270M base model keeps trying to break (short strings, a closed set, a bounded list),
# so both of the sampler's paths run: the picked token kept, and redrawn under the grammar.
TIGHT_SCHEMA = {
    "type": "object",
    "properties": {
        "tone": {"enum": ["direct", "warm", "formal"]},
        "rules": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"type": "string", "maxLength": 12}},
    },
    "required": ["tone", "rules"],
}
JSON_PROMPT = "Email: Hi Sam, the budget review moved to Thursday at 3pm. Thanks, Alex\nIts style as JSON:"


def test_decoding_under_a_grammar_checks_the_picked_token_and_keeps_llama_cpps_answers(shared_models):
    """app.llamacpp checks the model's own pick against the grammar before running the grammar over
    the whole vocabulary. Greedy answers must be llama-cpp-python's own, token for token (with the
    repeat penalty the app uses, so the chain must see every kept token); sampled ones must always
    be the grammar's."""
    import json

    from llama_cpp import Llama, LlamaGrammar

    from app.llamacpp import GrammarCheckedSampler, llama_class
    from app.model_files import embedded_base_model

    def answer(llm, **options) -> dict:
        grammar = LlamaGrammar.from_json_schema(json.dumps(TIGHT_SCHEMA), verbose=False)
        return llm.create_completion(JSON_PROMPT, grammar=grammar, repeat_penalty=1.1, **options)["choices"][0]

    model = str(embedded_base_model())
    stock = Llama(model, n_ctx=256, n_threads=2, verbose=False)
    expected = answer(stock, max_tokens=16, temperature=0)
    stock.close()
    llm = llama_class()(model, n_ctx=256, n_threads=2, verbose=False)
    assert answer(llm, max_tokens=16, temperature=0)["text"] == expected["text"]
    # llama-cpp-python's generate() keeps the sampler of the last answer here
    assert isinstance(llm._sampler, GrammarCheckedSampler)
    kept, redrawn = llm._sampler.kept, llm._sampler.redrawn
    for seed in (1,):
        sampled = answer(llm, max_tokens=120, temperature=0.9, seed=seed)
        assert sampled["finish_reason"] == "stop", sampled
        parsed = json.loads(sampled["text"])
        assert parsed["tone"] in ("direct", "warm", "formal"), parsed
        assert 1 <= len(parsed["rules"]) <= 3, parsed
        assert all(len(rule) <= 12 for rule in parsed["rules"]), parsed
        kept, redrawn = kept + llm._sampler.kept, redrawn + llm._sampler.redrawn
    assert kept > 0, "no picked token was kept: the grammar ran over the whole vocabulary every time"
    assert redrawn > 0, "no token was redrawn: this test did not reach the grammar's own path"
    assert llm.create_completion("The contract is", max_tokens=4, temperature=0)["choices"][0]["text"]
    assert not isinstance(llm._sampler, GrammarCheckedSampler)  # no grammar: llama-cpp-python's own sampler
    llm.close()
