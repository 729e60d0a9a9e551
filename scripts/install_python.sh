#!/usr/bin/env bash
# Creates .venv (the Python of tests and benchmarks; sliderquant itself never runs Python)
# and installs requirements-test.txt into it.
#
# llama-cpp-python is built from source. It is built portable (x86-64 with AVX2/FMA/F16C, no
# -march=native): a native build enables AMX on Xeons whose virtual machines do not grant it
# (SIGILL in the first matmul) and a wheel built on one CPU must run on the next CI machine.
# The wheel is cached in $SQ_CACHE_DIR/wheels/<hash of version and build flags> (default
# ~/.cache/sliderquant), so it is built once (by pip wheel). Everything else is installed by uv
# (scripts/uv.sh says why and what it measured), whose cache ($UV_CACHE_DIR or ~/.cache/uv)
# keeps the downloads.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${SQ_VENV:-.venv}"
PY="${PYTHON:-python3}"
CACHE="${SQ_CACHE_DIR:-$HOME/.cache/sliderquant}"
if [ ! -x "$VENV/bin/python" ]; then
  "$PY" -m venv "$VENV"
fi
UV=$(bash scripts/uv.sh)
UVPIP=("$UV" pip install -q --python "$VENV/bin/python")
# LLAVA_BUILD=OFF: the multimodal library (mtmd, ~80 source files) is not built; the tests never
# use it and llama_cpp imports it only when a multimodal chat handler is created.
# -O1 instead of Release's -O3 (NDEBUG kept): this compile is the longest part of a fresh install
# (the rest is uv's). Measured on 2 cores: 569 s wall / 789 s CPU at -O3, 363 s / 518 s at -O1;
# llama.cpp at -O1 made the GGUF tests slower by 15 s (GgufInterop.smollm2, 92 -> 107 s) and 7 s
# (kquant, 57 -> 64 s), with the same results.
LLAMA_CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DLLAVA_BUILD=OFF -DCMAKE_C_FLAGS_RELEASE=-O1 -DCMAKE_CXX_FLAGS_RELEASE=-O1 -DCMAKE_C_FLAGS=-DNDEBUG -DCMAKE_CXX_FLAGS=-DNDEBUG"
# Everything but llama-cpp-python downloads and installs in the background while its wheel
# compiles (network beside CPU); then the wheel, then one pass over the whole file, which finds
# everything installed and checks that the pins are consistent.
REST=$(mktemp)
trap 'rm -f "$REST"' EXIT
grep -v -E '^llama-cpp-python==' requirements-test.txt >"$REST"
"${UVPIP[@]}" -r "$REST" &
REST_PID=$!
wheel_rc=0
WHEELS=$(SQ_VENV="$VENV" SQ_CACHE_DIR="$CACHE" bash scripts/llama_wheel.sh "$LLAMA_CMAKE_ARGS") || wheel_rc=$?
rest_rc=0
wait "$REST_PID" || rest_rc=$?
if [ "$wheel_rc" -ne 0 ] || [ "$rest_rc" -ne 0 ]; then
  echo "install_python.sh: the llama-cpp-python wheel build exited $wheel_rc, the other packages' install $rest_rc" >&2
  exit 1
fi
"${UVPIP[@]}" --find-links "$WHEELS" -r requirements-test.txt
"$VENV/bin/python" -c "import gguf, llama_cpp; print('test Python ready:', llama_cpp.__version__, llama_cpp.llama_print_system_info().decode().strip())"
"$VENV/bin/python" -c "import torch, transformers, gptqmodel, optimum.gptq, compressed_tensors, safetensors, sentencepiece, lm_eval; print('GPTQ / compressed-tensors interop ready: torch', torch.__version__, 'transformers', transformers.__version__, 'gptqmodel', gptqmodel.__version__, 'compressed-tensors', compressed_tensors.__version__)" | tail -n 1  # gptqmodel prints a banner on import
