// arch/llama: LlamaForCausalLM (Llama 1, 2, 3, 3.1+). Quirks: optional attention/MLP biases
// (attention_bias, mlp_bias), Llama-3 rope_scaling {"rope_type": "llama3"} (read by the
// common parser), eos_token_id may be a list (Llama 3 instruct).
#include "arch_common.h"

namespace sq::arch {
namespace {

void parse_llama(const nlohmann::json& j, ModelConfig& c, const std::string& where) {
  bool attn_bias = opt_bool(j, "attention_bias", false, where);
  c.qkv_bias = attn_bias;
  c.o_bias = attn_bias;
  c.mlp_bias = opt_bool(j, "mlp_bias", false, where);
  c.tie_word_embeddings = opt_bool(j, "tie_word_embeddings", false, where);
}

void emit_llama(const ModelConfig& c, nlohmann::json& j) {
  j["model_type"] = "llama";
  j["attention_bias"] = c.qkv_bias;
  j["mlp_bias"] = c.mlp_bias;
}

}  // namespace

const ArchSpec& llama_spec() {
  static const ArchSpec spec{
      "llama",
      {"LlamaForCausalLM"},
      {"llama"},
      {{"attention_bias", "q/k/v/o biases when config.attention_bias is true"},
       {"mlp_bias", "gate/up/down biases when config.mlp_bias is true"},
       {"rope_scaling llama3", "Llama 3.1+ rescale RoPE frequencies by wavelength band"}},
      parse_llama,
      emit_llama,
      &dense_layout(),
      // presets: name, hidden, intermediate, layers, heads, kv heads, head_dim, vocab, context, theta, eps
      {{"llama2-7b", 4096, 11008, 32, 32, 32, 0, 32000, 4096, 10000.0, 1e-5},
       {"llama3-8b", 4096, 14336, 32, 32, 8, 0, 128256, 131072, 500000.0, 1e-5,
        RopeScaling{"llama3", 8.0, 1.0, 4.0, 8192}}}};
  return spec;
}

}  // namespace sq::arch
