// Mixture-of-experts families (Qwen3-MoE, Qwen2-MoE, Mixtral): logits equal to transformers'
// on tiny checkpoints transformers wrote (tests/moe/make_moe_fixtures.py), routed calibration
// (every expert's statistics from its own tokens, counted against the router), starved experts
// that still quantize to finite positive scales close to round-to-nearest, and bad MoE configs
// and checkpoints refused with one line naming the tensor or key.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/formats/model_format.h"
#include "sliderquant/io/safetensors.h"
#include "sliderquant/model/forward.h"
#include "sliderquant/model/model.h"
#include "sliderquant/pipeline/recipe.h"
#include "sliderquant/quant/rtn.h"
#include "sliderquant/transform/rotation.h"
#include "test_util.h"

namespace sq {
namespace {

using testing::error_of;
using testing::run_cli;
using testing::kWikiText;

const std::string kMoe = std::string(SQ_FIXTURES_DIR) + "/moe/";

std::string tmp(const std::string& name) { return testing::fresh_path("moe_" + name); }

// Max |ours - transformers'| over a prompt's logits, relative to the largest reference logit.
double logit_error(const std::string& family, const std::string& prompt, c10::ScalarType dt) {
  Model m = load_model(kMoe + family);
  auto ref = SafetensorsFile::open(kMoe + family + "/reference.safetensors");
  const at::Tensor ids = ref->tensor(prompt + ".ids").clone();
  const at::Tensor want = ref->tensor(prompt + (dt == at::kFloat ? ".logits_fp32" : ".logits_bf16")).clone();
  RunnerOptions ro;
  ro.dtype = dt;
  Runner r(m, ro);
  at::InferenceMode guard;
  const at::Tensor got = r.logits(ids)[0].to(at::kFloat);
  EXPECT_EQ(got.sizes(), want.sizes());
  return (got - want).abs().max().item<double>() / want.abs().max().item<double>();
}

TEST(MoeParity, LogitsEqualTransformers) {
  // fp32: the same bf16-valued weights in float32 on both sides; bf16: both compute in bf16 with
  // the router in fp32 (make_moe_fixtures.py says how the reference is made).
  for (const char* family : {"qwen3_moe", "qwen2_moe", "mixtral"}) {
    for (const char* prompt : {"long", "short"}) {
      const double e32 = logit_error(family, prompt, at::kFloat);
      const double e16 = logit_error(family, prompt, at::kBFloat16);
      std::printf("%-10s %-5s max |logit error| / max |logit|: fp32 %.2e, bf16 %.2e\n", family, prompt, e32, e16);
      EXPECT_LT(e32, 1e-5) << family << " " << prompt;
      EXPECT_LT(e16, 2e-2) << family << " " << prompt;
    }
  }
}

TEST(MoeLayout, FamiliesLayersAndNames) {
  const ModelConfig q3 = load_model_config(kMoe + "qwen3_moe");
  EXPECT_EQ(q3.family, "qwen3_moe");
  EXPECT_EQ(q3.num_experts, 4);
  EXPECT_EQ(q3.experts_per_token, 2);
  EXPECT_TRUE(q3.norm_topk_prob);
  EXPECT_TRUE(q3.moe_layer(0));
  EXPECT_FALSE(q3.moe_layer(1));  // mlp_only_layers [1]
  EXPECT_TRUE(q3.moe_layer(2));
  const ArchSpec& spec = find_family("qwen3_moe");
  EXPECT_TRUE(block_layout(spec, q3, 0).moe());
  EXPECT_FALSE(block_layout(spec, q3, 1).moe());
  // The router is never quantized by default; every expert linear is.
  Recipe r = parse_recipe(R"({"format": "w4g8", "pipeline": [{"pass": "rtn"}]})", "r.json");
  int experts = 0;
  for (const LinearPlan& p : plan_linears(r, q3)) {
    if (p.name.find("router") != std::string::npos) {
      EXPECT_FALSE(p.format.has_value()) << p.name;
    }
    if (p.name.find("experts") != std::string::npos) {
      EXPECT_TRUE(p.format.has_value()) << p.name;
      ++experts;
    }
  }
  EXPECT_EQ(experts, 2 * 4 * 3);
  // Each family's own spelling.
  EXPECT_EQ(hf_tensor_name("blocks.0.mlp.experts.3.gate", "mixtral"), "model.layers.0.block_sparse_moe.experts.3.w1.weight");
  EXPECT_EQ(hf_tensor_name("blocks.0.mlp.experts.3.up", "mixtral"), "model.layers.0.block_sparse_moe.experts.3.w3.weight");
  EXPECT_EQ(hf_tensor_name("blocks.0.mlp.router", "mixtral"), "model.layers.0.block_sparse_moe.gate.weight");
  EXPECT_EQ(hf_tensor_name("blocks.1.mlp.experts.12.down", "qwen3_moe"), "model.layers.1.mlp.experts.12.down_proj.weight");
  EXPECT_EQ(hf_tensor_name("blocks.1.mlp.shared_gate", "qwen2_moe"), "model.layers.1.mlp.shared_expert_gate.weight");
  EXPECT_EQ(hf_tensor_name("blocks.1.mlp.shared.up", "qwen2_moe"), "model.layers.1.mlp.shared_expert.up_proj.weight");
  // Parameter count of the fixture equals the tensors it stores.
  Model m = load_model(kMoe + "qwen2_moe");
  int64_t n = 0;
  for (const auto& [name, t] : canonical_tensors(m)) n += t.numel();
  EXPECT_EQ(n, m.config.param_count());
}

// The experts' taps see exactly the tokens the router sends them (a path that bypassed the taps
// would make this and the sequencer's own check fail).
TEST(MoeCalibration, ExpertTapsSeeExactlyTheRoutedTokens) {
  Model m = load_model(kMoe + "mixtral");
  at::InferenceMode guard;
  auto ref = SafetensorsFile::open(kMoe + "mixtral/reference.safetensors");
  const at::Tensor ids = ref->tensor("long.ids").clone();
  RunnerOptions ro;
  Runner r(m, ro);
  const BlockWeights& w = r.weights(0);
  at::Tensor x = r.embed(ids);
  const RopeTable rope = make_rope(m.config, ids.size(1), c10::Device(c10::kCPU));
  std::vector<int64_t> rows(4, 0);
  at::Tensor routed;
  double weight_sum = 0;
  BlockTaps taps;
  taps.fn = [&](TapPoint p, const at::Tensor& h) {
    if (p == TapPoint::GateUpIn) routed = at::bincount(route_tokens(w.moe, h.reshape({-1, h.size(-1)})).experts.reshape({-1}), {}, 4);
  };
  taps.expert_fn = [&](TapPoint p, int e, const at::Tensor& xe, const at::Tensor& rw) {
    if (p != TapPoint::GateUpIn) return;
    rows[size_t(e)] += xe.size(0);
    weight_sum += rw.sum().item<double>();
  };
  const at::Tensor y = block_forward(w, m.config, x, rope, &taps);
  const at::Tensor y_plain = block_forward(w, m.config, x, rope);
  EXPECT_TRUE(at::equal(y, y_plain));  // taps do not change the output
  int64_t total = 0;
  for (int e = 0; e < 4; ++e) {
    EXPECT_EQ(rows[size_t(e)], routed[e].item<int64_t>()) << "expert " << e;
    EXPECT_GT(rows[size_t(e)], 0) << "expert " << e;
    total += rows[size_t(e)];
  }
  EXPECT_EQ(total, ids.size(1) * 2);                       // top-2
  EXPECT_NEAR(weight_sum, double(ids.size(1)), 1e-4);      // Mixtral renormalises: weights sum to 1 per token
  // calibrate_all_experts: every token reaches every expert's statistics, output unchanged.
  taps.all_experts = true;
  rows.assign(4, 0);
  const at::Tensor y_all = block_forward(w, m.config, x, rope, &taps);
  EXPECT_TRUE(at::equal(y_all, y_plain));
  for (int e = 0; e < 4; ++e) EXPECT_EQ(rows[size_t(e)], ids.size(1));
}

// The residual rotation (D²Quant, QuaRot) is exact on MoE blocks: the router, the shared gate
// and every expert's gate/up take the fused norm and rotate their inputs, the expert and
// shared down projections their outputs, so the routing and the logits are unchanged.
TEST(MoeRotation, RotatedModelComputesTheSameLogits) {
  for (const char* family : {"qwen3_moe", "qwen2_moe", "mixtral"}) {
    Model m = load_model(kMoe + family);
    auto ref = SafetensorsFile::open(kMoe + std::string(family) + "/reference.safetensors");
    const at::Tensor ids = ref->tensor("long.ids").clone();
    at::InferenceMode guard;
    at::Tensor before, after;
    {
      Runner r(m, RunnerOptions{});
      before = r.logits(ids)[0];
    }
    rotate_model(m, 0, 7, c10::Device(c10::kCPU));
    {
      Runner r(m, RunnerOptions{});
      after = r.logits(ids)[0];
    }
    const double err = (after - before).abs().max().item<double>() / before.abs().max().item<double>();
    std::printf("%-10s rotated vs original logits: max relative difference %.2e\n", family, err);
    EXPECT_LT(err, 1e-4) << family;
  }
}

TEST(MoeQuantize, StarvedExpertGetsFiniteScalesNearRtn) {
  const std::string dir = tmp("starved");
  ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
  write_file_atomic(dir + "/gptq.json", R"({"name": "moe-gptq-w4g8", "format": "w4g8",
    "calibration": {"dataset": "x", "samples": 8, "seqlen": 64, "seed": 1},
    "pipeline": [{"pass": "gptq", "options": {"min_expert_tokens": 16}}]})");
  const std::string model = kMoe + "qwen3_moe_starved";
  auto q = run_cli("quantize " + model + " --recipe " + dir + "/gptq.json --out " + dir + "/q --calib " + kWikiText +
                   " --json " + dir + "/q.json");
  ASSERT_EQ(q.code, 0) << q.out;
  EXPECT_NE(q.out.find("experts starved"), std::string::npos) << q.out;
  const auto rep = nlohmann::json::parse(read_file(dir + "/q.json"));
  ASSERT_TRUE(rep.contains("moe")) << rep.dump(2);
  const auto& moe = rep["moe"];
  // Layers 0 and 2 are MoE (1 is dense): expert 3 never routed. The starved list is exactly the
  // experts under min_expert_tokens (the text may starve others too).
  std::vector<std::string> expect_starved;
  for (const char* b : {"blocks.0", "blocks.2"}) {
    const auto tokens = moe["expert_tokens"][b].get<std::vector<int64_t>>();
    ASSERT_EQ(tokens.size(), 4u);
    EXPECT_EQ(tokens[3], 0) << b;
    EXPECT_EQ(tokens[0] + tokens[1] + tokens[2], 8 * 64 * 2) << b;  // samples x seqlen x top-k
    for (int e = 0; e < 4; ++e)
      if (tokens[size_t(e)] < 16) expect_starved.push_back(std::string(b) + ".mlp.experts." + std::to_string(e));
    std::printf("%s routed calibration tokens per expert: %lld %lld %lld %lld\n", b, (long long)tokens[0],
                (long long)tokens[1], (long long)tokens[2], (long long)tokens[3]);
  }
  EXPECT_EQ(moe["starved_experts"].get<std::vector<std::string>>(), expect_starved);
  // Every stored scale is finite and positive.
  Checkpoint ck = Checkpoint::open(dir + "/q");
  int scales = 0;
  for (const std::string& n : ck.names()) {
    if (n.size() < 7 || n.compare(n.size() - 7, 7, ".scales") != 0) continue;
    const at::Tensor s = ck.get(n).to(at::kFloat);
    EXPECT_TRUE(at::isfinite(s).all().item<bool>()) << n;
    EXPECT_TRUE((s > 0).all().item<bool>()) << n;
    ++scales;
  }
  EXPECT_GE(scales, 2 * 4 * 3);
  // The starved expert (mean-Hessian GPTQ) stays within 1.3x of round-to-nearest's weight error.
  Model fp = load_model(model);
  Model qm = load_any_model(dir + "/q");
  for (const char* slot : {"gate", "up", "down"}) {
    const std::string name = std::string("blocks.0.mlp.experts.3.") + slot;
    const int j = fp.blocks[0].layout->find(std::string("mlp.experts.3.") + slot);
    ASSERT_GE(j, 0);
    const at::Tensor W = fp.blocks[0].slots[size_t(j)].weight.to(at::kFloat);
    const at::Tensor Wq = qm.blocks[0].slots[size_t(j)].effective_weight().to(at::kFloat);
    const at::Tensor Wr = rtn_quantize(W, QFormat::parse("w4g8")).dequantize().to(at::kFloat);
    const double eq = (W - Wq).norm().item<double>(), er = (W - Wr).norm().item<double>();
    std::printf("starved %s: weight error gptq(mean H) %.4f, rtn %.4f (ratio %.3f)\n", name.c_str(), eq, er, eq / er);
    EXPECT_LT(eq, 1.3 * er) << name;
    EXPECT_GT(eq, 0) << name;
  }
  // KL divergence to the unquantized model is measured and finite.
  auto kl = run_cli("eval " + dir + "/q --kld-base " + model + " --ppl " + kWikiText + " --seqlen 64 -q --json " + dir +
                    "/kl.json");
  ASSERT_EQ(kl.code, 0) << kl.out;
  const auto klj = nlohmann::json::parse(read_file(dir + "/kl.json"));
  ASSERT_TRUE(klj.contains("kld")) << klj.dump(2);
  const double mean_kl = klj["kld"]["results"][0]["mean_kl"].get<double>();
  EXPECT_TRUE(std::isfinite(mean_kl) && mean_kl > 0) << klj.dump(2);
  std::printf("starved model, gptq w4g8: mean KL to the unquantized model %.5f\n", mean_kl);
}

TEST(MoeQuantize, EveryFamilyQuantizesAndReloads) {
  const std::string dir = tmp("families");
  ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
  write_file_atomic(dir + "/gptq.json", R"({"name": "moe-gptq-w4g8", "format": "w4g8",
    "calibration": {"dataset": "x", "samples": 4, "seqlen": 64, "seed": 1},
    "pipeline": [{"pass": "gptq"}]})");
  for (const char* family : {"qwen2_moe", "mixtral"}) {
    const std::string out = dir + "/" + family;
    auto q = run_cli("quantize " + kMoe + family + " --recipe " + dir + "/gptq.json --out " + out + " --calib " +
                     kWikiText + " --eval " + kWikiText + " --json " + out + ".json -q");
    ASSERT_EQ(q.code, 0) << q.out;
    const auto rep = nlohmann::json::parse(read_file(out + ".json"));
    const double ppl = rep["perplexity"][0]["ppl"].get<double>();
    EXPECT_TRUE(std::isfinite(ppl)) << family;
    // Reloaded from disk, the model gives the perplexity the run reported.
    auto e = run_cli("eval " + out + " --ppl " + kWikiText + " -q --json " + out + ".eval.json");
    ASSERT_EQ(e.code, 0) << e.out;
    EXPECT_NEAR(nlohmann::json::parse(read_file(out + ".eval.json"))["perplexity"][0]["ppl"].get<double>(), ppl,
                1e-6 * ppl)
        << family;
    // Routers and the shared expert's gate stay as they were.
    Model fp = load_model(kMoe + family);
    Model qm = load_any_model(out);
    const Block& b0 = fp.blocks[0];
    const int router = b0.layout->index(Role::Router);
    EXPECT_TRUE(at::equal(qm.blocks[0].slots[size_t(router)].effective_weight().to(at::kFloat),
                          b0.slots[size_t(router)].weight.to(at::kFloat)))
        << family;
  }
  // D²Quant (rotation, GPTAQ on attention and the shared expert, DSQ, DAC) runs on experts too.
  write_file_atomic(dir + "/d2.json", R"({"name": "moe-d2quant-w3", "format": "w3g8",
    "calibration": {"dataset": "x", "samples": 4, "seqlen": 64, "seed": 1},
    "pipeline": [{"pass": "d2quant", "options": {"rotate": true, "rotation_block": 0}}]})");
  auto d2 = run_cli("quantize " + kMoe + "qwen2_moe --recipe " + dir + "/d2.json --out " + dir + "/d2 --calib " +
                    kWikiText + " --eval " + kWikiText + " --json " + dir + "/d2.json.out -q");
  ASSERT_EQ(d2.code, 0) << d2.out;
  EXPECT_TRUE(std::isfinite(
      nlohmann::json::parse(read_file(dir + "/d2.json.out"))["perplexity"][0]["ppl"].get<double>()));
  // Passes, settings and exports that do not handle experts yet say so instead of writing a
  // broken model.
  write_file_atomic(dir + "/sq.json", R"({"name": "sq", "format": "w4g8",
    "calibration": {"dataset": "x", "samples": 2, "seqlen": 32, "seed": 1},
    "pipeline": [{"pass": "sliderquant", "options": {"scale_lr": 0.001}}]})");
  auto s = run_cli("quantize " + kMoe + "mixtral --recipe " + dir + "/sq.json --out " + dir + "/sq --calib " + kWikiText);
  EXPECT_EQ(s.code, 1) << s.out;
  EXPECT_NE(s.out.find("does not handle mixture-of-experts"), std::string::npos) << s.out;
  EXPECT_FALSE(path_exists(dir + "/sq"));
  for (const char* fmt : {"gptq", "compressed-tensors"}) {
    const std::string out = dir + "/m-" + fmt;
    auto g = run_cli("export " + kMoe + "mixtral --format " + fmt + " --out " + out);
    EXPECT_NE(g.code, 0) << g.out;
    EXPECT_NE(g.out.find("export of"), std::string::npos) << g.out;
    EXPECT_NE(g.out.find("MixtralForCausalLM"), std::string::npos) << g.out;
    EXPECT_FALSE(path_exists(out)) << fmt;
  }
}

