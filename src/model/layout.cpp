// model/layout: lookups over a BlockLayout (see the header).
#include "sliderquant/model/layout.h"

#include "sliderquant/core/error.h"
#include "sliderquant/model/arch.h"

namespace sq {

const char* tap_name(TapPoint p) {
  static const char* names[kTapPoints] = {"q/k/v input", "o input", "gate/up input", "down input"};
  return names[int(p)];
}

std::string expert_path(std::string pattern, const std::string& e) {
  const size_t at = pattern.find("{e}");
  if (at != std::string::npos) pattern.replace(at, 3, e);
  return pattern;
}

int64_t dim_size(Dim d, const ModelConfig& c) {
  switch (d) {
    case Dim::Hidden: return c.hidden_size;
    case Dim::QHeads: return c.q_dim();
    case Dim::KvHeads: return c.kv_dim();
    case Dim::Inter: return c.intermediate_size;
    case Dim::Experts: return c.num_experts;
    case Dim::MoeInter: return c.moe_intermediate_size;
    case Dim::SharedInter: return c.shared_expert_intermediate_size;
    case Dim::One: return 1;
  }
  SQ_FAIL("unknown layout dimension " << int(d));
}

bool has_bias(BiasFlag b, const ModelConfig& c) {
  switch (b) {
    case BiasFlag::None: return false;
    case BiasFlag::Qkv: return c.qkv_bias;
    case BiasFlag::O: return c.o_bias;
    case BiasFlag::Mlp: return c.mlp_bias;
  }
  return false;
}

int BlockLayout::index(Role r) const {
  for (size_t i = 0; i < slots.size(); ++i)
    if (slots[i].role == r && slots[i].expert < 0 && !slots[i].shared) return int(i);
  SQ_FAIL("this block layout has no slot for role " << int(r) << (moe() ? " outside its experts" : ""));
}

int BlockLayout::expert_index(int expert, Role r) const {
  for (size_t i = 0; i < slots.size(); ++i)
    if (slots[i].role == r && slots[i].expert == expert) return int(i);
  SQ_FAIL("this block layout has no slot for role " << int(r) << " of expert " << expert);
}

int BlockLayout::shared_index(Role r) const {
  for (size_t i = 0; i < slots.size(); ++i)
    if (slots[i].role == r && slots[i].shared) return int(i);
  SQ_FAIL("this block layout has no shared-expert slot for role " << int(r));
}

std::vector<int> BlockLayout::group(TapPoint g, int expert) const {
  std::vector<int> r;
  for (size_t i = 0; i < slots.size(); ++i)
    if (slots[i].group == g && slots[i].expert == expert) r.push_back(int(i));
  return r;
}

int BlockLayout::find(const std::string& name) const {
  for (size_t i = 0; i < slots.size(); ++i)
    if (slots[i].name == name) return int(i);
  return -1;
}

std::vector<int> BlockLayout::group(TapPoint g) const {
  std::vector<int> r;
  for (size_t i = 0; i < slots.size(); ++i)
    if (slots[i].group == g) r.push_back(int(i));
  return r;
}

const AbsorbEdge* BlockLayout::edge_from(const std::string& from) const {
  for (const AbsorbEdge& e : edges)
    if (e.from == from) return &e;
  return nullptr;
}

int BlockLayout::column_producer(int slot) const {
  for (const AbsorbEdge& e : edges) {
    const int from = find(e.from);
    if (from < 0 || slots[size_t(from)].out != slots[size_t(slot)].in) continue;
    for (const std::string& t : e.to)
      if (t == slots[size_t(slot)].name) return from;
  }
  return -1;
}

std::string slot_tensor_name(const BlockLayout& l, int64_t layer, int slot) {
  return "blocks." + std::to_string(layer) + "." + l.slots[size_t(slot)].name;
}

bool split_block_name(const std::string& name, int64_t& layer, std::string& rest) {
  if (name.rfind("blocks.", 0) != 0) return false;
  const size_t dot = name.find('.', 7);
  if (dot == std::string::npos || dot == 7) return false;
  for (size_t i = 7; i < dot; ++i)
    if (name[i] < '0' || name[i] > '9') return false;
  layer = std::stoll(name.substr(7, dot - 7));
  rest = name.substr(dot + 1);
  return true;
}

TapPoint slot_group(const BlockLayout& l, const std::string& canonical) {
  int64_t layer = 0;
  std::string rest;
  const int j = split_block_name(canonical, layer, rest) ? l.find(rest) : -1;
  SQ_CHECK(j >= 0, "'" << canonical << "' is not a linear of the block layout");
  return l.slots[size_t(j)].group;
}

}  // namespace sq
