// model/config: config.json -> ModelConfig. The keys every family shares are read here;
// each family's own keys and quirks are read by its ArchSpec (src/arch/<family>.cpp).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <tuple>

#include "sliderquant/core/json.h"
#include "sliderquant/core/util.h"
#include "sliderquant/model/arch.h"

namespace sq {

namespace {

std::optional<RopeScaling> parse_rope_scaling(const nlohmann::json& j, const std::string& where) {
  if (!has_value(j, "rope_scaling")) return std::nullopt;
  const nlohmann::json& r = j["rope_scaling"];
  SQ_CHECK(r.is_object(), where << ": rope_scaling must be an object or null");
  std::string type;
  if (has_value(r, "rope_type")) type = req_str(r, "rope_type", where + " rope_scaling");
  else if (has_value(r, "type")) type = req_str(r, "type", where + " rope_scaling");
  if (type.empty() || type == "default") return std::nullopt;
  RopeScaling s;
  s.type = type;
  const std::string rw = where + " rope_scaling";
  if (type == "llama3") {
    s.factor = opt_num(r, "factor", 8.0, rw);
    s.low_freq_factor = opt_num(r, "low_freq_factor", 1.0, rw);
    s.high_freq_factor = opt_num(r, "high_freq_factor", 4.0, rw);
    s.original_max_position_embeddings = opt_int(r, "original_max_position_embeddings", 8192, rw);
    SQ_CHECK(s.high_freq_factor > s.low_freq_factor,
             rw << ": high_freq_factor must be greater than low_freq_factor");
  } else if (type == "linear") {
    SQ_CHECK(has_value(r, "factor"), rw << ": missing required key 'factor'");
    s.factor = opt_num(r, "factor", 1.0, rw);
  } else {
    SQ_FAIL(where << ": rope_scaling type '" << type << "' is not supported (supported: llama3, linear)");
  }
  SQ_CHECK(s.factor > 0, rw << ": factor must be positive");
  return s;
}

}  // namespace

bool ModelConfig::moe_layer(int64_t i) const {
  if (num_experts <= 0) return false;
  for (int64_t l : mlp_only_layers)
    if (l == i) return false;
  return (i + 1) % std::max<int64_t>(1, decoder_sparse_step) == 0;
}

int64_t ModelConfig::param_count() const {
  const int64_t H = hidden_size, I = intermediate_size;
  int64_t attn = H * q_dim() + 2 * H * kv_dim() + q_dim() * H;
  if (qkv_bias) attn += q_dim() + 2 * kv_dim();
  if (o_bias) attn += H;
  if (qk_norm) attn += 2 * head_dim;
  const int64_t dense_mlp = 3 * H * I + (mlp_bias ? 2 * I + H : 0);
  int64_t moe_mlp = num_experts * H + num_experts * 3 * H * moe_intermediate_size;
  if (shared_expert_intermediate_size > 0) moe_mlp += 3 * H * shared_expert_intermediate_size + H;
  int64_t total = vocab_size * H * (tie_word_embeddings ? 1 : 2) + H;
  for (int64_t i = 0; i < num_layers; ++i) total += attn + 2 * H + (moe_layer(i) ? moe_mlp : dense_mlp);
  return total;
}

ModelConfig parse_model_config(const std::string& text, const std::string& where) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    SQ_FAIL(where << ": invalid JSON (" << e.what() << ")");
  }
  SQ_CHECK(j.is_object(), where << ": expected a JSON object");
  SQ_CHECK(has_value(j, "architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
               j["architectures"][0].is_string(),
           where << ": missing required key 'architectures' (supported: " << supported_architectures() << ")");
  ModelConfig c;
  c.architecture = j["architectures"][0].get<std::string>();
  const ArchSpec& spec = find_arch(c.architecture);
  c.family = spec.family;

  c.hidden_size = req_int(j, "hidden_size", where);
  c.intermediate_size = req_int(j, "intermediate_size", where);
  c.num_layers = req_int(j, "num_hidden_layers", where);
  c.num_heads = req_int(j, "num_attention_heads", where);
  c.vocab_size = req_int(j, "vocab_size", where);
  c.num_kv_heads = opt_int(j, "num_key_value_heads", c.num_heads, where);
  SQ_CHECK(c.hidden_size > 0 && c.intermediate_size > 0 && c.num_layers > 0 && c.num_heads > 0 &&
               c.vocab_size > 0 && c.num_kv_heads > 0,
           where << ": hidden_size, intermediate_size, num_hidden_layers, num_attention_heads, "
                    "num_key_value_heads and vocab_size must be positive");
  // Bounds far above any real model (hidden 16384, FFN 100k, vocab 256k, 128 layers today), so
  // parameter counts and tensor sizes computed from them cannot overflow int64.
  for (const auto& [key, v, max] : {std::tuple{"hidden_size", c.hidden_size, int64_t(1) << 20},
                                    std::tuple{"intermediate_size", c.intermediate_size, int64_t(1) << 22},
                                    std::tuple{"num_hidden_layers", c.num_layers, int64_t(1) << 12},
                                    std::tuple{"num_attention_heads", c.num_heads, int64_t(1) << 12},
                                    std::tuple{"num_key_value_heads", c.num_kv_heads, int64_t(1) << 12},
                                    std::tuple{"vocab_size", c.vocab_size, int64_t(1) << 24}})
    SQ_CHECK(v <= max, where << ": " << key << " " << v << " is beyond any model this program can hold (at most "
                             << max << ")");
  SQ_CHECK(c.num_heads % c.num_kv_heads == 0, where << ": num_attention_heads (" << c.num_heads
                                                    << ") must be a multiple of num_key_value_heads ("
                                                    << c.num_kv_heads << ")");
  if (has_value(j, "head_dim")) {
    c.head_dim = req_int(j, "head_dim", where);
  } else {
    SQ_CHECK(c.hidden_size % c.num_heads == 0,
             where << ": hidden_size is not a multiple of num_attention_heads and head_dim is missing");
    c.head_dim = c.hidden_size / c.num_heads;
  }
  SQ_CHECK(c.head_dim > 0 && c.head_dim % 2 == 0 && c.head_dim <= (int64_t(1) << 16),
           where << ": head_dim must be positive, even and at most 65536");
  c.max_position_embeddings = opt_int(j, "max_position_embeddings", 2048, where);
  c.rms_norm_eps = opt_num(j, "rms_norm_eps", 1e-6, where);
  c.rope_theta = opt_num(j, "rope_theta", 10000.0, where);
  // transformers 5 writes rope_theta (and any scaling) inside rope_parameters.
  if (!has_value(j, "rope_theta") && has_value(j, "rope_parameters")) {
    const nlohmann::json rp = j["rope_parameters"];
    SQ_CHECK(rp.is_object(), where << ": rope_parameters must be an object");
    c.rope_theta = opt_num(rp, "rope_theta", 10000.0, where + " rope_parameters");
    if (!has_value(j, "rope_scaling")) j["rope_scaling"] = rp;
  }
  SQ_CHECK(c.max_position_embeddings > 0, where << ": max_position_embeddings must be positive (got "
                                                 << c.max_position_embeddings << ")");
  SQ_CHECK(std::isfinite(c.rms_norm_eps) && c.rms_norm_eps > 0 && c.rms_norm_eps < 1,
           where << ": rms_norm_eps must be in (0, 1) (got " << c.rms_norm_eps << ")");
  SQ_CHECK(std::isfinite(c.rope_theta) && c.rope_theta > 0,
           where << ": rope_theta must be a positive number (got " << c.rope_theta << ")");
  c.rope_scaling = parse_rope_scaling(j, where);
  if (has_value(j, "hidden_act")) {
    std::string act = req_str(j, "hidden_act", where);
    SQ_CHECK(act == "silu" || act == "swish",
             where << ": hidden_act '" << act << "' is not supported (SwiGLU models use silu)");
  }
  c.bos_token_id = opt_int(j, "bos_token_id", -1, where);
  if (has_value(j, "eos_token_id")) {
    const auto& e = j["eos_token_id"];
    if (e.is_array()) {
      for (const auto& x : e) {
        SQ_CHECK(x.is_number_integer(), where << ": key 'eos_token_id' must be an integer or a list of integers");
        c.eos_token_ids.push_back(x.get<int64_t>());
      }
    } else {
      c.eos_token_ids.push_back(opt_int(j, "eos_token_id", -1, where));
    }
  }
  if (has_value(j, "torch_dtype") && j["torch_dtype"].is_string()) c.torch_dtype = j["torch_dtype"];
  else if (has_value(j, "dtype") && j["dtype"].is_string()) c.torch_dtype = j["dtype"];
  spec.parse(j, c, where);
  return c;
}

