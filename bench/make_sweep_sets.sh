#!/usr/bin/env bash
# The mini_synth i-vector sets that the quality benchmarks and the GPU scripts read from .sweep/ (git-ignored):
#   .sweep/ms50   40 speakers x 50 utterances (the "2,000" set)    egs/mini_synth/run.sh --utts-per-speaker 50
#   .sweep/ms200  200 speakers x 20 utterances (the "4,000" set)   egs/mini_synth/run.sh --num-speakers 200
#   .sweep/ms800  40 speakers x 20 utterances (the recipe's own 800 set)
#   .sweep/ms125  40 speakers x 125 utterances (the "5,000" set)   egs/mini_synth/run.sh --utts-per-speaker 125
# Each runs the recipe's stages 0-3 into .sweep/NAME/work, copies ivectors_train.{npy,ids} and utt2spk to
# .sweep/NAME/ and removes work/ (~690 MB of audio and features for ms200; KEEP_WORK=1 keeps it), so that a set
# travels to the GPU machine whole (the device tool's carry: 64 MiB at most). A set already there is kept. On a
# 2-core AMD EPYC: ms50 3.8 min, ms200 5.5 min, ms125 6.3 min. Rebuilt so (2026-12-04; ms125 2026-12-05), k-means (one
# start, seeds 0-4) gives docs/cimc_tuning.md's numbers: ms50 0.823 / 0.928, ms200 0.594 / 0.840, ms125 0.835 / 0.943
# (ACC / NMI).
#   bash bench/make_sweep_sets.sh              # ms50 and ms200
#   SETS="ms200" bash bench/make_sweep_sets.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
for name in ${SETS:-ms50 ms200}; do
  case $name in
    ms50) opts=(--utts-per-speaker 50) ;;
    ms200) opts=(--num-speakers 200) ;;
    ms800) opts=() ;;
    ms125) opts=(--utts-per-speaker 125) ;;
    *) echo "$0: unknown set '$name' (ms50, ms200, ms800 or ms125)" >&2; exit 1 ;;
  esac
  dir=$root/.sweep/$name
  if [ -f "$dir/ivectors_train.npy" ] && [ -f "$dir/utt2spk" ]; then
    echo "$dir: already there"
    continue
  fi
  mkdir -p "$dir/work"
  egs/mini_synth/run.sh --stop-stage 3 ${opts[@]+"${opts[@]}"} --data "$dir/work/data" --exp "$dir/work/exp"
  cp "$dir/work/exp/ivector/ivectors_train.npy" "$dir/work/exp/ivector/ivectors_train.ids" \
    "$dir/work/data/kaldi/train/utt2spk" "$dir/"
  [ "${KEEP_WORK:-0}" = 1 ] || rm -rf "$dir/work"
  echo "$dir: $(wc -l < "$dir/ivectors_train.ids") i-vectors"
done
