// arch/qwen2_moe: Qwen2MoeForCausalLM (Qwen1.5-MoE-A2.7B, Qwen2-57B-A14B). Qwen2 attention
// (q/k/v biases) with a routed MLP plus an always-on shared expert whose output is scaled by
// sigmoid(shared_expert_gate(x)); routing weights are renormalised only when norm_topk_prob.
#include "arch_common.h"

namespace sq::arch {
namespace {

const MoeNames& names() {
  static const MoeNames n{"mlp.gate",
                          "mlp.experts.{e}.gate_proj",
                          "mlp.experts.{e}.up_proj",
                          "mlp.experts.{e}.down_proj",
                          "mlp.shared_expert.gate_proj",
                          "mlp.shared_expert.up_proj",
                          "mlp.shared_expert.down_proj",
                          "mlp.shared_expert_gate"};
  return n;
}

void parse(const nlohmann::json& j, ModelConfig& c, const std::string& where) {
  SQ_CHECK(opt_bool(j, "qkv_bias", true, where),
           where << ": qkv_bias=false is not supported for Qwen2-MoE (its checkpoints carry q/k/v biases)");
  c.qkv_bias = true;
  c.tie_word_embeddings = opt_bool(j, "tie_word_embeddings", false, where);
  refuse_sliding_window(j, where);
  parse_moe(j, c, where, {"num_experts", "num_local_experts"}, true);
  c.shared_expert_intermediate_size = req_int(j, "shared_expert_intermediate_size", where);
  SQ_CHECK(c.shared_expert_intermediate_size > 0 && c.shared_expert_intermediate_size <= (int64_t(1) << 22),
           where << ": shared_expert_intermediate_size must be between 1 and " << (int64_t(1) << 22) << " (got "
                 << c.shared_expert_intermediate_size << ")");
}

void emit(const ModelConfig& c, nlohmann::json& j) {
  j["model_type"] = "qwen2_moe";
  j["use_sliding_window"] = false;
  j["qkv_bias"] = true;
  j["shared_expert_intermediate_size"] = c.shared_expert_intermediate_size;
  emit_moe(c, j, "num_experts", true);
}


}  // namespace

const ArchSpec& qwen2_moe_spec() {
  static const ArchSpec spec{
      "qwen2_moe",
      {"Qwen2MoeForCausalLM"},
      {"qwen2_moe"},
      {{"qkv_bias", "q/k/v projections have biases, o_proj has none"},
       {"experts", "top-k of num_experts routed SwiGLU experts; router softmax in fp32, never quantized"},
       {"shared_expert", "an always-on expert scaled by sigmoid(shared_expert_gate(x)); the gate is never quantized"},
       {"norm_topk_prob", "false in released checkpoints: the top-k weights are the softmax probabilities"}},
      parse,
      emit,
      &dense_layout(),
      {},
      &names()};
  return spec;
}

}  // namespace sq::arch
