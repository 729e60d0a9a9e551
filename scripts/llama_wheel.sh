#!/usr/bin/env bash
# Prints the folder holding a llama-cpp-python wheel (the version pinned in
# requirements-test.txt) built from source with the CMake flags in $1, building it once into
# $SQ_CACHE_DIR/wheels/<hash of version and flags> (default ~/.cache/sliderquant) with the
# venv's pip ($SQ_VENV, default .venv). Build output goes to stderr. Used by
# scripts/install_python.sh (the portable build the tests use) and bench/llama_native.sh
# (a build for this CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
ARGS=${1:?usage: scripts/llama_wheel.sh "CMAKE ARGS"}
CACHE="${SQ_CACHE_DIR:-$HOME/.cache/sliderquant}"
PY="${SQ_VENV:-.venv}/bin/python"
REQ=$(grep -E '^llama-cpp-python==' requirements-test.txt | cut -d' ' -f1)
KEY=$(printf '%s %s' "$REQ" "$ARGS" | sha256sum | cut -c1-16)
WHEELS="$CACHE/wheels/$KEY"
if ! ls "$WHEELS"/llama_cpp_python-*.whl >/dev/null 2>&1; then
  echo "building $REQ ($ARGS) into $WHEELS, once" >&2
  rm -rf "$WHEELS.tmp" && mkdir -p "$WHEELS"
  CMAKE_ARGS="$ARGS" CMAKE_BUILD_PARALLEL_LEVEL="${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)}" \
    "$PY" -m pip --disable-pip-version-check wheel -q --no-deps --no-cache-dir "$REQ" -w "$WHEELS.tmp" >&2
  mv "$WHEELS.tmp"/llama_cpp_python-*.whl "$WHEELS"/ && rm -rf "$WHEELS.tmp"
fi
echo "$WHEELS"
