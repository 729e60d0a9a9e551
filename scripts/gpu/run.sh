#!/usr/bin/env bash
# scripts/gpu/run.sh — runs ON the GPU machine, in the repository root, in one device-tool call:
#     bash scripts/gpu/run.sh            (carry [".gpu-deps"], made by scripts/gpu/fetch_deps.sh)
# Owns the GPU pipeline: environment report, configure (PyTorch wheel's libtorch + Debian deps
# unpacked in .gpu-deps/prefix), build, a CPU-vs-CUDA perplexity smoke check on stories260K,
# ctest, bench/bench_eval.py with --device cuda, then bench/bench_quantize.py (GPTQ vs RTN w4g128
# on a synthetic Llama-2-7B) in the time left. Logs and the benchmark JSONs go to $OUT (./out
# when unset): 8 files, the device tool's limit (env + configure share a log, smoke + test too).
# Exits non-zero if any phase failed or was skipped for lack of time; the quantize benchmark
# skipped for time says how to run it alone in a second call:
#     SQ_SKIP_TESTS=1 SQ_SKIP_EVAL_BENCH=1 bash scripts/gpu/run.sh
# SliderQuant's benchmark (bench/bench_sliderquant.py: W2A16 and W4A4 on the synthetic 7B at a
# stated fraction of the official run, extrapolated) runs only when asked, in a call of its own
# (its JSON takes the place of bench_eval.json in the 8 files):
#     SQ_SKIP_TESTS=1 SQ_SKIP_EVAL_BENCH=1 SQ_SKIP_QBENCH=1 SQ_SQBENCH=1 bash scripts/gpu/run.sh
#
# Overrides (for reruns, and for exercising this script on the CPU machine):
#   SQ_BUILD_DIR (build-gpu)  SQ_JOBS (16)  SQ_DEADLINE_S (560: whole-run budget, the tool kills at 600)
#   SQ_TEST_BUDGET_S (180)  SQ_SKIP_TESTS=1  SQ_BENCH_DEVICE (cuda)
#   SQ_SKIP_EVAL_BENCH=1  SQ_SKIP_QBENCH=1  (SQ_SKIP_BENCH=1: both benchmarks)
#   SQ_BENCH_ARGS (extra bench_eval.py arguments)  SQ_QBENCH_ARGS (extra bench_quantize.py arguments)
#   SQ_SQBENCH=1 (run bench_sliderquant.py)  SQ_SQBENCH_ARGS (its extra arguments)
#   SQ_LBENCH=1 (run bench_learned.py)  SQ_LBENCH_ARGS (its extra arguments; default
#     "--suites step": one adaptive training step on a 7B-shaped layer, search vs affine vs rotation)
#   SQ_QBENCH_MIN_S (240: the quantize benchmark is skipped with less time left than this)
#   SQ_CMAKE_ARGS (extra configure arguments)
#   SQ_TORCH_CMAKE_PREFIX / SQ_TORCH_ROOT (default: asked of python3's torch)
#   SQ_TORCH_MODE=auto|manual (auto: TorchConfig first, manual on failure)
#   SQ_FORCE_CARRIED_PKGCONF=1 (use .gpu-deps' pkgconf even if pkg-config exists)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
T0=$(date +%s)
OUT=${OUT:-$ROOT/out}
mkdir -p "$OUT"
DEPS=$ROOT/.gpu-deps
PREFIX=$DEPS/prefix/usr
ARCHLIB=$PREFIX/lib/x86_64-linux-gnu
# The carried libraries (libutf8proc, libpcre2, libbz2) are linked by full path, so CMake's
# build RPATH finds them at run time; no global LD_LIBRARY_PATH (the machine's own tools
# such as grep must keep their own libpcre2).
BUILD=${SQ_BUILD_DIR:-$ROOT/build-gpu}
AUX=$BUILD/sq-gpu-aux          # rewritten .pc, pkg-config wrapper, configure attempt logs
JOBS=${SQ_JOBS:-16}
DEADLINE_S=${SQ_DEADLINE_S:-560}
TEST_BUDGET_S=${SQ_TEST_BUDGET_S:-180}
DEVICE=${SQ_BENCH_DEVICE:-cuda}
SKIP_EVAL_BENCH=${SQ_SKIP_EVAL_BENCH:-${SQ_SKIP_BENCH:-0}}
SKIP_QBENCH=${SQ_SKIP_QBENCH:-${SQ_SKIP_BENCH:-0}}
QBENCH_MIN_S=${SQ_QBENCH_MIN_S:-240}
export PYTHONUNBUFFERED=1

