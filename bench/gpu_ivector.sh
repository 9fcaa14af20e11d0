#!/usr/bin/env bash
# Full-size GPU throughput of i-vector extraction (Baum-Welch statistics + posterior mean) at Kaldi v1
# sizes: 2048 Gaussians, 72-dim frames (24 MFCC + deltas + delta-deltas), 400-dim i-vectors,
# 800 voiced frames per utterance (~8 s). Target: all 1,092,009 VoxCeleb2-dev utterances in < 10 min
# on one H100, i.e. >= 1,820 utterances/s. Prints fp32 and TF32 rows, diagonal and full-covariance UBM
# (egs/voxceleb's setting), each with the projected time for 1,092,009 utterances.
# One H200, 2026-12-04 (bench/results/gpu_ivector_h200_2026-12-04.log, 39 s in all): diagonal 5,867 utt/s (3.1 min),
# TF32 6,723 (2.7 min); full covariance 2,900 (6.3 min), TF32 5,330 (3.4 min). How far TF32 moves the i-vectors
# (cosine to the float32 ones, printed under each TF32 row since that run) is not yet measured on a GPU, so the
# library extracts in float32.
#   bench/gpu_ivector.sh                      # on the GPU machine, under a minute
#   IVECTOR_BENCH_TINY=1 bench/gpu_ivector.sh # tiny sizes on CPU: proves the script runs
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/python_env.sh

if [ "${IVECTOR_BENCH_TINY:-0}" = 1 ]; then
  sizes=(--device cpu --components 32 --ivector-dim 16 --frames 100 --utts 32 --batch 16 --baseline-utts 4)
  runs=("" "--full-cov --tf32")  # on a CPU TF32 changes nothing: its comparison line must read 0
else
  "$PY" -c "import torch; assert torch.cuda.is_available(), 'no CUDA device visible'; print(torch.cuda.get_device_name(0))"
  nvidia-smi --query-gpu=name,memory.total,memory.used --format=csv
  sizes=(--device cuda --utts 8192 --batch 512 --baseline-utts 0 --threads 4)
  runs=("" "--tf32" "--full-cov" "--full-cov --tf32")
fi
for extra in "${runs[@]}"; do
  echo "== bench/ivector.py ${sizes[*]} $extra"
  # shellcheck disable=SC2086
  "$PY" bench/ivector.py "${sizes[@]}" $extra
done
