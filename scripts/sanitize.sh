#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer build of the library, the CLI and the test
# binary (g++ 12, into build-asan/ or $SQ_ASAN_DIR), then the unit and component tests under it,
# one process per test (ctest), so one report does not hide the others.
#
#   scripts/sanitize.sh               build, then every test but the excluded ones below
#   scripts/sanitize.sh 'Safetensors' build, then the tests matching a ctest -R regex
#
# Excluded: the CLI end-to-end tests (*Cli*) and the Python interop tests, which run the same
# code at 5-20x the cost; they stay in the normal build. Tests that load a SentencePiece
# tokenizer.model fail under ASan at once, with ASan's own message: the module is opened with
# dlopen(RTLD_DEEPBIND), which ASan refuses, and without it Debian's sentencepiece binds to
# libtorch's protobuf and crashes (tried). Any other failure is a finding: ASan aborts on the
# first error, UBSan is fatal (-fno-sanitize-recover=all). Leak checking is off: libtorch and
# OpenBLAS keep allocations to process exit by design.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${SQ_ASAN_DIR:-build-asan}"
JOBS="${SQ_JOBS:-$(nproc)}"
FILTER="${1:-.}"
FLAGS="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
if [ ! -f "$DIR/build.ninja" ]; then
  cmake -S . -B "$DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS="$FLAGS" -DCMAKE_C_FLAGS="$FLAGS" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
    -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined"
fi
cmake --build "$DIR" -j "$JOBS" --target sq_tests sliderquant
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:detect_odr_violation=0:${ASAN_OPTIONS:-}"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:${UBSAN_OPTIONS:-}"
export OMP_NUM_THREADS=1
start=$(date +%s)
rc=0
ctest --test-dir "$DIR" -j "$JOBS" -R "$FILTER" -E 'Cli|Interop|EvalParity|Reliability|LayerOrder|GgufTok' \
  --timeout 600 --output-on-failure >"$DIR/sanitize.log" 2>&1 || rc=$?
blocked=$(grep -c 'dlopen a .*libsq_spm.so shared library with RTLD_DEEPBIND' "$DIR/sanitize.log" || true)
findings=$(grep -E 'runtime error|ERROR: AddressSanitizer' "$DIR/sanitize.log" | grep -vc RTLD_DEEPBIND || true)
grep -E 'tests passed|tests failed' "$DIR/sanitize.log" || true
echo "sanitized tests: $(( $(date +%s) - start )) s; $blocked blocked by the SentencePiece module (RTLD_DEEPBIND);" \
     "$findings sanitizer report(s); log: $DIR/sanitize.log"
grep -E 'runtime error|ERROR: AddressSanitizer' "$DIR/sanitize.log" | grep -v RTLD_DEEPBIND || true
failed=$(grep -cE '^\s+[0-9]+ - .*\((Failed|Subprocess aborted|Timeout|SEGFAULT)\)' "$DIR/sanitize.log" || true)
[ "$findings" -eq 0 ] || exit 1
[ "$rc" -eq 0 ] || [ "$failed" -le "$blocked" ] || { echo "$failed failed, more than the $blocked blocked" >&2; exit 1; }
