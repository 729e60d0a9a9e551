// Tests of the ratio pass (src/passes/ratio/, METHODS.md section 3) end to end through
// the CLI on stories260K: mixed-precision linears written and read back exactly, the
// work-directory artifacts (channel scores reused, the chosen ratios), an infeasible budget
// stating the feasible range, and the perplexity ladder against GPTQ and SliderQuant at 2
// bits and against a fixed ratio at the same budget.
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "sliderquant/core/util.h"
#include "sliderquant/data/dataset.h"
#include "sliderquant/pipeline/channel_scores.h"
#include "sliderquant/formats/model_format.h"
#include "sliderquant/formats/native.h"
#include "sliderquant/pipeline/recipe.h"
#include "sliderquant/pipeline/session.h"
#include "sliderquant/quant/adaround.h"
#include "sliderquant/quant/mixed.h"
#include "sliderquant/quant/rtn.h"
#include "test_util.h"

using namespace sq;

namespace {

const std::string kModel = sq::testing::kStoriesModel;
const std::string kConfigs = std::string(SQ_SOURCE_DIR) + "/configs";

bool contains(const std::string& s, const std::string& sub) { return s.find(sub) != std::string::npos; }

struct Dir {
  std::string dir;
  explicit Dir(const std::string& tag) : dir(sq::testing::fresh_path(tag, true)) {
    write_file_atomic(dir + "/calib.txt", sq::testing::sampled_stories(1, 16, 200));
    write_file_atomic(dir + "/eval.txt", sq::testing::sampled_stories(2, 16, 200));
  }
  // A test recipe from configs/test with its pass options patched.
  std::string recipe(const std::string& base, const nlohmann::json& patch, const std::string& tag) const {
    nlohmann::json r = nlohmann::json::parse(read_file(kConfigs + "/test/" + base + ".json"));
    r["pipeline"][0]["options"].merge_patch(patch);
    const std::string p = dir + "/" + tag + ".recipe.json";
    write_file_atomic(p, r.dump());
    return p;
  }
  sq::testing::CliResult quantize(const std::string& recipe, const std::string& tag, const std::string& extra = " -q") {
    return sq::testing::run_cli("quantize " + kModel + " --recipe " + recipe + " --out " + dir + "/" + tag +
                                " --calib " + dir + "/calib.txt --eval " + dir + "/eval.txt --json " + dir + "/" + tag +
                                ".json" + extra);
  }
  nlohmann::json report(const std::string& tag) const { return nlohmann::json::parse(read_file(dir + "/" + tag + ".json")); }
  static double ppl(const nlohmann::json& rep) { return rep["perplexity"][0]["ppl"].get<double>(); }
  double reload_ppl(const std::string& tag) const {
    sq::testing::CliResult e = sq::testing::run_cli("eval " + dir + "/" + tag + " --ppl " + dir +
                                                    "/eval.txt --seqlen 512 -q --json " + dir + "/" + tag + ".re.json");
    EXPECT_EQ(e.code, 0) << e.out;
    return ppl(nlohmann::json::parse(read_file(dir + "/" + tag + ".re.json")));
  }
};

}  // namespace

TEST(AdaRound, InitialStateHardensToNearestRoundingAndTheRegulariserPushesToBinary) {
  for (const char* fs : {"w2", "w3g16", "w4"}) {
    const QFormat f = QFormat::parse(fs);
    at::Tensor W = sq::testing::seeded_randn({24, 64}, 7);
    AdaRoundQuantizer a(W, f);
    const QTensor want = rtn_quantize(W, f);
    const QTensor got = a.quantize();
    EXPECT_TRUE(got.codes.equal(want.codes)) << fs;
    EXPECT_TRUE(got.scales.equal(want.scales)) << fs;
    EXPECT_TRUE(got.zeros.equal(want.zeros)) << fs;
    EXPECT_TRUE(at::allclose(a.fake_quant(true).detach(), want.dequantize(), 0, 1e-6)) << fs;
    // Soft at the start: W clamped to the grid's range (h = the fractional part).
    const int64_t gw = f.group_width(64);
    const at::Tensor s = want.scales.repeat_interleave(gw, 1), z = want.zeros.repeat_interleave(gw, 1);
    const at::Tensor clamped = s * ((W / s + z).clamp(0, double(f.maxq())) - z);
    EXPECT_LT((a.fake_quant(false).detach() - clamped).abs().max().item<double>(), 1e-5) << fs;
  }
  // Gradient steps on the regulariser alone decide every weight.
  AdaRoundQuantizer a(sq::testing::seeded_randn({8, 32}, 3), QFormat::parse("w2"));
  EXPECT_GT(a.undecided(), 0.5);
  for (int i = 0; i < 400; ++i) {
    at::Tensor r = a.regularizer(2.0);
    r.backward();
    at::NoGradGuard ng;
    a.V().sub_(a.V().grad() * 200.0);
    a.V().mutable_grad() = at::Tensor();
  }
  EXPECT_LT(a.undecided(), 0.05);
  EXPECT_TRUE(contains(sq::testing::error_of([] { AdaRoundQuantizer(at::ones({2, 4}), QFormat::parse("w2s")); }),
                       "asymmetric"));
}

TEST(RatioRecipe, BundledRecipesParseAndResolve) {
  for (const char* n : {"ratio-w2g64", "ratio-w2g128", "ratio-w3g64", "ratio-w3g128", "test/stories-ratio-w2",
                        "test/stories-ratio-w2-fixed", "test/stories-ratio-w2-gptq"}) {
    Recipe r = load_recipe(kConfigs + "/" + n + ".json");
    Recipe again = parse_recipe(r.resolved_json(), "resolved");
    EXPECT_EQ(again.sha256(), r.sha256()) << n;
  }
  auto bad = [](const std::string& opts) {
    return sq::testing::error_of([&] {
      parse_recipe(R"({"name": "x", "format": "w2", "calibration": {"dataset": "c4-2k", "samples": 2, "seqlen": 8},
                       "pipeline": [{"pass": "ratio", "options": )" + opts + "}]}",
                   "bad.json");
    });
  };
  EXPECT_TRUE(contains(bad("{}"), "target_bits")) << bad("{}");
  EXPECT_TRUE(contains(bad(R"({"target_bits": 2.5, "quantizer": "adaround"})"), "hybrid"));
  EXPECT_TRUE(contains(bad(R"({"target_bits": 2.5, "probe": "kl"})"), "probe"));
  EXPECT_TRUE(contains(bad(R"({"fixed_ratio": 1.5})"), "fixed_ratio"));
  EXPECT_TRUE(contains(bad(R"({"target_bits": 2.5, "probe_quantizer": "hybrid"})"), "probe_quantizer"));
  EXPECT_TRUE(contains(bad(R"({"target_bits": 2.5, "probe_base_ratio": 0.07})"), "probe_base_ratio"));
  EXPECT_TRUE(contains(bad(R"({"target_bits": 2.5, "probe_base_ratio": "0.1"})"), "probe_base_ratio"));
  EXPECT_TRUE(contains(bad(R"({"target_bits": 2.5, "probe_scale": "kl"})"), "probe_scale"));
  EXPECT_TRUE(contains(bad(R"({"target_bits": 2.5, "probe": "lm", "probe_scale": "lm"})"), "probe_scale"));
}

TEST(RatioCli, MixedLinearsWriteReloadExactlyAndArtifactsAreReused) {
  Dir d("ratio_rt");
  const std::string recipe =
      d.recipe("stories-ratio-w2-fixed", {{"score", "hessian"}, {"quantizer", "rtn"}}, "rtn_fixed");
  sq::testing::CliResult q = d.quantize(recipe, "rt", " -q --work " + d.dir + "/work --keep-work");
  ASSERT_EQ(q.code, 0) << q.out;
  const nlohmann::json rep = d.report("rt");
  // Every linear is mixed: w3 on 10% of its input channels (rounded up), w2 on the rest.
  auto qc = nlohmann::json::parse(read_file(d.dir + "/rt/quantization_config.json"));
  ASSERT_EQ(qc["tensors"].size(), 35u);
  const nlohmann::json& e = qc["tensors"]["model.layers.0.self_attn.q_proj"];
  EXPECT_EQ(e["hi"], "w3");
  EXPECT_EQ(e["lo"], "w2");
  EXPECT_EQ(e["k"], 7);  // ceil(0.1 * 64)
  EXPECT_EQ(qc["tensors"]["model.layers.4.mlp.down_proj"]["k"], 18);  // ceil(0.1 * 172)
  // Bits per weight counted honestly (both parts' scales and zeros, 32 bits per channel index).
  EXPECT_NEAR(e["bits_per_weight"].get<double>(), mixed_bits_per_weight(QFormat::parse("w3"), QFormat::parse("w2"), 64, 64, 7),
              1e-12);
  const double bpw = qc["bits_per_weight_quantized_linears"].get<double>();
  EXPECT_NEAR(bpw, rep["metrics"]["ratio bits per weight"][0].get<double>(), 1e-9);
  EXPECT_NEAR(bpw, 2.6406, 1e-3);  // by hand: 119649 bits over 45312 weights per block
  // `eval` reads the packed model back to the perplexity of the in-memory quantized one.
  EXPECT_NEAR(d.reload_ppl("rt"), Dir::ppl(rep), 1e-6 * Dir::ppl(rep));
  Model m = load_any_model(d.dir + "/rt");
  auto* mw = dynamic_cast<const MixedQTensorWeight*>(m.blocks[0].linear(Role::Q).override_.get());
  ASSERT_NE(mw, nullptr);
  EXPECT_EQ(mw->mixed().hi_cols.size(0), 7);
  EXPECT_EQ(mw->describe(), "w3+w2");
  // Work-directory artifacts: the scores and the chosen ratios; a second run reuses the scores.
  EXPECT_TRUE(path_exists(d.dir + "/work/channel_scores.safetensors"));
  auto choice = nlohmann::json::parse(read_file(d.dir + "/work/ratio_choice.json"));
  EXPECT_EQ(choice["layers"].size(), 35u);
  EXPECT_NEAR(choice["bits_per_weight"].get<double>(), bpw, 1e-9);
  const std::string first = sha256_file(d.dir + "/rt/model.safetensors");
  sq::testing::CliResult again = d.quantize(recipe, "rt", " --force --work " + d.dir + "/work --keep-work");
  ASSERT_EQ(again.code, 0) << again.out;
  EXPECT_TRUE(contains(again.out, "reusing hessian channel scores")) << again.out;
  EXPECT_EQ(sha256_file(d.dir + "/rt/model.safetensors"), first);
  // `recipe explain` on the written model shows each linear's ratio and bits.
  sq::testing::CliResult ex = sq::testing::run_cli("recipe explain " + recipe + " --model " + d.dir + "/rt");
  ASSERT_EQ(ex.code, 0) << ex.out;
  EXPECT_TRUE(contains(ex.out, "w3+w2")) << ex.out;
  EXPECT_TRUE(contains(ex.out, "7/64")) << ex.out;
}

TEST(RatioCli, InfeasibleBudgetsStateTheFeasibleRange) {
  Dir d("ratio_bad");
  const nlohmann::json fast = {{"score", "hessian"}, {"probe", "block"}, {"probe_samples", 2}, {"quantizer", "rtn"}};
  nlohmann::json low = fast;
  low["target_bits"] = 2.3;
  sq::testing::CliResult q = d.quantize(d.recipe("stories-ratio-w2", low, "low"), "low");
  EXPECT_NE(q.code, 0);
  EXPECT_TRUE(contains(q.out, "feasible budgets are")) << q.out;
  EXPECT_FALSE(path_exists(d.dir + "/low"));
  nlohmann::json tight = fast;
  tight["probe_budget"] = 100;  // 35 linears x 5 candidates need 175
  q = d.quantize(d.recipe("stories-ratio-w2", tight, "tight"), "tight");
  EXPECT_NE(q.code, 0);
  EXPECT_TRUE(contains(q.out, "175 single-layer probe forwards (layers x candidates) and 5 block-scale forwards"))
      << q.out;
  // The block probes scaled to LM loss units: one more forward per block, counted.
  nlohmann::json scaled = fast;
  scaled["probe_budget"] = 175 + 5;
  q = d.quantize(d.recipe("stories-ratio-w2", scaled, "scaled"), "scaled", "");
  ASSERT_EQ(q.code, 0) << q.out;
  EXPECT_TRUE(contains(q.out, "block 4 probe scale")) << q.out;
  EXPECT_TRUE(contains(q.out, "left 5 block(s) without pair probes")) << q.out;
  EXPECT_EQ(d.report("scaled")["metrics"]["ratio probe forwards"][0].get<double>(), 175 + 5);
  // A budget covering the single probes but not every pair leaves some blocks diagonal.
  nlohmann::json some = fast;  // with the LM-loss probe on one window
  some["probe_budget"] = 175 + 525;
  some["probe"] = "lm";
  some["probe_scale"] = "none";
  some["probe_samples"] = 1;
  q = d.quantize(d.recipe("stories-ratio-w2", some, "some"), "some", "");
  ASSERT_EQ(q.code, 0) << q.out;
  EXPECT_TRUE(contains(q.out, "left 4 block(s) without pair probes")) << q.out;
  EXPECT_EQ(d.report("some")["metrics"]["ratio probe forwards"][0].get<double>(), 175 + 525);
}

