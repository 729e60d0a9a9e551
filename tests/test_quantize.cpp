// Tests of the quantization pipeline: recipes and plans, calibration sets, the block
// sequencer (including resume after a kill), the native writer/reader round trip, and the
// `quantize` command end to end on stories260K (perplexity ladder, reload equality, errors).
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <nlohmann/json.hpp>

#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/data/dataset.h"
#include "sliderquant/data/tokenizer.h"
#include "sliderquant/eval/perplexity.h"
#include "sliderquant/formats/model_format.h"
#include "sliderquant/formats/native.h"
#include "sliderquant/pipeline/recipe.h"
#include "sliderquant/pipeline/sequencer.h"
#include "sliderquant/pipeline/session.h"
#include "sliderquant/quant/gptq.h"
#include "sliderquant/quant/rtn.h"
#include "test_util.h"

using namespace sq;

namespace {
using sq::testing::error_of;

const std::string kModel = std::string(SQ_FIXTURES_DIR) + "/stories260K/hf";
const std::string kText = std::string(SQ_FIXTURES_DIR) + "/text/wikitext2_head.txt";
const std::string kConfigs = std::string(SQ_SOURCE_DIR) + "/configs";

std::string tmp(const std::string& name) { return sq::testing::fresh_path("q_" + name); }

const char* kGptqSmall = R"({"name": "t", "format": "w4",
  "calibration": {"dataset": "x", "samples": 8, "seqlen": 64, "seed": 1},
  "pipeline": [{"pass": "gptq", "options": {"order": "group_preserving"}}]})";

CalibrationSet small_calib(int64_t samples = 8, int64_t seqlen = 64) {
  auto tok = load_tokenizer(kModel);
  return make_calibration_set(tok->encode_for_model(read_file(kText)), samples, seqlen, 1);
}

using CliRun = sq::testing::CliResult;
CliRun cli(const std::string& args) { return sq::testing::run_cli(args); }

}  // namespace

// ---- recipes -----------------------------------------------------------------------------

TEST(Recipe, BundledRecipesParseAndResolve) {
  for (const char* n : {"rtn-w4g128", "rtn-w3g128", "rtn-w2g64", "gptq-w4g128", "gptq-w3g128", "gptq-w2g64",
                        "gptq-w4-perchannel", "test/stories-rtn-w4-pc", "test/stories-gptq-w2-pc"}) {
    Recipe r = load_recipe(kConfigs + "/" + n + ".json");
    Recipe again = parse_recipe(r.resolved_json(), "resolved");
    EXPECT_EQ(again.sha256(), r.sha256()) << n;  // the resolved form is a fixed point
  }
  Recipe g = load_recipe(kConfigs + "/gptq-w4g128.json");
  EXPECT_TRUE(g.needs_calibration());
  EXPECT_EQ(g.calibration.samples, 128);
  EXPECT_EQ(g.format, QFormat::parse("w4g128"));
  EXPECT_FALSE(load_recipe(kConfigs + "/rtn-w4g128.json").needs_calibration());
}

TEST(Recipe, ErrorsNameKeyAndFile) {
  std::string e = error_of([] { parse_recipe(R"({"format": "w4", "pipeline": [{"pass": "rtn"}], "fromat": 1})", "r.json"); });
  EXPECT_NE(e.find("'fromat'"), std::string::npos) << e;
  EXPECT_NE(e.find("r.json"), std::string::npos) << e;
  e = error_of([] { parse_recipe(R"({"format": "w4", "pipeline": [{"pass": "rtn", "options": {"msee": true}}]})", "r.json"); });
  EXPECT_NE(e.find("'msee'"), std::string::npos) << e;
  e = error_of([] { parse_recipe(R"({"format": "w4", "pipeline": [{"pass": "awq"}]})", "r.json"); });
  EXPECT_NE(e.find("awq"), std::string::npos) << e;
  EXPECT_NE(e.find("gptq"), std::string::npos) << e;  // lists the known passes
  e = error_of([] { parse_recipe(R"({"format": "w9", "pipeline": [{"pass": "rtn"}]})", "r.json"); });
  EXPECT_NE(e.find("w9"), std::string::npos) << e;
  e = error_of([] { parse_recipe(R"({"format": "w4", "pipeline": []})", "r.json"); });
  EXPECT_NE(e.find("pipeline"), std::string::npos) << e;
  e = error_of([] { parse_recipe(R"({"format": "w4", "calibration": {"samples": 0}, "pipeline": [{"pass": "rtn"}]})", "r.json"); });
  EXPECT_NE(e.find("samples"), std::string::npos) << e;
}

