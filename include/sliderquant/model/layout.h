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
  Experts,  // num_experts (a router's outputs)
  MoeInter, // moe_intermediate_size (one routed expert)
  SharedInter,  // shared_expert_intermediate_size (Qwen2-MoE's always-on expert)
  One,      // 1 (the shared expert's sigmoid gate)
};
int64_t dim_size(Dim d, const ModelConfig& c);

// Which operand of the forward pass a slot is (the forward computes with roles, never
// with names).
// Router: the MoE gate that scores experts (never quantized by default, run in fp32);
// SharedGate: Qwen2-MoE's [1, hidden] sigmoid gate of the shared expert. An expert's
// linears and the shared expert's carry the Gate/Up/Down roles with `expert` / `shared` set.
enum class Role { Q, K, V, O, Gate, Up, Down, Router, SharedGate };
constexpr int kRoles = 9;

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
  int expert = -1;       // >= 0: a routed expert's linear (reads only the tokens routed to it)
  bool shared = false;   // the shared expert's linear (MoE blocks with an always-on expert)
};

// A producer whose output channels feed the inputs of `to` (slot names): a norm
// ("attn_norm", "mlp_norm") or a slot name. Equivalent scales and norm fusion act along
// these edges.
struct AbsorbEdge {
  std::string from;
  std::vector<std::string> to;
};

// Dense: one SwiGLU MLP. Moe: a router (softmax over experts, top-k, optionally renormalised),
// routed SwiGLU experts and optionally a shared expert with a sigmoid gate.
enum class FfnKind { Dense, Moe };

struct BlockLayout {
  std::vector<LinearSlot> slots;  // in forward order
  std::vector<AbsorbEdge> edges;
  FfnKind ffn = FfnKind::Dense;
  int experts = 0;             // routed experts (Moe)
  bool shared_expert = false;  // Moe with an always-on shared expert

  bool moe() const { return ffn == FfnKind::Moe; }
  int size() const { return int(slots.size()); }
  // The slot of a role outside the experts (a dense MLP's gate, the router, ...); throws when absent.
  int index(Role r) const;
  int expert_index(int expert, Role r) const;  // expert E's gate/up/down slot; throws when absent
  int shared_index(Role r) const;              // the shared expert's gate/up/down slot
  int find(const std::string& name) const;    // the slot named NAME, or -1
  std::vector<int> group(TapPoint g) const;   // slots reading tap g, in table order (experts included)
  // The slots reading tap g on one path: expert -1 = the block-wide input (attention, a dense
  // MLP, the router, the shared expert); e >= 0 = routed expert e's own input.
  std::vector<int> group(TapPoint g, int expert) const;
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

// How a MoE family spells its MLP module paths (inside "model.layers.{i}."); "{e}" stands for
// the expert index (src/arch/moe_layout.cpp).
struct MoeNames {
  std::string router;                       // "mlp.gate"
  std::string expert_gate, expert_up, expert_down;  // "mlp.experts.{e}.gate_proj", ...
  std::string shared_gate, shared_up, shared_down, shared_expert_gate;  // empty: no shared expert
};
// PATTERN (a MoeNames path) with its "{e}" replaced by expert E; PATTERN itself when it has none.
std::string expert_path(std::string pattern, const std::string& e);

// The block layout of a MoE layer with EXPERTS routed experts (attention as dense_layout, then
// router, experts 0..E-1 and the shared expert when NAMES has one). Built once per
// (names, experts) and kept for the program's life.
const BlockLayout& moe_layout(const MoeNames& names, int experts);

// The canonical name of slot `slot` of block `layer`: "blocks.{layer}.{name}".
std::string slot_tensor_name(const BlockLayout& l, int64_t layer, int slot);
// Splits "blocks.{i}.{rest}" into i and rest; false when NAME is not a block tensor.
bool split_block_name(const std::string& name, int64_t& layer, std::string& rest);
// The group (tap) of the linear named "blocks.{i}.{slot}"; throws when it is not a slot of L.
TapPoint slot_group(const BlockLayout& l, const std::string& canonical);

}  // namespace sq
