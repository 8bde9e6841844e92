"""Rule generation speed through the app against raw llama-cpp-python, in the same run.

    python benchmarks/agent_speed.py [--adapter PATH] [--tokens 96] [--repeat 3]

Same model (the embedded Gemma 3 270M, plus ``--adapter`` when given), same prompt (an agent
prompt for a real held-out style intent), greedy, a fixed number of tokens with no stop strings:

- raw: ``Llama.create_completion(prompt, stream=True)`` on a model object of its own;
- app: ``app.agent.runtime.RUNTIME.stream`` (lock, cancellation stopping criterion, streaming).

Ratio = app tokens/s / raw tokens/s (target >= 0.95). Then the prefix cache: time to first token
of a second request whose prompt shares the template head with the first, on the warm runtime,
against the same request on a freshly loaded model (ratio > 1: the cache helps).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PREVIOUS = (
    "Kay, the Delmarva peaking project proforma is attached; Linda and Tom at TMPV asked me to send it. "
    "If you have problems opening it, call me at 713-546-2578. " * 4
)
FIRST = dict(
    intent="- Thanks for the comments on the turbine contract.\n- I'll send the revised draft to Ben tomorrow.",
    recipient="ben.jacoby@enron.com",
    subject="Re: Delmarva turbine contract",
    previous_context=PREVIOUS,
)
SECOND = dict(
    intent="- Can you confirm the delivery date for the second unit?\n- Legal needs it by Friday.",
    recipient="ben.jacoby@enron.com",
    subject="Re: Delmarva turbine contract",
    previous_context=PREVIOUS,
)


def raw_run(model: str, adapter: str | None, prompt: str, tokens: int) -> tuple[float, float]:
    from app.llamacpp import llama_class

    Llama = llama_class()  # noqa: N806 (the class)

    from app.agent.runtime import default_threads

    llm = Llama(model_path=model, lora_path=adapter, n_ctx=2048, n_threads=default_threads(), verbose=False)
    try:
        return _time_stream(llm.create_completion(prompt, max_tokens=tokens, temperature=0.0, stream=True), tokens)
    finally:
        llm.close()


def _time_stream(pieces, tokens: int) -> tuple[float, float]:
    """(time to first token, tokens/s after the first)"""
    start = time.perf_counter()
    first = None
    count = 0
    for _ in pieces:
        count += 1
        if first is None:
            first = time.perf_counter()
    end = time.perf_counter()
    return first - start, (count - 1) / (end - first) if count > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", help="a GGUF LoRA adapter (e.g. <data>/agents/<sender>/adapter.gguf)")
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from app.agent.runtime import RUNTIME, ModelSpec
    from app.agent.template import agent_prompt
    from app.model_files import embedded_base_model

    model = str(embedded_base_model())
    spec = ModelSpec.of(model, args.adapter)
    first_prompt, second_prompt = agent_prompt(**FIRST), agent_prompt(**SECOND)

    raw_rates, app_rates = [], []
    for _ in range(args.repeat):  # interleaved so machine noise hits both alike
        raw_rates.append(raw_run(model, args.adapter, first_prompt, args.tokens)[1])
        RUNTIME.close()
        list(RUNTIME.stream(spec, "### Email", max_tokens=1))  # load outside the timing
        app_rates.append(_time_stream(RUNTIME.stream(spec, first_prompt, max_tokens=args.tokens), args.tokens)[1])
    raw, app = statistics.median(raw_rates), statistics.median(app_rates)
    print(
        f"model {Path(model).name}"
        + (f" + adapter {args.adapter}" if args.adapter else "")
        + f", {args.tokens} tokens, greedy"
    )
    print(f"raw llama-cpp   {raw:7.1f} tokens/s   (runs: {', '.join(f'{r:.1f}' for r in raw_rates)})")
    print(f"through the app {app:7.1f} tokens/s   (runs: {', '.join(f'{r:.1f}' for r in app_rates)})")
    print(f"ratio app/raw: {app / raw:.2f}")

    cold, warm = [], []
    for _ in range(args.repeat):
        RUNTIME.close()
        list(RUNTIME.stream(spec, "### Email", max_tokens=1))  # loaded, but nothing of the prompt cached
        cold.append(_time_stream(RUNTIME.stream(spec, second_prompt, max_tokens=4), 4)[0])
        list(RUNTIME.stream(spec, first_prompt, max_tokens=4))  # a previous request with the same head
        warm.append(_time_stream(RUNTIME.stream(spec, second_prompt, max_tokens=4), 4)[0])
    shared = len(_common_prefix(first_prompt, second_prompt))
    print(
        f"second request, time to first token: {statistics.median(warm) * 1000:.0f} ms with the prefix cache "
        f"({shared} shared characters) vs {statistics.median(cold) * 1000:.0f} ms cold; "
        f"ratio {statistics.median(cold) / statistics.median(warm):.2f}x"
    )


def _common_prefix(a: str, b: str) -> str:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return a[:n]


if __name__ == "__main__":
    main()
