#!/usr/bin/env bash
# GPU check of CIMC training at the paper's size (one prepared script; run on the GPU machine).
#  1. ms per step at B 10,240, d 400, S 1200, C 5,000 and 10,000 (bf16 autocast): IMSAT, IMSAT + mixup,
#     CIMC (loss math compiled), CIMC eager, and CIMC as first written (eager, SupCon in 1024-anchor chunks).
#  2. The paper's whole run: 1,092,009 synthetic 400-d i-vectors of 5,994 speakers, C 5,000, 150 epochs
#     (15,900 steps): k-NN radii + training + prediction, wall time by phase, then ACC/NMI vs the speakers.
#     Target: < 5 min on one H100-class GPU (plain PyTorch measured ~27 ms/step bf16 = 7 min).
#   bash bench/gpu_cluster.sh              # full size (GPU machine), ~6 min
#   SIZE=tiny bash bench/gpu_cluster.sh    # seconds on a CPU, to check the script works
#   CLUSTERS=5000 STEPS=10 bash bench/gpu_cluster.sh   # shorter step table (each new C compiles the loss math again)
#   CLUSTERS= bash bench/gpu_cluster.sh                 # the whole run alone, ~5 min
#   CLUSTERS= ALSO_SET=entropy_warmup=0 bash bench/gpu_cluster.sh   # two whole runs: the defaults, then with a change
#   CLUSTERS= ALSO_SET='losses=[imsat]' bash bench/gpu_cluster.sh   # ... or IMSAT alone (the value is YAML)
#   CLUSTERS= ALSO_SET='losses=[imsat,supcon]' bash bench/gpu_cluster.sh   # ... or CIMC without mixup, which
#       beats CIMC on long CPU runs (docs/cimc_tuning.md, "What costs CIMC on a long run: mixup")
#   CLUSTERS= ALSO_SET=mixup_weight=0.3 bash bench/gpu_cluster.sh   # ... or a milder mixup, the long-run lead
# Writes the whole output to $OUT/gpu_cluster.log when OUT is set (the device tool's output folder).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
LOG=${OUT:-/tmp}/gpu_cluster.log
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no GPU visible: running on CPU"
  if [ "${SIZE:-full}" = tiny ]; then
    $PY bench/cluster_speed.py --batch 512 --dim 40 --hidden 64 --clusters 50 100 --steps 2 --warmup 1
    $PY bench/cluster_speed.py --full-run --num-items 3000 --dim 40 --hidden 64 --batch 512 --speakers 60 \
      --clusters 50 --epochs 3 --min-steps 0 ${ALSO_SET:+--set "$ALSO_SET"}
  else
    CLUSTERS=${CLUSTERS-5000 10000}
    if [ -n "$CLUSTERS" ]; then  # CLUSTERS= skips the step table
      $PY bench/cluster_speed.py --steps "${STEPS:-20}" --warmup 3 --clusters $CLUSTERS
    fi
    $PY bench/cluster_speed.py --full-run
    if [ -n "${ALSO_SET:-}" ]; then  # a second whole run with a config change, e.g. ALSO_SET=entropy_warmup=0
      $PY bench/cluster_speed.py --full-run --set "$ALSO_SET"
    fi
  fi
} 2>&1 | tee "$LOG"
