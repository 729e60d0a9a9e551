#!/usr/bin/env bash
# AddressSanitizer + UndefinedBehaviorSanitizer build of the library, the CLI and the test
# binary (g++ 12, into build-asan/ or $SQ_ASAN_DIR), then the unit and component tests under it.
# The CLI end-to-end tests (suites named *Cli*) and the Python interop tests stay in the normal
# build: they run the same code at 5-20x the cost under the sanitizers.
#
#   scripts/sanitize.sh                 build, then run every non-CLI GoogleTest test
#   scripts/sanitize.sh 'Safetensors.*' build, then run a gtest filter
#
# Any report fails the run: ASan aborts on the first error, UBSan is made fatal
# (-fno-sanitize-recover=all). Leak checking is off: libtorch and OpenBLAS keep their
# allocations to process exit by design, which LeakSanitizer reports as leaks.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${SQ_ASAN_DIR:-build-asan}"
JOBS="${SQ_JOBS:-$(nproc)}"
FILTER="${1:--*Cli*.*:*CliReliability*.*}"
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
"$DIR/tests/sq_tests" --gtest_filter="$FILTER" --gtest_brief=1
echo "sanitized tests ($FILTER): clean, $(( $(date +%s) - start )) s"
