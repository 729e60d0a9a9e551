// arch/mistral: MistralForCausalLM (Mistral 7B v0.1-v0.3). Llama layout without biases;
// quirk: sliding-window attention (config.sliding_window; v0.1 uses 4096, later versions
// null), implemented as a banded causal mask.
#include "arch_common.h"

namespace sq::arch {
namespace {

void parse_mistral(const nlohmann::json& j, ModelConfig& c, const std::string& where) {
  c.sliding_window = opt_int(j, "sliding_window", 0, where);
  SQ_CHECK(c.sliding_window >= 0, where << ": sliding_window must be >= 0 or null");
  c.tie_word_embeddings = opt_bool(j, "tie_word_embeddings", false, where);
}

void emit_mistral(const ModelConfig& c, nlohmann::json& j) {
  j["model_type"] = "mistral";
  if (c.sliding_window > 0) j["sliding_window"] = c.sliding_window;
  else j["sliding_window"] = nullptr;
}

}  // namespace

const ArchSpec& mistral_spec() {
  static const ArchSpec spec{
      "mistral",
      {"MistralForCausalLM"},
      {"mistral"},
      {{"sliding_window", "each token attends to at most sliding_window previous tokens"}},
      parse_mistral,
      emit_mistral,
      &dense_layout(),
      // presets: name, hidden, intermediate, layers, heads, kv heads, head_dim, vocab, context, theta, eps
      {{"mistral-7b", 4096, 14336, 32, 32, 8, 0, 32000, 32768, 10000.0, 1e-5, std::nullopt, 4096}}};
  return spec;
}

}  // namespace sq::arch
