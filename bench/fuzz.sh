#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang, ASan + UBSan) in build-fuzz/, makes their seed
# corpora, runs each target for SQ_FUZZ_SECONDS and reports.
#
#   SQ_FUZZ_SECONDS=60 nice -n 15 bash bench/fuzz.sh
#
# Environment:
#   SQ_FUZZ_SECONDS   seconds per target (default 30)
#   SQ_FUZZ_RUNS      stop a target after this many executions instead, if it gets there first
#                     (the 10-million campaign: SQ_FUZZ_RUNS=10000000 SQ_FUZZ_SECONDS=7200)
#   SQ_FUZZ_TARGETS   targets to run (default: all seven)
#   SQ_FUZZ_BUILD     build directory (default build-fuzz: the standalone fuzz/ project; or
#                     build-asan, the instrumented tree scripts/sanitize.sh configured with
#                     SQ_FUZZ=ON, where only the harnesses are left to compile: .ci/run's way)
#   SQ_FUZZ_JOBS      build parallelism (default 2)
#   SQ_FUZZ_PARALLEL  targets run at the same time, one process each (default: the core count)
#   SQ_FUZZ_FRESH=1   start each target from the seeds again (default: keep the corpus that
#                     earlier runs grew in build-fuzz/corpus/<target>)
#   SQ_FUZZ_STRICT=1  make soft findings (non-sq::Error exceptions, broken round trips) stop
#                     the target like a crash, instead of being recorded and fuzzing going on
#   CXX_FUZZ          the clang++ to use (default clang++)
# (SQ_FUZZ_VERBOSE=1 is for replaying inputs by hand: ACCEPTED / REJECTED per input.)
#
# Per target: working corpus build-fuzz/corpus/<t>/ (seeds copied in, grows), libFuzzer log
# build-fuzz/logs/<t>.log, findings build-fuzz/findings/<t>/ (libFuzzer artifacts crash-*,
# leak-*, timeout-*, oom-*; soft-<pid>-N.input + .txt; kept across runs). Report: a table on stdout and
# build-fuzz/fuzz_report.json.
# Exit status: 0 clean, 1 findings (each named), 2 build failure.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
B="${SQ_FUZZ_BUILD:-$ROOT/build-fuzz}"
SECS="${SQ_FUZZ_SECONDS:-30}"
TARGETS="${SQ_FUZZ_TARGETS:-fuzz_safetensors fuzz_gguf fuzz_config fuzz_recipe fuzz_tokenizer_json fuzz_spm fuzz_formats}"
JOBS="${SQ_FUZZ_JOBS:-2}"
PARALLEL="${SQ_FUZZ_PARALLEL:-$(nproc)}"
NICE=(nice -n 15)

# ---- build ------------------------------------------------------------------------------
t0=$(date +%s)
if [ ! -f "$B/build.ninja" ]; then
  "${NICE[@]}" cmake -S "$ROOT/fuzz" -B "$B" -G Ninja -DCMAKE_CXX_COMPILER="${CXX_FUZZ:-clang++}" >"$B.configure.log" 2>&1 \
    || { cat "$B.configure.log"; echo "fuzz.sh: configure failed" >&2; exit 2; }
  mv "$B.configure.log" "$B/configure.log"
fi
# shellcheck disable=SC2086
if ! "${NICE[@]}" cmake --build "$B" -j"$JOBS" --target $TARGETS >"$B/build.log" 2>&1; then
  tail -40 "$B/build.log"
  echo "fuzz.sh: build failed (full log: $B/build.log)" >&2
  exit 2
fi
BUILD_S=$(( $(date +%s) - t0 ))
echo "build: ${BUILD_S}s (log: $B/build.log)"

# ---- corpora ------------------------------------------------------------------------------
# Seeds from the fixtures (regenerated every run) plus the committed ones in fuzz/corpus.
rm -rf "$B/seeds"
bash "$ROOT/fuzz/make_corpus.sh" "$B/seeds" | sed 's/^/seeds: /'
rm -rf "$B/tmp"  # scratch dirs a crashed target could not remove
mkdir -p "$B/corpus" "$B/logs" "$B/findings" "$B/tmp"

