// model/arch: hyper-parameters read from config.json, and the architecture specs (one per
// model family, src/arch/<family>.cpp, listed in src/arch/registry.cpp) that say how a
// family's config and tensor names map onto the one decoder the forward pass implements.
// Knows nothing of quantization.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sliderquant/model/layout.h"

namespace sq {

struct RopeScaling {
  std::string type;  // "llama3" | "linear"
  double factor = 1.0;
  double low_freq_factor = 1.0;   // llama3
  double high_freq_factor = 4.0;  // llama3
  int64_t original_max_position_embeddings = 8192;  // llama3
};

struct ModelConfig {
  std::string architecture;  // HF architectures[0], e.g. "LlamaForCausalLM"
  std::string family;        // canonical family: "llama", "mistral", "qwen2", "qwen3"
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 2048;
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  std::optional<RopeScaling> rope_scaling;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;   // q/k/v projections carry a bias (Qwen2; Llama attention_bias)
  bool o_bias = false;     // o_proj carries a bias (Llama attention_bias)
  bool mlp_bias = false;   // gate/up/down carry biases (Llama mlp_bias)
  bool qk_norm = false;    // RMSNorm on each head of q and k before RoPE (Qwen3)
  int64_t sliding_window = 0;  // 0 = full causal attention (Mistral: window of past tokens)
  // Mixture of experts (Qwen3-MoE, Qwen2-MoE, Mixtral); num_experts 0 = dense.
  int64_t num_experts = 0;
  int64_t experts_per_token = 0;           // top-k
  int64_t moe_intermediate_size = 0;       // one routed expert's FFN width
  int64_t shared_expert_intermediate_size = 0;  // 0 = no shared expert
  bool norm_topk_prob = false;             // renormalise the top-k routing weights to sum 1
  int64_t decoder_sparse_step = 1;         // every step-th layer is MoE (Qwen)
  std::vector<int64_t> mlp_only_layers;    // layers that keep a dense MLP (Qwen)
  int64_t bos_token_id = -1;
  std::vector<int64_t> eos_token_ids;
  std::string torch_dtype;  // as stored in config.json ("bfloat16", ...), may be empty

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  int64_t param_count() const;  // parameters implied by the shapes (embeddings included)
  // Whether layer I has a routed-expert MLP (Qwen's decoder_sparse_step / mlp_only_layers rule).
  bool moe_layer(int64_t i) const;
};

struct Quirk {
  std::string name;
  std::string reason;
};

// A named real-model shape for synthetic checkpoints (`synth --preset`).
struct ShapePreset {
  std::string name;  // e.g. "llama2-7b"
  int64_t hidden, intermediate, layers, heads, kv_heads;
  int64_t head_dim;  // 0 = hidden / heads
  int64_t vocab, context;
  double rope_theta, rms_norm_eps;
  std::optional<RopeScaling> rope_scaling = std::nullopt;
  int64_t sliding_window = 0;
  int64_t experts = 0, experts_per_token = 0, moe_intermediate = 0;  // MoE shapes (0 = dense)
};

struct ArchSpec {
  std::string family;
  std::vector<std::string> architectures;  // accepted HF architectures[0] names
  std::vector<std::string> model_types;    // matching HF model_type values
  std::vector<Quirk> quirks;
  // Reads the family's own keys after the common ones; throws Error naming key and file.
  void (*parse)(const nlohmann::json& cfg, ModelConfig& out, const std::string& where) = nullptr;
  // Writes the family's own keys (synthetic checkpoints).
  void (*emit)(const ModelConfig& c, nlohmann::json& cfg) = nullptr;
  // The decoder block's linear slots and absorption edges (model/layout.h).
  const BlockLayout* layout = nullptr;
  // Real-model shapes of this family for synthetic checkpoints.
  std::vector<ShapePreset> presets = {};
  // MoE families: the module spelling of the routed MLP; layers where ModelConfig::moe_layer
  // holds use moe_layout(*moe, num_experts), the others `layout`. nullptr = dense family.
  const MoeNames* moe = nullptr;
};

// The layout of layer I of a model of config C of family SPEC.
const BlockLayout& block_layout(const ArchSpec& spec, const ModelConfig& c, int64_t i);

// All supported families, in a fixed order (src/arch/registry.cpp).
const std::vector<const ArchSpec*>& arch_registry();
// The spec for an HF architectures[0] name; throws Error listing the supported ones.
const ArchSpec& find_arch(const std::string& hf_architecture);
// The spec for a canonical family name ("llama", ...); throws Error listing them.
const ArchSpec& find_family(const std::string& family);
std::string supported_architectures();  // "LlamaForCausalLM, MistralForCausalLM, ..."

// Parses a config.json text (where = its path, for errors).
ModelConfig parse_model_config(const std::string& json_text, const std::string& where);
ModelConfig load_model_config(const std::string& model_dir);
// The config.json text of a ModelConfig (for synthetic checkpoints).
std::string model_config_json(const ModelConfig& c);

// Canonical <-> HF tensor names. Canonical names:
//   embed, final_norm, lm_head,
//   blocks.{i}.attn_norm, blocks.{i}.attn.{q_norm,k_norm}, blocks.{i}.mlp_norm[.bias],
//   blocks.{i}.SLOT[.bias] for every linear slot of a registered family's layout
//   (model/layout.h; HF "model.layers.{i}." + the slot's hf name + ".weight"/".bias").
// FAMILY names the family whose spelling to use (MoE families differ: Mixtral's
// "block_sparse_moe.experts.{e}.w1" vs Qwen's "mlp.experts.{e}.gate_proj"); empty = the first
// registered family that knows the name.
std::string hf_tensor_name(const std::string& canonical, const std::string& family = "");

}  // namespace sq
