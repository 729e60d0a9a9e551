#!/usr/bin/env bash
# Submits a sweep of models x recipes x seeds to Slurm as one job array that survives preemption.
set -euo pipefail
HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"
PROG="sweep.sh"

usage() {
  cat <<'EOF'
Usage: scripts/slurm/sweep.sh --models M[,M...] --recipes R[,R...] --results DIR [options]
       scripts/slurm/sweep.sh --summary DIR

Quantizes every model with every recipe (and seed) as one Slurm job array, then evaluates each
quantized model. One array task per combination; results in DIR/<model>__<recipe>__s<seed>/
(model = the model folder's basename, '/' in recipe names written as '+'):
    quantize.json  eval.json  result.json (written last)  task.log  model/

Options:
  --models LIST         model directories (comma-separated, or repeat the option)
  --recipes LIST        recipe names (as `sliderquant list recipes --test`) or files
  --seeds LIST          calibration seeds (default: 0)
  --results DIR         results folder (created; must be writable)
  --quantize-args STR   extra arguments of `sliderquant quantize` (split on whitespace),
                        e.g. "--threads 2 --samples 64"
  --eval-args STR       arguments of `sliderquant eval` (default: "--ppl wikitext2"),
                        e.g. "--ppl wikitext2 --seqlen 512 --max-windows 8"
  --sbatch-args STR     extra sbatch options (split on whitespace), e.g.
                        "--partition=gpu --gres=gpu:1 --time=4:00:00 --cpus-per-task=8"
  --max-parallel N      at most N array tasks at once (--array=0-K%N)
  --job-name NAME       Slurm job name (default: sq-sweep)
  --sliderquant PATH    the sliderquant binary (default: $SLIDERQUANT, build/sliderquant, PATH)
  --dry-run             validate, print the combination table and the sbatch script; submit nothing
  --summary DIR         print the state of every combination in DIR (scripts/slurm/summary.sh)
  -h, --help            this help

Everything is checked before anything is submitted: each model loads (`sliderquant inspect`),
each recipe resolves against each model (`sliderquant recipe check R --model M`), the results
folder is writable. Combinations whose result.json says "done" (with quantize.json, eval.json
and model/ present) are skipped and named.

Preemption: the array script asks for --requeue and --signal=B:USR1@120 and appends to its logs.
On SIGUSR1 or SIGTERM the task forwards SIGUSR1 to sliderquant, which saves its checkpoint in
model.work and exits 75; the task writes result.json "preempted", runs `scontrol requeue` on
itself, and the requeued attempt resumes where it stopped (same output, bit for bit).

Exit codes: 0 submitted (or nothing to do, or --dry-run); 2 usage or validation error (bad
model, recipe, seed or results folder); 1 submission failed (e.g. the controller is unreachable).
EOF
}

die() { echo "$PROG: error: $*" >&2; exit 2; }

MODELS=(); RECIPES=(); SEEDS=()
RESULTS=""; QUANTIZE_ARGS=""; EVAL_ARGS="--ppl wikitext2"; SBATCH_ARGS=""; CLI_OPT=""
DRY_RUN=0; MAX_PAR=""; JOB_NAME="sq-sweep"
split_add() {  # ARRAY_NAME VALUE
  local -n arr="$1"; local IFS=','; local v
  for v in $2; do [ -n "$v" ] && arr+=("$v"); done
}
need() { [ "$#" -ge 2 ] || die "option $1 needs a value (see --help)"; }
while [ "$#" -gt 0 ]; do
  case "$1" in
    -h|--help) usage; exit 0 ;;
    --models) need "$@"; split_add MODELS "$2"; shift 2 ;;
    --recipes) need "$@"; split_add RECIPES "$2"; shift 2 ;;
    --seeds) need "$@"; split_add SEEDS "$2"; shift 2 ;;
    --results) need "$@"; RESULTS="$2"; shift 2 ;;
    --quantize-args) need "$@"; QUANTIZE_ARGS="$2"; shift 2 ;;
    --eval-args) need "$@"; EVAL_ARGS="$2"; shift 2 ;;
    --sbatch-args) need "$@"; SBATCH_ARGS="$2"; shift 2 ;;
    --sliderquant) need "$@"; CLI_OPT="$2"; shift 2 ;;
    --max-parallel) need "$@"; MAX_PAR="$2"; shift 2 ;;
    --job-name) need "$@"; JOB_NAME="$2"; shift 2 ;;
    --dry-run) DRY_RUN=1; shift ;;
    --summary) need "$@"; exec bash "$HERE/summary.sh" "$2" ;;
    --models=*|--recipes=*|--seeds=*|--results=*|--quantize-args=*|--eval-args=*|--sbatch-args=*|--sliderquant=*|--max-parallel=*|--job-name=*|--summary=*)
      opt="${1%%=*}"; val="${1#*=}"; shift; set -- "$opt" "$val" "$@" ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[ "${#MODELS[@]}" -gt 0 ] || die "no --models given (see --help)"