// The stories260K W2 per-channel ladder, one calibration for every rung: RTN, GPTQ,
// SliderQuant (which must beat both, with every trained window stage ending below its first
// epoch's loss), a fixed high-impact ratio, and the searched ratios (which must beat them all).
// SliderQuant's end-to-end W2 check lives here so that its 45-second run serves both.
TEST(RatioCli, W2LadderBeatsGptqSliderquantAndAFixedRatio) {
  Dir d("ratio_ladder");
  auto run = [&](const std::string& recipe, const std::string& tag) {
    sq::testing::CliResult q = d.quantize(recipe, tag);
    EXPECT_EQ(q.code, 0) << recipe << "\n" << q.out;
    return d.report(tag);
  };
  const double rtn = Dir::ppl(run("stories-rtn-w2-pc", "rtn"));
  const double gptq = Dir::ppl(run("stories-gptq-w2-pc", "gptq"));
  const nlohmann::json slider_rep = run("stories-sliderquant-w2", "slider");
  const double slider = Dir::ppl(slider_rep);
  std::printf("stories260K w2 per-channel on its own samples: rtn %.3f, gptq %.3f, sliderquant %.3f\n", rtn, gptq,
              slider);
  EXPECT_LT(slider, gptq);
  EXPECT_LT(slider, rtn);
  EXPECT_EQ(slider_rep["calibration"]["sha256"], d.report("gptq")["calibration"]["sha256"]);
  {  // Every trained window stage of SliderQuant ends with a lower loss than its first epoch.
    auto first = slider_rep["metrics"]["sliderquant window first-epoch loss"].get<std::vector<double>>();
    auto last = slider_rep["metrics"]["sliderquant window last-epoch loss"].get<std::vector<double>>();
    ASSERT_EQ(first.size(), 16u);  // 8 windows x 2 stages
    int lower = 0;
    for (size_t i = 0; i < first.size(); ++i) lower += last[i] < first[i];
    EXPECT_GE(lower, 15) << "windows whose loss decreased: " << lower << "/16";
  }
  const nlohmann::json fixed_rep = run("stories-ratio-w2-fixed", "fixed");
  const double fixed = Dir::ppl(fixed_rep);
  const double fixed_bits = fixed_rep["metrics"]["ratio bits per weight"][0].get<double>();
  // The search at the fixed ratio's budget, with hybrid rounding (the method) and with mixed GPTQ.
  const nlohmann::json rep = run(d.recipe("stories-ratio-w2", {{"target_bits", fixed_bits}}, "search"), "search");
  const double search = Dir::ppl(rep);
  const double bits = rep["metrics"]["ratio bits per weight"][0].get<double>();
  const double code_bits = rep["metrics"]["ratio bits per weight"][1].get<double>();
  const double paper_bits = rep["metrics"]["ratio bits per weight"][2].get<double>();
  // codes < codes + fp16 group scales (the papers' count) < stored (zeros and channel indices too)
  EXPECT_LT(code_bits, paper_bits);
  EXPECT_LT(paper_bits, bits);
  const double search_gptq =
      Dir::ppl(run(d.recipe("stories-ratio-w2-gptq", {{"target_bits", fixed_bits}}, "search_gptq"), "search_gptq"));
  std::printf("stories260K w2 per-channel on its own samples: gptq %.3f, sliderquant %.3f; ratio with hybrid rounding: "
              "fixed 0.10 %.3f (%.4f bits/w), searched %.3f (%.4f bits/w, %.4f in codes); searched with mixed GPTQ %.3f\n",
              gptq, slider, fixed, fixed_bits, search, bits, code_bits, search_gptq);
  EXPECT_LE(bits, fixed_bits + 1e-9);
  EXPECT_LT(search, gptq);
  EXPECT_LT(search, slider);
  EXPECT_LT(search, fixed);
  EXPECT_LT(search_gptq, gptq);
  EXPECT_NEAR(d.reload_ppl("search"), search, 1e-6 * search);
}

