#!/usr/bin/env bash
# egs/mini_synth: the whole CIMC pipeline on a small multi-speaker corpus synthesized offline with
# libespeak-ng, in minutes on a CPU. Same stage numbers as egs/voxceleb:
#   0 synthesize corpus + manifests   1 MFCC + VAD        2 UBM + T-matrix    3 i-vectors + baseline EER
#   4 clustering (CIMC, k-means)      5 clustering metrics 6 ECAPA training    7 embeddings + EER table
# Usage: ./run.sh [--stage N] [--stop-stage N] [--nj N] [--num-speakers N] ...
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=7
nj=2
seed=0
num_speakers=40          # training speakers (test speakers are extra, disjoint)
utts_per_speaker=20
num_test_speakers=10
num_clusters=""          # C for stage 4; empty: --num-speakers, the true count (the paper's C ~ #speakers)
cluster_methods="cimc kmeans"  # stage 4 runs each ($conf/<method>.yaml); stage 6 trains on each
ablation=false           # stage 5 also runs the Table I ablation ($conf/ablation.yaml)
cimc_overrides=""        # stage 4 key=value overrides of $conf/cimc.yaml, e.g. "min_steps=200" (CI)
ecapa_overrides=""       # stage 6 key=value overrides of $conf/ecapa.yaml, e.g. "train.epochs=1" (CI)
mean_utts=200            # stage 7: training utterances embedded for the mean subtracted before scoring
conf=conf                # folder of the YAML configs (tests point it at tiny ones)
data=data
exp=exp

. ./path.sh
. ./cmd.sh
. utils/log.sh
. utils/parse_options.sh
require_no_spaces conf data exp
num_clusters=${num_clusters:-$num_speakers}

if run_stage 0 && [ ! -f $data/manifests/.done ]; then
  log "Stage 0: synthesize the corpus and write Lhotse manifests, a Kaldi data dir and trials"
  cimc synth-corpus --output-dir $data --num-speakers $num_speakers \
    --utts-per-speaker $utts_per_speaker --num-test-speakers $num_test_speakers --seed $seed --nj $nj
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
  log "Stage 4: cluster the training i-vectors into $num_clusters pseudo-speakers ($cluster_methods)"
  # Each method writes $exp/cluster/<method>/{labels.npy,labels.txt,cuts.jsonl.gz,config.yaml}, CIMC and IMSAT
  # also training.png (their curves); a finished folder (.done) is skipped when asked the same (another C or
  # config is refused, by field). --ref only lets CIMC and IMSAT log and plot ACC/NMI per epoch; nothing
  # trains on it.
  read -r -a cimc_override_list <<< "$cimc_overrides"  # split on spaces, never glob-expanded ("losses=[imsat]")
  for method in $cluster_methods; do
    overrides=()
    if [ $method = cimc ]; then
      for o in ${cimc_override_list[@]+"${cimc_override_list[@]}"}; do overrides+=(--override "$o"); done
    fi
    cimc cluster --input $exp/ivector/ivectors_train.npy --method $method --num-clusters $num_clusters \
      --config $conf/$method.yaml --cuts $data/manifests/train_cuts.jsonl.gz --ref $data/kaldi/train/utt2spk \
      --exclude $exp/ivector/short_train.txt --output $exp/cluster/$method ${overrides[@]+"${overrides[@]}"}
  done
fi

if run_stage 5; then
  log "Stage 5: clustering metrics against the true speakers ($cluster_methods side by side)"
  results=()
  for method in $cluster_methods; do
    cimc cluster-metrics --ref $data/kaldi/train/utt2spk --hyp $exp/cluster/$method/labels.txt \
      --features $exp/ivector/ivectors_train.npy --output $exp/cluster/$method/metrics.json > /dev/null
    results+=("$method=$exp/cluster/$method/metrics.json")
  done
  cimc cluster-table "${results[@]}" --output $exp/cluster/results.md
  if $ablation; then
    log "Stage 5: Table I ablation ($conf/ablation.yaml) -> $exp/cluster/ablation/table.md"
    cimc cluster-ablation --input $exp/ivector/ivectors_train.npy --ref $data/kaldi/train/utt2spk \
      --spec $conf/ablation.yaml --exclude $exp/ivector/short_train.txt --output $exp/cluster/ablation
  fi
fi

if run_stage 6; then
  log "Stage 6: ECAPA-TDNN ($conf/ecapa.yaml) on true labels (upper bound) and on each method's pseudo-labels"
  # One system per label source present: the true speakers, then $exp/cluster/<method>/cuts.jsonl.gz.
  # Cost: the small ECAPA of conf/ecapa.yaml trains one system in 1-2 min on 2 CPU cores. A finished
  # system (.done) is skipped; an interrupted one resumes from its last epoch checkpoint.
  read -r -a ecapa_override_list <<< "$ecapa_overrides"  # split on spaces, never glob-expanded
  for name in true $cluster_methods; do
    cuts=$exp/cluster/$name/cuts.jsonl.gz
    [ $name = true ] && cuts=$data/manifests/train_cuts.jsonl.gz
    if [ ! -f $cuts ]; then log "Stage 6: no $cuts, no $name system"; continue; fi
    cimc sv train --config $conf/ecapa.yaml --cuts $cuts --exp-dir $exp/sv/$name \
      ${ecapa_override_list[@]+"${ecapa_override_list[@]}"}
  done
fi

if run_stage 7; then
  log "Stage 7: whole-utterance embeddings, cosine scoring, EER / minDCF side by side"
  systems=()
  [ -f $exp/ivector/results.txt ] && systems+=(--system "i-vector=$exp/ivector/results.txt")
  read -r -a ecapa_override_list <<< "$ecapa_overrides"  # split on spaces, never glob-expanded
  for name in true $cluster_methods; do
    sv=$exp/sv/$name
    [ -f $sv/.done ] || continue
    [ -f $sv/embeddings_test.npy ] || cimc sv extract --exp-dir $sv \
      --cuts $data/manifests/test_cuts.jsonl.gz --output $sv/embeddings_test
    [ -f $sv/embeddings_train.npy ] || cimc sv extract --exp-dir $sv \
      --cuts $data/manifests/train_cuts.jsonl.gz --output $sv/embeddings_train --max-utts $mean_utts
    cimc sv score --config $sv/config.yaml --trials $data/trials.txt --vectors $sv/embeddings_test \
      --train-vectors $sv/embeddings_train --output-dir $sv/scores --name "ECAPA/$name" > /dev/null
    systems+=(--system "ECAPA, $name labels=$sv/scores/results.json")
  done
  [ ${#systems[@]} -gt 0 ] || { echo "stage 7: no trained system under $exp/sv and no $exp/ivector/results.txt" >&2; exit 1; }
  cimc sv table "${systems[@]}" --output $exp/sv/results.txt
fi

log "Done (stages $stage to $stop_stage)"
