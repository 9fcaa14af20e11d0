#!/usr/bin/env bash
# egs/voxceleb: the paper's setting. Train on VoxCeleb2-dev (1,092,009 utterances, 5,994 speakers,
# labels unused), test on the VoxCeleb1-O trials.
#   0 Lhotse manifests + trials     1 MFCC + VAD          2 UBM + T-matrix    3 i-vectors + baseline EER
#   4 CIMC pseudo-labels (+ baselines) 5 clustering metrics 6 ECAPA training  7 embeddings + EER / minDCF
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
num_clusters=5000        # C, the paper's default (the Table I ablation gives each row its own: conf/ablation.yaml)
cluster_methods="cimc"   # stage 4 runs each ($conf/<method>.yaml), e.g. "cimc kmeans ahc" for the baselines
ablation=false           # stage 5 also runs the Table I ablation ($conf/ablation.yaml; many CIMC trainings)
sv_labels="cimc"         # stage 6 label sources: methods of stage 4 ($exp/cluster/<method>) and/or true (supervised)
ecapa_conf=ecapa.yaml    # or ecapa_ocsoftmax.yaml (Table II's OC-softmax system)
ecapa_overrides=""       # stage 6 key=value overrides, e.g. "train.epochs=10 model.channels=1024"
ngpu=1                   # stage 6: >1 launches torchrun with one DDP process per GPU
musan_cuts=              # optional Lhotse CutSet of MUSAN noises (else synthetic noise)
rir_cuts=                # optional Lhotse CutSet of RIRS_NOISES impulse responses (else simulated RIRs)
mean_utts=20000          # stage 7: training utterances embedded for mean subtraction / s-norm cohort
conf=conf                # folder of the YAML configs (tests point it at tiny ones)
data=data
exp=exp

. ./path.sh
. ./cmd.sh
. utils/log.sh
. utils/parse_options.sh
require_no_spaces voxceleb1 voxceleb2 trials_file musan_cuts rir_cuts conf data exp

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
    # Finished features with the same conf/mfcc.yaml are kept; with another, compute-feats stops.
    cimc compute-feats --config $conf/mfcc.yaml --cuts $data/manifests/${part}_cuts.jsonl.gz \
      --output-dir $data/feats/mfcc --name $part --nj $nj
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
    # Skipped only when the marker is newer than the extractor: a retrained T-matrix re-extracts.
    if [ ! $exp/ivector/.ivectors_$part.done -nt $exp/ivector/extractor/final.pt ]; then
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
  log "Stage 4: pseudo-labels, C = $num_clusters ($cluster_methods)"
  # The paper's run (1.09M i-vectors, 150 epochs) takes minutes on one GPU and days on CPUs. CIMC
  # checkpoints into $exp/cluster/cimc/checkpoint and resumes; a finished folder (.done) is skipped when
  # asked the same (another C or config is refused, by field).
  # Each method writes labels.npy, labels.txt, cuts.jsonl.gz (speaker = pseudo-label) and config.yaml; CIMC
  # and IMSAT also training.png (loss terms, entropies and clusters used per epoch).
  # Utterances too short for an i-vector (stage 3's list) are left out: no pseudo-label, no training cut.
  # The baselines at this size: README, "The stage 4 baselines at VoxCeleb2 size" (GPU k-means / GMM, k-NN AHC).
  for method in $cluster_methods; do
    cimc cluster --input $exp/ivector/ivectors_train.npy --method $method --num-clusters $num_clusters \
      --config $conf/$method.yaml --cuts $data/manifests/train_cuts.jsonl.gz --exclude $exp/ivector/short_train.txt \
      --output $exp/cluster/$method
  done
fi

if run_stage 5; then
  log "Stage 5: clustering metrics against the true speakers"
  # Label metrics are exact; silhouette is averaged over 20,000 sampled utterances at this size.
  results=()
  for method in $cluster_methods; do
    cimc cluster-metrics --ref $data/kaldi/train/utt2spk --hyp $exp/cluster/$method/labels.txt \
      --features $exp/ivector/ivectors_train.npy --output $exp/cluster/$method/metrics.json > /dev/null
    results+=("$method (C=$num_clusters)=$exp/cluster/$method/metrics.json")
  done
  cimc cluster-table "${results[@]}" --output $exp/cluster/results.md
  if $ablation; then
    log "Stage 5: Table I ablation ($conf/ablation.yaml) -> $exp/cluster/ablation/table.md"
    cimc cluster-ablation --input $exp/ivector/ivectors_train.npy --ref $data/kaldi/train/utt2spk \
      --spec $conf/ablation.yaml --exclude $exp/ivector/short_train.txt --output $exp/cluster/ablation
  fi
fi

if run_stage 6; then
  log "Stage 6: ECAPA-TDNN ($conf/$ecapa_conf) on labels: $sv_labels"
  # Cost: see conf/ecapa.yaml (days on one GPU at the paper's size). Checkpoints every epoch into
  # $exp/sv/<labels>/checkpoints; a rerun resumes, a finished system (.done) is skipped.
  launcher="cimc"
  [ $ngpu -gt 1 ] && launcher="torchrun --standalone --nproc_per_node $ngpu -m cimc.cli"
  read -r -a ecapa_override_list <<< "$ecapa_overrides"  # split on spaces, never glob-expanded
  for name in $sv_labels; do
    cuts=$exp/cluster/$name/cuts.jsonl.gz
    [ $name = true ] && cuts=$data/manifests/train_cuts.jsonl.gz
    $launcher sv train --config $conf/$ecapa_conf --cuts $cuts --exp-dir $exp/sv/$name \
      ${musan_cuts:+augment.noise_cuts=$musan_cuts} ${rir_cuts:+augment.rir_cuts=$rir_cuts} \
      ${ecapa_override_list[@]+"${ecapa_override_list[@]}"}
  done
fi

if run_stage 7; then
  log "Stage 7: whole-utterance embeddings, cosine scoring, EER / minDCF at p = 0.01 and 0.05"
  systems=()
  [ -f $exp/ivector/results.txt ] && systems+=(--system "i-vector=$exp/ivector/results.txt")
  for name in $sv_labels; do
    sv=$exp/sv/$name
    [ -f $sv/embeddings_test.npy ] || cimc sv extract --exp-dir $sv \
      --cuts $data/manifests/test_cuts.jsonl.gz --output $sv/embeddings_test
    [ -f $sv/embeddings_train.npy ] || cimc sv extract --exp-dir $sv \
      --cuts $data/manifests/train_cuts.jsonl.gz --output $sv/embeddings_train --max-utts $mean_utts
    cimc sv score --config $sv/config.yaml --trials $data/trials.txt --vectors $sv/embeddings_test \
      --train-vectors $sv/embeddings_train --output-dir $sv/scores --name "ECAPA/$name" > /dev/null
    systems+=(--system "ECAPA, $name labels=$sv/scores/results.json")
  done
  cimc sv table "${systems[@]}" --output $exp/sv/results.txt
fi

log "Done (stages $stage to $stop_stage)"
