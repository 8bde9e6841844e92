"""QLoRA end to end across two machines: train in 4 bits on a CUDA GPU, then load the adapter in
llama.cpp on the CPU and let the agent write rules with it.

    python benchmarks/qlora_adapter.py train OUT_DIR [--data train.jsonl] [--steps 12]   # on the GPU
    python benchmarks/qlora_adapter.py verify OUT_DIR/adapter.gguf                          # anywhere

``train`` fine-tunes the embedded Gemma 3 270M with 4-bit NF4 QLoRA (bitsandbytes) on Kay Mann's
distilled mail and writes the GGUF adapter that the app would (``export_adapter``) without loading
it in llama.cpp, since a bare GPU machine may have no llama-cpp-python. ``verify`` does that load
(``check_adapter_file``) and drafts rules for three held-out intents with base + adapter: the
adapter a GPU user trains is the one the app runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
KAY = "kay.mann@enron.com"


def train(out: Path, data: Path, steps: int, quantize: str) -> None:
    import torch

    from agent_training.export_gguf import export_adapter
    from agent_training.finetune import PEFT_DIR, Finetune, FinetuneConfig
    from app.model_files import embedded_base_model

    config = FinetuneConfig(
        dataset=data,
        sender=KAY,
        output=out,
        max_steps=steps,
        batch_size=8,
        rank=8,
        quantize=quantize,
        export_gguf=False,
    )
    started = time.time()
    job = Finetune(config)
    for progress in job.run():
        if progress.loss is not None:
            print(f"step {progress.step}/{progress.total_steps} loss {progress.loss:.3f}")
    result = job.result
    assert result["status"] == "done", result
    peft_dirs = list(out.rglob(PEFT_DIR))
    assert len(peft_dirs) == 1, peft_dirs
    info = export_adapter(peft_dirs[0], embedded_base_model(), out / "adapter.gguf", load_in_llama=False)
    summary = {
        "quantize": result["config"]["quantize"],
        "device": result["config"]["device"],
        "dtype": result["dtype"],
        "steps": steps,
        "final_loss": result.get("final_loss"),
        "wall_s": round(time.time() - started, 1),
        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20) if torch.cuda.is_available() else None,
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "adapter": info,
    }
    (out / "qlora-summary.json").write_text(json.dumps(summary, indent=1))
    print(json.dumps(summary))


def verify(adapter: Path, data: Path) -> None:
    from agent_training.export_gguf import check_adapter_file
    from app.agent.template import STOP, parse_rules
    from app.llamacpp import llama_class
    from app.model_files import embedded_base_model

    base = embedded_base_model()
    print("llama.cpp load:", check_adapter_file(adapter, base, load_in_llama=True))
    llm = llama_class()(model_path=str(base), lora_path=str(adapter), n_ctx=1024, verbose=False, seed=0)
    try:
        for line in data.read_text().splitlines()[:3]:
            prompt = json.loads(line)["messages"][0]["content"]
            text = llm(prompt, max_tokens=120, temperature=0, stop=STOP)["choices"][0]["text"]
            print("---", prompt.splitlines()[-2][:100], "\n", "\n".join(parse_rules(text)) or repr(text))
    finally:
        llm.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("train", "verify"))
    parser.add_argument("path", type=Path)
    parser.add_argument("--data", type=Path, help="train.jsonl (train) or test.jsonl (verify)")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--quantize", default="4bit", help="none: the same run in LoRA (a CPU smoke test)")
    args = parser.parse_args()
    if args.what == "train":
        train(args.path, args.data, args.steps, args.quantize)
    else:
        verify(args.path, args.data)


if __name__ == "__main__":
    main()
