#!/usr/bin/env bash
# From a fresh Debian 12 machine to a result: installs the dependencies, builds, and runs
# the main job on the bundled model (stories260K): GPTQ 4-bit quantization, then perplexity
# of the full-precision and the quantized model. Calibration (c4-2k) and evaluation
# (WikiText-2) come from the shared data folder (../shared/data or $SQ_DATA_DIR) when it is
# there, else from the bundled WikiText-2 excerpt.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh
bash scripts/get_models.sh   # SmolLM2-135M into models/ (cached)
MODEL=tests/fixtures/stories260K/hf
DATA_DIR="${SQ_DATA_DIR:-../shared/data}"
mkdir -p out
if [ -f "$DATA_DIR/eval/wikitext2/wikitext2_test_gptq_join.txt" ]; then
  EVAL=wikitext2; CALIB=c4-2k
else
  EVAL=tests/fixtures/text/wikitext2_head.txt; CALIB=$EVAL
fi
echo "== full-precision $MODEL"
./build/sliderquant eval "$MODEL" --ppl "$EVAL" --data-dir "$DATA_DIR" --json out/quickstart_fp.json
echo "== GPTQ w4 (per-channel) -> out/stories260K-gptq-w4"
./build/sliderquant quantize "$MODEL" --recipe stories-gptq-w4-pc --calib "$CALIB" --data-dir "$DATA_DIR" \
  --out out/stories260K-gptq-w4 --force --json out/quickstart_quantize.json
./build/sliderquant eval out/stories260K-gptq-w4 --ppl "$EVAL" --data-dir "$DATA_DIR" --json out/quickstart_q.json
echo "reports in out/quickstart_{fp,quantize,q}.json"
