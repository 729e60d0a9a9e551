// Pass option tables (one declaration per option: check, defaults, resolved form, `recipe
// explain`) and the block walker the passes' block loops go through.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>

#include "sliderquant/core/error.h"
#include "sliderquant/model/forward.h"
#include "sliderquant/model/model.h"
#include "sliderquant/pipeline/block_walker.h"
#include "sliderquant/pipeline/pass.h"
#include "sliderquant/pipeline/recipe.h"
#include "sliderquant/pipeline/session.h"
#include "test_util.h"

using namespace sq;
using nlohmann::json;
using sq::testing::error_of;

namespace {
bool contains(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }
// The options a pass needs at least (the ratio search needs a bit budget).
json minimal(const PassInfo& p) { return p.name == "ratio" ? json{{"target_bits", 2.5}} : json::object(); }
}  // namespace

TEST(PassOptions, EveryTableIsConsistentAndResolvesIdempotently) {
  for (const PassInfo* p : pass_registry()) {
    ASSERT_FALSE(p->options.empty()) << p->name;
    std::set<std::string> names;
    for (const OptionSpec& s : p->options) {
      EXPECT_TRUE(names.insert(s.name).second) << p->name << "." << s.name << " twice";
      EXPECT_FALSE(s.help.empty()) << p->name << "." << s.name;
      EXPECT_TRUE(s.convert && s.store) << p->name << "." << s.name;
      if (s.default_value.is_null()) continue;
      EXPECT_EQ(s.convert(s.default_value), s.default_value) << p->name << "." << s.name;
      if (s.check) {
        EXPECT_EQ(s.check(s.default_value), "") << p->name << "." << s.name << " default out of range";
      }
    }
    const json r = resolve_options(*p, minimal(*p), "t");
    EXPECT_EQ(resolve_options(*p, r, "t"), r) << p->name;
    for (auto it = r.begin(); it != r.end(); ++it) EXPECT_TRUE(names.count(it.key())) << p->name << " " << it.key();
  }
}

TEST(PassOptions, ResolvedFormsKeepTheirKeysAndValues) {
  EXPECT_EQ(resolve_options(find_pass("gptq"), json::object(), "t").dump(),
            R"({"block_size":128,"calibrate_all_experts":false,"damp":0.01,"group_params":"current",)"
            R"("min_expert_tokens":16,"mse":false,"order":"natural","starved_fallback":"mean","static_groups":false})");
  EXPECT_EQ(resolve_options(find_pass("gptq"), {{"damp", 0}, {"block_size", 64.0}}, "t").dump(),
            R"({"block_size":64,"calibrate_all_experts":false,"damp":0.0,"group_params":"current",)"
            R"("min_expert_tokens":16,"mse":false,"order":"natural","starved_fallback":"mean","static_groups":false})");
  EXPECT_EQ(resolve_options(find_pass("rtn"), json::object(), "t").dump(), R"({"mse":false})");
  // sliderquant: attn_abits follows abits unless given.
  json s = resolve_options(find_pass("sliderquant"), {{"abits", 4}}, "t");
  EXPECT_EQ(s["attn_abits"], 4);
  EXPECT_EQ(resolve_options(find_pass("sliderquant"), {{"abits", 4}, {"attn_abits", 8}}, "t")["attn_abits"], 8);
  EXPECT_EQ(s["quant_rates"].dump(), "[0.5,1.0]");
  // ratio: the hybrid options only for the hybrid quantizer; fixed_ratio or target_bits.
  json r = resolve_options(find_pass("ratio"), {{"fixed_ratio", 0.1}, {"quantizer", "rtn"}}, "t");
  EXPECT_FALSE(r.contains("target_bits"));
  EXPECT_FALSE(r.contains("epochs"));
  EXPECT_EQ(r["fixed_ratio"], 0.1);
  r = resolve_options(find_pass("ratio"), {{"target_bits", 2}}, "t");
  EXPECT_FALSE(r.contains("fixed_ratio"));
  EXPECT_EQ(r["target_bits"].dump(), "2.0");
  EXPECT_EQ(r["epochs"], 20);
  EXPECT_EQ(r["seed"], 0);
}

