// arch/qwen3: Qwen3ForCausalLM (dense Qwen3). Llama layout; quirks: RMSNorm over each head
// of q and k (q_norm/k_norm, weight [head_dim]) before RoPE; head_dim is explicit and not
// hidden/heads (Qwen3-8B: 4096 hidden, 32 heads, head_dim 128); attention_bias optional.
#include "arch_common.h"

namespace sq::arch {
namespace {

void parse_qwen3(const nlohmann::json& j, ModelConfig& c, const std::string& where) {
  c.qk_norm = true;
  bool attn_bias = opt_bool(j, "attention_bias", false, where);
  c.qkv_bias = attn_bias;
  c.o_bias = attn_bias;
  c.tie_word_embeddings = opt_bool(j, "tie_word_embeddings", false, where);
  refuse_sliding_window(j, where);
}

void emit_qwen3(const ModelConfig& c, nlohmann::json& j) {
  j["model_type"] = "qwen3";
  j["attention_bias"] = c.qkv_bias;
  j["use_sliding_window"] = false;
}

}  // namespace

const ArchSpec& qwen3_spec() {
  static const ArchSpec spec{
      "qwen3",
      {"Qwen3ForCausalLM"},
      {"qwen3"},
      {{"qk_norm", "RMSNorm on each q and k head before RoPE"},
       {"head_dim", "explicit in config.json, may differ from hidden/heads"}},
      parse_qwen3,
      emit_qwen3,
      &dense_layout(),
      // presets: name, hidden, intermediate, layers, heads, kv heads, head_dim, vocab, context, theta, eps
      {{"qwen3-8b", 4096, 12288, 36, 32, 8, 128, 151936, 40960, 1000000.0, 1e-6}}};
  return spec;
}

}  // namespace sq::arch
