#!/usr/bin/env bash
# Shared shell helpers for recipes; source it. `log MSG` prints time, the calling script and line.
log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}

# run_stage N: true when N lies in [stage, stop_stage] (icefall's guard, spelt once).
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }
