#!/usr/bin/env bash
# The CUDA build, compiled and linked on a machine without a GPU (CI does this on every landing):
# the product (library, CLI, SentencePiece module; SQ_CUDA_TARGETS=all adds the tests, which
# scripts/gpu/run.sh builds on the GPU machine anyway) against the libtorch inside
# .venv's PyPI torch wheel (CUDA build; pinned in requirements.txt), configured through the
# wheel's own TorchConfig with the CUDA toolkit's nvcc, into ./build-cuda. Then, on the CPU:
#   - the CUDA-linked CLI loads (libtorch_cuda, c10_cuda, cudart) and reports its build;
#   - its perplexity of the bundled model equals the Debian (CPU) build's to 1e-4 relative;
#   - --device cuda:0 fails with one clear line (no GPU here), exit 1.
# scripts/gpu/run.sh configures the same way on the GPU machine (same prefix order, same
# C++ standard rule in cmake/SqTorch.cmake).
#
# Every CI build precompiles ATen.h (SQ_PCH): a missing #include that ATen.h happens to provide is
# caught only by a build with -DSQ_PCH=OFF, which CI does not run (parsing ATen.h is ~4.7 s of a
# 6.7 s compile without the PCH: README, "Building").
#
# Environment: SQ_CUDA_BUILD_DIR (build-cuda)  SQ_JOBS (nproc)  SQ_PYTHON (.venv/bin/python)
#   SQ_CUDA_TARGETS ("sliderquant sq_spm"; "all" for the tests too)
#   SQ_CUDA_CXX_FLAGS ("-O0 -g0": a compile-and-link check, built for speed of compilation;
#   scripts/gpu/run.sh builds optimised)  SQ_CPU_BUILD_DIR (build: the reference CLI)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
BUILD=${SQ_CUDA_BUILD_DIR:-build-cuda}
CPU_BUILD=${SQ_CPU_BUILD_DIR:-build}
JOBS=${SQ_JOBS:-$(nproc)}
PY=${SQ_PYTHON:-$ROOT/.venv/bin/python}
FLAGS=${SQ_CUDA_CXX_FLAGS:--O0 -g0}
T0=$(date +%s)
die() { echo "build_cuda: $*" >&2; exit 1; }

[[ -x $PY ]] || die "no Python at $PY (run scripts/install_deps.sh first)"
command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
command -v nvcc >/dev/null || die "nvcc not found on PATH or in /usr/local/cuda/bin: the CUDA toolkit is needed to configure the CUDA build"
read -r TORCH_VER TORCH_CUDA TORCH_DIR < <("$PY" -c 'import os, torch; print(torch.__version__, torch.version.cuda, os.path.dirname(torch.__file__))') \
  || die "$PY cannot import torch"
