#!/usr/bin/env bash
# Prints the path of uv (Astral's Python package installer, from PyPI) at the version pinned in
# requirements-test.txt (`uv==X`), installing it once into $SQ_CACHE_DIR/uv-X (default
# ~/.cache/sliderquant) with pip. scripts/install_python.sh and scripts/install_vllm.sh install
# the two Python environments with it instead of pip.
#
# Why: measured on the 2-core machine, nothing cached, one environment at a time:
#   requirements-vllm.txt (~6 GB of wheels): pip 161 s wall / 63 s CPU (without byte-compiling;
#     184 s / 139 s CPU with it, as pip does by default); uv 40 s wall / 25 s CPU.
#   requirements-test.txt without llama-cpp-python: uv 51 s. (With pip, install_deps.sh took
#     553 s for both environments and the llama-cpp-python compile side by side.)
# uv downloads and unpacks in parallel, links files from its cache instead of copying them, and
# does not byte-compile every module at install time (scripts/test.sh gives Python a bytecode
# cache, build/pycache, so each module a test imports is compiled once). With its cache warm, the
# vLLM environment takes 4 s.
# uv's cache is $UV_CACHE_DIR (default ~/.cache/uv); keep it as pip's was kept.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${SQ_CACHE_DIR:-$HOME/.cache/sliderquant}"
PY="${PYTHON:-python3}"
VER=$(sed -n 's/^uv==\([0-9][0-9.]*\).*/\1/p' requirements-test.txt)
[ -n "$VER" ] || { echo "scripts/uv.sh: requirements-test.txt has no uv==VERSION line" >&2; exit 1; }
DIR="$CACHE/uv-$VER"
if ! "$DIR/bin/uv" --version >/dev/null 2>&1; then
  # Made under a temporary name and renamed: two installs at once (install_deps.sh runs the two
  # environment scripts side by side) never see a half-made one. bin/uv is a static binary, so
  # the renamed virtual environment still runs it.
  mkdir -p "$CACHE"
  tmp="$DIR.tmp.$$"
  rm -rf "$tmp"
  "$PY" -m venv "$tmp"
  "$tmp/bin/python" -m pip install -q --disable-pip-version-check "uv==$VER" >&2
  mv -T "$tmp" "$DIR" 2>/dev/null || rm -rf "$tmp"   # lost a race: the other one is there
  "$DIR/bin/uv" --version >/dev/null || { echo "scripts/uv.sh: $DIR/bin/uv does not run" >&2; exit 1; }
fi
echo "$DIR/bin/uv"
