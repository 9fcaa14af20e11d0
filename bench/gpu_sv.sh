#!/usr/bin/env bash
# GPU speed of stages 6-7 at the paper's batch size (200) with ECAPA channels 512 and 1024: training
# samples/s (model alone vs full data pipeline with DataLoader workers, fp32 and bf16 autocast) and
# extraction real-time factor. Prints one bench/sv.py table per setting.
#   bench/gpu_sv.sh                   # on a GPU machine
#   SV_BENCH_SIZE=tiny bench/gpu_sv.sh  # proves the script on a CPU in under a minute (tiny sizes)
# The GPU machine lacks soundfile, lhotse and kaldi-native-fbank (the first try, 2026-12-04, stopped there): run
# `bash bench/device_wheels.sh` here first and carry [".whl"]; this script installs them into /tmp/site when
# they cannot be imported.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/python_env.sh
needs='import soundfile, lhotse, kaldi_native_fbank'
if ! "$PY" -c "$needs" 2>/dev/null; then
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "$0: $PY cannot import soundfile, lhotse or kaldi_native_fbank and there is no .whl/ (bash bench/device_wheels.sh)" >&2
    exit 1
  fi
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
  export PYTHONPATH=/tmp/site:$PYTHONPATH
  "$PY" -c "$needs"
fi

if [ "${SV_BENCH_SIZE:-full}" = tiny ]; then
  device=cpu; batch=4; steps=1; workers=0; channels="16 32"; amp_modes="fp32"; extra="--speakers 2 --extract-utts 1 --extract-seconds 2"
else
  device=cuda; batch=200; steps=${SV_BENCH_STEPS:-10}; workers=${SV_BENCH_WORKERS:-12}; channels="512 1024"; amp_modes="fp32 bf16"
  extra="--speakers 50 --extract-utts 20 --extract-seconds 8"
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA device visible to torch')"
fi

for c in $channels; do
  for mode in $amp_modes; do
    echo "== ECAPA channels $c, batch $batch, $mode, device $device =="
    amp=""; [ $mode = bf16 ] && amp="--amp"
    "$PY" bench/sv.py --device $device --channels $c --batch-size $batch --steps $steps \
      --workers $workers --threads 1 $amp $extra
  done
done
