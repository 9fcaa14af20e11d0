#!/usr/bin/env bash
# egs/mini_diar: speaker diarization of synthetic conversations, reusing the clustering stage, offline
# on a CPU. Speakers come from `cimc synth-corpus`; a development set (half of the test speakers) tunes
# the AHC threshold, the evaluation set (the other half) is scored.
#   0 corpus + dev/eval conversations (RTTM + Lhotse ground truth)
#   1 MFCC + energy VAD, speech activity (VAD or reference, conf/diar.yaml)
#   2 uniform sub-segments (1.5 s / 0.75 s) and their embeddings (ECAPA of stage 6, or i-vectors)
#   3 clustering per recording: AHC (threshold tuned on dev), spectral (eigengap count), CIMC
#   4 RTTM scoring: DER / JER table per method, with and without overlap, and a PNG timeline
# Usage: ./run.sh [--stage N] [--stop-stage N] [--embedding ecapa|ivector] [--sv-exp DIR] ...
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=4
nj=2
seed=1                   # not mini_synth's 0: other voices than its models were trained on
num_speakers=40          # synthetic training speakers (for the embedding models trained here)
utts_per_speaker=20
num_test_speakers=16     # conversation speakers: half for dev, half for eval
num_dev=4                # conversations
num_eval=8
embedding=ecapa          # ecapa | ivector
sv_exp=                  # stage-6 experiment (e.g. ../mini_synth/exp/sv/cimc); empty: train one here
ivector_dir=             # i-vector models (ubm/, extractor/); empty: train here. Sub-segment i-vectors go there.
methods="ahc spectral cimc"
ahc_thresholds=0.5,0.6,0.7,0.8,0.9,1.0,1.1,1.2
oracle_count=false       # true: every method gets the reference number of speakers
conf=conf
data=data
exp=exp

. ./path.sh
. ./cmd.sh
. utils/log.sh
. utils/parse_options.sh
require_no_spaces sv_exp ivector_dir conf data exp

sv_exp=${sv_exp:-$exp/sv}
ivector_dir=${ivector_dir:-$exp/ivector}
count_opts=()
if [ "$oracle_count" = true ]; then count_opts=(clustering.num_speakers=oracle); fi

if run_stage 0; then
  if [ ! -f $data/synth/manifests/.done ]; then
    log "Stage 0: synthesize $num_speakers training + $num_test_speakers conversation speakers"
    cimc synth-corpus --output-dir $data/synth --num-speakers $num_speakers \
      --utts-per-speaker $utts_per_speaker --num-test-speakers $num_test_speakers --seed $seed
    touch $data/synth/manifests/.done
  fi
  # dev and eval draw from disjoint halves of the test speakers
  for set in dev eval; do
    if [ ! -f $data/$set/.done ]; then
      # other seeds too, or eval would repeat dev's turn layout with other voices
      if [ $set = dev ]; then n=$num_dev; range="[0.0,0.5]"; s=$((seed + 100)); else n=$num_eval; range="[0.5,1.0]"; s=$((seed + 200)); fi
      log "Stage 0: $n $set conversations"
      cimc diar make-conversations --cuts $data/synth/manifests/test_cuts.jsonl.gz --output-dir $data/$set \
        --config $conf/conversations.yaml num_recordings=$n seed=$s "speaker_range=$range"
      touch $data/$set/.done
    fi
  done
fi

if run_stage 1; then
  log "Stage 1: MFCC + energy VAD, speech activity"
  for set in dev eval; do
    # Finished features with the same conf/mfcc.yaml are kept; with another, compute-feats stops.
    cimc compute-feats --config $conf/mfcc.yaml --cuts $data/$set/cuts.jsonl.gz --output-dir $data/feats \
      --name $set --nj $nj
    cimc diar speech-activity --cuts $data/feats/${set}_cuts.jsonl.gz --config $conf/diar.yaml \
      --output $exp/speech/$set/segments
  done
fi

if run_stage 2; then
  log "Stage 2: sub-segments and $embedding embeddings"
  for set in dev eval; do
    cimc diar subsegment --cuts $data/feats/${set}_cuts.jsonl.gz --segments $exp/speech/$set/segments \
      --config $conf/diar.yaml --output $exp/subseg/${set}_cuts.jsonl.gz
  done
  if [ $embedding = ecapa ]; then
    if [ ! -f $sv_exp/final.pt ]; then
      log "Stage 2: no ECAPA model in $sv_exp: training one on the synthetic training speakers ($conf/ecapa.yaml)"
      cimc sv train --config $conf/ecapa.yaml --cuts $data/synth/manifests/train_cuts.jsonl.gz --exp-dir $sv_exp
    fi
    for set in dev eval; do
      cimc sv extract --exp-dir $sv_exp --cuts $exp/subseg/${set}_cuts.jsonl.gz --output $exp/embed/$set
    done
  elif [ $embedding = ivector ]; then
    if [ ! -f $ivector_dir/extractor/.done ]; then
      log "Stage 2: no i-vector extractor in $ivector_dir: training one ($conf/ivector.yaml)"
      # Finished features with the same conf/mfcc.yaml are kept; with another, compute-feats stops.
      cimc compute-feats --config $conf/mfcc.yaml --cuts $data/synth/manifests/train_cuts.jsonl.gz \
        --output-dir $data/feats --name train --nj $nj
      for step in train-ubm train-extractor; do
        cimc ivector $step --config $conf/ivector.yaml --cuts $data/feats/train_cuts.jsonl.gz \
          --dir $ivector_dir --nj $nj --cmd "$train_cmd"
      done
    fi
    mkdir -p $exp/embed
    for set in dev eval; do
      cimc ivector extract --cuts $exp/subseg/${set}_cuts.jsonl.gz --dir $ivector_dir --name diar_$set \
        --nj $nj --cmd "$train_cmd" --no-kaldi --no-attach
      for ext in npy ids; do cp $ivector_dir/ivectors_diar_$set.$ext $exp/embed/$set.$ext; done
    done
  else
    echo "$0: unknown --embedding '$embedding' (ecapa | ivector)" >&2; exit 1
  fi
fi

if run_stage 3; then
  log "Stage 3: clustering per recording: $methods"
  for method in $methods; do
    overrides=("${count_opts[@]}")
    if [ $method = ahc ] && [ "$oracle_count" != true ]; then
      # the threshold that suits these embeddings: lowest DER on the dev conversations
      cimc diar tune --embeddings $exp/embed/dev --ref-rttm $data/dev/ref.rttm --method ahc \
        --values $ahc_thresholds --config $conf/diar.yaml --output-dir $exp/diar/tune_ahc
      overrides+=("$(cat $exp/diar/tune_ahc/best_override.txt)")
    fi
    cimc diar cluster --embeddings $exp/embed/eval --method $method --config $conf/diar.yaml \
      --output-dir $exp/diar/$method --ref-rttm $data/eval/ref.rttm "${overrides[@]}"
  done
fi

if run_stage 4; then
  log "Stage 4: DER / JER on the eval conversations (collar 0.25 s)"
  hyps=()
  for method in $methods; do hyps+=(--hyp $method=$exp/diar/$method/rttm); done
  cimc diar score --ref $data/eval/ref.rttm "${hyps[@]}" --output-dir $exp/diar/results
  log "Table: $exp/diar/results/results.txt; timelines: $exp/diar/results/timeline_*.png"
fi

log "Done (stages $stage to $stop_stage)"
