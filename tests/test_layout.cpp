// The block layout table (model/layout.h) and the family registry that carries it: every
// registered family's layout is consistent (roles once, every slot named and grouped, edges
// resolving), its tiny synthetic checkpoint loads with one Linear per slot under the slot's
// HF names, and the per-linear plan and the calibration groups come from the same table.
#include <gtest/gtest.h>

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

TEST(BlockLayout, EveryFamilyLayoutIsConsistent) {
  for (const ArchSpec* a : arch_registry()) {
    ASSERT_NE(a->layout, nullptr) << a->family;
    const BlockLayout& l = *a->layout;
    std::set<std::string> names, hf;
    std::set<int> roles, groups;
    for (const LinearSlot& s : l.slots) {
      EXPECT_TRUE(names.insert(s.name).second) << a->family << ": slot " << s.name << " twice";
      EXPECT_TRUE(hf.insert(s.hf).second) << a->family << ": HF name " << s.hf << " twice";
      EXPECT_TRUE(roles.insert(int(s.role)).second) << a->family << ": role of " << s.name << " twice";
      groups.insert(int(s.group));
      EXPECT_EQ(l.slots[size_t(l.index(s.role))].name, s.name);
      EXPECT_EQ(l.slots[size_t(l.find(s.name))].name, s.name);
    }
    // The dense forward pass computes with every role and taps every group.
    EXPECT_EQ(int(roles.size()), kRoles) << a->family;
    EXPECT_EQ(int(groups.size()), kTapPoints) << a->family;
    EXPECT_EQ(l.find("no.such.slot"), -1);
    for (const AbsorbEdge& e : l.edges) {
      EXPECT_TRUE(e.from == "attn_norm" || e.from == "mlp_norm" || l.find(e.from) >= 0) << a->family << ": " << e.from;
      for (const std::string& t : e.to) EXPECT_GE(l.find(t), 0) << a->family << ": edge " << e.from << " -> " << t;
    }
    ASSERT_NE(l.edge_from("attn_norm"), nullptr);
    ASSERT_NE(l.edge_from("mlp_norm"), nullptr);
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
    const BlockLayout& l = *a->layout;
    Recipe r;
    r.format = QFormat::parse("w4g32");
    const std::vector<LinearPlan> plan = plan_linears(r, m.config);
    ASSERT_EQ(plan.size(), m.blocks.size() * size_t(l.size())) << a->family;
    size_t k = 0;
    for (size_t i = 0; i < m.blocks.size(); ++i) {
      const Block& b = m.blocks[i];
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
        EXPECT_EQ(&b.linear(l.slots[size_t(j)].role), &lin);
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
