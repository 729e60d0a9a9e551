#!/usr/bin/env bash
# From a fresh Debian 12 machine to a result: installs the dependencies, builds, and runs
# the main job on the bundled model (stories260K): perplexity on WikiText-2 when the
# shared data folder is there (../shared/data or $SQ_DATA_DIR), else on the bundled
# WikiText-2 excerpt.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install_deps.sh
bash scripts/build.sh
MODEL=tests/fixtures/stories260K/hf
DATA_DIR="${SQ_DATA_DIR:-../shared/data}"
mkdir -p out
if [ -f "$DATA_DIR/eval/wikitext2/wikitext2_test_gptq_join.txt" ]; then
  ./build/sliderquant eval "$MODEL" --ppl wikitext2 --data-dir "$DATA_DIR" --json out/quickstart_eval.json
else
  ./build/sliderquant eval "$MODEL" --ppl tests/fixtures/text/wikitext2_head.txt --json out/quickstart_eval.json
fi
echo "report written to out/quickstart_eval.json"
