#!/usr/bin/env bash
# egs/voxconverse: speaker diarization of VoxConverse with the clustering stage of this toolkit and the
# embeddings of egs/voxceleb (its stage-6 ECAPA-TDNN, or its i-vectors). The dev part tunes the AHC
# threshold; the test part is scored with the standard 0.25 s collar, with and without overlap.
#   0 Lhotse manifests + reference RTTMs (lhotse.recipes.prepare_voxconverse on a local copy)
#   1 MFCC + energy VAD, speech activity (VAD or reference, conf/diar.yaml)
#   2 uniform sub-segments (1.5 s / 0.75 s) and their embeddings
#   3 clustering per recording: AHC (threshold tuned on dev), spectral (eigengap count), CIMC
#   4 DER / JER table per method and a PNG timeline
# Usage: ./run.sh --voxconverse /corpora/voxconverse [--sv-exp ../voxceleb/exp/sv/cimc] [--stage N] ...
# The corpus folder holds dev/<id>.wav + dev/<id>.rttm and test/<id>.wav + test/<id>.rttm
# (`lhotse download voxconverse` leaves exactly that).
set -euo pipefail
cd "$(dirname "$0")"

stage=0
stop_stage=4
nj=8
voxconverse=             # local copy of the corpus
embedding=ecapa          # ecapa | ivector
sv_exp=../voxceleb/exp/sv/cimc    # stage-6 ECAPA experiment (CIMC pseudo-labels); or .../sv/true
ivector_dir=../voxceleb/exp/ivector  # i-vector models; sub-segment i-vectors are written there too
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
require_no_spaces voxconverse sv_exp ivector_dir conf data exp

count_opts=()
if [ "$oracle_count" = true ]; then count_opts=(clustering.num_speakers=oracle); fi

if run_stage 0 && [ ! -f $data/manifests/.done ]; then
  [ -n "$voxconverse" ] || { echo "$0: give the corpus folder with --voxconverse DIR" >&2; exit 1; }
  log "Stage 0: VoxConverse manifests and reference RTTMs from $voxconverse"
  cimc diar prepare-voxconverse --corpus-dir "$voxconverse" --output-dir $data/manifests
  touch $data/manifests/.done
fi

if run_stage 1; then
  log "Stage 1: MFCC + energy VAD, speech activity"
  for part in dev test; do
    # Finished features with the same conf/mfcc.yaml are kept; with another, compute-feats stops.
    cimc compute-feats --config $conf/mfcc.yaml --cuts $data/manifests/${part}_cuts.jsonl.gz \
      --output-dir $data/feats --name $part --nj $nj
    cimc diar speech-activity --cuts $data/feats/${part}_cuts.jsonl.gz --config $conf/diar.yaml \
      --output $exp/speech/$part/segments
  done
fi

if run_stage 2; then
  log "Stage 2: sub-segments and $embedding embeddings"
  for part in dev test; do
    cimc diar subsegment --cuts $data/feats/${part}_cuts.jsonl.gz --segments $exp/speech/$part/segments \
      --config $conf/diar.yaml --output $exp/subseg/${part}_cuts.jsonl.gz
    mkdir -p $exp/embed
    if [ $embedding = ecapa ]; then
      [ -f $sv_exp/final.pt ] || { echo "$0: no ECAPA model $sv_exp/final.pt (run egs/voxceleb stage 6)" >&2; exit 1; }
      cimc sv extract --exp-dir $sv_exp --cuts $exp/subseg/${part}_cuts.jsonl.gz --output $exp/embed/$part
    elif [ $embedding = ivector ]; then
      [ -f $ivector_dir/extractor/.done ] || { echo "$0: no i-vector extractor in $ivector_dir (egs/voxceleb stage 2)" >&2; exit 1; }
      cimc ivector extract --cuts $exp/subseg/${part}_cuts.jsonl.gz --dir $ivector_dir --name voxconverse_$part \
        --nj $nj --cmd "$train_cmd" --no-kaldi --no-attach
      for ext in npy ids; do cp $ivector_dir/ivectors_voxconverse_$part.$ext $exp/embed/$part.$ext; done
    else
      echo "$0: unknown --embedding '$embedding' (ecapa | ivector)" >&2; exit 1
    fi
  done
fi

if run_stage 3; then
  log "Stage 3: clustering per recording: $methods"
  for method in $methods; do
    overrides=("${count_opts[@]}")
    if [ $method = ahc ] && [ "$oracle_count" != true ]; then
      cimc diar tune --embeddings $exp/embed/dev --ref-rttm $data/manifests/dev_ref.rttm --method ahc \
        --values $ahc_thresholds --config $conf/diar.yaml --output-dir $exp/diar/tune_ahc
      overrides+=("$(cat $exp/diar/tune_ahc/best_override.txt)")
    fi
    cimc diar cluster --embeddings $exp/embed/test --method $method --config $conf/diar.yaml \
      --output-dir $exp/diar/$method --ref-rttm $data/manifests/test_ref.rttm "${overrides[@]}"
  done
fi

if run_stage 4; then
  log "Stage 4: DER / JER on the test part (collar 0.25 s)"
  hyps=()
  for method in $methods; do hyps+=(--hyp $method=$exp/diar/$method/rttm); done
  cimc diar score --ref $data/manifests/test_ref.rttm "${hyps[@]}" --output-dir $exp/diar/results
  log "Table: $exp/diar/results/results.txt; timelines: $exp/diar/results/timeline_*.png"
fi

log "Done (stages $stage to $stop_stage)"