TEST(PassOptions, ErrorsNameThePassTheKeyAndTheRange) {
  const PassInfo& g = find_pass("gptq");
  std::string e = error_of([&] { resolve_options(g, {{"dampp", 1}}, "r.json pipeline[0].options"); });
  EXPECT_TRUE(contains(e, "r.json pipeline[0].options: unknown key 'dampp'")) << e;
  EXPECT_TRUE(contains(e, "gptq")) << e;
  EXPECT_TRUE(contains(e, "(known: damp, block_size, order, static_groups, group_params, mse, min_expert_tokens, "
                                 "calibrate_all_experts, starved_fallback)")) << e;
  e = error_of([&] { resolve_options(g, {{"mse", 1}}, "w"); });
  EXPECT_EQ(e, "w: key 'mse' must be of type bool (got 1)");
  e = error_of([&] { resolve_options(g, {{"block_size", true}}, "w"); });  // read as a 64-bit int: no bools
  EXPECT_EQ(e, "w: key 'block_size' must be of type int (got true)");
  e = error_of([&] { resolve_options(g, {{"damp", 1}}, "w"); });
  EXPECT_EQ(e, "w: damp must be in [0, 1)");
  e = error_of([&] { resolve_options(g, {{"order", "x"}}, "w"); });
  EXPECT_EQ(e, "w: order 'x' unknown (natural, act_order, group_preserving)");
  e = error_of([&] { resolve_options(find_pass("adaptive"), {{"mode", "x"}}, "w"); });
  EXPECT_EQ(e, R"(w: mode must be "adaptive", "rotation" or "affine")");
  e = error_of([&] { resolve_options(find_pass("sliderquant"), {{"let_pairs", {"zz"}}}, "w"); });
  EXPECT_EQ(e, "w: let_pairs: unknown pair 'zz' (known: qkv, gate_up, v_o, up_down, q_k)");
  e = error_of([&] { resolve_options(find_pass("ratio"), json::object(), "w"); });
  EXPECT_TRUE(contains(e, "target_bits")) << e;
}

TEST(PassOptions, TableAsText) {
  const std::string t = format_option_table(find_pass("gptq"));
  for (const char* w : {"option", "default", "damp", "number", "0.01", "[0, 1)", "Hessian dampening", "order",
                        "natural | act_order | group_preserving"})
    EXPECT_TRUE(contains(t, w)) << w << "\n" << t;
  const json r = resolve_options(find_pass("sliderquant"), {{"abits", 4}}, "t");
  const std::string s = format_option_table(find_pass("sliderquant"), &r);
  EXPECT_TRUE(contains(s, "value")) << s;
  EXPECT_TRUE(contains(s, "= abits")) << s;
}

TEST(RecipeCli, ExplainPrintsEachPassOptionTable) {
  sq::testing::CliResult r =
      sq::testing::run_cli("recipe explain stories-gptq-w4-pc --model " + sq::testing::kStoriesModel);
  ASSERT_EQ(r.code, 0) << r.out;
  EXPECT_TRUE(contains(r.out, "pass gptq:")) << r.out;
  EXPECT_TRUE(contains(r.out, "Hessian dampening")) << r.out;
  EXPECT_TRUE(contains(r.out, "blocks.0.attn.q")) << r.out;  // the plan as before
}

TEST(BlockWalker, AdvancesLikeTheRunnerOnDeviceAndHostStreams) {
  c10::InferenceMode guard;
  Model m = load_model(sq::testing::kStoriesModel);
  Recipe rc = parse_recipe(R"({"format": "w4", "pipeline": [{"pass": "rtn"}]})", "t");
  Session s(m, rc);
  Runner runner(m, s.runner);
  at::Tensor ids = at::arange(0, 2 * 16, at::kLong).view({2, 16}) % m.config.vocab_size;
  at::Tensor want = runner.embed(ids);
  for (int64_t b = 0; b < int64_t(m.blocks.size()); ++b) want = runner.block(b, want);
  // Device stream (one batch), the walk's own weights.
  std::vector<int64_t> seen;
  BlockStream got = walk_blocks(s, {runner.embed(ids)}, [&](BlockStep& st) { seen.push_back(st.index); });
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(at::equal(got[0], want));
  EXPECT_EQ(seen.size(), m.blocks.size());
  // Host stream of two batches in float64: stored back in the input's dtype.
  at::Tensor e = runner.embed(ids).to(at::kDouble);
  got = walk_blocks(s, {e.narrow(0, 0, 1), e.narrow(0, 1, 1)}, [](BlockStep&) {});
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].scalar_type(), at::kDouble);
  // A visitor's own output replaces the advance; forward() runs the block as it is now.
  got = walk_blocks(s, {runner.embed(ids)}, [&](BlockStep& st) {
    at::Tensor y = st.forward(st.input[0]);
    st.set_output({y * 0});
  });
  EXPECT_EQ(got[0].abs().sum().item<double>(), 0.0);
}
