// libFuzzer target: recipe files (sq::parse_recipe, src/pipeline/recipe.cpp: the recipe's own
// keys, QFormat::parse for every format string, and every pass's option table through
// resolve_options and the passes' finish checks). On an accepted recipe it also writes the
// resolved form (resolved_json, sha256, needs_calibration) and plans the linears of two small
// fixed models (plan_linears + planned_bits_per_weight: override globs, k-quant fallbacks,
// format checks). Property (skip with SQ_FUZZ_NO_ROUNDTRIP=1): the resolved form parses back
// to the same resolved form. sq::Error is the expected rejection; any other exception,
// crash or UB is a finding.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <typeinfo>
#include <vector>

#include "fuzz_common.h"
#include "sliderquant/core/error.h"
#include "sliderquant/model/arch.h"
#include "sliderquant/pipeline/recipe.h"

namespace {

bool g_roundtrip = true;
std::vector<sq::ModelConfig> g_models;

// stories260K (tests/fixtures/stories260K/hf/config.json): widths 64 / 172, not k-quant sized.
const char* kStories = R"({"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
  "intermediate_size": 172, "num_hidden_layers": 5, "num_attention_heads": 8, "num_key_value_heads": 4,
  "head_dim": 8, "vocab_size": 512, "max_position_embeddings": 512, "rms_norm_eps": 1e-05,
  "rope_theta": 10000.0, "hidden_act": "silu", "tie_word_embeddings": true})";
// A Qwen3-shaped toy: widths that are whole 256-column super-blocks, q/k norms.
const char* kQwen3 = R"({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3", "hidden_size": 256,
  "intermediate_size": 768, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "head_dim": 64, "vocab_size": 1024, "max_position_embeddings": 1024, "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0, "hidden_act": "silu", "tie_word_embeddings": true})";

const uint8_t* g_data = nullptr;  // the current input (for soft findings)
size_t g_size = 0;

void finding(const std::string& what, const std::string& detail) {
  sqfuzz::soft_finding(what, detail, g_data, g_size);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_roundtrip = !sqfuzz::env_flag("SQ_FUZZ_NO_ROUNDTRIP");
  g_models.push_back(sq::parse_model_config(kStories, "stories260K config.json"));
  g_models.push_back(sq::parse_model_config(kQwen3, "qwen3 toy config.json"));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  g_data = data;
  g_size = size;
  const std::string text(reinterpret_cast<const char*>(data), size);
  return sqfuzz::run_input(data, size, [&] {
    sq::Recipe r = sq::parse_recipe(text, "recipe.json");
    const std::string resolved = r.resolved_json();
    if (sqfuzz::verbose()) std::fprintf(stderr, "RESOLVED %s\n", resolved.c_str());
    volatile size_t sink = r.sha256().size() + (r.needs_calibration() ? 1 : 0);
    (void)sink;
    if (g_roundtrip) {
      try {
        const std::string again = sq::parse_recipe(resolved, "recipe.json (resolved)").resolved_json();
        if (again != resolved)
          finding("a recipe's resolved form changes when parsed back", resolved + "\n---\n" + again);
      } catch (const sq::Error& e) {
        finding("a recipe's resolved form is refused when parsed back", std::string(e.what()) + "\n" + resolved);
      }
    }
    for (const sq::ModelConfig& c : g_models) {
      try {
        std::vector<sq::LinearPlan> plan = sq::plan_linears(r, c);
        double bpw = sq::planned_bits_per_weight(plan);
        if (!std::isfinite(bpw)) finding("planned bits per weight is not finite", std::to_string(bpw));
      } catch (const sq::Error&) {
        // a format that does not fit this model: expected
      }
    }
  });
}