# ---- runs ---------------------------------------------------------------------------------
export OMP_NUM_THREADS=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:symbolize=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
run_target() {  # one target, start to end; appends "target rc start end" to the runs file
  local t=$1 s0 s1 rc
  s0=$(date +%s.%N)
  env "${findings_env[@]}" TMPDIR="$B/tmp" "${NICE[@]}" "$B/$t" "$B/corpus/$t" \
    -max_total_time="$SECS" ${SQ_FUZZ_RUNS:+-runs="$SQ_FUZZ_RUNS"} -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$B/findings/$t/" >"$B/logs/$t.log" 2>&1
  rc=$?
  s1=$(date +%s.%N)
  echo "$t $rc $s0 $s1" >>"$B/logs/runs.txt.$$"
}
running=0
for t in $TARGETS; do
  [ "${SQ_FUZZ_FRESH:-0}" = 1 ] && rm -rf "$B/corpus/$t"
  mkdir -p "$B/corpus/$t"
  for src in "$B/seeds/$t" "$ROOT/fuzz/corpus/$t"; do
    [ -d "$src" ] && cp -n "$src"/* "$B/corpus/$t"/ 2>/dev/null
  done
  mkdir -p "$B/findings/$t"  # kept across runs; the report lists this run's files only
  findings_env=(SQ_FUZZ_FINDINGS_DIR="$B/findings/$t")
  [ "${SQ_FUZZ_STRICT:-0}" = 1 ] && findings_env=(SQ_FUZZ_FINDINGS_DIR=)
  echo "run: $t for ${SECS}s"
  if [ "$running" -ge "$PARALLEL" ]; then wait -n; running=$((running - 1)); fi
  run_target "$t" &
  running=$((running + 1))
done
wait

# ---- report -------------------------------------------------------------------------------
python3 - "$B" "$BUILD_S" "$B/logs/runs.txt.$$" <<'EOF'
import glob, json, os, re, sys
b, build_s, runs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rows, bad = [], []
for line in open(runs):
    t, rc, s0, s1 = line.split()
    rc, secs = int(rc), float(s1) - float(s0)
    log = open(os.path.join(b, "logs", t + ".log"), errors="replace").read()
    def stat(name):
        m = re.findall(r"stat::%s:\s*(\d+)" % name, log)
        return int(m[-1]) if m else None
    execs = stat("number_of_executed_units")
    eps = stat("average_exec_per_sec")
    cov = re.findall(r"\bcov: (\d+)", log)
    corpus = len(os.listdir(os.path.join(b, "corpus", t)))
    fdir = os.path.join(b, "findings", t)
    new = [p for p in glob.glob(os.path.join(fdir, "*")) if os.path.getmtime(p) >= float(s0) - 1]
    hard = sorted(p for p in new if re.match(r"(crash|leak|timeout|oom|slow-unit)-", os.path.basename(p)))
    soft = sorted(p for p in new if re.match(r"soft-.*\.input$", os.path.basename(p)))
    kinds = []
    for pat, k in ((r"ERROR: AddressSanitizer: (\S+)", "asan"), (r"runtime error: (.*)", "ubsan"),
                   (r"ERROR: LeakSanitizer", "leak"), (r"ERROR: libFuzzer: timeout", "timeout"),
                   (r"ERROR: libFuzzer: out-of-memory", "oom"), (r"ERROR: libFuzzer: deadly signal", "deadly signal"),
                   (r"FINDING: (.*)", "finding")):
        m = re.search(pat, log)
        if m:
            kinds.append(k + (": " + m.group(1)[:120] if m.groups() else ""))
    soft_kinds = []
    for p in soft:
        txt = open(p[:-len(".input")] + ".txt", errors="replace").read()
        soft_kinds.append({"input": p, "kind": txt.splitlines()[0][len("kind: "):]})
    status = "crash" if hard or rc != 0 else ("soft" if soft else "ok")
    row = {"target": t, "seconds": round(secs, 1), "executions": execs, "exec_per_s": eps,
           "coverage": int(cov[-1]) if cov else None, "corpus_files": corpus, "exit_code": rc,
           "status": status, "hard_findings": hard, "what": kinds, "soft_findings": soft_kinds,
           "log": os.path.join(b, "logs", t + ".log")}
    rows.append(row)
    if hard or rc != 0 or soft:
        bad.append(row)
os.remove(runs)
with open(os.path.join(b, "fuzz_report.json"), "w") as f:
    json.dump({"build_seconds": build_s, "targets": rows}, f, indent=1)
fmt = "%-20s %8s %12s %8s %6s %7s  %s"
print()
print(fmt % ("target", "seconds", "executions", "exec/s", "cov", "corpus", "findings"))
for r in rows:
    fnd = []
    if r["hard_findings"]:
        fnd.append("%s: %s" % (", ".join(r["what"]) or "crash", " ".join(r["hard_findings"])))
    elif r["exit_code"] != 0:
        fnd.append("exit %d, no artifact (see %s)" % (r["exit_code"], r["log"]))
    if r["soft_findings"]:
        fnd.append("%d soft" % len(r["soft_findings"]))
    print(fmt % (r["target"], "%.0f" % r["seconds"], r["executions"], r["exec_per_s"], r["coverage"],
                 r["corpus_files"], "; ".join(fnd) or "none"))
for r in rows:
    for s in r["soft_findings"]:
        print("soft finding %s: %s" % (s["input"], s["kind"]))
print("\nreport: %s" % os.path.join(b, "fuzz_report.json"))
if bad:
    for r in bad:
        for h in r["hard_findings"]:
            print("FINDING %s: %s (log %s)" % (r["target"], h, r["log"]), file=sys.stderr)
    sys.exit(1)
EOF
