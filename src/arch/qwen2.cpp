// arch/qwen2: Qwen2ForCausalLM (Qwen2, Qwen2.5). Llama layout; quirks: q/k/v projections
// always carry a bias (o_proj does not); small models tie embeddings; sliding-window
// attention (use_sliding_window) is off in every released checkpoint and refused here.
#include "arch_common.h"

namespace sq::arch {
namespace {

void parse_qwen2(const nlohmann::json& j, ModelConfig& c, const std::string& where) {
  c.qkv_bias = true;
  c.tie_word_embeddings = opt_bool(j, "tie_word_embeddings", false, where);
  refuse_sliding_window(j, where);
}

void emit_qwen2(const ModelConfig&, nlohmann::json& j) {
  j["model_type"] = "qwen2";
  j["use_sliding_window"] = false;
}

}  // namespace

const ArchSpec& qwen2_spec() {
  static const ArchSpec spec{
      "qwen2",
      {"Qwen2ForCausalLM"},
      {"qwen2"},
      {{"qkv_bias", "q/k/v projections have biases, o_proj has none"},
       {"use_sliding_window", "must be false (released checkpoints)"}},
      parse_qwen2,
      emit_qwen2,
      &dense_layout(),
      // presets: name, hidden, intermediate, layers, heads, kv heads, head_dim, vocab, context, theta, eps
      {{"qwen2.5-7b", 3584, 18944, 28, 28, 4, 0, 152064, 32768, 1000000.0, 1e-6}}};
  return spec;
}

}  // namespace sq::arch
