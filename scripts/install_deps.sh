#!/usr/bin/env bash
# Installs everything sliderquant needs on Debian 12, from Debian's own archive only.
# libopenblas0-openmp matters: without it libtorch's CPU matmul uses the reference BLAS
# and runs about 25x slower. The -openmp flavour matches libtorch's libgomp.
set -euo pipefail
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
$SUDO apt-get install -y -q --no-install-recommends \
  g++ cmake ninja-build ccache pkg-config xz-utils clang libclang-rt-14-dev \
  libtorch-dev libopenblas0-openmp \
  libsentencepiece-dev nlohmann-json3-dev libcli11-dev libeigen3-dev libgtest-dev liblzma-dev \
  libpcre2-dev libutf8proc-dev libbz2-dev \
  python3 python3-venv \
  slurmctld slurmd slurm-client munge chromium
# slurmctld/slurmd/slurm-client + munge: scripts/slurm (sweeps) and tests/slurm, which start a
# private Slurm on localhost; chromium (headless): the sweep report's screenshot check.

# The two Python environments, at the same time, both installed by uv (scripts/uv.sh, fetched
# first): vLLM's (~6 GB of wheels) in the background while install_python.sh builds
# llama-cpp-python (CPU, the longest part) and installs .venv's packages, so the network and the
# compiler overlap instead of queueing.
# - vLLM's CPU build (tests/hfquant/test_vllm.py), in its own .venv-vllm: it pins other torch and
#   transformers versions than .venv. Its output goes to a log, printed when it is done.
# - The Python of tests and benchmarks (gguf-py, llama-cpp-python, GPTQModel, ...), in .venv.
cd "$(dirname "$0")/.."
echo "uv: $(bash scripts/uv.sh)"
VLLM_LOG=$(mktemp)
t0=$SECONDS
bash scripts/install_vllm.sh >"$VLLM_LOG" 2>&1 &
VLLM_PID=$!
py_rc=0
bash scripts/install_python.sh || py_rc=$?
vllm_rc=0
wait "$VLLM_PID" || vllm_rc=$?
echo "--- scripts/install_vllm.sh (ran beside install_python.sh; exit $vllm_rc)"
cat "$VLLM_LOG"
rm -f "$VLLM_LOG"
echo "Python environments: $((SECONDS - t0)) s"
if [ "$py_rc" -ne 0 ] || [ "$vllm_rc" -ne 0 ]; then
  echo "install_deps.sh: install_python.sh exited $py_rc, install_vllm.sh exited $vllm_rc" >&2
  exit 1
fi
