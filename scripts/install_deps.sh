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

# The Python of tests and benchmarks (gguf-py, llama-cpp-python), in .venv.
bash "$(dirname "$0")/install_python.sh"
# vLLM's CPU build (tests/hfquant/test_vllm.py), in its own .venv-vllm: it pins other torch and
# transformers versions than .venv.
bash "$(dirname "$0")/install_vllm.sh"
