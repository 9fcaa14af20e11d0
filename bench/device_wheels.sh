#!/usr/bin/env bash
# Wheels of the packages bench/gpu_sv.sh needs that the GPU machine's image lacks (it has torch, numpy, scipy,
# scikit-learn, matplotlib, PyYAML, click, tqdm, tabulate, toolz, sortedcontainers; no package index is reachable
# there). Run here, before the device call; pins the versions of this checkout's .venv, so the GPU runs the code
# the tests ran. Then carry [".whl"]: gpu_sv.sh installs them into /tmp/site when soundfile, lhotse or
# kaldi-native-fbank cannot be imported. ~6 MB.
#   bash bench/device_wheels.sh                  # .whl/ for the GPU machine's CPython 3.12
#   PY_VERSION=3.11 DEST=/tmp/whl bash bench/device_wheels.sh   # for another Python (e.g. to try the list here)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
DEST=${DEST:-.whl}
py_version=${PY_VERSION:-3.12}
# lhotse and what it needs beyond the image, soundfile (+ cffi, pycparser), our features and Kaldi I/O
packages=(lhotse soundfile cffi pycparser cytoolz intervaltree lilcom audioread kaldi_native_fbank kaldiio)
read -ra pins <<< "$("$PY" -c 'import importlib.metadata as m, sys; print(" ".join(f"{p}=={m.version(p)}" for p in sys.argv[1:]))' "${packages[@]}")"
mkdir -p "$DEST"
rm -f "$DEST"/*.whl  # one version of each: two would stop the whole install there
platforms=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64 any; do
  platforms+=(--platform "$p")
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$py_version" --implementation cp \
  "${platforms[@]}" -d "$DEST" "${pins[@]}"
echo "$(ls "$DEST"/*.whl | wc -l) wheels in $DEST ($(du -sh "$DEST" | cut -f1)); carry [\"$DEST\"] to the GPU machine"
