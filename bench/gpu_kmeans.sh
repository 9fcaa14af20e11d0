#!/usr/bin/env bash
# GPU check of the large-N baselines at the paper's size, 1,092,009 x 400 i-vectors into 5,000 clusters, against
# scikit-learn on the machine's CPU cores (50k-point sample, time scaled to N):
#  1. the torch Lloyd k-means (cimc.cluster.lloyd), from our k-means++ centres (an earlier version timed
#     scikit-learn's k-means++ too and ran past 200 s);
#  2. the chunked diagonal-GMM EM (cimc.cluster.gmm), from the same k-means partition's M-step: ~17 TFLOP an
#     iteration (fp32); scikit-learn's (N, K) arrays would be 44 GB each.
# Measured on one H200, 2026-12-04 (bench/results/gpu_kmeans_h200_2026-12-04.log; about 3 min in all): k-means++
# 4.9 s, 0.169 s per Lloyd iteration (31x scikit-learn on 16 cores), GMM 0.66 s per EM iteration with 7.0 GB of GPU
# memory (746x). The k-means table now has a TF32 row (the same iterations with torch's TF32 switch on, the labels
# that differ and both partitions' inertia): not yet run on a GPU; the reference notes' plain Lloyd did 0.04 s.
#   bash bench/gpu_kmeans.sh              # full size (GPU machine)
#   SIZE=tiny bash bench/gpu_kmeans.sh    # seconds on a CPU, to check the script works
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/python_env.sh
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "no GPU visible: running on CPU"
if [ "${SIZE:-full}" = tiny ]; then
  $PY bench/kmeans_speed.py --num-items 20000 --dim 40 --num-clusters 100 --iters 5 --init-sample 5000 --sklearn-items 0 --tf32
  $PY bench/gmm_speed.py --num-items 20000 --dim 40 --num-clusters 100 --iters 3 --sklearn-items 0
else
  $PY bench/kmeans_speed.py --iters 20 --sklearn-items 50000 --tf32
  $PY bench/gmm_speed.py --iters 5 --sklearn-items 50000
fi
