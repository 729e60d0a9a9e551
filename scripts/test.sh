#!/usr/bin/env bash
# Builds sliderquant and runs the whole test suite (unit, component and end-to-end CLI
# tests; no network, no GPU needed, about a minute on 2 cores after the build).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
BUILD_DIR="${SQ_BUILD_DIR:-build}"
ctest --test-dir "$BUILD_DIR" -j "${SQ_JOBS:-$(nproc)}" --output-on-failure
