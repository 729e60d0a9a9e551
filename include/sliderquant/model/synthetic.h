// model/synthetic: HF model directories with seeded random weights, for any supported
// family and size (tests, benchmarks, shapes of real models without their weights).
#pragma once
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>
#include <vector>

#include "sliderquant/model/arch.h"

namespace sq {

// Named shapes: "tiny" (any family, 64 wide), "tiny256" (any family, 256/512 wide: whole
// ggml k-quant blocks), "llama2-7b", "llama3-8b", "mistral-7b", "qwen2.5-7b", "qwen3-8b". The family of a named real-model shape must match (or be empty).
ModelConfig synthetic_config(const std::string& family, const std::string& preset);
std::vector<std::string> synthetic_presets();

struct SyntheticOptions {
  uint64_t seed = 0;
  c10::ScalarType dtype = c10::kBFloat16;
  uint64_t max_shard_bytes = uint64_t(2) << 30;
  std::string tokenizer_from;  // a dir or tokenizer.model whose tokenizer files are copied
};

// Writes config.json, generation_config.json, the weights (sharded when larger than
// max_shard_bytes) and optional tokenizer files into DIR (created if missing).
void write_synthetic_model(const std::string& dir, const ModelConfig& c, const SyntheticOptions& opts);

}  // namespace sq