TEST(Recipe, OverridesLastMatchWinsAndShapesAreChecked) {
  Recipe r = parse_recipe(R"({"format": "w4", "pipeline": [{"pass": "rtn"}],
    "overrides": [{"match": "blocks.*.mlp.*", "format": "w3"}, {"match": "blocks.1.mlp.down", "format": null},
                  {"match": "blocks.[0-1].attn.q", "format": "w2g32"}]})", "r.json");
  ModelConfig c = load_model_config(kModel);
  auto plan = plan_linears(r, c);
  ASSERT_EQ(plan.size(), size_t(5 * 7));
  auto find = [&](const std::string& n) {
    for (const auto& p : plan)
      if (p.name == n) return p;
    return LinearPlan{};
  };
  EXPECT_EQ(find("blocks.0.mlp.up").format->name(), "w3");
  EXPECT_FALSE(find("blocks.1.mlp.down").format.has_value());
  EXPECT_NE(find("blocks.1.mlp.down").rule.find("overrides[1]"), std::string::npos);
  EXPECT_EQ(find("blocks.2.mlp.down").format->name(), "w3");
  EXPECT_EQ(find("blocks.1.attn.q").format->name(), "w2g32");
  EXPECT_EQ(find("blocks.2.attn.q").format->name(), "w4");
  // g128 on stories260K's in-features 64 and 172 leaves short last groups (one of 64; 128 + 44):
  // uniform formats take them. DSQ needs whole groups: an error naming the linear.
  Recipe g = load_recipe(kConfigs + "/gptq-w4g128.json");
  EXPECT_NO_THROW(plan_linears(g, c));
  Recipe d = parse_recipe(R"({"format": "w2g48d", "pipeline": [{"pass": "rtn"}]})", "dsq48.json");
  std::string e = error_of([&] { plan_linears(d, c); });
  EXPECT_NE(e.find("blocks.0.attn.q"), std::string::npos) << e;
  EXPECT_NE(e.find("48"), std::string::npos) << e;
}

TEST(Calibration, SeededWindowsAndHash) {
  std::vector<int64_t> toks(1000);
  for (size_t i = 0; i < toks.size(); ++i) toks[i] = int64_t(i);
  CalibrationSet a = make_calibration_set(toks, 4, 16, 7), b = make_calibration_set(toks, 4, 16, 7),
                 c = make_calibration_set(toks, 4, 16, 8);
  EXPECT_EQ(a.ids, b.ids);
  EXPECT_EQ(a.sha256, b.sha256);
  EXPECT_NE(a.sha256, c.sha256);
  ASSERT_EQ(a.ids.size(), 64u);
  for (int s = 0; s < 4; ++s)  // each window is a contiguous slice of the text
    for (int t = 1; t < 16; ++t) EXPECT_EQ(a.ids[size_t(s * 16 + t)], a.ids[size_t(s * 16)] + t);
  EXPECT_THROW(make_calibration_set(toks, 4, 1000, 0), Error);
}

// ---- sequencer ---------------------------------------------------------------------------

TEST(Sequencer, GroupsInOrderWithStudentInputs) {
  Model m = load_model(kModel);
  Recipe r = parse_recipe(kGptqSmall, "t");
  CalibrationSet cs = small_calib();
  Session s(m, r);
  s.calib = &cs;
  std::vector<std::string> order;
  run_block_sequential(s, {}, [&](Session& ss, const GroupInputs& in) {
    order.push_back(std::to_string(in.block) + ":" + tap_name(in.point));
    EXPECT_EQ(in.H.size(0), ss.linear(in.linears[0]).weight.size(1));
    EXPECT_TRUE(in.H.isfinite().all().item<bool>());
    // The group's inputs are those of the partially quantized block: for the o group,
    // q/k/v are already quantized.
    if (in.point == TapPoint::OIn) {
      EXPECT_TRUE(ss.quantized.count("blocks." + std::to_string(in.block) + ".attn.v"));
    }
    for (const std::string& n : in.linears) ss.set_quantized(n, rtn_quantize(ss.linear(n).weight, QFormat::parse("w4")));
  });
  ASSERT_EQ(order.size(), 20u);
  EXPECT_EQ(order[0], "0:q/k/v input");
  EXPECT_EQ(order[3], "0:down input");
  EXPECT_EQ(order[19], "4:down input");
  EXPECT_EQ(s.quantized.size(), 35u);
}

