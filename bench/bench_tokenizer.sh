#!/usr/bin/env bash
# Tokenizer speed: load time and one-core encode time of WikiText-2 test (1.3 MB) with the
# byte-level BPE tokenizers (Llama 3, Qwen3, GPT-2) and, when present, Llama 2's SentencePiece.
# Usage: bench/bench_tokenizer.sh [DATA_DIR] [BUILD_DIR]   (DATA_DIR default ../shared/data)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DATA="${1:-$ROOT/../shared/data}"
BUILD="${2:-$ROOT/build}"
cmake --build "$BUILD" --target bench_tokenizer >/dev/null
TEXT="$DATA/eval/wikitext2/wikitext2_test_gptq_join.txt"
OUT="$BUILD/bench_tokenizer.jsonl"
: > "$OUT"
for t in llama3 qwen3 gpt2 llama2; do
  dir="$DATA/tokenizers/$t"
  [ -d "$dir" ] || continue
  OMP_NUM_THREADS=1 taskset -c 0 "$BUILD/bench/bench_tokenizer" "$dir" "$TEXT" 3 | tee /dev/stderr | tail -1 >> "$OUT"
done 2>&1 | grep -v '^{'
echo "JSON: $OUT"