elapsed() { echo $(( $(date +%s) - T0 )); }
remaining() { echo $(( DEADLINE_S - $(elapsed) )); }

# ---- phase runner ---------------------------------------------------------------------------
# Each phase runs in a subshell with errexit on, its output appended (tee -a) to $OUT/<log>: two
# phases may share a log, which keeps $OUT within the device tool's 8 files. It must be called
# as a plain command (never inside if/||: bash would then ignore errexit inside the phase).
LOGS=(10-env-configure.log 20-build.log 30-smoke-test.log 40-bench.log bench_eval.json
      50-qbench.log bench_quantize.json summary.txt bench_sliderquant.json)
for f in "${LOGS[@]}"; do rm -f "$OUT/$f"; done
PHASES=()
FAILED=0
LAST=0
run_phase() {
  local name=$1 log=$OUT/$2 t0 t1 rc
  shift 2
  t0=$(date +%s.%N)
  printf '\n==================== %s ==================== (t+%ss, %s UTC)\n' "$name" "$(elapsed)" "$(date -u +%H:%M:%S)"
  set +e
  printf '==================== %s (t+%ss)\n' "$name" "$(elapsed)" >>"$log"
  ( set -euo pipefail; "$@" ) 2>&1 | tee -a "$log"
  rc=${PIPESTATUS[0]}
  set -e
  t1=$(date +%s.%N)
  local dt
  dt=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  local verdict=ok
  ((rc == 0)) || { verdict="FAILED (rc $rc)"; FAILED=1; }
  printf -- '-------------------- %s: %s, wall %ss\n' "$name" "$verdict" "$dt"
  PHASES+=("$(printf '%-10s %-16s %8ss' "$name" "$verdict" "$dt")")
  LAST=$rc
  return 0
}
skip_phase() {
  printf '\n==================== %s ==================== SKIPPED: %s\n' "$1" "$2"
  PHASES+=("$(printf '%-10s %-16s %s' "$1" "SKIPPED" "$2")")
  [[ ${3:-fail} == fail ]] && FAILED=1
  return 0
}

# ---- torch location (python3's torch on the GPU machine) -------------------------------------
TORCH_CMAKE=${SQ_TORCH_CMAKE_PREFIX:-$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null || true)}
TORCH_ROOT=${SQ_TORCH_ROOT:-$(python3 -c 'import torch, os; print(os.path.dirname(torch.__file__))' 2>/dev/null || true)}
TORCH_MODE=${SQ_TORCH_MODE:-auto}

# ---- generator: ninja, else the pip ninja, else make -------------------------------------------
GEN=Ninja
if ! command -v ninja >/dev/null; then
  nbin=$(python3 -c 'import ninja, os; print(ninja.BIN_DIR)' 2>/dev/null || true)
  if [[ -n $nbin && -x $nbin/ninja ]]; then export PATH=$nbin:$PATH; else GEN="Unix Makefiles"; fi
fi

