#!/usr/bin/env bash
# egs/voxceleb: the paper's setting. Train on VoxCeleb2-dev (1,092,009 utterances, 5,994 speakers,
# labels unused), test on the VoxCeleb1-O trials.
#   0 Lhotse manifests + trials     1 MFCC + VAD          2 UBM + T-matrix    3 i-vectors + baseline EER
#   4 CIMC pseudo-labels            5 clustering metrics  6 ECAPA training    7 embeddings + EER / minDCF
# Usage: ./run.sh --voxceleb1 /corpora/VoxCeleb1 --voxceleb2 /corpora/VoxCeleb2 [--stage N] [--stop-stage N]
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=7
nj=8
voxceleb1=               # folder with wav/idXXXXX/... (VoxCeleb1 test part at least)
voxceleb2=               # folder with dev/aac/idXXXXX/... (m4a) or dev/wav after conversion
trials=cleaned           # VoxCeleb1-O list: original (37,720 trials) or cleaned (37,611)
trials_file=             # local copy of that list (offline); else found in $voxceleb1 or downloaded
convert_m4a=false        # true: first convert $voxceleb2/dev/aac/*.m4a to dev/wav once (needs ffmpeg)
num_clusters=5000        # C, the paper's default (10000 for the Table I rows)
ablation=false           # stage 5 also runs the Table I ablation ($conf/ablation.yaml; many CIMC trainings)
conf=conf                # folder of the YAML configs (tests point it at tiny ones)
data=data
exp=exp

. ./path.sh
. ./cmd.sh
. utils/log.sh
. utils/parse_options.sh

if run_stage 0 && [ ! -f $data/manifests/.done ]; then
  if $convert_m4a; then
    # One-time decode of ~1.09 M m4a files (~9 core-hours); reruns skip finished files.
    log "Stage 0: converting $voxceleb2/dev/aac (m4a) to $voxceleb2/dev/wav"
    cimc convert-m4a --input-dir "$voxceleb2/dev/aac" --output-dir "$voxceleb2/dev/wav" --nj $nj
  fi
  log "Stage 0: Lhotse manifests for VoxCeleb2-dev (train) and VoxCeleb1-O ($trials trials)"
  cimc prepare-voxceleb --voxceleb1 "$voxceleb1" --voxceleb2 "$voxceleb2" --trials $trials \
    ${trials_file:+--trials-file "$trials_file"} --output-dir $data --nj $nj
  touch $data/manifests/.done
fi

if run_stage 1; then
  log "Stage 1: MFCC (conf/mfcc.yaml) with energy VAD"
  for part in train test; do
    if [ ! -f $data/feats/mfcc/.$part.done ]; then
      cimc compute-feats --config $conf/mfcc.yaml --cuts $data/manifests/${part}_cuts.jsonl.gz \
        --output-dir $data/feats/mfcc --name $part --nj $nj
      touch $data/feats/mfcc/.$part.done
    fi
  done
fi

if run_stage 2; then
  log "Stage 2: UBM and total-variability matrix ($conf/ivector.yaml), $nj jobs via $train_cmd"
  # Each EM iteration splits the cuts over $nj jobs and merges their statistics; ubm/ and extractor/
  # keep every iteration's model and a .done marker, so a rerun resumes where it stopped.
  for step in train-ubm train-extractor; do
    cimc ivector $step --config $conf/ivector.yaml --cuts $data/feats/mfcc/train_cuts.jsonl.gz \
      --dir $exp/ivector --nj $nj --cmd "$train_cmd"
  done
fi

if run_stage 3; then
  log "Stage 3: i-vectors for train and test, cosine / LDA + PLDA baseline EER"
  for part in train test; do
    if [ ! -f $exp/ivector/.ivectors_$part.done ]; then
      cimc ivector extract --cuts $data/feats/mfcc/${part}_cuts.jsonl.gz --dir $exp/ivector --name $part \
        --nj $nj --cmd "$train_cmd"
      touch $exp/ivector/.ivectors_$part.done
    fi
  done
  cimc ivector score --config $conf/ivector.yaml --train $exp/ivector/ivectors_train.npy \
    --test $exp/ivector/ivectors_test.npy --trials $data/trials.txt \
    --train-cuts $data/manifests/train_cuts.jsonl.gz --exclude $exp/ivector/short_train.txt \
    --output-dir $exp/ivector
fi

if run_stage 4; then
  log "Stage 4: CIMC pseudo-labels, C = $num_clusters ($conf/cimc.yaml)"
  # The paper's run (1.09M i-vectors, 150 epochs) takes minutes on one GPU and days on CPUs. CIMC
  # checkpoints into $exp/cluster/cimc/checkpoint and resumes; a finished folder (.done) is skipped.
  # Writes labels.npy, labels.txt, cuts.jsonl.gz (speaker = pseudo-label) and config.yaml.
  cimc cluster --input $exp/ivector/ivectors_train.npy --method cimc --num-clusters $num_clusters \
    --config $conf/cimc.yaml --cuts $data/manifests/train_cuts.jsonl.gz --output $exp/cluster/cimc
fi

if run_stage 5; then
  log "Stage 5: clustering metrics against the true speakers"
  # Label metrics are exact; silhouette is averaged over 20,000 sampled utterances at this size.
  cimc cluster-metrics --ref $data/kaldi/train/utt2spk --hyp $exp/cluster/cimc/labels.txt \
    --features $exp/ivector/ivectors_train.npy --name "cimc (C=$num_clusters)" --output $exp/cluster/cimc/metrics.json
  if $ablation; then
    log "Stage 5: Table I ablation ($conf/ablation.yaml) -> $exp/cluster/ablation/table.md"
    cimc cluster-ablation --input $exp/ivector/ivectors_train.npy --ref $data/kaldi/train/utt2spk \
      --spec $conf/ablation.yaml --output $exp/cluster/ablation
  fi
fi

if run_stage 6; then
  log "Stage 6: ECAPA-TDNN on CIMC pseudo-labels (conf/ecapa.yaml)"
  echo "stage 6: not implemented yet" >&2; exit 1
fi

if run_stage 7; then
  log "Stage 7: embeddings, cosine scoring, EER / minDCF"
  echo "stage 7: not implemented yet" >&2; exit 1
fi

log "Done (stages $stage to $stop_stage)"
