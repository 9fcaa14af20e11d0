#!/usr/bin/env bash
# GPU screen of CIMC/IMSAT config changes (one prepared script; run on the GPU machine).
# Many small fits (digits, the mini_synth i-vectors) share the card, JOBS at a time, seed by seed, until
# BUDGET seconds have passed; then CIMC's step time at C 10,000 with the compiled loss math.
#   bash bench/gpu_cluster_quality.sh                  # GPU machine: ~6 min
#   SIZE=tiny bash bench/gpu_cluster_quality.sh        # a minute on a CPU, to check the script works
# SETS: folders each holding a mini_synth training set's ivectors_train.npy/.ids and utt2spk (default
# .sweep/*/, made by bench/make_sweep_sets.sh and carried to the GPU machine); VARIANTS: the rows (default
# bench/sweeps/cimc_screen.yaml);
# UNBALANCED=MIN,MAX adds each set cut to MIN..MAX utterances per speaker, DRAWS='0 1 2' the seeds of the cut
# (default 0); BAR: chains of row names to check seed by seed, separated by ';' (default cimc>=imsat>kmeans). A
# screen on unequal speakers (mixup's weight; run on the CPU since, docs/cimc_tuning.md, "Mixup lighter or mixing
# less on unequal speakers"):
#   SETS='.sweep/ms50/ .sweep/ms125/' UNBALANCED=8,50 DRAWS='0 1 2' VARIANTS=bench/sweeps/cimc_mixup.yaml \
#     bash bench/gpu_cluster_quality.sh
# Output in $OUT (or /tmp); cluster_screen_fits.jsonl holds each fit as it lands, so a run cut short still
# brings its fits back; RESUME=that/file.jsonl (a copy in the tree) starts from those fits instead of redoing them.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/python_env.sh
export OMP_NUM_THREADS=1
DIR=${OUT:-/tmp}
mkdir -p "$DIR"
DATA=()
for dir in ${SETS:-.sweep/*/}; do
  if [ ! -f "$dir/ivectors_train.npy" ]; then
    echo "$0: no i-vector set in $dir (make .sweep/ms50 and ms200 with bench/make_sweep_sets.sh)" >&2; exit 1
  fi
  DATA+=(--ivectors "$dir/ivectors_train.npy" --utt2spk "$dir/utt2spk")
done
if [ -n "${UNBALANCED:-}" ]; then DATA+=(--unbalanced "$UNBALANCED"); fi
for draw in ${DRAWS:-}; do DATA+=(--unbalanced-draw "$draw"); done
if [ -n "${BAR:-}" ]; then  # else bench/cluster_quality.py's own default chain
  IFS=';' read -ra CHAINS <<<"$BAR"
  for chain in "${CHAINS[@]}"; do DATA+=(--bar "$chain"); done
fi
VARIANTS=${VARIANTS:-bench/sweeps/cimc_screen.yaml}
FITS=$DIR/cluster_screen_fits.jsonl
if [ -n "${RESUME:-}" ]; then
  cp "$RESUME" "$FITS.part" && mv "$FITS.part" "$FITS"
else
  rm -f "$FITS"  # an earlier run's fits in the same folder (a tiny check's, say) are not this run's
fi
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo "no GPU visible: running on CPU"
  if [ "${SIZE:-full}" = tiny ]; then
    $PY bench/cluster_quality.py --variants "$VARIANTS" --seeds 1 --jobs 2 --time-budget 20 \
      "${DATA[@]}" --set hidden_dim=16 --set epochs=2 --set min_steps=10 \
      --set compile_losses=never --records "$FITS" --output "$DIR/cluster_screen.md"
    $PY bench/cluster_speed.py --batch 512 --dim 40 --hidden 64 --clusters 100 --steps 2 --warmup 1
  else
    # fp32 as on the CPU bench; eager loss math (a compile per worker process would cost more than it saves)
    $PY bench/cluster_quality.py --variants "$VARIANTS" --seeds "${SEEDS:-10}" --jobs "${JOBS:-14}" \
      --time-budget "${BUDGET:-300}" "${DATA[@]}" --records "$FITS" \
      --set device=cuda --set precision=fp32 --set compile_losses=never --output "$DIR/cluster_screen.md"
    if [ -n "${SPEED_CLUSTERS-10000}" ]; then  # SPEED_CLUSTERS= skips the step timing
      $PY bench/cluster_speed.py --steps 20 --warmup 3 --clusters ${SPEED_CLUSTERS-10000}
    fi
  fi
} 2>&1 | tee "$DIR/gpu_cluster_quality.log"