# ---- sentencepiece through pkg-config, pointed into the prefix -------------------------------------
SPM=ON
SPM_NOTE="sentencepiece: ON (Debian 0.1.97 from .gpu-deps)"
PKGCONF=""
setup_sentencepiece() {
  local pc=$ARCHLIB/pkgconfig/sentencepiece.pc
  if [[ ! -f $pc || ! -e $ARCHLIB/libsentencepiece.so.0 ]]; then
    SPM=OFF; SPM_NOTE="sentencepiece: OFF (no $pc in .gpu-deps: run scripts/gpu/fetch_deps.sh and carry .gpu-deps)"
    return 0
  fi
  mkdir -p "$AUX/pkgconfig" "$AUX/bin"
  # Debian's .pc files say prefix=/usr; the libraries live in the carried prefix
  # (sentencepiece, and libpcre2-8 / libutf8proc for the BPE tokenizer).
  for f in "$ARCHLIB"/pkgconfig/*.pc "$PREFIX"/share/pkgconfig/*.pc; do
    [[ -f $f ]] || continue
    sed "s|^prefix=.*|prefix=$PREFIX|" "$f" >"$AUX/pkgconfig/$(basename "$f")"
  done
  export PKG_CONFIG_PATH=$AUX/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
  # the module libsq_spm.so loads libsentencepiece.so.0 from the prefix (CMake's build RPATH
  # covers it too; this is belt and braces)
  export LD_LIBRARY_PATH=$ARCHLIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  if [[ ${SQ_FORCE_CARRIED_PKGCONF:-0} != 1 ]] && command -v pkg-config >/dev/null; then
    PKGCONF=$(command -v pkg-config)
  elif [[ -x $PREFIX/bin/pkgconf ]]; then
    printf '#!/bin/sh\nLD_LIBRARY_PATH="%s${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" exec "%s" "$@"\n' \
      "$ARCHLIB" "$PREFIX/bin/pkgconf" >"$AUX/bin/pkg-config"
    chmod +x "$AUX/bin/pkg-config"
    PKGCONF=$AUX/bin/pkg-config
  else
    SPM=OFF; SPM_NOTE="sentencepiece: OFF (no pkg-config on this machine and none in .gpu-deps)"
    return 0
  fi
  local libs
  if ! libs=$("$PKGCONF" --libs sentencepiece 2>&1) || [[ $libs != *"$ARCHLIB"* ]]; then
    SPM=OFF; SPM_NOTE="sentencepiece: OFF ($PKGCONF --libs sentencepiece gave: $libs)"
    return 0
  fi
  SPM_NOTE="sentencepiece: ON (Debian 0.1.97 from .gpu-deps, pkg-config $PKGCONF)"
}
mkdir -p "$AUX"
setup_sentencepiece

# ---- phases -------------------------------------------------------------------------------------
phase_env() {
  echo "host $(hostname) | kernel $(uname -r) | $(nproc) CPUs | repo $ROOT | OUT $OUT"
  free -g | head -2 || true
  df -h "$ROOT" | tail -1 || true
  if command -v nvidia-smi >/dev/null; then nvidia-smi || true; else echo "nvidia-smi: not found"; fi
  python3 -c 'import torch; print(torch.__version__, torch.version.cuda, torch._C._GLIBCXX_USE_CXX11_ABI)' \
    || echo "python3 torch: not importable"
  python3 -c 'import torch; print("cuda available:", torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")' || true
  echo "torch cmake prefix: ${TORCH_CMAKE:-?} | torch dir: ${TORCH_ROOT:-?} | mode: $TORCH_MODE"
  cmake --version | head -1
  echo "generator: $GEN $(command -v ninja >/dev/null && ninja --version)"
  c++ --version | head -1 || true
  if command -v nvcc >/dev/null; then nvcc --version | tail -2; else echo "nvcc: not on PATH"; fi
  echo "pkg-config: ${PKGCONF:-none} | $SPM_NOTE"
  if [[ -d $DEPS ]]; then du -sh "$DEPS"; else echo "WARNING: no .gpu-deps (carry it)"; fi
  [[ -n $TORCH_CMAKE || -n $TORCH_ROOT ]] || { echo "no torch found"; return 1; }
  command -v cmake >/dev/null
}

# configure_once MODE SPM -> rc; log in $AUX/configure-MODE-SPM.log
configure_once() {
  local mode=$1 spm=$2 log=$AUX/configure-$1-$2.log
  local args=(-S "$ROOT" -B "$BUILD" -G "$GEN"
    -DCMAKE_PREFIX_PATH="${TORCH_ROOT:+$TORCH_ROOT;}$TORCH_CMAKE;$PREFIX"
    -DSQ_GTEST_SOURCE_DIR="$PREFIX/src/googletest"
    -DSQ_WITH_SENTENCEPIECE="$spm")
  [[ -n $PKGCONF ]] && args+=(-DPKG_CONFIG_EXECUTABLE="$PKGCONF")
  if [[ $mode == manual ]]; then
    args+=(-DSQ_TORCH_MANUAL=ON -DSQ_TORCH_ROOT="$TORCH_ROOT")
  else
    args+=(-DSQ_TORCH_MANUAL=OFF)
  fi
  # shellcheck disable=SC2206
  [[ -n ${SQ_CMAKE_ARGS:-} ]] && args+=($SQ_CMAKE_ARGS)
  rm -rf "$BUILD/CMakeCache.txt" "$BUILD/CMakeFiles"
  echo "+ cmake ${args[*]}"
  local rc=0
  cmake "${args[@]}" >"$log" 2>&1 || rc=$?
  tail -n 40 "$log"
  echo "(configure $mode, sentencepiece $spm: rc $rc; full log $log)"
  return $rc
}

phase_configure() {
  local modes=(auto manual) spms=("$SPM")
  [[ $TORCH_MODE == manual ]] && modes=(manual)
  [[ $SPM == ON ]] && spms=(ON OFF)
  for spm in "${spms[@]}"; do
    for mode in "${modes[@]}"; do
      if [[ $mode == manual && -z $TORCH_ROOT ]]; then continue; fi
      if configure_once "$mode" "$spm"; then
        echo "torch=$mode sentencepiece=$spm" >"$AUX/configure.result"
        [[ $spm == OFF && $SPM == ON ]] && echo "NOTE: sentencepiece fell back to OFF (configure failed with it ON)"
        grep -E '^(Torch_DIR|nlohmann_json_DIR|CLI11_DIR|LIBLZMA_LIBRARY_RELEASE|SQ_GTEST_SRC|pkgcfg_lib_SPM_sentencepiece|SQ_TORCH_MANUAL|CMAKE_BUILD_TYPE)[:]' \
          "$BUILD/CMakeCache.txt" || true
        return 0
      fi
      local log=$AUX/configure-$mode-$spm.log
      if [[ $mode == auto ]] && grep -q 'cannot find the CUDA libraries' "$log"; then
        echo ">> TorchConfig wants a CUDA toolkit it cannot find: retrying with SQ_TORCH_MANUAL=ON"
      elif [[ $mode == auto ]]; then
        echo ">> TorchConfig configure failed: retrying with SQ_TORCH_MANUAL=ON"
      fi
    done
    if [[ $spm == ON ]]; then
      if grep -qiE 'sentencepiece|pkg-config|PkgConfig' "$AUX"/configure-*-ON.log; then
        echo ">> configure failed around sentencepiece/pkg-config: retrying with SQ_WITH_SENTENCEPIECE=OFF"
      else
        echo ">> configure failed: one more try with SQ_WITH_SENTENCEPIECE=OFF"
      fi
    fi
  done
  echo "configure failed in every mode"
  return 1
}

phase_build() {
  cmake --build "$BUILD" -j "$JOBS"
  echo "--- binaries"
  ls -l "$BUILD/sliderquant" "$BUILD"/libsq_spm.so "$BUILD/tests/sq_tests" 2>/dev/null || true
  echo "--- torch libraries the CLI loads"
  ldd "$BUILD/sliderquant" | grep -E 'torch|c10|cuda|not found' || true
  ! ldd "$BUILD/sliderquant" | grep -q 'not found'
}

# The real stories260K model on the CPU and on $DEVICE: float32 perplexities must agree to 1e-3
# (relative), bfloat16 to 2e-2 of the CPU float32 one. No test in the suite touches CUDA.
phase_smoke() {
  local m=$ROOT/tests/fixtures/stories260K/hf d=$AUX/smoke data=$DEPS/data
  [[ -d $data ]] || data=$ROOT/../shared/data
  rm -rf "$d"; mkdir -p "$d"
  local devs=(cpu) dev dt
  [[ $DEVICE != cpu ]] && devs+=("$DEVICE")
  for dev in "${devs[@]}"; do
    for dt in float32 bfloat16; do
      echo "+ sliderquant eval stories260K --device $dev --dtype $dt"
      "$BUILD/sliderquant" eval "$m" --ppl wikitext2 --data-dir "$data" --seqlen 512 --batch-size 4 \
        --max-windows 16 --device "$dev" --dtype "$dt" --json "$d/$dev-$dt.json" --quiet
    done
  done
  python3 - "$d" "$DEVICE" <<'PY'
import json, os, sys
d, dev = sys.argv[1:]
def get(k):
    j = json.load(open(os.path.join(d, k + ".json")))
    return j["perplexity"][0]["ppl"], j.get("device"), j["perplexity"][0].get("tokens_per_second")
ref = get("cpu-float32")[0]
bad = 0
for k, tol in (("cpu-bfloat16", 2e-2), (dev + "-float32", 1e-3), (dev + "-bfloat16", 2e-2)):
    ppl, where, tps = get(k)
    rel = abs(ppl - ref) / ref
    ok = rel <= tol and ppl == ppl
    bad += not ok
    print("%-16s device %-8s ppl %.6f  vs cpu-float32 %.6f  rel %.2e (tol %.0e)  %s  %.0f tok/s"
          % (k, where, ppl, ref, rel, tol, "ok" if ok else "MISMATCH", tps or 0))
sys.exit(1 if bad else 0)
PY
}

phase_test() {
  local budget=$1
  cd "$BUILD"
  timeout --signal=TERM --kill-after=10 "$budget" \
    ctest -j 8 --output-on-failure --timeout 600 --output-junit "$AUX/ctest-junit.xml"
}

# Runs bench/SCRIPT.py on the device with --out $OUT/SCRIPT.json, the given budget and the
# extra arguments in the environment variable named EXTRA_VAR.
run_bench() {
  local script=$1 extra_var=$2 budget=$3 data=$DEPS/data
  [[ -d $data ]] || data=$ROOT/../shared/data
  # shellcheck disable=SC2206
  local extra=(${!extra_var:-})
  python3 "$ROOT/bench/$script.py" --bin "$BUILD/sliderquant" --data-dir "$data" \
    --device "$DEVICE" --work "$BUILD/bench-work" --out "$OUT/$script.json" \
    --budget-s "$budget" "${extra[@]}"
}

phase_bench() { run_bench bench_eval SQ_BENCH_ARGS "$1"; }

# GPTQ w4g128 (the issue's target: under 180 s and 20 GB GPU memory on one H100) and RTN w4g128
# on the same synthetic llama2-7b checkpoint bench_eval.py made (its cache, same stamp), with
# 128 x 2048 calibration tokens of WikiText-2 test text (the only text .gpu-deps carries; for
# timing only). Rows that would outrun the budget are killed and reported, not extrapolated.
phase_qbench() {
  df -h "$BUILD" | tail -1 || true
  run_bench bench_quantize SQ_QBENCH_ARGS "$1"
}

# SliderQuant W2A16 and W4A4 on the same synthetic llama2-7b (12 x 2048 calibration tokens and
# 2 epochs by default, extrapolated to the official 128 samples and 60 / 20 epochs).
phase_sqbench() { run_bench bench_sliderquant SQ_SQBENCH_ARGS "$1"; }

# bench_learned.py: by default its step suite (one adaptive training step on a synthetic
# 7B-shaped layer: the transform search vs plain affine vs plain rotation).
phase_lbench() {
  SQ_LBENCH_ARGS=${SQ_LBENCH_ARGS:---suites step}
  run_bench bench_learned SQ_LBENCH_ARGS "$1"
}

# ---- the run ----------------------------------------------------------------------------------
run_phase env 10-env-configure.log phase_env
run_phase configure 10-env-configure.log phase_configure
CONFIG_OK=$LAST
BUILD_OK=1
if ((CONFIG_OK == 0)); then
  run_phase build 20-build.log phase_build
  BUILD_OK=$LAST
else
  skip_phase build "configure failed"
fi

if ((BUILD_OK != 0)); then
  skip_phase smoke "no build"
  skip_phase test "no build"
  skip_phase bench "no build"
  skip_phase qbench "no build"
else
  run_phase smoke 30-smoke-test.log phase_smoke
  if [[ ${SQ_SKIP_TESTS:-0} == 1 ]]; then
    skip_phase test "SQ_SKIP_TESTS=1" nofail
  else
    tb=$(( $(remaining) - 150 ))   # keep at least 150 s for the benchmark
    ((tb > TEST_BUDGET_S)) && tb=$TEST_BUDGET_S
    if ((tb < 30)); then skip_phase test "only $(remaining)s left"
    else run_phase test 30-smoke-test.log phase_test "$tb"; fi
  fi
  if [[ $SKIP_EVAL_BENCH == 1 ]]; then
    skip_phase bench "SQ_SKIP_EVAL_BENCH=1 (or SQ_SKIP_BENCH=1)" nofail
  else
    bb=$(( $(remaining) - 10 ))
    if ((bb < 60)); then skip_phase bench "only $(remaining)s left"
    else run_phase bench 40-bench.log phase_bench "$bb"; fi
  fi
  if [[ $SKIP_QBENCH == 1 ]]; then
    skip_phase qbench "SQ_SKIP_QBENCH=1 (or SQ_SKIP_BENCH=1)" nofail
  else
    qb=$(( $(remaining) - 10 ))
    if ((qb < QBENCH_MIN_S)); then
      skip_phase qbench "only $(remaining)s left (needs ${QBENCH_MIN_S}s, SQ_QBENCH_MIN_S); run it alone in a second call: SQ_SKIP_TESTS=1 SQ_SKIP_EVAL_BENCH=1 bash scripts/gpu/run.sh"
    else run_phase qbench 50-qbench.log phase_qbench "$qb"; fi
  fi
  if [[ ${SQ_SQBENCH:-0} == 1 ]]; then
    sb=$(( $(remaining) - 10 ))
    if ((sb < 120)); then skip_phase sqbench "only $(remaining)s left"
    else run_phase sqbench 50-qbench.log phase_sqbench "$sb"; fi
  fi
  if [[ ${SQ_LBENCH:-0} == 1 ]]; then
    lb=$(( $(remaining) - 10 ))
    if ((lb < 120)); then skip_phase lbench "only $(remaining)s left"
    else run_phase lbench 60-lbench.log phase_lbench "$lb"; fi
  fi
fi

{
  echo "==================== summary ==================== (t+$(elapsed)s)"
  printf '%s\n' "${PHASES[@]}"
  echo "configure: $(cat "$AUX/configure.result" 2>/dev/null || echo none) | $SPM_NOTE"
  if [[ -f $OUT/30-smoke-test.log ]]; then
    echo "--- smoke: stories260K perplexity, CPU vs $DEVICE"
    grep -E '  (ok|MISMATCH)  ' "$OUT/30-smoke-test.log" || true
  fi
  if [[ -f $OUT/40-bench.log ]]; then
    echo "--- benchmark table (full rows in bench_eval.json)"
    sed -n '/^=== bench_eval results/,$p' "$OUT/40-bench.log"
  fi
  if [[ -f $OUT/50-qbench.log ]]; then
    echo "--- quantize benchmark table (full rows in bench_quantize.json)"
    sed -n '/^=== bench_quantize results/,$p' "$OUT/50-qbench.log"
  fi
  if [[ -f $OUT/60-lbench.log ]]; then
    echo "--- learned-methods benchmark table (full rows in bench_learned.json)"
    sed -n '/^=== bench_learned/,$p' "$OUT/60-lbench.log"
  fi
  echo "result: $([[ $FAILED == 0 ]] && echo ALL OK || echo FAILURES)"
} | tee "$OUT/summary.txt"
exit "$FAILED"
