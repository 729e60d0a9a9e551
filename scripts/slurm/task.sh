#!/usr/bin/env bash
# One combination of a sweep (scripts/slurm/sweep.sh): quantize, then evaluate, with results in
# RESULTS/<model>__<recipe>__s<seed>/. Called by the sweep's sbatch array script as
#     task.sh TABLE INDEX
# where TABLE is RESULTS/.sweep/<sweep>.tsv (index, name, model, recipe, seed per line) and
# INDEX the array task id. The sbatch script exports SQ_SWEEP_CLI (the sliderquant binary),
# SQ_SWEEP_RESULTS, SQ_SWEEP_QUANTIZE_ARGS and SQ_SWEEP_EVAL_ARGS (split on whitespace).
#
# Preemption: this shell is the batch shell (the array script execs it). It traps USR1 and TERM
# and forwards SIGUSR1 to the running sliderquant; `sliderquant quantize` then saves its
# checkpoint in COMBO/model.work and exits 75. The task writes result.json "preempted", requeues
# itself (scontrol requeue JOB_TASK) and the requeued attempt resumes. Every other failure is
# "failed" with sliderquant's last `error:` line and exit code. Exit codes: 0 done (or requeued),
# 75 preempted but not requeued, else the failing step's code.
set -euo pipefail
HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

if [ "$#" -ne 2 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  case "${1:-}" in -h|--help) exit 0 ;; *) exit 2 ;; esac
fi
TABLE="$1"; INDEX="$2"
[ -f "$TABLE" ] || { echo "task.sh: error: no table $TABLE" >&2; exit 2; }
LINE="$(awk -F'\t' -v i="$INDEX" '$1 == i' "$TABLE")"
[ -n "$LINE" ] || { echo "task.sh: error: no combination $INDEX in $TABLE" >&2; exit 2; }
IFS=$'\t' read -r _ NAME MODEL RECIPE SEED <<<"$LINE"
RESULTS="${SQ_SWEEP_RESULTS:-$(cd -- "$(dirname -- "$TABLE")/.." && pwd)}"
CLI="${SQ_SWEEP_CLI:-$(sq_find_cli)}"
read -r -a QARGS <<<"${SQ_SWEEP_QUANTIZE_ARGS:-}"
read -r -a EARGS <<<"${SQ_SWEEP_EVAL_ARGS:---ppl wikitext2}"
COMBO="$RESULTS/$NAME"
mkdir -p -- "$COMBO"
LOG="$COMBO/task.log"

if [ -n "${SLURM_ARRAY_JOB_ID:-}" ]; then JOBSPEC="${SLURM_ARRAY_JOB_ID}_${SLURM_ARRAY_TASK_ID}"
else JOBSPEC="${SLURM_JOB_ID:-}"; fi

PREV_ATTEMPTS="$(sq_result_field "$COMBO/result.json" attempts 2>/dev/null || echo 0)"
PREV_SECONDS="$(sq_result_field "$COMBO/result.json" seconds 2>/dev/null || echo 0)"
ATTEMPT=$((PREV_ATTEMPTS + 1))
START=$(date +%s.%N)

exec >>"$LOG" 2>&1
stamp() { date -u +%Y-%m-%dT%H:%M:%S.%3NZ; }
echo "=== attempt $ATTEMPT (SLURM_RESTART_COUNT=${SLURM_RESTART_COUNT:-0}) job ${JOBSPEC:-none} host $(hostname) pid $$ at $(stamp): $NAME ==="

write_result() {  # STATUS EXIT_CODE ERROR
  local secs tmp
  secs="$(awk -v a="$PREV_SECONDS" -v s="$START" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", a + e - s }')"
  tmp="$COMBO/.result.json.tmp.$$"
  printf '{"sliderquant_sweep_result": 1, "model": "%s", "recipe": "%s", "seed": %s, "status": "%s", "error": "%s", "exit_code": %s, "attempts": %s, "log": "task.log", "seconds": %s, "slurm_job": "%s", "host": "%s", "pid": %s, "model_path": "%s", "updated": "%s"}\n' \
    "$(sq_json_escape "$(basename -- "${MODEL%/}")")" "$(sq_json_escape "$RECIPE")" "$SEED" "$1" \
    "$(sq_json_escape "$3")" "$2" "$ATTEMPT" "$secs" "$(sq_json_escape "$JOBSPEC")" \
    "$(sq_json_escape "$(hostname)")" "$$" "$(sq_json_escape "$MODEL")" "$(stamp)" >"$tmp"
  mv -f -- "$tmp" "$COMBO/result.json"
}

# sliderquant dies with this shell: when the batch shell is SIGKILLed (scancel --signal=KILL,
# the OOM killer) an orphan would go on running outside the job where proctrack cannot see it
# (proctrack/linuxproc, pgid). SIGKILL is safe: a killed quantize resumes from its last checkpoint.
PDEATH=()
if command -v setpriv >/dev/null && setpriv --pdeathsig KILL -- true 2>/dev/null; then
  PDEATH=(setpriv --pdeathsig KILL --)
