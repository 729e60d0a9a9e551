// The block layout table (model/layout.h) and the family registry that carries it: every
// registered family's layout is consistent (roles once, every slot named and grouped, edges
// resolving), its tiny synthetic checkpoint loads with one Linear per slot under the slot's
// HF names, and the per-linear plan and the calibration groups come from the same table.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "sliderquant/model/arch.h"
#include "sliderquant/model/layout.h"
#include "sliderquant/model/model.h"
#include "sliderquant/model/synthetic.h"
#include "sliderquant/pipeline/recipe.h"
#include "test_util.h"

namespace sq {
namespace {

using testing::fresh_path;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// Checks one layout: unique names and HF names, lookups that find each slot, all four taps,
// edges between existing slots. DENSE: each of the seven dense roles exactly once; a MoE
// layout: attention roles and the router once, gate/up/down once per expert (and once for
// the shared expert when it has one).
void check_layout(const BlockLayout& l, const std::string& what) {
  std::set<std::string> names, hf;
  std::set<int> groups;
  std::map<int, int> roles;
  for (const LinearSlot& s : l.slots) {
    EXPECT_TRUE(names.insert(s.name).second) << what << ": slot " << s.name << " twice";
    EXPECT_TRUE(hf.insert(s.hf).second) << what << ": HF name " << s.hf << " twice";
    ++roles[int(s.role)];
    groups.insert(int(s.group));
    if (s.expert >= 0) EXPECT_EQ(l.slots[size_t(l.expert_index(s.expert, s.role))].name, s.name);
    else if (s.shared) EXPECT_EQ(l.slots[size_t(l.shared_index(s.role))].name, s.name);
    else EXPECT_EQ(l.slots[size_t(l.index(s.role))].name, s.name);
    EXPECT_EQ(l.slots[size_t(l.find(s.name))].name, s.name);
  }
  for (Role r : {Role::Q, Role::K, Role::V, Role::O}) EXPECT_EQ(roles[int(r)], 1) << what;
  const int per_mlp_role = l.moe() ? l.experts + (l.shared_expert ? 1 : 0) : 1;
  for (Role r : {Role::Gate, Role::Up, Role::Down}) EXPECT_EQ(roles[int(r)], per_mlp_role) << what;
  EXPECT_EQ(roles[int(Role::Router)], l.moe() ? 1 : 0) << what;
  EXPECT_EQ(roles[int(Role::SharedGate)], l.shared_expert ? 1 : 0) << what;
  EXPECT_EQ(int(groups.size()), kTapPoints) << what;
  EXPECT_EQ(l.find("no.such.slot"), -1);
  for (const AbsorbEdge& e : l.edges) {
    EXPECT_TRUE(e.from == "attn_norm" || e.from == "mlp_norm" || l.find(e.from) >= 0) << what << ": " << e.from;
    for (const std::string& t : e.to) EXPECT_GE(l.find(t), 0) << what << ": edge " << e.from << " -> " << t;
  }
  ASSERT_NE(l.edge_from("attn_norm"), nullptr);
  ASSERT_NE(l.edge_from("mlp_norm"), nullptr);
  // Every slot that reads the MLP norm's output is on its edge (the rotation and norm fusion rely on it).
  size_t mlp_in = 0;
  for (const LinearSlot& s : l.slots) mlp_in += s.group == TapPoint::GateUpIn;
  EXPECT_EQ(l.edge_from("mlp_norm")->to.size(), mlp_in) << what;
}

TEST(BlockLayout, EveryFamilyLayoutIsConsistent) {
  for (const ArchSpec* a : arch_registry()) {
    ASSERT_NE(a->layout, nullptr) << a->family;
    check_layout(*a->layout, a->family);
    if (a->moe) check_layout(moe_layout(*a->moe, 5), a->family + " (MoE, 5 experts)");
  }
}

TEST(BlockLayout, HfNamesComeFromTheTable) {
  const BlockLayout& l = dense_layout();
  for (int j = 0; j < l.size(); ++j) {
    const std::string n = slot_tensor_name(l, 3, j);
    EXPECT_EQ(hf_tensor_name(n), "model.layers.3." + l.slots[size_t(j)].hf + ".weight");
    EXPECT_EQ(hf_tensor_name(n + ".bias"), "model.layers.3." + l.slots[size_t(j)].hf + ".bias");
    EXPECT_EQ(slot_group(l, n), l.slots[size_t(j)].group);
  }
  int64_t layer = -1;
  std::string rest;
  EXPECT_TRUE(split_block_name("blocks.12.attn_norm", layer, rest));
  EXPECT_EQ(layer, 12);
  EXPECT_EQ(rest, "attn_norm");
  EXPECT_FALSE(split_block_name("blocks.x.attn_norm", layer, rest));
  EXPECT_FALSE(split_block_name("embed", layer, rest));
  EXPECT_TRUE(contains(testing::error_of([&] { slot_group(l, "blocks.0.attn_norm"); }), "not a linear"));
}

// Each family's tiny synthetic checkpoint: one Linear per slot with the slot's shape, the
// plan lists the same linears in the same order, and the groups partition them.
TEST(BlockLayout, EveryFamilyLoadsOneLinearPerSlot) {
  for (const ArchSpec* a : arch_registry()) {
    const std::string d = fresh_path("layout_" + a->family, true);
    ModelConfig c = synthetic_config(a->family, "tiny");
    write_synthetic_model(d, c, {});
    Model m = load_model(d);
    Recipe r;
    r.format = QFormat::parse("w4g32");
    const std::vector<LinearPlan> plan = plan_linears(r, m.config);
    size_t slots = 0;
    for (size_t i = 0; i < m.blocks.size(); ++i) slots += size_t(block_layout(*a, m.config, int64_t(i)).size());
    ASSERT_EQ(plan.size(), slots) << a->family;
    size_t k = 0;
    for (size_t i = 0; i < m.blocks.size(); ++i) {
      const Block& b = m.blocks[i];
      const BlockLayout& l = block_layout(*a, m.config, int64_t(i));
      ASSERT_EQ(b.layout, &l);
      ASSERT_EQ(int(b.slots.size()), l.size());
      for (int j = 0; j < l.size(); ++j, ++k) {
        const Linear& lin = b.slots[size_t(j)];
        EXPECT_EQ(lin.name, slot_tensor_name(l, int64_t(i), j));
        EXPECT_EQ(plan[k].name, lin.name);
        EXPECT_EQ(lin.weight.size(0), l.out_features(j, m.config)) << lin.name;
        EXPECT_EQ(lin.weight.size(1), l.in_features(j, m.config)) << lin.name;
        EXPECT_EQ(plan[k].out, lin.weight.size(0));
        EXPECT_EQ(plan[k].in, lin.weight.size(1));
        EXPECT_EQ(lin.bias.defined(), has_bias(l.slots[size_t(j)].bias, m.config)) << lin.name;
        const LinearSlot& sl = l.slots[size_t(j)];
        const int at = sl.expert >= 0 ? l.expert_index(sl.expert, sl.role) : sl.shared ? l.shared_index(sl.role) : l.index(sl.role);
        EXPECT_EQ(&b.slots[size_t(at)], &lin);
      }
      size_t grouped = 0;
      for (int g = 0; g < kTapPoints; ++g) grouped += b.group(TapPoint(g)).size();
      EXPECT_EQ(grouped, b.slots.size());
    }
  }
}

TEST(BlockLayout, ColumnProducerIsTheOneToOneEdge) {
  const BlockLayout& l = dense_layout();
  EXPECT_EQ(l.column_producer(l.index(Role::Down)), l.index(Role::Up));
  EXPECT_EQ(l.column_producer(l.index(Role::O)), -1);  // v -> o is per KV head, not one to one
  EXPECT_EQ(l.column_producer(l.index(Role::Q)), -1);  // fed by a norm
}

TEST(BlockLayout, ABlockWithoutItsLayoutSaysSo) {
  Block b;
  EXPECT_TRUE(contains(testing::error_of([&] { b.linear(Role::Q); }), "without its layout"));
}

}  // namespace
}  // namespace sq
