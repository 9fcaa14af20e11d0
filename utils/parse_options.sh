#!/usr/bin/env bash
# Kaldi-style option parsing, to be *sourced* by a recipe after it sets its default variables:
#
#   stage=0; stop_stage=7; nj=4
#   . utils/parse_options.sh
#
# Then `--stage 3 --stop-stage 5 --nj 8` (or `--stop_stage=5`) overrides variables that already exist;
# an unknown option is an error that names it. `--help` prints the script's leading comment, the
# options with their defaults and comments (the variables set before this file is sourced), and
# $help_message if set. `--config FILE` reads `name=value` lines for existing variables; unlike
# Kaldi's, the file is parsed, never sourced, so it cannot run commands.

__parse_error() { echo "$0: $*" >&2; exit 1; }

__set_option() {  # name value
  local name=${1//-/_}
  [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || __parse_error "invalid option name --$1"
  declare -p "$name" >/dev/null 2>&1 || __parse_error "unknown option --$1 (no variable '$name' in this script)"
  printf -v "$name" '%s' "$2"
}

__read_config() {  # file
  [ -f "$1" ] || __parse_error "config file $1 does not exist"
  local line key value n=0
  while IFS= read -r line || [ -n "$line" ]; do
    n=$((n + 1))
    line=${line%%#*}
    [[ -z ${line//[[:space:]]/} ]] && continue
    [[ $line =~ ^[[:space:]]*([A-Za-z_][A-Za-z0-9_]*)=(.*)$ ]] || __parse_error "$1:$n: expected name=value, got '$line'"
    key=${BASH_REMATCH[1]}; value=${BASH_REMATCH[2]}
    value=${value%"${value##*[![:space:]]}"}
    value=${value#\"}; value=${value%\"}
    __set_option "$key" "$value"
  done < "$1"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h)
      # A recipe that cd's into its own folder first (egs/*/run.sh) is found there by its base name.
      __script=$0; [ -f "$__script" ] || __script=$(basename "$0")
      sed -n '2,/^[^#]/{/^#/s/^# \{0,1\}//p}' "$__script"
      echo "Options (--name value or --name=value; --config FILE reads name=value lines), with their defaults:"
      # the variables the script set before sourcing this file, with their comments
      awk '/parse_options\.sh/ {exit}
           /^[A-Za-z_][A-Za-z0-9_]*=/ {i = index($0, "="); name = substr($0, 1, i - 1); gsub("_", "-", name)
                                        rest = substr($0, i + 1); sub(/[ \t]+#/, "  #", rest)
                                        if (rest == "" || rest ~ /^  #/) rest = "\"\"" rest
                                        printf "  --%-20s %s\n", name, rest}' "$__script"
      [ -n "${help_message:-}" ] && echo "$help_message"
      exit 0 ;;
    --config=*) __read_config "${1#--config=}"; shift ;;
    --config) [ $# -ge 2 ] || __parse_error "--config needs a file"; __read_config "$2"; shift 2 ;;
    --*=*) __opt=${1%%=*}; __set_option "${__opt#--}" "${1#*=}"; shift ;;
    --*) [ $# -ge 2 ] || __parse_error "option $1 needs a value"; __set_option "${1#--}" "$2"; shift 2 ;;
    *) break ;;
  esac
done
unset __opt
true
