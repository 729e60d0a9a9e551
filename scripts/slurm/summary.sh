#!/usr/bin/env bash
# The state of every combination of the sweeps in a results folder, one line each:
#   done | failed (exit code and sliderquant's error line) | failed-killed (result.json says
#   running but its job is gone: killed, e.g. SIGKILL or out of memory) | preempted (requeued or
#   waiting to be) | running | pending (queued, not started) | missing (no result and no job).
# Only "done" with quantize.json, eval.json and model/ present counts as done.
# Usage: scripts/slurm/summary.sh RESULTS     (also: sweep.sh --summary RESULTS)
# Exit codes: 0 every combination done; 1 any is not; 2 usage error.
set -euo pipefail
HERE="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$HERE/lib.sh"

if [ "$#" -ne 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
  [ "$#" -eq 1 ] && exit 0 || exit 2
fi
RESULTS="${1%/}"
[ -d "$RESULTS" ] || { echo "summary.sh: error: no results folder $RESULTS" >&2; exit 2; }

# Jobs Slurm still knows as live (pending, running, completing, requeued...), one array task a line.
declare -A LIVE=()
QUEUE_OK=0
if command -v squeue >/dev/null; then
  if q="$(squeue -h -r -o '%i %T' 2>/dev/null)"; then
    QUEUE_OK=1
    while read -r id st; do [ -n "${id:-}" ] && LIVE[$id]="$st"; done <<<"$q"
  fi
fi
HOST="$(hostname)"

# Every combination: those with a folder holding result.json, and those of the sweep tables
# (the newest table naming a combination gives its array task id).
declare -A JOB_OF=()
declare -a NAMES=()
declare -A KNOWN=()
add_name() { if [ -z "${KNOWN[$1]:-}" ]; then KNOWN[$1]=1; NAMES+=("$1"); fi; }
if [ -d "$RESULTS/.sweep" ]; then
  while IFS= read -r table; do
    job=""; [ -f "${table%.tsv}.job" ] && job="$(head -n 1 -- "${table%.tsv}.job")"
    while IFS=$'\t' read -r idx name _; do
      [ "$idx" = "index" ] && continue
      add_name "$name"
      [ -n "$job" ] && JOB_OF[$name]="${job}_${idx}"
    done <"$table"
  done < <(ls -1tr -- "$RESULTS"/.sweep/*.tsv 2>/dev/null || true)
fi
for f in "$RESULTS"/*/result.json; do
  [ -f "$f" ] && add_name "$(basename -- "$(dirname -- "$f")")"
done
if [ "${#NAMES[@]}" -eq 0 ]; then echo "no combinations in $RESULTS"; exit 1; fi

is_live() {  # JOBSPEC -> 0 live, 1 gone, 2 unknown
  [ -n "$1" ] || return 2
  [ "$QUEUE_OK" -eq 1 ] || return 2
  [ -n "${LIVE[$1]:-}" ] && return 0
  return 1
}

declare -A COUNT=()
ALL_DONE=1
while IFS= read -r name; do
  d="$RESULTS/$name"; r="$d/result.json"; detail=""
  if [ ! -f "$r" ]; then
    job="${JOB_OF[$name]:-}"
    if is_live "$job"; then st="pending"; detail="job $job ${LIVE[$job]}"
    else st="missing"; detail="no result.json${job:+ (job $job is not in the queue)}"; fi
  else
    rs="$(sq_result_field "$r" status || echo unknown)"
    job="$(sq_result_field "$r" slurm_job || true)"
    att="$(sq_result_field "$r" attempts || echo '?')"
    secs="$(sq_result_field "$r" seconds || echo '?')"
    case "$rs" in
      done)
        if sq_combo_done "$d"; then st="done"; detail="attempts $att, ${secs}s"
        else st="failed"; detail="result.json says done but quantize.json, eval.json or model/ is missing"; fi ;;
      failed)
        st="failed"; detail="exit $(sq_result_field "$r" exit_code || echo '?'): $(sq_result_field "$r" error || true)" ;;
      preempted)
        st="preempted"
        if is_live "$job"; then detail="requeued: job $job ${LIVE[$job]}; resumes from model.work"
        else detail="no live job${job:+ ($job)}: run the sweep again to resume"; fi ;;
      running)
        set +e; is_live "$job"; live=$?; set -e
        if [ -z "$job" ]; then
          pid="$(sq_result_field "$r" pid || true)"; h="$(sq_result_field "$r" host || true)"
          if [ "$h" = "$HOST" ] && [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then live=1; else live=2; fi
        fi
        case "$live" in
          0) st="running"; detail="job $job ${LIVE[$job]}, attempt $att" ;;
          1) st="failed-killed"; detail="result.json says running but $(if [ -n "$job" ]; then echo "job $job"; else echo "its process"; fi) is gone (killed, e.g. SIGKILL or out of memory); see $name/task.log" ;;
          *) st="running"; detail="unverified: the queue cannot be read${job:+ (job $job)}" ;;
        esac ;;
      *) st="failed"; detail="unreadable result.json (status '$rs')" ;;
    esac
  fi
  [ "$st" = "done" ] || ALL_DONE=0
  COUNT[$st]=$(( ${COUNT[$st]:-0} + 1 ))
  printf '%-14s %-58s %s\n' "$st" "$name" "$detail"
done < <(printf '%s\n' "${NAMES[@]}" | sort)

tot=""
for k in "done" failed failed-killed preempted running pending missing; do
  [ -n "${COUNT[$k]:-}" ] && tot+="${tot:+, }${COUNT[$k]} $k"
done
echo "${#NAMES[@]} combination(s): $tot"
[ "$QUEUE_OK" -eq 1 ] || echo "(the Slurm queue could not be read: running/preempted states are unverified)"
[ "$ALL_DONE" -eq 1 ]