[ "${#RECIPES[@]}" -gt 0 ] || die "no --recipes given (see --help)"
[ -n "$RESULTS" ] || die "no --results folder given (see --help)"
[ "${#SEEDS[@]}" -gt 0 ] || SEEDS=(0)
for s in "${SEEDS[@]}"; do [[ "$s" =~ ^[0-9]+$ ]] || die "seed '$s' is not a non-negative integer"; done
[ -z "$MAX_PAR" ] || [[ "$MAX_PAR" =~ ^[1-9][0-9]*$ ]] || die "--max-parallel '$MAX_PAR' is not a positive integer"
[[ "$JOB_NAME" =~ ^[A-Za-z0-9._+-]+$ ]] || die "--job-name '$JOB_NAME': letters, digits and ._+- only"

CLI="$(sq_find_cli "$CLI_OPT")"
case "$CLI" in */*) CLI="$(sq_abspath "$CLI")" ;; *) CLI="$(command -v -- "$CLI" || true)" ;; esac
[ -n "$CLI" ] && [ -x "$CLI" ] || die "no sliderquant binary at '${CLI_OPT:-${SLIDERQUANT:-build/sliderquant}}' (build it, or pass --sliderquant PATH)"
read -r -a SARGS <<<"$SBATCH_ARGS"

# --- validate every input before anything is written or submitted ---
declare -A SEEN_MODEL_NAME=()
ABS_MODELS=()
for m in "${MODELS[@]}"; do
  [ -e "$m" ] || die "model '$m' does not exist"
  am="$(sq_abspath "$m")"
  name="$(basename -- "${am%/}")"
  if [ -n "${SEEN_MODEL_NAME[$name]:-}" ] && [ "${SEEN_MODEL_NAME[$name]}" != "$am" ]; then
    die "models '${SEEN_MODEL_NAME[$name]}' and '$am' share the folder name '$name' (the results layout names runs by it)"
  fi
  SEEN_MODEL_NAME[$name]="$am"
  if ! out="$("$CLI" inspect "$am" -q 2>&1 >/dev/null)"; then
    die "model '$m' does not load: $(printf '%s\n' "$out" | grep -E 'error' | tail -n 1)"
  fi
  ABS_MODELS+=("$am")
done
for r in "${RECIPES[@]}"; do
  for am in "${ABS_MODELS[@]}"; do
    if ! out="$("$CLI" recipe check "$r" --model "$am" -q 2>&1 >/dev/null)"; then
      die "recipe '$r' does not resolve for model $(basename -- "$am"): $(printf '%s\n' "$out" | grep -E 'error' | tail -n 1)"
    fi
  done
done

# results folder: created and written to (a read-only file system or missing permission is one error)
if ! err="$(mkdir -p -- "$RESULTS/.sweep" 2>&1)"; then
  die "results folder '$RESULTS' cannot be created: ${err##*: }"
fi
RESULTS="$(sq_abspath "$RESULTS")"
if ! probe="$(mktemp "$RESULTS/.sweep/.write-probe.XXXXXX" 2>&1)"; then
  die "results folder '$RESULTS' is not writable: ${probe##*: }"
fi
rm -f -- "$probe"

# --- the combinations ---
SWEEP_ID="$(date +%Y%m%d-%H%M%S)-$$"
TABLE="$RESULTS/.sweep/$SWEEP_ID.tsv"
SCRIPT="$RESULTS/.sweep/$SWEEP_ID.sbatch"
table_rows=""; n=0; skipped=0
printf '%-5s %-60s %s\n' "index" "combination" "state"
for am in "${ABS_MODELS[@]}"; do
  for r in "${RECIPES[@]}"; do
    for s in "${SEEDS[@]}"; do
      name="$(sq_combo_name "$am" "$r" "$s")"
      if sq_combo_done "$RESULTS/$name"; then
        printf '%-5s %-60s %s\n' "-" "$name" "skipped: already done ($RESULTS/$name/result.json)"
        skipped=$((skipped + 1)); continue
      fi
      state="to run"
      [ -f "$RESULTS/$name/result.json" ] && state="to run (was $(sq_result_field "$RESULTS/$name/result.json" status || echo '?'); resumes)"
      printf '%-5s %-60s %s\n' "$n" "$name" "$state"
      table_rows+="$n"$'\t'"$name"$'\t'"$am"$'\t'"$r"$'\t'"$s"$'\n'
      n=$((n + 1))
    done
  done
done
echo "$n combination(s) to run, $skipped already done"
if [ "$n" -eq 0 ]; then echo "nothing to submit: every combination is done"; exit 0; fi

q() { printf '%q' "$1"; }
ARRAY="0-$((n - 1))${MAX_PAR:+%$MAX_PAR}"
SCRIPT_TEXT="#!/bin/bash
#SBATCH --job-name=$JOB_NAME
#SBATCH --array=$ARRAY
#SBATCH --requeue
#SBATCH --signal=B:USR1@120
#SBATCH --open-mode=append
#SBATCH --output=$RESULTS/.sweep/$SWEEP_ID-%A_%a.out
# Written by scripts/slurm/sweep.sh: one array task per line of $SWEEP_ID.tsv.
# The task's own log is RESULTS/<combination>/task.log; this file gets Slurm's messages only.
export SQ_SWEEP_CLI=$(q "$CLI")
export SQ_SWEEP_RESULTS=$(q "$RESULTS")
export SQ_SWEEP_QUANTIZE_ARGS=$(q "$QUANTIZE_ARGS")
export SQ_SWEEP_EVAL_ARGS=$(q "$EVAL_ARGS")
exec bash $(q "$HERE/task.sh") $(q "$TABLE") \"\$SLURM_ARRAY_TASK_ID\"
"
if [ "$DRY_RUN" -eq 1 ]; then
  echo
  echo "--- $TABLE (not written: --dry-run) ---"
  printf 'index\tname\tmodel\trecipe\tseed\n%s' "$table_rows"
  echo "--- $SCRIPT (not written: --dry-run) ---"
  printf '%s' "$SCRIPT_TEXT"
  echo "--- would run: sbatch --parsable ${SARGS[*]} $SCRIPT"
  exit 0
fi

printf 'index\tname\tmodel\trecipe\tseed\n%s' "$table_rows" >"$TABLE.tmp"
mv -f -- "$TABLE.tmp" "$TABLE"
printf '%s' "$SCRIPT_TEXT" >"$SCRIPT"
chmod +x "$SCRIPT"

command -v sbatch >/dev/null || { echo "$PROG: error: sbatch not found (install slurm-client); the script is $SCRIPT" >&2; exit 1; }
set +e
sb_out="$(sbatch --parsable "${SARGS[@]}" "$SCRIPT" 2>&1)"; sb_rc=$?
set -e
if [ "$sb_rc" -ne 0 ]; then
  echo "$PROG: error: sbatch failed (exit $sb_rc): $(printf '%s' "$sb_out" | tr '\n' ' ')" >&2
  if grep -qiE 'contact|connect|controller|config' <<<"$sb_out"; then
    echo "$PROG: hint: is slurmctld running and reachable? check SLURM_CONF (${SLURM_CONF:-/etc/slurm/slurm.conf}) and \`scontrol ping\`; nothing was submitted, the script is $SCRIPT" >&2
  else
    echo "$PROG: hint: nothing was submitted; the script is $SCRIPT (try: sbatch --test-only ${SARGS[*]} $SCRIPT)" >&2
  fi
  rm -f -- "$TABLE"
  exit 1
fi
JOB="$(printf '%s' "$sb_out" | tail -n 1 | cut -d';' -f1)"
printf '%s\n' "$JOB" >"$RESULTS/.sweep/$SWEEP_ID.job"
echo "submitted job array $JOB ($n task(s)): $SCRIPT"
echo "watch: squeue -j $JOB;  state: $HERE/summary.sh $RESULTS"
