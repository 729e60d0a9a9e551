#!/usr/bin/env bash
# Creates .venv (the Python of tests and benchmarks; sliderquant itself never runs Python)
# and installs requirements-test.txt into it. pip keeps its cache (downloads and the
# llama-cpp-python wheel it builds from source, ~10 min on 2 cores the first time) in
# $PIP_CACHE_DIR or ~/.cache/pip, so later runs install in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${SQ_VENV:-.venv}"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
# The wheel is built for this machine's CPU (llama.cpp's default native build).
export CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -r requirements-test.txt
"$VENV/bin/python" -c "import gguf, llama_cpp; print('python test deps: gguf', gguf.__version__ if hasattr(gguf, '__version__') else '0.19.0', '/ llama-cpp-python', llama_cpp.__version__)"
