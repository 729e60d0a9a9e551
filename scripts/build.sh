#!/usr/bin/env bash
# Configures (once) and builds sliderquant into ./build (or $SQ_BUILD_DIR) with Ninja.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${SQ_BUILD_DIR:-build}"
JOBS="${SQ_JOBS:-$(nproc)}"
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja "$@"
fi
cmake --build "$BUILD_DIR" -j "$JOBS"