ModelConfig load_model_config(const std::string& model_dir) {
  SQ_CHECK(is_directory(model_dir), "model directory " << model_dir << " does not exist");
  std::string path = path_join(model_dir, "config.json");
  SQ_CHECK(path_exists(path), "no config.json in " << model_dir);
  return parse_model_config(read_file(path), path);
}

std::string model_config_json(const ModelConfig& c) {
  nlohmann::json j;
  j["architectures"] = {c.architecture};
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.num_layers;
  j["num_attention_heads"] = c.num_heads;
  j["num_key_value_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rms_norm_eps"] = c.rms_norm_eps;
  j["rope_theta"] = c.rope_theta;
  if (c.rope_scaling) {
    const RopeScaling& r = *c.rope_scaling;
    nlohmann::json rs{{"rope_type", r.type}, {"factor", r.factor}};
    if (r.type == "llama3") {
      rs["low_freq_factor"] = r.low_freq_factor;
      rs["high_freq_factor"] = r.high_freq_factor;
      rs["original_max_position_embeddings"] = r.original_max_position_embeddings;
    }
    j["rope_scaling"] = rs;
  } else {
    j["rope_scaling"] = nullptr;
  }
  j["hidden_act"] = "silu";
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  if (c.bos_token_id >= 0) j["bos_token_id"] = c.bos_token_id;
  if (c.eos_token_ids.size() == 1) j["eos_token_id"] = c.eos_token_ids[0];
  else if (!c.eos_token_ids.empty()) j["eos_token_id"] = c.eos_token_ids;
  if (!c.torch_dtype.empty()) j["torch_dtype"] = c.torch_dtype;
  find_family(c.family).emit(c, j);
  return j.dump(2) + "\n";
}

