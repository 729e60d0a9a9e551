// arch/mixtral: MixtralForCausalLM (Mixtral 8x7B, 8x22B). Mistral attention (optional sliding
// window) with every layer routed: num_local_experts experts as wide as intermediate_size, top
// num_experts_per_tok of the fp32 softmax, always renormalised; module paths
// block_sparse_moe.gate and block_sparse_moe.experts.{e}.w1 (gate) / w3 (up) / w2 (down).
#include "arch_common.h"

namespace sq::arch {
namespace {

const MoeNames& names() {
  static const MoeNames n{"block_sparse_moe.gate", "block_sparse_moe.experts.{e}.w1", "block_sparse_moe.experts.{e}.w3",
                          "block_sparse_moe.experts.{e}.w2", "", "", "", ""};
  return n;
}

void parse(const nlohmann::json& j, ModelConfig& c, const std::string& where) {
  c.sliding_window = opt_int(j, "sliding_window", 0, where);
  SQ_CHECK(c.sliding_window >= 0, where << ": sliding_window must be >= 0 or null");
  c.tie_word_embeddings = opt_bool(j, "tie_word_embeddings", false, where);
  parse_moe(j, c, where, {"num_local_experts"}, false);
}

void emit(const ModelConfig& c, nlohmann::json& j) {
  j["model_type"] = "mixtral";
  if (c.sliding_window > 0) j["sliding_window"] = c.sliding_window;
  else j["sliding_window"] = nullptr;
  emit_moe(c, j, "num_local_experts", false);
}


}  // namespace

const ArchSpec& mixtral_spec() {
  static const ArchSpec spec{
      "mixtral",
      {"MixtralForCausalLM"},
      {"mixtral"},
      {{"experts", "top-k of num_local_experts SwiGLU experts in every layer, weights renormalised; router "
                   "softmax in fp32, never quantized"},
       {"sliding_window", "each token attends to at most sliding_window previous tokens"}},
      parse,
      emit,
      &dense_layout(),
      {{"mixtral-8x7b", 4096, 14336, 32, 32, 8, 0, 32000, 32768, 1000000.0, 1e-5, std::nullopt, 0, 8, 2, 14336}},
      &names()};
  return spec;
}

}  // namespace sq::arch