TEST(Sequencer, ResumesAfterAKill) {
  Recipe r = parse_recipe(kGptqSmall, "t");
  CalibrationSet cs = small_calib();
  auto run = [&](const std::string& work, int kill_at_block) {
    Model m = load_model(kModel);
    Session s(m, r);
    s.calib = &cs;
    s.work_dir = work;
    GptqOptions g;
    g.order = GptqOrder::GroupPreserving;
    int calls = 0;
    run_block_sequential(s, {}, [&](Session& ss, const GroupInputs& in) {
      if (in.block == kill_at_block) throw Error("killed");
      ++calls;
      for (const std::string& n : in.linears)
        ss.set_quantized(n, gptq_quantize(ss.linear(n).weight.to(at::kFloat), in.H, QFormat::parse("w4"), g).q);
    });
    return std::make_pair(s.quantized, calls);
  };
  std::string w = tmp("work");
  auto full = run(tmp("work_full"), -1).first;
  EXPECT_THROW(run(w, 3), Error);  // killed inside block 3
  auto st = nlohmann::json::parse(read_file(w + "/state.json"));
  EXPECT_EQ(st["blocks_done"], 3);
  auto [resumed, calls] = run(w, -1);
  EXPECT_EQ(calls, 2 * 4);  // only blocks 3 and 4 were quantized again
  ASSERT_EQ(resumed.size(), full.size());
  for (const auto& [name, q] : full) {
    EXPECT_TRUE(at::equal(q.codes, resumed.at(name).codes)) << name;
    EXPECT_TRUE(at::equal(q.scales, resumed.at(name).scales)) << name;
  }
}

// ---- native output ------------------------------------------------------------------------

TEST(NativeModel, WriteThenReloadGivesTheSameLogits) {
  Model m = load_model(kModel);
  Recipe r = parse_recipe(R"({"format": "w3", "pipeline": [{"pass": "rtn"}],
    "overrides": [{"match": "blocks.2.*", "format": "w4g4s"}, {"match": "blocks.4.attn.v", "format": null}]})", "t");
  Session s(m, r);
  run_passes(s);
  EXPECT_EQ(s.quantized.size(), 34u);
  std::string out = tmp("native");
  write_native_model(m, s.quantized, out, {});
  Model back = load_any_model(out);
  EXPECT_FALSE(back.blocks[0].linear(Role::Q).weight.defined());  // packed, no master weight
  EXPECT_TRUE(back.blocks[4].linear(Role::V).weight.defined());   // left in full precision
  at::Tensor ids = at::arange(1, 60, at::kLong).view({1, 59});
  Runner a(m, {}), b(back, {});
  EXPECT_TRUE(at::equal(a.logits(ids), b.logits(ids)));
  auto qc = nlohmann::json::parse(read_file(out + "/quantization_config.json"));
  EXPECT_EQ(qc["format_version"], 2);  // version 2: adds the "features" list
  EXPECT_EQ(qc["tensors"]["model.layers.2.mlp.down_proj"]["format"], "w4g4s");
  EXPECT_THROW(write_native_model(m, s.quantized, out, {}), Error);  // exists, no force
}

// ---- the quantize command ------------------------------------------------------------------

using sq::testing::sampled_stories;

