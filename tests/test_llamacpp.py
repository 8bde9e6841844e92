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
