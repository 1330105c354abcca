#!/usr/bin/env bash
# The GPU check, one call on a machine with CUDA (about 13 minutes, nothing installed, no network):
#   1. inst-eval on CUDA, with every screening precision (fp32, tf32, fp16, bf16, auto), writes the
#      same results file as on the CPU (random and tied scores),
#   2. inst-eval at N = 40k, 200k, 1M (D = 512, embeddings generated on the GPU) with each
#      precision vs the fp32 GEMM floor (goal: auto at least 3x faster than fp32 at 200k),
#   3. the Python API on CUDA tensors: the CPU's results, computed on the GPU; its per-epoch
#      evaluation in a training loop at N = 40k,
#   4. extraction and training throughput of r50.
# Run from anywhere: benchmarks/gpu_check.sh [--quick]   (PYTHON=... to choose the interpreter)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PYTHON="${PYTHON:-python3}"
QUICK=()
[[ "${1:-}" == "--quick" ]] && QUICK=(--quick)
status=0

"$PYTHON" -c "import torch, sys; print('torch', torch.__version__, '|', torch.cuda.get_device_name() if torch.cuda.is_available() else sys.exit('CUDA is not available'))" || exit 1

echo "== inst-eval: every precision on CUDA vs CPU, then each against the GEMM floor"
timeout 420 "$PYTHON" benchmarks/gpu_inst_eval.py "${QUICK[@]}" || status=1

echo "== the Python API on CUDA tensors, then every epoch of a training loop"
timeout 120 "$PYTHON" benchmarks/gpu_api_check.py || status=1
timeout 240 "$PYTHON" benchmarks/bench_api_epoch.py --device cuda --epochs 2 "${QUICK[@]}" || status=1

echo "== extract r50"
timeout 90 "$PYTHON" benchmarks/bench_extract.py --device cuda --arch r50 "${QUICK[@]}" || status=1

echo "== train r50"
timeout 90 "$PYTHON" benchmarks/bench_train.py --device cuda --arch r50 "${QUICK[@]}" || status=1

exit $status
