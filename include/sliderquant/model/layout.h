// model/layout: a decoder block's shape as data. A family's BlockLayout (src/arch/) lists
// the block's linear slots (canonical name, HF name, the forward-pass operand it is, its
// widths in config terms, the input it reads, whether a bias is stored, whether it is
// quantized, its expert fan-out) and the absorption edges the transforms use. Everything
// that used to spell out "q, k, v, o, gate, up, down" (the loader, HF names, synthetic
// checkpoints, the per-linear plan, the calibration groups, the learned passes, the
// transforms) reads this table instead, so a family is one file plus one registry row.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sq {

struct ModelConfig;

// The inputs of a block's linear groups, in forward order: what calibration taps and
// where online transforms and activation quantizers sit.
enum class TapPoint { QkvIn = 0, OIn = 1, GateUpIn = 2, DownIn = 3 };
constexpr int kTapPoints = 4;
const char* tap_name(TapPoint p);  // "q/k/v input", "o input", "gate/up input", "down input"

// A width read from the config.
enum class Dim {
  Hidden,   // hidden_size
  QHeads,   // num_heads * head_dim
  KvHeads,  // num_kv_heads * head_dim
  Inter,    // intermediate_size
};
int64_t dim_size(Dim d, const ModelConfig& c);

// Which operand of the forward pass a slot is (the forward computes with roles, never
// with names).
enum class Role { Q, K, V, O, Gate, Up, Down };
constexpr int kRoles = 7;

// The config switch that gives a slot a stored bias.
enum class BiasFlag { None, Qkv, O, Mlp };
bool has_bias(BiasFlag b, const ModelConfig& c);

struct LinearSlot {
  std::string name;  // canonical name inside a block, e.g. "attn.q" (tensor "blocks.{i}.attn.q")
  std::string hf;    // HF module path inside a layer, e.g. "self_attn.q_proj" (+ ".weight"/".bias")
  Role role;
  Dim out, in;       // weight [out, in]
  TapPoint group;    // the input it reads: sequencing order and calibration tap
  BiasFlag bias = BiasFlag::None;
  bool quantize = true;  // false: never quantized by default (a router)
  int experts = 0;       // 0 = dense; n = one slot per expert (MoE)
};

// A producer whose output channels feed the inputs of `to` (slot names): a norm
// ("attn_norm", "mlp_norm") or a slot name. Equivalent scales and norm fusion act along
// these edges.
struct AbsorbEdge {
  std::string from;
  std::vector<std::string> to;
};

enum class FfnKind { Dense };

struct BlockLayout {
  std::vector<LinearSlot> slots;  // in forward order
  std::vector<AbsorbEdge> edges;
  FfnKind ffn = FfnKind::Dense;

  int size() const { return int(slots.size()); }
  int index(Role r) const;                    // the slot of a role; throws when absent
  int find(const std::string& name) const;    // the slot named NAME, or -1
  std::vector<int> group(TapPoint g) const;   // slots reading tap g, in table order
  const AbsorbEdge* edge_from(const std::string& from) const;  // nullptr when none
  // The slot whose output channels are the input columns of SLOT one to one (an edge from a
  // slot of the same width, e.g. up -> down), so a per-column scale of SLOT can move into
  // that slot's rows; -1 when there is none (norms, or v -> o under GQA).
  int column_producer(int slot) const;
  int64_t out_features(int slot, const ModelConfig& c) const { return dim_size(slots[size_t(slot)].out, c); }
  int64_t in_features(int slot, const ModelConfig& c) const { return dim_size(slots[size_t(slot)].in, c); }
};

// The layout every supported dense family shares (Llama naming; src/arch/dense_layout.cpp).
const BlockLayout& dense_layout();

// The canonical name of slot `slot` of block `layer`: "blocks.{layer}.{name}".
std::string slot_tensor_name(const BlockLayout& l, int64_t layer, int slot);
// Splits "blocks.{i}.{rest}" into i and rest; false when NAME is not a block tensor.
bool split_block_name(const std::string& name, int64_t& layer, std::string& rest);
// The group (tap) of the linear named "blocks.{i}.{slot}"; throws when it is not a slot of L.
TapPoint slot_group(const BlockLayout& l, const std::string& canonical);

}  // namespace sq
