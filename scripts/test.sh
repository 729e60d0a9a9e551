#!/usr/bin/env bash
# Builds sliderquant and runs the whole test suite (unit, component and end-to-end CLI
# tests, the Python interop checks; no network, no GPU needed; about 15 minutes on 2 cores
# after the build).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
BUILD_DIR="${SQ_BUILD_DIR:-build}"
# ctest starts the tests it knows to be long first (its cost file, Testing/Temporary/); a fresh
# build has none, so it gets the committed one (tests/ctest_costs.txt, seconds measured on
# 2 cores) and the two-minute tests no longer start last and run alone at the end.
COSTS="$BUILD_DIR/Testing/Temporary/CTestCostData.txt"
if [ ! -f "$COSTS" ] && [ -f tests/ctest_costs.txt ]; then
  mkdir -p "$(dirname "$COSTS")"
  cp tests/ctest_costs.txt "$COSTS"
fi
ctest --test-dir "$BUILD_DIR" -j "${SQ_JOBS:-$(nproc)}" --output-on-failure
