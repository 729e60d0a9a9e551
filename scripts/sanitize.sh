#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer build of the library, the CLI and the test
# binary (clang 14, into build-asan/ or $SQ_ASAN_DIR), then the unit and component tests under
# it, one process per GoogleTest suite (ctest; tests/gtest_suites.cmake), so a report in one suite
# does not hide the others. .ci/run runs it.
# The build also carries libFuzzer's coverage instrumentation, on the parsers only
# (fuzz/coverage-allowlist.txt says which files and why), and SQ_FUZZ=ON, so bench/fuzz.sh builds
# its targets in the same tree (SQ_FUZZ_BUILD=build-asan, as .ci/run does) by compiling only the
# harnesses: one instrumented build instead of two.
#
#   scripts/sanitize.sh               build, then every test but the excluded ones below
#   scripts/sanitize.sh 'Safetensors' build, then the tests matching a ctest -R regex
#   scripts/sanitize.sh --build-only  build only: the tests, the CLI and the fuzz targets
#
# Excluded (-E below), each for a stated reason; everything else must pass, with no sanitizer
# report (ASan aborts on the first error, UBSan is fatal: -fno-sanitize-recover=all):
# - the CLI end-to-end tests (*Cli*, Reliability, LayerOrder, the Slurm sweep) and the Python
#   interop, reference and parity tests (Interop, MoeReference, EvalParity, GgufTok): they run
#   the same library code at 5-20x the cost, or none of it (MoeReference checks transformers
#   against the committed logits), and stay in the normal build;
# - SpmModule, the three tests whose subject is the SentencePiece module itself: the module is
#   opened with dlopen(RTLD_DEEPBIND), which ASan refuses. Every other test reads
#   tokenizer.model through the native reader instead (SQ_SPM_NATIVE=1,
#   src/data/spm_native.cpp; SpmModule.NativeReader... proves it gives the module's ids in the
#   normal build), and the module's own code runs under ASan in fuzz/fuzz_spm.cpp;
# - IqpSolverAtScale (RealisticSizeStatistics): the IQP solver on Llama-sized problems, 63 s
#   under ASan (9 s in the normal build), 11% of the 578 test-seconds here; the same solver
#   code runs here in the IqpSolver suite (brute-force cross-checks on small problems).
# Leak checking is off: libtorch and OpenBLAS keep allocations to process exit by design.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${SQ_ASAN_DIR:-build-asan}"
JOBS="${SQ_JOBS:-$(nproc)}"
FILTER="${1:-.}"
BUILD_ONLY=0
[ "$FILTER" = --build-only ] && BUILD_ONLY=1
# Not -fsanitize=fuzzer-no-link: it instruments every file and marks every function
# "optforfuzzing", which made the sanitized tests about 3x slower (measured on a quantizer-like
# loop: ASan+UBSan 0.7 s, + fuzzer-no-link 2.5 s, + the allowlisted coverage below 0.7 s).
COVERAGE="-fsanitize-coverage=inline-8bit-counters,indirect-calls,trace-cmp,pc-table -fsanitize-coverage-allowlist=$(pwd)/fuzz/coverage-allowlist.txt"
FLAGS="-fsanitize=address,undefined $COVERAGE -fno-sanitize-recover=all -fno-omit-frame-pointer"
CXX_SAN="${CXX_SAN:-clang++}"
command -v "$CXX_SAN" >/dev/null || { echo "sanitize.sh: $CXX_SAN not found (scripts/install_deps.sh installs clang)" >&2; exit 2; }
t0=$(date +%s)
# The allowlist is no build dependency, so a change to it (or to the flags) starts the tree over.
ALLOW_SUM=$(sha256sum fuzz/coverage-allowlist.txt | cut -d' ' -f1)
if [ -f "$DIR/build.ninja" ] && { ! grep -q '^SQ_FUZZ:BOOL=ON' "$DIR/CMakeCache.txt" ||
    ! grep -qxF "CMAKE_CXX_FLAGS:STRING=$FLAGS" "$DIR/CMakeCache.txt" ||
    [ "$(cat "$DIR/sq-coverage-allowlist.sha256" 2>/dev/null)" != "$ALLOW_SUM" ]; }; then
  echo "sanitize.sh: $DIR was configured with other flags or another coverage allowlist; configuring it again"
  rm -rf "$DIR"
fi
if [ ! -f "$DIR/build.ninja" ]; then
  # -O1 -g1: the instrumented code is our own (libtorch and OpenBLAS, where the arithmetic
  # runs, are not rebuilt), so -O2 buys little at run time and costs compile time; -g1 keeps
  # file:line in the reports.
  cmake -S . -B "$DIR" -G Ninja -DCMAKE_CXX_COMPILER="$CXX_SAN" -DSQ_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
    -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" -DCMAKE_CXX_FLAGS="$FLAGS" -DCMAKE_C_FLAGS="$FLAGS" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined"
  echo "$ALLOW_SUM" >"$DIR/sq-coverage-allowlist.sha256"
fi
TARGETS=(--target sq_tests sliderquant)
[ "$BUILD_ONLY" = 1 ] && TARGETS=()   # everything: the fuzz targets too (SQ_FUZZ=ON)
cmake --build "$DIR" -j "$JOBS" "${TARGETS[@]}"
echo "sanitizer build: $(( $(date +%s) - t0 )) s"
[ "$BUILD_ONLY" = 1 ] && exit 0
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:detect_odr_violation=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
export OMP_NUM_THREADS=1
export SQ_SPM_NATIVE=1
EXCLUDE='Cli|Interop|MoeReference|Slurm|EvalParity|Reliability|LayerOrder|GgufTok|^SpmModule$|^IqpSolverAtScale$'
start=$(date +%s)
rc=0
ctest --test-dir "$DIR" -j "$JOBS" -R "$FILTER" -E "$EXCLUDE" \
  --timeout 900 --output-on-failure >"$DIR/sanitize.log" 2>&1 || rc=$?
findings=$(grep -cE 'runtime error|ERROR: AddressSanitizer' "$DIR/sanitize.log" || true)
grep -E 'tests passed|tests failed' "$DIR/sanitize.log" || true
echo "sanitized tests: $(( $(date +%s) - start )) s; $findings sanitizer report(s); log: $DIR/sanitize.log"
if [ "$findings" -ne 0 ] || [ "$rc" -ne 0 ]; then
  # The first report in full (CI keeps only this output), then the list of what failed.
  first=$(grep -nE 'runtime error|ERROR: AddressSanitizer' "$DIR/sanitize.log" | head -n 1 | cut -d: -f1)
  [ -n "$first" ] && sed -n "$(( first > 20 ? first - 20 : 1 )),$(( first + 60 ))p" "$DIR/sanitize.log"
  grep -E 'runtime error|ERROR: AddressSanitizer|\((Failed|Subprocess aborted|Timeout|SEGFAULT)\)' "$DIR/sanitize.log" | head -n 40 || true
  echo "sanitize.sh: failures or sanitizer reports (full log: $DIR/sanitize.log)" >&2
  exit 1
fi
