#!/usr/bin/env bash
# GPU benchmark in one call of a lent GPU machine: install, run, print JSON (< 8 minutes).
#   run: bash scripts/gpu_bench.sh            (from the repository root, on the GPU machine)
# Installs modstream with the `gpu` extra (onnxruntime-gpu, never beside onnxruntime) in a
# fresh venv, then scores the bundled demo texts with the fp16 model on CUDA (IO binding) and,
# when available, TensorRT (engine cache in $TMPDIR), and the int8 model on the CPU for scale.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp}
python3 -m venv /tmp/ms-gpu
/tmp/ms-gpu/bin/pip install --quiet --upgrade pip
/tmp/ms-gpu/bin/pip install --quiet -e ".[gpu]"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
/tmp/ms-gpu/bin/python scripts/gpu_bench.py | tee "$OUT/gpu_bench.json"
