"""JSON answers under a grammar: Tiller's sampler against llama-cpp-python's, in the same run.

    python benchmarks/grammar_decoding.py [--emails 6] [--model qwen2.5-coder-1.5b-instruct|gemma-3-270m-base]
        [--json FILE]

The requests are the local distillation's own (``tiller distill --backend local``): for each of Kay
Mann's newest emails in the Enron sample, the abstractive intent and the R1 rules, each with its
JSON schema, rendered through the model's chat template as the ``local`` backend does. Each is
decoded greedily (temperature 0, so both must give the same tokens) twice, alternating which goes
first:

- stock: ``llama_cpp.Llama``, which runs the grammar over every token of the vocabulary at every step;
- tiller: ``app.llamacpp.llama_class()``, which checks the token the model picked first and runs the
  grammar over the vocabulary only when that token breaks it.

Reports for each the seconds in all (the prompt's evaluation included, the same work for both) and
the answer tokens per second after the first token (the decoding the grammar slows), the ratios
(tiller / stock), how many answers are identical (all should be), how many tokens the grammar kept
as picked and how many it had redrawn, and the CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KAY = "kay.mann@enron.com"


def distillation_prompts(db, model_path: Path, emails: int) -> list[tuple[str, str, dict, int]]:
    """(label, prompt, json schema, max tokens) for the intent and R1 rules of the newest ``emails``."""
    from agent_training.intents import small_intent_request
    from agent_training.messages import load_messages
    from agent_training.rules import small_r1_request
    from app.agent.runtime import RUNTIME, ModelSpec
    from app.backends.local import chat_messages, completion_prompt

    spec = ModelSpec.of(model_path)
    prompts = []
    for msg in load_messages(db, KAY, limit=emails, newest_first=True):
        for label, (request, _) in (("intent", small_intent_request(msg, None)), ("rules R1", small_r1_request(msg))):
            chat = RUNTIME.chat_prompt(spec, chat_messages(request))
            prompt = chat[0] if chat is not None else completion_prompt(request)
            options = request.options
            prompts.append((f"{label} #{msg.id}", prompt, options["json_schema"], options["max_tokens"]))
    RUNTIME.close()
    return prompts


def decode(llm, prompt: str, schema: dict, max_tokens: int) -> tuple[str, int, float, float]:
    """(answer, answer tokens, seconds in all, seconds after the first token)."""
    from llama_cpp import LlamaGrammar

    grammar = LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    llm.reset()  # no prompt cache carried from the other model object's turn: both pay the prompt
    began = time.monotonic()
    first, pieces = None, []
    for piece in llm.create_completion(prompt, max_tokens=max_tokens, temperature=0.0, grammar=grammar, stream=True):
        first = first or time.monotonic()
        pieces.append(piece["choices"][0]["text"])
    ended = time.monotonic()
    return "".join(pieces), len(pieces), ended - began, ended - (first or ended)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=6)
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    os.environ.setdefault("TILLER_HOME", tempfile.mkdtemp(prefix="tiller-grammar-"))

    from llama_cpp import Llama

    from app.agent.runtime import default_threads
    from app.hardware import cpu_summary
    from app.llamacpp import llama_class
    from app.model_files import embedded_model
    from benchmarks.sample_db import sample_database

    model = embedded_model(args.model)
    prompts = distillation_prompts(sample_database(), model, args.emails)
    threads = default_threads()
    models = {
        "stock": Llama(str(model), n_ctx=2048, n_threads=threads, verbose=False),
        "tiller": llama_class()(str(model), n_ctx=2048, n_threads=threads, verbose=False),
    }
    totals = {name: {"seconds": 0.0, "tokens": 0, "decoding": 0.0, "after_first": 0} for name in models}
    same, kept, redrawn = 0, 0, 0
    for n, (label, prompt, schema, max_tokens) in enumerate(prompts):
        order = ["stock", "tiller"] if n % 2 == 0 else ["tiller", "stock"]
        answers = {}
        for name in order:
            text, tokens, seconds, decoding = decode(models[name], prompt, schema, max_tokens)
            answers[name] = text
            totals[name]["seconds"] += seconds
            totals[name]["tokens"] += tokens
            totals[name]["decoding"] += decoding
            totals[name]["after_first"] += max(0, tokens - 1)
            if name == "tiller":
                kept += models[name]._sampler.kept
                redrawn += models[name]._sampler.redrawn
        same += answers["stock"] == answers["tiller"]
        print(f"{label:18s} {tokens:4d} tokens  identical: {answers['stock'] == answers['tiller']}", flush=True)
    for llm in models.values():
        llm.close()
    rate = {name: t["after_first"] / t["decoding"] for name, t in totals.items()}
    result = {
        "cpu": cpu_summary(),
        "model": model.name,
        "answers": len(prompts),
        "identical": same,
        "tokens_kept": kept,
        "tokens_redrawn": redrawn,
        **{f"{name}_seconds": round(t["seconds"], 1) for name, t in totals.items()},
        **{f"{name}_decoding_tokens_per_s": round(rate[name], 1) for name in totals},
        "speedup": round(totals["stock"]["seconds"] / totals["tiller"]["seconds"], 2),
        "decoding_speedup": round(rate["tiller"] / rate["stock"], 2),
    }
    print(f"\n{result['cpu']}; {model.name}; {len(prompts)} JSON answers, greedy")
    for name in totals:
        t = totals[name]
        print(
            f"  {name:6s}: {t['seconds']:6.1f} s in all ({t['tokens']} answer tokens); {rate[name]:5.1f} tokens/s after the first"
        )
    print(
        f"  tiller / stock: {result['speedup']}x faster in all (the prompts' evaluation is the same work), "
        f"{result['decoding_speedup']}x in decoding; identical answers {same}/{len(prompts)}"
    )
    print(f"  tokens the grammar kept as picked: {kept}; redrawn under the grammar: {redrawn}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
