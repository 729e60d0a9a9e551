#!/usr/bin/env bash
# Builds llama-cpp-python (the version pinned in requirements-test.txt) for this CPU's AVX-512
# (F/BW/DQ/VL, VBMI, VNNI, BF16) and AVX-VNNI, for bench/bench_speed.py --llama-native: the test
# environment's build is portable (AVX2), which would understate llama.cpp on an AVX-512 machine.
# AMX stays off (GGML_NATIVE=OFF): VMs that report AMX may not grant it (install_python.sh).
# The wheel is built and cached by scripts/llama_wheel.sh (as install_python.sh's); it is unpacked
# into OUT (default out/llama-native), which is what --llama-native takes. About 10 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-out/llama-native}
PIP=(.venv/bin/python -m pip --disable-pip-version-check)
ARGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON -DGGML_AVX_VNNI=ON"
ARGS="$ARGS -DGGML_AVX512=ON -DGGML_AVX512_VBMI=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON"
grep -qw avx512f /proc/cpuinfo || { echo "llama_native: this CPU has no AVX-512" >&2; exit 1; }
WHEELS=$(bash scripts/llama_wheel.sh "$ARGS")
rm -rf "$OUT.tmp" && "${PIP[@]}" install -q --no-deps --target "$OUT.tmp" "$WHEELS"/llama_cpp_python-*.whl
rm -rf "$OUT" && mv "$OUT.tmp" "$OUT"
PYTHONPATH="$OUT" .venv/bin/python -c "import llama_cpp; print('llama.cpp for this CPU:', llama_cpp.__file__, llama_cpp.llama_print_system_info().decode().strip())"