// The pass computes the empirical Fisher block by block (recomputing each block with
// gradients, so one block's gradients are alive at a time); it must equal the direct
// computation: every linear a float32 leaf, a whole-model backward per calibration window.
TEST(RatioFisher, StreamedScoresEqualAWholeModelBackward) {
  const std::string dir = sq::testing::fresh_path("ratio_fisher", true);
  nlohmann::json r = nlohmann::json::parse(read_file(kConfigs + "/test/stories-ratio-w2.json"));
  r["calibration"]["samples"] = 4;
  r["pipeline"][0]["options"].update({{"fixed_ratio", 0.1}, {"quantizer", "rtn"}, {"score_samples", 4}});
  write_file_atomic(dir + "/r.json", r.dump());
  sq::testing::CliResult q = sq::testing::run_cli("quantize " + kModel + " --recipe " + dir + "/r.json --out " + dir +
                                                  "/out --work " + dir + "/work --keep-work --calib " +
                                                  sq::testing::kWikiText + " -q");
  ASSERT_EQ(q.code, 0) << q.out;
  std::map<std::string, at::Tensor> got = load_channel_scores(dir + "/work/channel_scores.safetensors");

  Model m = load_model(kModel);
  for (Block& b : m.blocks)
    for (Linear* l : b.linears()) l->weight = l->weight.to(at::kFloat).clone().requires_grad_(true);
  auto tok = load_tokenizer(kModel);
  CalibrationSet cs = make_calibration_set(tok->encode_for_model(read_file(sq::testing::kWikiText)), 4, 256, 0);
  Runner runner(m, {});
  const RopeTable rope = make_rope(m.config, 256, c10::Device(c10::kCPU));
  std::map<std::string, at::Tensor> want;
  for (int64_t i = 0; i < 4; ++i) {
    at::Tensor ids = at::tensor(std::vector<int64_t>(cs.ids.begin() + i * 256, cs.ids.begin() + (i + 1) * 256)).view({1, 256});
    at::Tensor x = runner.embed(ids);
    for (size_t b = 0; b < m.blocks.size(); ++b)
      x = block_forward(prepare_block(m.blocks[b], m.config, at::kFloat, c10::Device(c10::kCPU), int64_t(b)), m.config,
                        x, rope);
    at::Tensor logits = runner.head(x);
    at::cross_entropy_loss(logits.narrow(1, 0, 255).reshape({-1, logits.size(-1)}), ids.narrow(1, 1, 255).reshape({-1}))
        .backward();
    for (Block& b : m.blocks)
      for (Linear* l : b.linears()) {
        at::NoGradGuard ng;
        at::Tensor add = l->weight.grad().pow(2).sum(0);
        want[l->name] = want.count(l->name) ? want[l->name] + add : add;
        l->weight.mutable_grad().reset();
      }
  }
  ASSERT_EQ(got.size(), want.size());
  for (auto& [name, w] : want) {
    ASSERT_TRUE(got.count(name)) << name;
    EXPECT_TRUE(at::allclose(got[name], w, 1e-4, 1e-12)) << name << ": max diff " << (got[name] - w).abs().max().item<double>();
  }
}
