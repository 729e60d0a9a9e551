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
# Python may cache bytecode, under $BUILD_DIR/pycache (not in the source tree): the environments
# are installed without .pyc files (uv), and where PYTHONDONTWRITEBYTECODE=1 is set (the CI image
# sets it) every Python test process would compile torch and transformers again. Measured:
# `import torch, transformers, gptqmodel, optimum.gptq, compressed_tensors` takes 24 s of CPU
# without a cache, 8 s with it.
unset PYTHONDONTWRITEBYTECODE
export PYTHONPYCACHEPREFIX="${PYTHONPYCACHEPREFIX:-$(cd "$BUILD_DIR" && pwd)/pycache}"
ctest --test-dir "$BUILD_DIR" -j "${SQ_JOBS:-$(nproc)}" --output-on-failure