TEST(QuantizeCli, PerplexityLadderAndReload) {
  std::string dir = tmp("ladder");
  ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
  write_file_atomic(dir + "/calib.txt", sampled_stories(1, 16, 200));
  write_file_atomic(dir + "/eval.txt", sampled_stories(2, 16, 200));
  const std::string ev = " --eval " + dir + "/eval.txt --calib " + dir + "/calib.txt -q";
  auto ppl_of = [&](const std::string& json) {
    return nlohmann::json::parse(read_file(json))["perplexity"][0]["ppl"].get<double>();
  };
  CliRun fp = cli("eval " + kModel + " --ppl " + dir + "/eval.txt --seqlen 512 -q --json " + dir + "/fp.json");
  ASSERT_EQ(fp.code, 0) << fp.out;
  double p_fp = ppl_of(dir + "/fp.json");
  std::map<std::string, double> p;
  for (const char* r : {"stories-gptq-w4-pc", "stories-rtn-w4-pc", "stories-rtn-w2-pc"}) {
    CliRun q = cli(std::string("quantize ") + kModel + " --recipe " + r + " --out " + dir + "/" + r + ev + " --json " +
                   dir + "/" + r + ".json");
    ASSERT_EQ(q.code, 0) << q.out;
    p[r] = ppl_of(dir + "/" + r + ".json");
  }
  EXPECT_LT(p_fp, p["stories-gptq-w4-pc"]);
  EXPECT_LE(p["stories-gptq-w4-pc"], p["stories-rtn-w4-pc"]);
  EXPECT_LT(p["stories-rtn-w4-pc"], p["stories-rtn-w2-pc"]);
  // The written output reloads to the perplexity of the in-memory quantized model.
  CliRun e = cli("eval " + dir + "/stories-gptq-w4-pc --ppl " + dir + "/eval.txt --seqlen 512 -q --json " + dir + "/re.json");
  ASSERT_EQ(e.code, 0) << e.out;
  EXPECT_NEAR(ppl_of(dir + "/re.json"), p["stories-gptq-w4-pc"], 1e-6 * p_fp);
  auto rep = nlohmann::json::parse(read_file(dir + "/stories-gptq-w4-pc.json"));
  EXPECT_EQ(rep["calibration"]["samples"], 32);
  EXPECT_EQ(rep["calibration"]["seed"], 0);
  EXPECT_EQ(rep["calibration"]["text_sha256"], sha256_file(dir + "/calib.txt"));
  std::printf("stories260K on its own samples: fp %.3f, gptq-w4 %.3f, rtn-w4 %.3f, rtn-w2 %.3f\n", p_fp,
              p["stories-gptq-w4-pc"], p["stories-rtn-w4-pc"], p["stories-rtn-w2-pc"]);
}

TEST(QuantizeCli, BadInputsFailCleanlyAndWriteNothing) {
  std::string dir = tmp("bad");
  ASSERT_EQ(std::system(("mkdir -p " + dir + "/existing").c_str()), 0);
  write_file_atomic(dir + "/existing/keep.txt", "keep");
  write_file_atomic(dir + "/typo.json", R"({"format": "w4", "pipeline": [{"pass": "rtn"}], "calibrate": {}})");
  write_file_atomic(dir + "/dsq48.json", R"({"format": "w2g48d", "pipeline": [{"pass": "rtn"}]})");
  struct Case {
    std::string args, needle;
  };
  std::vector<Case> cases = {
      {"--recipe stories-rtn-w4-pc --out " + dir + "/existing", "already exists"},
      {"--recipe stories-rtn-w4-pc --out /nonexistent/dir/out", "/nonexistent/dir"},
      {"--recipe " + dir + "/typo.json --out " + dir + "/o1", "'calibrate'"},
      {"--recipe " + dir + "/dsq48.json --out " + dir + "/o2", "blocks.0.attn.q"},
      {"--recipe no-such-recipe --out " + dir + "/o3", "no-such-recipe"},
  };
  for (const Case& c : cases) {
    CliRun r = cli("quantize " + kModel + " " + c.args + " --calib " + kText);
    EXPECT_NE(r.code, 0) << c.args;
    EXPECT_NE(r.out.find(c.needle), std::string::npos) << c.args << "\n" << r.out;
  }
  EXPECT_EQ(read_file(dir + "/existing/keep.txt"), "keep");
  FILE* ls = popen(("ls " + dir).c_str(), "r");
  std::string listing;
  std::array<char, 512> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), ls)) > 0) listing.append(buf.data(), n);
  pclose(ls);
  EXPECT_EQ(listing, "dsq48.json\nexisting\ntypo.json\n");  // no partial outputs, temp dirs or work dirs
  // --dry-run prints the plan and writes nothing
  CliRun d = cli("quantize " + kModel + " --recipe stories-rtn-w2-pc --out " + dir + "/dry --dry-run");
  EXPECT_EQ(d.code, 0) << d.out;
  EXPECT_NE(d.out.find("blocks.4.mlp.down"), std::string::npos);
  EXPECT_FALSE(path_exists(dir + "/dry"));
}
