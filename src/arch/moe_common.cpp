// arch/moe_common: the config keys the MoE families share (arch_common.h parse_moe/emit_moe).
#include <algorithm>

#include "arch_common.h"

namespace sq::arch {

void parse_moe(const nlohmann::json& j, ModelConfig& c, const std::string& where,
               std::initializer_list<const char*> experts_keys, bool qwen_sparse_layers) {
  std::string key;
  for (const char* k : experts_keys)
    if (key.empty() && has_value(j, k)) key = k;
  SQ_CHECK(!key.empty(), where << ": missing required key '" << *experts_keys.begin() << "' (the expert count)");
  c.num_experts = req_int(j, key.c_str(), where);
  SQ_CHECK(c.num_experts >= 1 && c.num_experts <= 4096,
           where << ": " << key << " must be between 1 and 4096 (got " << c.num_experts << ")");
  c.experts_per_token = req_int(j, "num_experts_per_tok", where);
  SQ_CHECK(c.experts_per_token >= 1 && c.experts_per_token <= c.num_experts,
           where << ": num_experts_per_tok must be between 1 and " << key << " (" << c.num_experts << "), got "
                 << c.experts_per_token);
  if (qwen_sparse_layers) {
    c.moe_intermediate_size = req_int(j, "moe_intermediate_size", where);
    c.norm_topk_prob = opt_bool(j, "norm_topk_prob", false, where);
    c.decoder_sparse_step = opt_int(j, "decoder_sparse_step", 1, where);
    SQ_CHECK(c.decoder_sparse_step >= 1,
             where << ": decoder_sparse_step must be at least 1 (got " << c.decoder_sparse_step << ")");
    if (has_value(j, "mlp_only_layers")) {
      SQ_CHECK(j["mlp_only_layers"].is_array(), where << ": key 'mlp_only_layers' must be a list of layer indices");
      for (const auto& x : j["mlp_only_layers"]) {
        SQ_CHECK(x.is_number_integer() && x.get<int64_t>() >= 0 && x.get<int64_t>() < c.num_layers,
                 where << ": mlp_only_layers holds " << x.dump() << ", not a layer index in [0, " << c.num_layers
                       << ")");
        c.mlp_only_layers.push_back(x.get<int64_t>());
      }
    }
  } else {  // Mixtral: every layer routed, experts as wide as intermediate_size, weights renormalised
    c.moe_intermediate_size = c.intermediate_size;
    c.norm_topk_prob = true;
  }
  SQ_CHECK(c.moe_intermediate_size > 0 && c.moe_intermediate_size <= (int64_t(1) << 22),
           where << ": moe_intermediate_size must be between 1 and " << (int64_t(1) << 22) << " (got "
                 << c.moe_intermediate_size << ")");
}

void emit_moe(const ModelConfig& c, nlohmann::json& j, const char* experts_key, bool qwen_sparse_layers) {
  j[experts_key] = c.num_experts;
  j["num_experts_per_tok"] = c.experts_per_token;
  if (!qwen_sparse_layers) return;
  j["moe_intermediate_size"] = c.moe_intermediate_size;
  j["norm_topk_prob"] = c.norm_topk_prob;
  j["decoder_sparse_step"] = c.decoder_sparse_step;
  j["mlp_only_layers"] = c.mlp_only_layers;
}

}  // namespace sq::arch