// SliderQuant on experts: every expert linear has its own learned clipping and LoRA, trained
// through the routed forward. On qwen3_moe_starved (expert 3 of each MoE layer never routed),
// the routed experts' parameters move and the starved expert's stay at their initial values,
// so the expert path of the student forward is the one the router drives; the model quantizes
// to finite positive scales, reloads to the reported perplexity, and is closer to the
// unquantized model (KL) than round-to-nearest with the same format.
TEST(MoeQuantize, SliderquantTrainsRoutedExpertsOnlyAndBeatsRtn) {
  const std::string dir = tmp("sliderquant");
  ASSERT_EQ(std::system(("mkdir -p " + dir).c_str()), 0);
  const std::string model = kMoe + "qwen3_moe_starved";
  write_file_atomic(dir + "/sq.json", R"({"name": "moe-sliderquant-w3g8", "format": "w3g8",
    "calibration": {"dataset": "x", "samples": 8, "seqlen": 64, "seed": 1},
    "pipeline": [{"pass": "sliderquant", "options": {"epochs": 4, "batch": 2, "fill": 1}}]})");
  write_file_atomic(dir + "/rtn.json", R"({"name": "moe-rtn-w3g8", "format": "w3g8",
    "pipeline": [{"pass": "rtn", "options": {"mse": false}}]})");
  auto q = run_cli("quantize " + model + " --recipe " + dir + "/sq.json --out " + dir + "/sq --calib " + kWikiText +
                   " --keep-work --eval " + kWikiText + " --json " + dir + "/sq.out.json -q");
  ASSERT_EQ(q.code, 0) << q.out;
  auto r = run_cli("quantize " + model + " --recipe " + dir + "/rtn.json --out " + dir + "/rtn -q");
  ASSERT_EQ(r.code, 0) << r.out;
  // The learned parameters as the window trainer checkpointed them.
  auto params = SafetensorsFile::open(dir + "/sq.work/window_params.safetensors");
  int moved = 0, routed = 0;
  for (const char* b : {"blocks.0", "blocks.2"}) {
    for (int e = 0; e < 4; ++e) {
      for (const char* slot : {"gate", "up", "down"}) {
        const std::string n = std::string(b) + ".mlp.experts." + std::to_string(e) + "." + slot;
        ASSERT_NE(params->find(n + ".lwc_gamma"), nullptr) << n;
        const at::Tensor gamma = params->tensor(n + ".lwc_gamma"), lora_b = params->tensor(n + ".lora_B");
        const bool at_init = (gamma == 4.0).all().item<bool>() && (lora_b == 0).all().item<bool>();
        if (e == 3) {
          EXPECT_TRUE(at_init) << n << ": the starved expert received a gradient";
        } else {
          ++routed;
          moved += !at_init;
        }
      }
    }
  }
  EXPECT_EQ(moved, routed) << "routed expert linears whose parameters did not move";
  EXPECT_EQ(params->find("blocks.0.mlp.router.lwc_gamma"), nullptr) << "the router is not quantized";
  // Finite positive scales; the reload gives the reported perplexity.
  Checkpoint ck = Checkpoint::open(dir + "/sq");
  int scales = 0;
  for (const std::string& n : ck.names()) {
    if (n.size() < 7 || n.compare(n.size() - 7, 7, ".scales") != 0) continue;
    const at::Tensor s = ck.get(n).to(at::kFloat);
    EXPECT_TRUE(at::isfinite(s).all().item<bool>() && (s > 0).all().item<bool>()) << n;
    ++scales;
  }
  EXPECT_GE(scales, 2 * 4 * 3);
  const double ppl = nlohmann::json::parse(read_file(dir + "/sq.out.json"))["perplexity"][0]["ppl"].get<double>();
  auto e = run_cli("eval " + dir + "/sq --ppl " + kWikiText + " -q --json " + dir + "/sq.eval.json");
  ASSERT_EQ(e.code, 0) << e.out;
  EXPECT_NEAR(nlohmann::json::parse(read_file(dir + "/sq.eval.json"))["perplexity"][0]["ppl"].get<double>(), ppl,
              1e-6 * ppl);
  // Closer to the unquantized model than RTN.
  auto kl = [&](const std::string& q) {
    auto k = run_cli("eval " + q + " --kld-base " + model + " --ppl " + kWikiText + " --seqlen 64 -q --json " + q +
                     ".kl.json");
    EXPECT_EQ(k.code, 0) << k.out;
    return nlohmann::json::parse(read_file(q + ".kl.json"))["kld"]["results"][0]["mean_kl"].get<double>();
  };
  const double kl_sq = kl(dir + "/sq"), kl_rtn = kl(dir + "/rtn");
  std::printf("qwen3_moe_starved w3g8: mean KL to the unquantized model: sliderquant %.5f, rtn %.5f\n", kl_sq, kl_rtn);
  EXPECT_TRUE(std::isfinite(kl_sq) && kl_sq > 0);
  EXPECT_LT(kl_sq, kl_rtn);
}

