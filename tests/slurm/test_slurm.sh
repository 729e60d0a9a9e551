#!/usr/bin/env bash
# scripts/slurm on a real Slurm started on localhost (private munged, slurmctld, slurmd; ports
# chosen at random so that it cannot clash with another Slurm). Fails, never skips, when a
# component is missing (slurm-wlm/munge/chromium: scripts/install_deps.sh).
#
#   tests/slurm/test_slurm.sh [--cli build/sliderquant] [--keep]
#
# 1. a sweep of stories260K x 3 recipes (a learned one long enough to be preempted, RTN, GPTQ);
#    the learned task is preempted with `scancel --signal=USR1 --batch` once its log shows a
#    finished window: it must write "preempted", requeue itself, resume ("resuming from") and
#    end with output equal, file by file (sha256), to an uninterrupted run of the same command
#    made directly (quantization_config.json compared without its timing fields);
# 2. bad input: unknown recipe, unknown model, a read-only results folder, an unreachable
#    controller: refused before anything is submitted, one clear message;
# 3. a task killed with SIGKILL is named failed-killed by summary.sh (exit 1), never done;
# 4. summary.sh exits 0 on the sweep, `sliderquant report` lists every run, and the report's
#    screenshot by headless Chromium is not blank.
# Prints a timeline (submit, preempt, requeue, resume, finish). Every daemon it started is
# stopped on exit, failure included.
set -euo pipefail
ROOT="$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")/../.." && pwd)"
CLI="$ROOT/build/sliderquant"
KEEP=0
while [ "$#" -gt 0 ]; do
  case "$1" in
    --cli) CLI="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    *) echo "usage: $0 [--cli PATH] [--keep]" >&2; exit 2 ;;
  esac
done
SWEEP="$ROOT/scripts/slurm/sweep.sh"
SUMMARY="$ROOT/scripts/slurm/summary.sh"
FIXTURE="$ROOT/tests/fixtures/stories260K/hf"
LONG_RECIPE="test/stories-sliderquant-w2"   # learned: ~20-60 s here with --samples 16
RECIPES="$LONG_RECIPE,test/stories-rtn-w4-pc,test/stories-gptq-w4-pc"
# the fixture text for calibration and perplexity: no data directory needed (ctest runs in build/)
TEXT="$ROOT/tests/fixtures/text/wikitext2_head.txt"
QARGS="--calib $TEXT --samples 16 --threads 1"
EARGS="--ppl $TEXT --seqlen 128 --max-windows 4 --threads 1"

T0=$(date +%s.%N)

fail() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok: $*"; }
now() { date -u +%H:%M:%S.%3N; }
el() { awk -v a="$T0" -v b="$(date +%s.%N)" 'BEGIN { printf "%6.1f", b - a }'; }
mark() { printf '%s|%s\n' "$(date +%s.%N)" "$*" >>"$T/timeline.txt"; echo "[$(now)] $*"; }

# --- every component must be there: a missing one is a failure, never a skip ---
missing=()
for c in munged munge slurmctld slurmd sbatch squeue sinfo scontrol scancel chromium python3 sha256sum; do
  command -v "$c" >/dev/null || missing+=("$c")
done
[ -x "$CLI" ] || missing+=("sliderquant at $CLI")
[ -d "$FIXTURE" ] || missing+=("the stories260K fixture at $FIXTURE")
[ -f "$ROOT/tests/fixtures/text/wikitext2_head.txt" ] || missing+=("tests/fixtures/text/wikitext2_head.txt")
[ "${#missing[@]}" -eq 0 ] || fail "missing: ${missing[*]} (install with scripts/install_deps.sh: slurmctld slurmd slurm-client munge chromium)"
CLI="$(cd -- "$(dirname -- "$CLI")" && pwd)/$(basename -- "$CLI")"
export SLIDERQUANT="$CLI"

