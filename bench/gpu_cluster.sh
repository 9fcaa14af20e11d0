#!/usr/bin/env bash
# GPU check of CIMC training at the paper's size (one prepared script; run on the GPU machine).
#  1. ms per step, IMSAT vs CIMC, B 10,240, d 400, S 1200, C 5,000 and 10,000 (bf16 autocast).
#  2. The paper's whole run: 1,092,009 synthetic 400-d i-vectors, C 5,000, 150 epochs (16,000 steps),
#     k-NN radius + training + prediction, wall time. Target: < 5 min on one H100-class GPU
#     (plain PyTorch measured ~27 ms/step bf16 = 7 min; the FLOP bound is ~6 ms/step).
#   bash bench/gpu_cluster.sh              # full size (GPU machine)
#   SIZE=tiny bash bench/gpu_cluster.sh    # a minute on a CPU, to check the script works
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python )}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU visible: running on CPU"
if [ "${SIZE:-full}" = tiny ]; then
  $PY bench/cluster_speed.py --batch 512 --dim 40 --hidden 64 --clusters 50 100 --steps 2 --warmup 1
  $PY bench/cluster_speed.py --full-run --num-items 3000 --dim 40 --hidden 64 --batch 512 --speakers 60 \
    --clusters 50 --epochs 3 --min-steps 0
else
  $PY bench/cluster_speed.py --steps 20 --warmup 3
  $PY bench/cluster_speed.py --full-run
fi