// A copy of fixture FAMILY in a fresh directory with EDIT applied to its config.json and DROP
// removed from its weights.
std::string edited_copy(const std::string& family, const std::string& name,
                        const std::function<void(nlohmann::json&)>& edit, const std::string& drop = "",
                        const std::string& reshape = "") {
  const std::string d = tmp(name);
  EXPECT_EQ(std::system(("mkdir -p " + d).c_str()), 0);
  auto cfg = nlohmann::json::parse(read_file(kMoe + family + "/config.json"));
  edit(cfg);
  write_file_atomic(d + "/config.json", cfg.dump(2));
  Checkpoint ck = Checkpoint::open(kMoe + family);
  NamedTensors ts;
  for (const std::string& n : ck.names()) {
    if (n == drop) continue;
    at::Tensor t = ck.get(n).clone();
    if (n == reshape) t = t.narrow(0, 0, t.size(0) - 1).clone();
    ts.emplace_back(n, t);
  }
  write_safetensors(d + "/model.safetensors", ts, {{"format", "pt"}});
  return d;
}

TEST(MoeBadInput, OneLineNamingTensorOrKey) {
  auto none = [](nlohmann::json&) {};
  // A missing expert tensor.
  std::string e = error_of([&] {
    load_model(edited_copy("qwen3_moe", "missing", none, "model.layers.2.mlp.experts.1.up_proj.weight"));
  });
  EXPECT_NE(e.find("model.layers.2.mlp.experts.1.up_proj.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("missing"), std::string::npos) << e;
  // A router of the wrong shape.
  e = error_of([&] { load_model(edited_copy("mixtral", "router", none, "", "model.layers.1.block_sparse_moe.gate.weight")); });
  EXPECT_NE(e.find("model.layers.1.block_sparse_moe.gate.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("shape"), std::string::npos) << e;
  // An expert count that disagrees with the tensors: the router's shape names it.
  e = error_of([&] { load_model(edited_copy("qwen2_moe", "fewer", [](nlohmann::json& j) { j["num_experts"] = 3; })); });
  EXPECT_NE(e.find("model.layers.0.mlp.gate.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[3, 32]"), std::string::npos) << e;
  e = error_of([&] { load_model(edited_copy("mixtral", "more", [](nlohmann::json& j) { j["num_local_experts"] = 5; })); });
  EXPECT_NE(e.find("block_sparse_moe.gate.weight"), std::string::npos) << e;
  EXPECT_NE(e.find("[5, 32]"), std::string::npos) << e;
  // Expert widths that disagree with the tensors.
  e = error_of([&] {
    load_model(edited_copy("qwen3_moe", "width", [](nlohmann::json& j) { j["moe_intermediate_size"] = 20; }));
  });
  EXPECT_NE(e.find("shape"), std::string::npos) << e;
  // top-k above the expert count, and a missing count.
  e = error_of([&] { load_model_config(edited_copy("qwen3_moe", "topk", [](nlohmann::json& j) { j["num_experts_per_tok"] = 9; })); });
  EXPECT_NE(e.find("num_experts_per_tok"), std::string::npos) << e;
  e = error_of([&] {
    load_model_config(edited_copy("mixtral", "nocount", [](nlohmann::json& j) { j.erase("num_local_experts"); }));
  });
  EXPECT_NE(e.find("num_local_experts"), std::string::npos) << e;
  e = error_of([&] {
    load_model_config(edited_copy("qwen3_moe", "onlylayers", [](nlohmann::json& j) { j["mlp_only_layers"] = {7}; }));
  });
  EXPECT_NE(e.find("mlp_only_layers"), std::string::npos) << e;
}

}  // namespace
}  // namespace sq