[[ $TORCH_CUDA != None ]] || die "torch $TORCH_VER in $PY is a CPU-only build; requirements.txt pins a CUDA wheel"
NVCC_VER=$(nvcc --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p')
echo "torch $TORCH_VER (CUDA $TORCH_CUDA) at $TORCH_DIR; nvcc $NVCC_VER at $(command -v nvcc)"
[[ ${TORCH_CUDA%%.*} == "${NVCC_VER%%.*}" ]] \
  || die "torch was built with CUDA $TORCH_CUDA but nvcc is $NVCC_VER: their major versions must match"

mkdir -p "$BUILD"
# The wheel's own directory first: its lib/ must win over Debian's /usr/lib libtorch.so, which
# find_library would otherwise pick up beside the wheel's headers. ATen's headers are
# precompiled per target (SQ_PCH): 5.7 min for the whole build on 2 cores instead of ~25
# (each file otherwise parses ~30 s of C++20 ATen headers). ccache is off: it cannot cache
# PCH builds without sloppiness settings, and ninja rebuilds incrementally anyway.
cmake -S . -B "$BUILD" -G Ninja \
  -DCMAKE_PREFIX_PATH="$TORCH_DIR;$TORCH_DIR/share/cmake" \
  -DCMAKE_BUILD_TYPE=None -DCMAKE_CXX_FLAGS="$FLAGS" \
  -DCMAKE_CUDA_COMPILER="$(command -v nvcc)" -DSQ_PCH=ON -DSQ_USE_CCACHE=OFF >"$BUILD/sq-configure.log" 2>&1 \
  || { tail -n 30 "$BUILD/sq-configure.log"; die "configure failed (log: $BUILD/sq-configure.log)"; }
grep -E "sliderquant:|Found Torch|CUDA detected" "$BUILD/sq-configure.log" || true
grep -q "^TORCH_LIBRARY:FILEPATH=$TORCH_DIR/lib/libtorch.so" "$BUILD/CMakeCache.txt" \
  || die "$BUILD is configured against another libtorch ($(grep '^TORCH_LIBRARY:' "$BUILD/CMakeCache.txt")); remove $BUILD"
# The tests are a third of this build's compile time (measured: 225 of 618 CPU seconds) and
# are not what ships, so CI checks the product only.
TARGETS=${SQ_CUDA_TARGETS:-sliderquant sq_spm}
if [[ $TARGETS == all ]]; then cmake --build "$BUILD" -j "$JOBS"; else cmake --build "$BUILD" -j "$JOBS" --target $TARGETS; fi
T1=$(date +%s)
echo "CUDA build: compiled and linked in $((T1 - T0)) s"

# ---- smoke checks on the CPU ------------------------------------------------------------------
CLI=$BUILD/sliderquant
libs=$(ldd "$CLI")
missing=$(grep 'not found' <<<"$libs" || true)
[[ -z $missing ]] || die "$CLI: libraries not found: $missing"
for lib in libtorch_cuda.so libc10_cuda.so libcudart; do
  grep -q "$lib" <<<"$libs" || die "$CLI does not load $lib: not a CUDA build"
done
grep -E 'libtorch_cuda|libcudart|libnccl' <<<"$libs"
"$CLI" --version
MODEL=models/stories260K
[[ -d $MODEL ]] || MODEL=tests/fixtures/stories260K/hf
TEXT=tests/fixtures/text/wikitext2_head.txt
ppl() {
  "$1" eval "$MODEL" --ppl "$TEXT" --max-windows 4 --device cpu --dtype float32 --quiet --json "$2" >/dev/null
  "$PY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["perplexity"][0]["ppl"])' "$2"
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
p_cuda=$(ppl "$CLI" "$tmp/cuda.json")
if [[ -x $CPU_BUILD/sliderquant ]]; then
  p_cpu=$(ppl "$CPU_BUILD/sliderquant" "$tmp/cpu.json")
  echo "perplexity of $MODEL on $TEXT (4 windows, float32, CPU): CUDA build $p_cuda, Debian build $p_cpu"
  "$PY" -c 'import sys; a, b = map(float, sys.argv[1:]); sys.exit(0 if abs(a - b) <= 1e-4 * b else 1)' "$p_cuda" "$p_cpu" \
    || die "the CUDA build's perplexity $p_cuda differs from the CPU build's $p_cpu"
else
  echo "perplexity (CUDA build, CPU): $p_cuda (no $CPU_BUILD/sliderquant to compare with)"
fi
set +e
err=$("$CLI" eval "$MODEL" --ppl "$TEXT" --max-windows 1 --device cuda:0 2>&1 >/dev/null)
rc=$?
set -e
echo "--device cuda:0 here: exit $rc: $err"
[[ $rc == 1 && $err == "error: --device cuda:0 asked for CUDA"*"sees no CUDA device"* ]] \
  || die "--device cuda:0 without a GPU should fail with one clear line and exit 1"
echo "CUDA build check passed in $(($(date +%s) - T0)) s (torch $TORCH_VER, CUDA $TORCH_CUDA, nvcc $NVCC_VER)"