fi
CHILD=""
SIGNALLED=""
on_signal() {
  SIGNALLED="$1"
  echo "task: got SIG$1 at $(stamp)${CHILD:+; forwarding SIGUSR1 to sliderquant pid $CHILD}"
  if [ -n "$CHILD" ]; then kill -USR1 "$CHILD" 2>/dev/null || true; fi
}
trap 'on_signal USR1' USR1
trap 'on_signal TERM' TERM

preempted() {  # STEP EXIT_CODE
  write_result preempted "$2" "preempted during $1 (SIG${SIGNALLED:-?}); resumes when requeued"
  echo "task: preempted during $1 (exit $2) at $(stamp)"
  if [ -n "$JOBSPEC" ] && command -v scontrol >/dev/null; then
    echo "task: requeue $JOBSPEC at $(stamp)"
    if scontrol requeue "$JOBSPEC"; then exit 0; fi
    echo "task: scontrol requeue $JOBSPEC failed; run the sweep again to resume"
  fi
  exit 75
}

# Runs sliderquant in the background and waits for it, re-waiting after a trapped signal.
RC=0
ERRLINE=""
run_step() {  # STEP ARGS...
  local step="$1" offset
  shift
  if [ -n "$SIGNALLED" ]; then preempted "$step" 75; fi
  offset=$(($(stat -c %s -- "$LOG") + 1))
  echo "task: $step: $(printf '%q ' "$CLI" "$@") at $(stamp)"
  "${PDEATH[@]}" "$CLI" "$@" </dev/null &
  CHILD=$!
  while :; do
    set +e; wait "$CHILD"; RC=$?; set -e
    if [ "$RC" -gt 128 ] && kill -0 "$CHILD" 2>/dev/null; then continue; fi
    break
  done
  CHILD=""
  ERRLINE="$(tail -c +"$offset" -- "$LOG" | tr '\r' '\n' | grep -E '(^|: )error:' | tail -n 1 || true)"
  echo "task: $step exited $RC at $(stamp)"
}

fail() {  # STEP
  [ -n "$ERRLINE" ] || ERRLINE="$1 exited with code $RC (no error: line; see task.log)"
  write_result failed "$RC" "$ERRLINE"
  echo "task: FAILED in $1: $ERRLINE"
  exit "$RC"
}

write_result running 0 ""

# quantize (skipped when a complete earlier attempt left model/ and quantize.json)
if [ -d "$COMBO/model" ] && [ -f "$COMBO/quantize.json" ]; then
  echo "task: quantize skipped: $COMBO/model and quantize.json exist"
else
  rm -f -- "$COMBO"/.quantize.json.tmp.*
  force=()
  [ -d "$COMBO/model" ] && force=(--force)  # a model without its report: quantize again
  run_step quantize quantize "$MODEL" --recipe "$RECIPE" --seed "$SEED" --out "$COMBO/model" \
    --json "$COMBO/.quantize.json.tmp.$$" "${force[@]}" "${QARGS[@]}"
  if [ "$RC" -eq 75 ] || { [ -n "$SIGNALLED" ] && [ "$RC" -ne 0 ]; }; then
    rm -f -- "$COMBO/.quantize.json.tmp.$$"; preempted quantize "$RC"
  fi
  [ "$RC" -eq 0 ] || { rm -f -- "$COMBO/.quantize.json.tmp.$$"; fail quantize; }
  [ -d "$COMBO/model" ] && [ -f "$COMBO/.quantize.json.tmp.$$" ] || { RC=1; ERRLINE="error: quantize exited 0 but left no model/ or JSON report"; fail quantize; }
  mv -f -- "$COMBO/.quantize.json.tmp.$$" "$COMBO/quantize.json"
fi

# eval (always rerun when not done: it has no checkpoint of its own)
rm -f -- "$COMBO"/.eval.json.tmp.*
run_step eval eval "$COMBO/model" --json "$COMBO/.eval.json.tmp.$$" "${EARGS[@]}"
if [ "$RC" -eq 75 ] || { [ -n "$SIGNALLED" ] && [ "$RC" -ne 0 ]; }; then
  rm -f -- "$COMBO/.eval.json.tmp.$$"; preempted eval "$RC"
fi
[ "$RC" -eq 0 ] || { rm -f -- "$COMBO/.eval.json.tmp.$$"; fail eval; }
[ -f "$COMBO/.eval.json.tmp.$$" ] || { RC=1; ERRLINE="error: eval exited 0 but wrote no JSON report"; fail eval; }
mv -f -- "$COMBO/.eval.json.tmp.$$" "$COMBO/eval.json"

write_result "done" 0 ""
echo "task: done at $(stamp)"
