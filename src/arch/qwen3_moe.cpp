// arch/qwen3_moe: Qwen3MoeForCausalLM (Qwen3-30B-A3B, Qwen3-235B-A22B). Qwen3 attention (q/k
// head norms, explicit head_dim) with a routed MLP: softmax over num_experts router logits in
// fp32, top num_experts_per_tok, renormalised when norm_topk_prob; no shared expert. Layers in
// mlp_only_layers, or not on the decoder_sparse_step grid, keep a dense MLP of intermediate_size.
#include "arch_common.h"

namespace sq::arch {
namespace {

const MoeNames& names() {
  static const MoeNames n{"mlp.gate", "mlp.experts.{e}.gate_proj", "mlp.experts.{e}.up_proj",
                          "mlp.experts.{e}.down_proj", "", "", "", ""};
  return n;
}

void parse(const nlohmann::json& j, ModelConfig& c, const std::string& where) {
  c.qk_norm = true;
  const bool attn_bias = opt_bool(j, "attention_bias", false, where);
  c.qkv_bias = attn_bias;
  c.o_bias = attn_bias;
  c.tie_word_embeddings = opt_bool(j, "tie_word_embeddings", false, where);
  refuse_sliding_window(j, where);
  parse_moe(j, c, where, {"num_experts", "num_local_experts"}, true);
}

void emit(const ModelConfig& c, nlohmann::json& j) {
  j["model_type"] = "qwen3_moe";
  j["attention_bias"] = c.qkv_bias;
  j["use_sliding_window"] = false;
  emit_moe(c, j, "num_experts", true);
}


}  // namespace

const ArchSpec& qwen3_moe_spec() {
  static const ArchSpec spec{
      "qwen3_moe",
      {"Qwen3MoeForCausalLM"},
      {"qwen3_moe"},
      {{"qk_norm", "RMSNorm on each q and k head before RoPE"},
       {"experts", "top-k of num_experts routed SwiGLU experts; router softmax in fp32, never quantized"},
       {"norm_topk_prob", "the top-k routing weights renormalised to sum 1 when true"},
       {"mlp_only_layers", "listed layers (and those off the decoder_sparse_step grid) keep a dense MLP"}},
      parse,
      emit,
      &dense_layout(),
      // presets: name, hidden, intermediate, layers, heads, kv heads, head_dim, vocab, context, theta, eps,
      // rope scaling, sliding window, experts, top-k, expert width
      {{"qwen3-30b-a3b", 2048, 6144, 48, 32, 4, 128, 151936, 40960, 1000000.0, 1e-6, std::nullopt, 0, 128, 8, 768}},
      &names()};
  return spec;
}

}  // namespace sq::arch
