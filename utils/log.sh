#!/usr/bin/env bash
# Shared shell helpers for recipes; source it. `log MSG` prints time, the calling script and line.
log() {
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}

# run_stage N: true when N lies in [stage, stop_stage] (icefall's guard, spelt once).
run_stage() { [ "$stage" -le "$1" ] && [ "$stop_stage" -ge "$1" ]; }

# require_no_spaces NAME...: stop, naming the option, when a path variable holds whitespace. The recipes pass
# paths unquoted from stage to stage and into job scripts, as Kaldi's do, so such a path would split mid-run.
require_no_spaces() {
  local name
  for name in "$@"; do
    case ${!name} in
      *[[:space:]]*)
        echo "${0##*/}: --${name//_/-} '${!name}' holds whitespace; recipe paths must not (as in Kaldi)" >&2
        exit 1 ;;
    esac
  done
}
