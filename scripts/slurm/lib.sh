# shellcheck shell=bash
# Shared helpers of scripts/slurm/{sweep,task,summary}.sh (sourced, not run).
# result.json is written by task.sh on one line, always in the same key order, so these
# helpers read it with sed alone (no Python or jq needed on the compute nodes).

# The combination's folder name: <model basename>__<recipe with '/' as '+'>__s<seed>.
sq_combo_name() {  # MODEL RECIPE SEED
  local model="${1%/}" recipe="$2" seed="$3"
  model="$(basename -- "$model")"
  printf '%s__%s__s%s\n' "$model" "${recipe//\//+}" "$seed"
}

# JSON string escaping of one line (control characters other than tab dropped).
sq_json_escape() {
  local s="$1"
  s="${s//\\/\\\\}"
  s="${s//\"/\\\"}"
  s="${s//$'\t'/\\t}"
  s="${s//$'\r'/}"
  s="${s//$'\n'/ }"
  printf '%s' "$s" | tr -d '\000-\010\013-\037'
}

# The value of a top-level key of a result.json: a number or a JSON-escaped string (quotes removed).
sq_result_field() {  # FILE KEY
  local f="$1" k="$2" line
  [ -f "$f" ] || return 1
  line="$(head -c 65536 -- "$f" | tr -d '\n')"
  if [[ "$line" =~ \"$k\":\ *\"(([^\"\\]|\\.)*)\" ]]; then
    printf '%s' "${BASH_REMATCH[1]}" | sed -e 's/\\"/"/g' -e 's/\\\\/\\/g'
  elif [[ "$line" =~ \"$k\":\ *(-?[0-9.]+) ]]; then
    printf '%s' "${BASH_REMATCH[1]}"
  else
    return 1
  fi
}

# A combination is done only when result.json says so and every output it names is there:
# nothing partial is ever counted as done.
sq_combo_done() {  # COMBO_DIR
  local d="$1"
  [ -f "$d/result.json" ] || return 1
  [ "$(sq_result_field "$d/result.json" status)" = "done" ] || return 1
  [ -f "$d/quantize.json" ] && [ -f "$d/eval.json" ] && [ -d "$d/model" ]
}

# The sliderquant binary: --sliderquant, $SLIDERQUANT, the checkout's build/, then PATH.
sq_find_cli() {  # [EXPLICIT]
  local here
  here="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)"
  if [ -n "${1:-}" ]; then printf '%s\n' "$1"; return; fi
  if [ -n "${SLIDERQUANT:-}" ]; then printf '%s\n' "$SLIDERQUANT"; return; fi
  if [ -x "$here/build/sliderquant" ]; then printf '%s\n' "$here/build/sliderquant"; return; fi
  command -v sliderquant || printf 'sliderquant\n'
}

sq_abspath() {  # PATH (need not exist; its parent is resolved when it exists)
  local p="$1"
  case "$p" in /*) ;; *) p="$PWD/$p" ;; esac
  if [ -d "$p" ]; then (cd -- "$p" && pwd); else printf '%s\n' "$p"; fi
}
