// arch/moe_layout: the block layout of a mixture-of-experts layer, built from a family's module
// spelling (MoeNames) and the expert count: attention as in the dense layout, then the router
// (unquantized), every routed expert's gate/up/down (each reading only its own tokens) and the
// shared expert when the family has one. Layouts are kept for the program's life, so blocks can
// point at them.
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "sliderquant/core/error.h"
#include "sliderquant/model/layout.h"

namespace sq {

namespace {

BlockLayout build(const MoeNames& n, int experts) {
  const BlockLayout& dense = dense_layout();
  BlockLayout l;
  l.ffn = FfnKind::Moe;
  l.experts = experts;
  l.shared_expert = !n.shared_gate.empty();
  for (const LinearSlot& s : dense.slots)
    if (s.group == TapPoint::QkvIn || s.group == TapPoint::OIn) l.slots.push_back(s);
  LinearSlot router{"mlp.router", n.router, Role::Router, Dim::Experts, Dim::Hidden, TapPoint::GateUpIn};
  router.quantize = false;
  l.slots.push_back(router);
  std::vector<std::string> fed_by_norm = {"mlp.router"};
  if (l.shared_expert) {
    LinearSlot g{"mlp.shared.gate", n.shared_gate, Role::Gate, Dim::SharedInter, Dim::Hidden, TapPoint::GateUpIn};
    LinearSlot u{"mlp.shared.up", n.shared_up, Role::Up, Dim::SharedInter, Dim::Hidden, TapPoint::GateUpIn};
    LinearSlot d{"mlp.shared.down", n.shared_down, Role::Down, Dim::Hidden, Dim::SharedInter, TapPoint::DownIn};
    LinearSlot sg{"mlp.shared_gate", n.shared_expert_gate, Role::SharedGate, Dim::One, Dim::Hidden,
                  TapPoint::GateUpIn};
    sg.quantize = false;
    for (LinearSlot* s : {&g, &u, &d}) s->shared = true;
    l.slots.push_back(sg);
    l.slots.push_back(g);
    l.slots.push_back(u);
    l.slots.push_back(d);
    fed_by_norm.insert(fed_by_norm.end(), {"mlp.shared_gate", "mlp.shared.gate", "mlp.shared.up"});
    l.edges.push_back({"mlp.shared.up", {"mlp.shared.down"}});
  }
  for (int e = 0; e < experts; ++e) {
    const std::string p = "mlp.experts." + std::to_string(e) + ".";
    LinearSlot g{p + "gate", expert_path(n.expert_gate, std::to_string(e)), Role::Gate, Dim::MoeInter, Dim::Hidden, TapPoint::GateUpIn};
    LinearSlot u{p + "up", expert_path(n.expert_up, std::to_string(e)), Role::Up, Dim::MoeInter, Dim::Hidden, TapPoint::GateUpIn};
    LinearSlot d{p + "down", expert_path(n.expert_down, std::to_string(e)), Role::Down, Dim::Hidden, Dim::MoeInter, TapPoint::DownIn};
    for (LinearSlot* s : {&g, &u, &d}) s->expert = e;
    l.slots.push_back(g);
    l.slots.push_back(u);
    l.slots.push_back(d);
    fed_by_norm.push_back(p + "gate");
    fed_by_norm.push_back(p + "up");
    l.edges.push_back({p + "up", {p + "down"}});
  }
  l.edges.insert(l.edges.begin(), {{"attn_norm", {"attn.q", "attn.k", "attn.v"}},
                                   {"mlp_norm", fed_by_norm},
                                   {"attn.v", {"attn.o"}}});
  return l;
}

}  // namespace

const BlockLayout& moe_layout(const MoeNames& n, int experts) {
  SQ_CHECK(experts > 0 && experts <= 4096, "a MoE layer needs 1 to 4096 experts (got " << experts << ")");
  static std::mutex mu;
  static std::map<std::tuple<std::string, std::string, int>, std::unique_ptr<BlockLayout>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[{n.router + "|" + n.expert_gate + "|" + n.expert_up + "|" + n.expert_down,
                      n.shared_gate + "|" + n.shared_up + "|" + n.shared_down + "|" + n.shared_expert_gate, experts}];
  if (!slot) slot = std::make_unique<BlockLayout>(build(n, experts));
  return *slot;
}

}  // namespace sq