T="$(mktemp -d /tmp/sq-slurm-test.XXXXXX)"
PIDS=()   # daemons and background runs this test started, stopped in reverse order
RO_MOUNTED=""
cleanup() {
  local rc=$?
  set +e
  if [ -n "${SLURM_CONF:-}" ] && [ -f "$SLURM_CONF" ] && [ "$SLURM_CONF" != "$T/dead.conf" ]; then
    ids="$(timeout 10 squeue -h -o %A 2>/dev/null)"
    if [ -n "$ids" ]; then
      timeout 10 scancel $ids 2>/dev/null
      for _ in $(seq 1 20); do [ -z "$(timeout 5 squeue -h -o %A 2>/dev/null)" ] && break; sleep 0.5; done
    fi
  fi
  local i
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do kill "${PIDS[$i]}" 2>/dev/null; done
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    for _ in $(seq 1 20); do kill -0 "${PIDS[$i]}" 2>/dev/null || break; sleep 0.25; done
    kill -9 "${PIDS[$i]}" 2>/dev/null
  done
  [ -n "$RO_MOUNTED" ] && umount "$RO_MOUNTED" 2>/dev/null
  if [ "$rc" -ne 0 ] || [ "$KEEP" -eq 1 ]; then
    echo "(kept $T for inspection: logs in $T/log, results in $T/R)"
  else
    rm -rf -- "$T"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$T/state" "$T/spool" "$T/log"

# --- munge on a private socket, with its own key ---
dd if=/dev/urandom of="$T/munge.key" bs=1024 count=1 status=none
chmod 400 "$T/munge.key"
munged -F --force --socket="$T/munge.sock" --key-file="$T/munge.key" --pid-file="$T/munged.pid" \
  --log-file="$T/log/munged.log" --seed-file="$T/munged.seed" >"$T/log/munged.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 50); do [ -S "$T/munge.sock" ] && break; sleep 0.1; done
munge -S "$T/munge.sock" -n | unmunge -S "$T/munge.sock" >/dev/null || fail "munged does not answer on $T/munge.sock ($(tail -n 3 "$T/log/munged.log"))"

# --- slurm.conf: one node with 2 CPUs on localhost, ports that cannot clash ---
PORT=$((20000 + RANDOM % 30000))
write_conf() {  # FILE CTLD_PORT
  cat >"$1" <<EOF
ClusterName=sqtest
SlurmctldHost=localhost
SlurmctldPort=$2
SlurmdPort=$((PORT + 1))
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge.sock,cred_expire=5
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
SwitchType=switch/none
MailProg=/bin/true
ReturnToService=2
JobRequeue=1
MinJobAge=300
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
MessageTimeout=5
NodeName=sqnode NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=2 RealMemory=1000 State=UNKNOWN
PartitionName=sq Nodes=sqnode Default=YES MaxTime=INFINITE State=UP
EOF
}
write_conf "$T/slurm.conf" "$PORT"
write_conf "$T/dead.conf" "$((PORT + 2))"   # nothing listens there
export SLURM_CONF="$T/slurm.conf"
slurmctld -D >"$T/log/slurmctld.out" 2>&1 &
PIDS+=($!)
slurmd -D -N sqnode >"$T/log/slurmd.out" 2>&1 &
PIDS+=($!)
SLURM_VERSION="$(sinfo --version)"
up=0
for _ in $(seq 1 60); do
  if [ "$(sinfo -h -n sqnode -o %T 2>/dev/null)" = "idle" ]; then up=1; break; fi
  sleep 0.5
done
[ "$up" -eq 1 ] || fail "the node never became idle: $(sinfo 2>&1 | tr '\n' ' '); $(tail -n 5 "$T/log/slurmctld.out" "$T/log/slurmd.out" 2>&1 | tr '\n' ' ')"
mark "cluster up ($SLURM_VERSION, slurmctld port $PORT): $(sinfo -h -o '%P %a %D %T %N %c CPUs')"

# the model as the sweep names it (the fixture folder is called hf)
ln -s "$FIXTURE" "$T/stories260K"
R="$T/R"
LONG_COMBO="stories260K__${LONG_RECIPE//\//+}__s0"
LD="$R/$LONG_COMBO"

# --- 1. the sweep ---
mark "submit: sweep.sh --models stories260K --recipes $RECIPES --seeds 0"
out="$("$SWEEP" --models "$T/stories260K" --recipes "$RECIPES" --seeds 0 --results "$R" \
  --quantize-args "$QARGS" --eval-args "$EARGS" 2>&1)" || fail "sweep.sh failed: $out"
printf '%s\n' "$out"
JOB="$(cat "$R"/.sweep/*.job)"
mark "submitted: job array $JOB, 3 tasks"
grep -q -- '#SBATCH --requeue' "$R"/.sweep/*.sbatch && grep -q -- '#SBATCH --signal=B:USR1@120' "$R"/.sweep/*.sbatch \
  && grep -q -- '#SBATCH --open-mode=append' "$R"/.sweep/*.sbatch || fail "the sbatch script lacks --requeue/--signal/--open-mode"
LONG_TASK="$(awk -F'\t' -v n="$LONG_COMBO" '$2 == n { print $1 }' "$R"/.sweep/*.tsv)"
[ -n "$LONG_TASK" ] || fail "no $LONG_COMBO in the sweep table"

# the uninterrupted reference, directly (no Slurm), meanwhile
read -r -a QA <<<"$QARGS"
mkdir -p "$T/ref"
"$CLI" quantize "$T/stories260K" --recipe "$LONG_RECIPE" --seed 0 --out "$T/ref/model" --json "$T/ref/quantize.json" \
  "${QA[@]}" >"$T/log/reference.log" 2>&1 &
REF_PID=$!
PIDS+=("$REF_PID")

# preempt once a window is finished (the window-trainer's "stage 1 window k/8" line)
for _ in $(seq 1 240); do
  grep -qsE '^sliderquant: stage 1 window [0-9]+/' "$LD/task.log" 2>/dev/null && break
  grep -qs '"status": "\(failed\|done\)"' "$LD/result.json" && break
  sleep 0.5
done
grep -qsE '^sliderquant: stage 1 window [0-9]+/' "$LD/task.log" || fail "the long task never finished a window: $(tail -c 600 "$LD/task.log" 2>&1)"
mark "the long task ${JOB}_$LONG_TASK finished its first window"
scancel --signal=USR1 --batch "${JOB}_$LONG_TASK" || fail "scancel --signal=USR1 failed"
mark "preempt: scancel --signal=USR1 --batch ${JOB}_$LONG_TASK"

# --- 2. bad input, while the sweep runs (nothing may be submitted) ---
njobs() { squeue -h -r -o %i | wc -l; }
bad() {  # NAME EXPECTED_RC PATTERN ARGS...
  local name="$1" want="$2" pat="$3"; shift 3
  local o rc
  set +e; o="$("$@" 2>&1)"; rc=$?; set -e
  LAST_OUT="$o"
  [ "$rc" -eq "$want" ] || fail "$name: exit $rc, expected $want: $o"
  grep -qE -- "$pat" <<<"$o" || fail "$name: message does not match /$pat/: $o"
  ok "$name: exit $rc: $(printf '%s\n' "$o" | grep -E 'error|hint' | head -n 2 | tr '\n' ' ')"
}
bad "unknown recipe" 2 "recipe 'no-such-recipe'" \
  "$SWEEP" --models "$T/stories260K" --recipes test/stories-rtn-w4-pc,no-such-recipe --results "$T/bad1"
[ ! -e "$T/bad1" ] || fail "unknown recipe: $T/bad1 was created"
bad "unknown model" 2 "model '$T/no-such-model' does not exist" \
  "$SWEEP" --models "$T/no-such-model" --recipes test/stories-rtn-w4-pc --results "$T/bad2"
mkdir -p "$T/not-a-model"
bad "folder that is no model" 2 "does not load" \
  "$SWEEP" --models "$T/not-a-model" --recipes test/stories-rtn-w4-pc --results "$T/bad2"
mkdir -p "$T/ro"
if mount -t tmpfs -o ro,size=1m tmpfs "$T/ro" 2>/dev/null; then
  RO_MOUNTED="$T/ro"
  bad "read-only results folder" 2 "results folder .* cannot be created: Read-only file system" \
    "$SWEEP" --models "$T/stories260K" --recipes test/stories-rtn-w4-pc --results "$T/ro/R"
  umount "$T/ro"; RO_MOUNTED=""
else  # no CAP_SYS_ADMIN: a results path under a regular file
  echo "note: cannot mount a read-only tmpfs here; an unwritable path under a file instead"
  touch "$T/ro/file"
  bad "unwritable results folder" 2 "results folder .* cannot be created" \
    "$SWEEP" --models "$T/stories260K" --recipes test/stories-rtn-w4-pc --results "$T/ro/file/R"
fi
bad "unreachable controller" 1 "sbatch failed.*(contact|connect).*" \
  env SLURM_CONF="$T/dead.conf" "$SWEEP" --models "$T/stories260K" --recipes test/stories-rtn-w4-pc --results "$T/bad3"
grep -q "hint: is slurmctld running" <<<"$LAST_OUT" || fail "unreachable controller: no hint: $LAST_OUT"
[ "$(njobs)" -le 3 ] || fail "bad input submitted jobs: $(squeue)"
before=$(njobs)
dry="$("$SWEEP" --models "$T/stories260K" --recipes test/stories-rtn-w4-pc --seeds 0,1 --results "$T/dry" --dry-run 2>&1)" \
  || fail "--dry-run failed: $dry"
grep -q -- '#SBATCH --array=0-1' <<<"$dry" && grep -q 'stories260K__test+stories-rtn-w4-pc__s1' <<<"$dry" \
  || fail "--dry-run does not print the script and the table: $dry"
[ "$(njobs)" -le "$before" ] && [ -z "$(ls "$T/dry/.sweep" 2>/dev/null)" ] || fail "--dry-run submitted or wrote something"
ok "--dry-run prints the array script and the table, submits nothing"
mark "bad-input checks done"

# --- wait for the sweep ---
for _ in $(seq 1 600); do
  [ -z "$(squeue -h -j "$JOB" -o %i 2>/dev/null)" ] && break
  sleep 0.5
done
[ -z "$(squeue -h -j "$JOB" -o %i 2>/dev/null)" ] || fail "the sweep did not finish in 300 s: $(squeue)"
mark "sweep finished"
wait "$REF_PID" || fail "the uninterrupted reference run failed: $(tail -n 5 "$T/log/reference.log")"
mark "reference run (uninterrupted, no Slurm) finished"

echo "--- summary.sh $R"
"$SUMMARY" "$R" || fail "summary.sh exits non-zero on the finished sweep"
for d in "$R"/stories260K__*; do
  for f in quantize.json eval.json result.json task.log model/model.safetensors; do
    [ -e "$d/$f" ] || fail "$d/$f missing"
  done
  grep -q '"status": "done"' "$d/result.json" || fail "$d/result.json: $(cat "$d/result.json")"
done
[ "$(ls -d "$R"/stories260K__* | wc -l)" -eq 3 ] || fail "expected 3 combination folders"
again="$("$SWEEP" --models "$T/stories260K" --recipes "$RECIPES" --seeds 0 --results "$R" 2>&1)" || fail "sweep.sh again: $again"
grep -q 'nothing to submit' <<<"$again" && [ "$(grep -c 'skipped: already done' <<<"$again")" -eq 3 ] \
  || fail "a second submission does not skip the done combinations: $again"
[ "$(ls "$R"/.sweep/*.job | wc -l)" -eq 1 ] || fail "a second submission submitted a job"
ok "submitting again skips the 3 done combinations and submits nothing"

# the preempted task: two attempts, the preempted result, a requeue and the resume line
echo "--- $LONG_COMBO/task.log (headers and task lines)"
tr '\r' '\n' <"$LD/task.log" | grep -E '^===|^task:|^preempted:|resuming' | cut -c1-220
[ "$(grep -c '^=== attempt' "$LD/task.log")" -ge 2 ] || fail "the preempted task did not run twice"
grep -q '^=== attempt 2 (SLURM_RESTART_COUNT=1)' "$LD/task.log" || fail "attempt 2 does not show SLURM_RESTART_COUNT=1"
grep -q '^preempted:' "$LD/task.log" || fail "sliderquant printed no 'preempted:' line"
grep -q 'quantize exited 75' "$LD/task.log" || fail "quantize did not exit 75 on SIGUSR1"
grep -q '^task: requeue' "$LD/task.log" || fail "the task did not requeue itself"
grep -aq 'resuming from .*model.work' "$LD/task.log" || fail "the requeued attempt did not resume from model.work"
grep -q '"attempts": 2' "$LD/result.json" || fail "result.json: $(cat "$LD/result.json")"
grep -q 'Requeuing JobId='"${JOB}_$LONG_TASK" "$T/log/slurmctld.log" || fail "slurmctld did not requeue ${JOB}_$LONG_TASK"

# equal to the uninterrupted run
python3 - "$T/ref/model" "$LD/model" <<'EOF' || fail "the resumed output differs from the uninterrupted run"
import hashlib, json, os, re, sys
a, b = sys.argv[1], sys.argv[2]
MEAS = re.compile(r"second|timing|elapsed|peak|rss|_bytes$| bytes$", re.I)
def strip(x):
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if not MEAS.search(k)}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x
fa, fb = sorted(os.listdir(a)), sorted(os.listdir(b))
if fa != fb:
    sys.exit(f"files differ: {fa} vs {fb}")
bad = 0
for f in fa:
    ha = hashlib.sha256(open(os.path.join(a, f), "rb").read()).hexdigest()
    hb = hashlib.sha256(open(os.path.join(b, f), "rb").read()).hexdigest()
    if f == "quantization_config.json" and ha != hb:
        ja, jb = strip(json.load(open(os.path.join(a, f)))), strip(json.load(open(os.path.join(b, f))))
        same = ja == jb
        print(f"  {f}: sha256 {ha[:16]} vs {hb[:16]} (timings differ); without timing fields: {'equal' if same else 'DIFFERENT'}")
        bad += not same
    else:
        print(f"  {f}: sha256 {ha[:16]} vs {hb[:16]} {'equal' if ha == hb else 'DIFFERENT'}")
        bad += ha != hb
sys.exit(1 if bad else 0)
EOF
ok "the preempted and resumed output equals the uninterrupted run"

# --- 3. a failing task is "failed" with sliderquant's error line; one killed with SIGKILL is
#        failed-killed; neither is ever done ---
RF="$T/RF"
"$SWEEP" --models "$T/stories260K" --recipes test/stories-rtn-w4-pc --results "$RF" \
  --eval-args "--ppl $T/no-such-text.txt" >/dev/null 2>&1 || fail "sweep.sh (failing-task test) failed"
FJOB="$(cat "$RF"/.sweep/*.job)"
RK="$T/RK"
"$SWEEP" --models "$T/stories260K" --recipes "$LONG_RECIPE" --seeds 1 --results "$RK" \
  --quantize-args "$QARGS" --eval-args "$EARGS" >/dev/null 2>&1 || fail "sweep.sh (kill test) failed"
KJOB="$(cat "$RK"/.sweep/*.job)"
KD="$RK/stories260K__${LONG_RECIPE//\//+}__s1"
for _ in $(seq 1 120); do grep -qs '^task: quantize:' "$KD/task.log" && break; sleep 0.25; done
grep -qs '^task: quantize:' "$KD/task.log" || fail "the kill-test task never started quantize"
scancel --signal=KILL --batch "${KJOB}_0" || fail "scancel --signal=KILL failed"
mark "SIGKILL to ${KJOB}_0 (kill test)"
for _ in $(seq 1 120); do [ -z "$(squeue -h -j "$KJOB" -o %i 2>/dev/null)" ] && break; sleep 0.25; done
[ -z "$(squeue -h -j "$KJOB" -o %i 2>/dev/null)" ] || fail "the killed job is still in the queue"
orphans() { ps -eo pid=,args= | awk -v s="--out $KD/model" 'index($0, s) && $2 !~ /awk/ { print $1 }'; }
for _ in $(seq 1 20); do [ -z "$(orphans)" ] && break; sleep 0.25; done
[ -z "$(orphans)" ] || fail "sliderquant outlived its SIGKILLed task (pid $(orphans | tr '\n' ' '))"
set +e; ks="$("$SUMMARY" "$RK")"; krc=$?; set -e
printf '%s\n' "$ks"
[ "$krc" -ne 0 ] || fail "summary.sh exits 0 with a killed task"
grep -q '^failed-killed ' <<<"$ks" || fail "summary.sh does not name the killed task failed-killed"
grep -q '^done ' <<<"$ks" && fail "summary.sh counts the killed task as done"
set +e; "$SWEEP" --summary "$RK" >/dev/null; [ $? -ne 0 ] || fail "sweep.sh --summary exits 0 with a killed task"; set -e
ok "the SIGKILLed task is failed-killed (summary exit $krc)"
for _ in $(seq 1 240); do [ -z "$(squeue -h -j "$FJOB" -o %i 2>/dev/null)" ] && break; sleep 0.25; done
set +e; fs="$("$SUMMARY" "$RF")"; frc=$?; set -e
printf '%s\n' "$fs"
[ "$frc" -ne 0 ] || fail "summary.sh exits 0 with a failed task"
grep -qE '^failed +stories260K__test\+stories-rtn-w4-pc__s0 +exit 2: error: unknown dataset' <<<"$fs" \
  || fail "summary.sh does not name the failed task with its exit code and error line"
FD="$RF/stories260K__test+stories-rtn-w4-pc__s0"
grep -q '"status": "failed"' "$FD/result.json" && grep -q '"exit_code": 2' "$FD/result.json" \
  && [ -f "$FD/quantize.json" ] && [ ! -e "$FD/eval.json" ] || fail "failed task's files: $(cat "$FD/result.json"; ls "$FD")"
ok "the failing task is failed with its error line (summary exit $frc)"

# --- 4. the report and its screenshot ---
"$CLI" report --help >/dev/null 2>&1 || fail "'sliderquant report' does not exist in $CLI (needed to render RESULTS)"
"$CLI" report "$R" --out "$R/report.html" >"$T/log/report.log" 2>&1 || fail "sliderquant report failed: $(tail -n 3 "$T/log/report.log")"
for r in ${RECIPES//,/ }; do
  grep -qF -- "$r" "$R/report.html" || fail "report.html does not list $r"
done
ok "report.html lists all 3 runs"
timeout 120 chromium --headless --no-sandbox --disable-gpu --user-data-dir="$T/chromium" \
  --screenshot="$T/report.png" --window-size=1280,1600 "file://$R/report.html" >"$T/log/chromium.log" 2>&1 \
  || fail "chromium failed: $(tail -n 3 "$T/log/chromium.log")"
python3 "$ROOT/tests/slurm/png_check.py" "$T/report.png" || fail "the report's screenshot is blank"
mark "report rendered and checked"

# --- the timeline (from the test's marks and the task's own stamped lines) ---
echo "--- timeline (UTC; +s since the test started; [test] this script, [task] $LONG_COMBO/task.log, [slurmctld] its log)"
python3 "$ROOT/tests/slurm/timeline.py" "$T0" "$T/timeline.txt" "$LD/task.log" "$T/log/slurmctld.log" "${JOB}_$LONG_TASK"
echo "PASS: tests/slurm/test_slurm.sh in $(el) s ($SLURM_VERSION)"
