#!/usr/bin/env bash
# The paper's training regime scaled to a CPU: what a GPU is needed for at 1.09M points, at 50,000.
# Kept from the paper's VoxCeleb2 run: 2 points a cluster per batch (B 512 for C 250; the paper's 10,240 for
# 5,000), ~170 utterances a speaker (300 speakers; VoxCeleb2 ~182), clusters / speakers 0.83, 150 epochs
# (97 steps each: 14,550 steps, the paper's ~15,900). Smaller: d 100, S 600. The set is isotropic synthetic
# (bench/cluster_speed.py), noise 1.55: about as hard by neighbours as the 1.09M GPU set at noise 2.2.
# One whole run (k-NN radii, training, prediction, ACC / NMI against the speakers) per ';'-separated row of
# ROWS (KEY=VALUE pairs within a row split by spaces, as gpu_cluster.sh's ALSO_SET; "defaults" = none; "kmeans":
# one-start k-means on the same set instead of CIMC, the reference),
# JOBS at a time, 1 torch thread each: ~17 min a CIMC run, ~12 min IMSAT, on a 2-core CPU.
#   bash bench/cpu_paper_proxy.sh
#   ROWS='defaults; entropy_warmup=0; losses=[imsat]; mixup_weight=0.3' JOBS=2 bash bench/cpu_paper_proxy.sh
#   SIZE=tiny bash bench/cpu_paper_proxy.sh    # seconds, to check the script works
#   SIZE=mid bash bench/cpu_paper_proxy.sh     # a mid-length run shaped like VoxCeleb1-dev (148,642 utterances,
#       1,211 speakers: ~123 a speaker, 14 batches of 10,240, 2,100 steps, ~10 points a cluster per batch): 15,000
#       points, 150 speakers, C 125, B 1,024 (14 a batch: 2,100 steps), ~8 points a cluster per batch; ~5 min a run.
#       With FIT_TO=.sweep/ms200, WITHIN_SCALE=1.5 makes it about as hard by neighbours as the full size at 1.45.
#       min_batches_per_epoch=26 in each row cuts it into 26 batches of 576: 3,900 steps, the defaults' run for
#       ~270,000 points, the long end of the mid-length runs (bench/results/cpu_mid_proxy_3900.md).
#   FIT_TO=.sweep/ms200 WITHIN_SCALE=1.45 bash bench/cpu_paper_proxy.sh   # the same sizes drawn from a Gaussian
#       with the between- and within-speaker covariances of DIR's i-vectors (DIR/ivectors_train.npy, DIR/utt2spk)
#       instead of isotropic noise, the within-speaker spread times WITHIN_SCALE (default 1); d is DIR's. For
#       mini_synth's 200 x 20 set, 1.45 makes 300 speakers as hard by neighbours as the source (nearest
#       neighbour the same speaker 0.810, of the 10 nearest 0.687; the source 0.800, 0.623; at 1: 1.000, 0.994).
#       .sweep/ms200: `SETS=ms200 bash bench/make_sweep_sets.sh` (mini_synth stages 0-3 with 200 speakers)
# Ends with the table of the runs (OUT/proxy_runs.jsonl, OUT defaults to /tmp/cpu_paper_proxy).
# FIT_TO's draw depends on the BLAS thread count (LAPACK rounding): the runs in bench/results left OMP_NUM_THREADS
# unset on a 2-core CPU; OMP_NUM_THREADS=1 draws another set. The machine counts too: two 2-core AMD EPYC machines,
# each with .sweep/ms200 rebuilt, drew the mid set as 86702160971cf57d and 5219f701a0a45374. Runs pair only on the same
# set: each summary line records its data_digest.
set -euo pipefail
cd "$(dirname "$0")/.."
case ${SIZE:-full} in
  tiny) size=(--num-items 2000 --speakers 40 --dim 20 --hidden 32 --batch 64 --clusters 32 --epochs 2 --min-steps 0) ;;
  mid) size=(--num-items 15000 --speakers 150 --dim 100 --noise 1.55 --hidden 600 --batch 1024 --clusters 125) ;;
  full) size=(--num-items 50000 --speakers 300 --dim 100 --noise 1.55 --hidden 600 --batch 512 --clusters 250) ;;
  *) echo "SIZE must be tiny, mid or full, not '$SIZE'" >&2; exit 2 ;;
esac
source bench/python_env.sh
OUT=${OUT:-/tmp/cpu_paper_proxy}
RUNS=$OUT/proxy_runs.jsonl
mkdir -p "$OUT"
rm -f "$RUNS"
[ -z "${FIT_TO:-}" ] || size+=(--fit-to "$FIT_TO" --within-scale "${WITHIN_SCALE:-1}")
IFS=';' read -ra rows <<< "${ROWS:-defaults; entropy_warmup=0; losses=[imsat]}"
pids=()
for row in "${rows[@]}"; do
  read -ra pairs <<< "$row"  # split on spaces, no globbing: 'losses=[imsat]' is not a file pattern
  sets=()
  for kv in "${pairs[@]}"; do
    case $kv in defaults) ;; kmeans) sets+=(--kmeans) ;; *) sets+=(--set "$kv") ;; esac
  done
  name=$(echo "$row" | tr -c 'A-Za-z0-9_.=-' '_' | sed 's/^_*//; s/_*$//')
  $PY bench/cluster_speed.py --full-run "${size[@]}" --threads 1 --device cpu --summary "$RUNS" \
    ${sets[@]+"${sets[@]}"} > "$OUT/${name:-defaults}.log" 2>&1 &
  pids+=($!)
  while [ "$(jobs -rp | wc -l)" -ge "${JOBS:-2}" ]; do sleep 2; done
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
[ -s "$RUNS" ] && $PY bench/cluster_speed.py --summary-table "$RUNS"
[ "$status" -eq 0 ] || { echo "a run failed: see the logs in $OUT" >&2; exit 1; }