namespace {

// The HF module path of MoE slot REST ("mlp.router", "mlp.experts.3.up", "mlp.shared.down", ...)
// in spelling N, or "" when REST is not a MoE slot.
std::string moe_module(const MoeNames& n, const std::string& rest) {
  if (rest == "mlp.router") return n.router;
  if (!n.shared_gate.empty()) {
    if (rest == "mlp.shared_gate") return n.shared_expert_gate;
    if (rest == "mlp.shared.gate") return n.shared_gate;
    if (rest == "mlp.shared.up") return n.shared_up;
    if (rest == "mlp.shared.down") return n.shared_down;
  }
  const std::string p = "mlp.experts.";
  if (rest.rfind(p, 0) != 0) return "";
  const size_t dot = rest.find('.', p.size());
  if (dot == std::string::npos || dot == p.size()) return "";
  const std::string e = rest.substr(p.size(), dot - p.size());
  for (char ch : e)
    if (ch < '0' || ch > '9') return "";
  const std::string r = rest.substr(dot + 1);
  if (r == "gate") return expert_path(n.expert_gate, e);
  if (r == "up") return expert_path(n.expert_up, e);
  if (r == "down") return expert_path(n.expert_down, e);
  return "";
}

}  // namespace

std::string hf_tensor_name(const std::string& canonical, const std::string& family) {
  static const std::pair<const char*, const char*> fixed[] = {
      {"embed", "model.embed_tokens.weight"}, {"final_norm", "model.norm.weight"},
      {"final_norm.bias", "model.norm.bias"}, {"lm_head", "lm_head.weight"}};
  for (const auto& [c, h] : fixed)
    if (canonical == c) return h;
  // blocks.{i}.<rest>
  SQ_CHECK(canonical.rfind("blocks.", 0) == 0, "unknown canonical tensor name '" << canonical << "'");
  size_t dot = canonical.find('.', 7);
  SQ_CHECK(dot != std::string::npos, "unknown canonical tensor name '" << canonical << "'");
  std::string idx = canonical.substr(7, dot - 7), rest = canonical.substr(dot + 1);
  static const std::pair<const char*, const char*> per_block[] = {
      {"attn_norm", "input_layernorm.weight"},
      {"mlp_norm", "post_attention_layernorm.weight"},
      {"mlp_norm.bias", "post_attention_layernorm.bias"},
      {"attn.q_norm", "self_attn.q_norm.weight"}, {"attn.k_norm", "self_attn.k_norm.weight"},
      {"act_clip", "activation_clip"}};
  for (const auto& [c, h] : per_block)
    if (rest == c) return "model.layers." + idx + "." + h;
  // Linear slots of the registered families' block layouts (model/layout.h), FAMILY's first.
  std::vector<const ArchSpec*> order;
  if (!family.empty()) order.push_back(&find_family(family));
  for (const ArchSpec* a : arch_registry()) order.push_back(a);
  for (const ArchSpec* a : order) {
    for (const LinearSlot& sl : a->layout->slots) {
      if (rest == sl.name) return "model.layers." + idx + "." + sl.hf + ".weight";
      if (rest == sl.name + ".bias") return "model.layers." + idx + "." + sl.hf + ".bias";
    }
    if (a->moe) {
      const bool bias = rest.size() > 5 && rest.compare(rest.size() - 5, 5, ".bias") == 0;
      const std::string m = moe_module(*a->moe, bias ? rest.substr(0, rest.size() - 5) : rest);
      if (!m.empty()) return "model.layers." + idx + "." + m + (bias ? ".bias" : ".weight");
    }
  }
  if (rest.rfind("online.", 0) == 0) return "model.layers." + idx + ".online_transform." + rest.substr(7);
  SQ_FAIL("unknown canonical tensor name '" << canonical << "'");
}

}  // namespace sq
