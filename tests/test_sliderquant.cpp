// Tests of SliderQuant's pieces and the method end to end: the window schedule (the
// literal 33-window Llama-2 list, small models, explicit schedules and their errors), the
// learnable quantizers (clipping at its initial value and LoRA at zero reproduce the plain
// quantizer; the fake-quantized weight equals the hardened one; partial rates; gradients),
// per-token activation quantization, equivalent scales that keep every family's logits,
// and on stories260K: window losses decrease, W2 perplexity below GPTQ and RTN W2 on the
// same calibration set, W4A4 training beats its untrained start, the written model
// (activation quantization recorded) reloads to the same perplexity, and a killed run
// resumes to a bit-identical result.
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "sliderquant/core/torch_compat.h"
#include "sliderquant/core/util.h"
#include "sliderquant/io/safetensors.h"
#include "sliderquant/model/forward.h"
#include "sliderquant/model/model.h"
#include "sliderquant/model/synthetic.h"
#include "sliderquant/data/dataset.h"
#include "sliderquant/pipeline/recipe.h"
#include "sliderquant/pipeline/session.h"
#include "sliderquant/pipeline/window_trainer.h"
#include "sliderquant/pipeline/windows.h"
#include "sliderquant/quant/learnable.h"
#include "sliderquant/quant/rtn.h"
#include "sliderquant/transform/smooth.h"
#include "test_util.h"

using namespace sq;
using sq::testing::error_of;
using sq::testing::seeded_randn;

namespace {

std::string sched(int64_t L, int64_t fill, int64_t size, int64_t stride) {
  return format_window_schedule(window_schedule(L, {fill, size, stride}));
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

// ---- window schedule ------------------------------------------------------------------------

TEST(WindowSchedule, Llama2With32LayersGivesTheOfficial33Windows) {
  const std::string want =
      "0-0,0-1,0-2,0-3,"
      "3-4,4-5,5-6,6-7,7-8,8-9,9-10,10-11,11-12,12-13,13-14,14-15,15-16,16-17,17-18,18-19,19-20,20-21,21-22,"
      "22-23,23-24,24-25,25-26,26-27,27-28,"
      "28-31,29-31,30-31,31-31";
  std::vector<LayerWindow> w = window_schedule(32, {});
  EXPECT_EQ(w.size(), 33u);
  EXPECT_EQ(format_window_schedule(w), want);
  EXPECT_EQ(window_advance(w, 0), 0);  // expanding windows keep layer 0
  EXPECT_EQ(window_advance(w, 3), 3);  // [0..3] -> [3,4]: layers 0-2 leave
  EXPECT_EQ(window_advance(w, 4), 1);
  EXPECT_EQ(window_advance(w, 28), 1);  // [27,28] -> [28..31]
  EXPECT_EQ(window_advance(w, 32), 0);
}

TEST(WindowSchedule, SmallModelsAndOtherShapes) {
  EXPECT_EQ(sched(5, 4, 2, 1), "0-0,0-1,0-2,0-3,1-4,2-4,3-4,4-4");  // L < 2F: no middle window
  EXPECT_EQ(sched(8, 4, 2, 1), "0-0,0-1,0-2,0-3,3-4,4-7,5-7,6-7,7-7");
  EXPECT_EQ(sched(2, 4, 2, 1), "0-0,0-1,0-1,1-1");  // the fill size is capped at L
  EXPECT_EQ(sched(1, 4, 2, 1), "0-0,0-0");
  EXPECT_EQ(sched(6, 0, 2, 1), "0-1,1-2,2-3,3-4,4-5");  // no fill: plain fixed windows
  EXPECT_EQ(sched(6, 0, 3, 2), "0-2,2-4,4-5");
  EXPECT_EQ(sched(12, 4, 4, 2), "0-0,0-1,0-2,0-3,2-5,4-7,6-9,8-11,9-11,10-11,11-11");
  EXPECT_TRUE(contains(error_of([] { window_schedule(8, {4, 2, 3}); }), "stride"));
  EXPECT_TRUE(contains(error_of([] { window_schedule(0, {}); }), "0 layers"));
}

TEST(WindowSchedule, ExplicitSchedulesAndTheirErrors) {
  std::vector<LayerWindow> w = parse_window_schedule("0,0-1,1-3,3", 4);
  ASSERT_EQ(w.size(), 4u);
  EXPECT_EQ(format_window_schedule(w), "0-0,0-1,1-3,3-3");
  EXPECT_EQ(window_advance(w, 1), 1);
  struct Bad {
    const char* spec;
    const char* says;
  };
  for (Bad b : {Bad{"1-3", "start at layer 0"}, Bad{"0-1,3-3", "skips layers after 1"},
                Bad{"0-1,0-9", "outside layers 0-3"}, Bad{"0-x", "not a layer"}, Bad{"0-3,", "ends with a comma"},
                Bad{"0-1,2-1", "empty or outside"}, Bad{"0-2,1-2,0-3", "starts before the previous"},
                Bad{"0-1,1-2", "must end at layer 3"}, Bad{"", "empty"}}) {
    std::string e = error_of([&] { parse_window_schedule(b.spec, 4); });
    EXPECT_TRUE(contains(e, b.says)) << b.spec << ": " << e;
  }
}

// ---- learnable quantizers -------------------------------------------------------------------

TEST(LearnableClipping, LargeInitIsMinMaxRtnAndLoraStartsAtZero) {
  at::Tensor W = seeded_randn({16, 64}, 1);
  for (const char* fs : {"w4", "w3g16", "w2"}) {
    QFormat f = QFormat::parse(fs);
    LwcQuantizer q(f, 16, 64, 30.0, c10::Device(c10::kCPU));  // sigmoid(30) == 1 in float32
    QTensor a = q.quantize(W), b = rtn_quantize(W, f);
    EXPECT_TRUE(at::equal(a.codes, b.codes)) << fs;
    EXPECT_TRUE(at::equal(a.scales, b.scales)) << fs;
    EXPECT_TRUE(at::equal(a.zeros, b.zeros)) << fs;
    // LoRA at zero: the merged weight is the master weight, so the result is unchanged.
    LoraDelta lora(16, 64, 4, 7, c10::Device(c10::kCPU));
    EXPECT_TRUE(at::equal(lora.delta(), at::zeros({16, 64}))) << fs;
    EXPECT_TRUE(at::equal(q.quantize(W + lora.delta()).codes, b.codes)) << fs;
    EXPECT_LE(lora.A.abs().max().item<double>(), 1.0 / 8.0);  // U(-1/sqrt(in), 1/sqrt(in))
    EXPECT_GT(lora.A.abs().max().item<double>(), 0.05);
  }
}

TEST(LearnableClipping, InitialValueClipsBySigmoidAndFakeQuantEqualsHardened) {
  at::Tensor W = seeded_randn({8, 32}, 2);
  QFormat f = QFormat::parse("w3g16");
  LwcQuantizer q(f, 8, 32, 4.0, c10::Device(c10::kCPU));
  // The formula by hand: range [sigmoid(4) min, sigmoid(4) max] per group.
  at::Tensor Wg = W.reshape({16, 16});
  const double sg = 1.0 / (1.0 + std::exp(-4.0));
  at::Tensor hi = Wg.amax({1}, true) * sg, lo = Wg.amin({1}, true) * sg;
  at::Tensor s = round_up_fp16((hi - lo) / 7.0), z = at::round(-lo / s).clamp(0, 7);
  at::Tensor want = ((at::round(Wg / s) + z).clamp(0, 7) - z) * s;
  EXPECT_LT((q.quantize(W).dequantize() - want.reshape({8, 32})).abs().max().item<double>(), 1e-6);
  // After training moves the logits, the fake-quantized weight is still exactly the hardened one.
  {
    at::NoGradGuard ng;
    q.gamma().add_(seeded_randn({8, 2}, 3));
    q.beta().add_(seeded_randn({8, 2}, 4));
  }
  EXPECT_TRUE(at::allclose(q.fake_quant(W).detach(), q.quantize(W).dequantize(), 0, 1e-6));
  // Partial rate: the first half of the columns quantized, the rest passed through.
  at::Tensor half = q.fake_quant(W, 0.5).detach();
  EXPECT_TRUE(at::equal(half.narrow(1, 16, 16), W.narrow(1, 16, 16)));
  EXPECT_TRUE(at::equal(half.narrow(1, 0, 16), q.fake_quant(W).detach().narrow(1, 0, 16)));
  EXPECT_EQ(partial_count(0.5, 7), 4);
  EXPECT_TRUE(contains(error_of([] { partial_count(0.0, 4); }), "outside (0, 1]"));
}

TEST(LearnableClipping, GradientsReachClippingAndLora) {
  at::Tensor W = seeded_randn({8, 32}, 5);
  LwcQuantizer q(QFormat::parse("w2"), 8, 32, 4.0, c10::Device(c10::kCPU));
  LoraDelta lora(8, 32, 4, 1, c10::Device(c10::kCPU));
  at::Tensor loss = (q.fake_quant(W + lora.delta()) - W).pow(2).sum();
  loss.backward();
  for (const at::Tensor& g : {q.gamma().grad(), q.beta().grad(), lora.B.grad()}) {
    ASSERT_TRUE(g.defined());
    EXPECT_TRUE(g.isfinite().all().item<bool>());
    EXPECT_GT(g.abs().sum().item<double>(), 0);
  }
  EXPECT_TRUE(at::equal(lora.A.grad(), at::zeros_like(lora.A)));  // B = 0 blocks A's gradient at the start
}

TEST(ActivationQuant, PerTokenAsymmetricWithPartialRate) {
  at::Tensor x = seeded_randn({2, 5, 32}, 6) * 3;
  EXPECT_TRUE(at::equal(fake_quant_per_token(x, 16), x));
  at::Tensor q8 = fake_quant_per_token(x, 8);
  at::Tensor step = (x.amax(-1, true) - x.amin(-1, true)) / 255.0;
  EXPECT_TRUE(((q8 - x).abs() <= step * 0.5 + 1e-5).all().item<bool>());
  at::Tensor q4 = fake_quant_per_token(x, 4);
  EXPECT_LE(std::get<0>(at::_unique(q4[0][0])).numel(), 16);  // at most 2^4 levels per token
  at::Tensor part = fake_quant_per_token(x, 4, 0.25);
  EXPECT_TRUE(at::equal(part.narrow(-1, 8, 24), x.narrow(-1, 8, 24)));
  // Straight-through: the gradient of sum(q(x)) w.r.t. x is 1 inside the range.
  at::Tensor xg = x.clone().requires_grad_(true);
  fake_quant_per_token(xg, 4).sum().backward();
  EXPECT_TRUE(xg.grad().isfinite().all().item<bool>());
  EXPECT_GT(xg.grad().abs().sum().item<double>(), 0);
  EXPECT_TRUE(contains(error_of([&] { fake_quant_per_token(x, 1); }), "2..8"));
}

// ---- equivalent scales ----------------------------------------------------------------------

// Random positive scales for every pair keep each family's logits (GQA, biases, q/k norms).
TEST(EquivalentScales, EveryFamilyKeepsLogits) {
  for (const std::string fam : {"llama", "mistral", "qwen2", "qwen3"}) {
    std::string d = sq::testing::fresh_path("let_" + fam, true);
    ModelConfig c = synthetic_config(fam, "tiny");
    SyntheticOptions so;
    so.seed = 3;
    write_synthetic_model(d, c, so);
    Model m = load_model(d);
    at::Tensor ids = (at::arange(0, 24, at::kLong) * 5 + 1).remainder(c.vocab_size).view({1, 24});
    at::Tensor want = Runner(m, {}).logits(ids);
    uint64_t seed = 10;
    for (Block& b : m.blocks) {
      LetScales s = let_identity(c, true, true, true, true, true, c10::Device(c10::kCPU));
      for (at::Tensor* t : {&s.qkv, &s.gate_up, &s.v_o, &s.up_down, &s.q_k})
        *t = seeded_randn(t->sizes(), seed++).mul(0.5).exp();
      BlockTensors t = apply_let(block_tensors(b, c10::Device(c10::kCPU)), s, c);
      b.attn_norm = t.attn_norm, b.mlp_norm = t.mlp_norm, b.q_norm = t.q_norm, b.k_norm = t.k_norm;
      for (size_t j = 0; j < b.slots.size(); ++j) {
        b.slots[j].weight = t.w[j];
        if (b.slots[j].bias.defined()) b.slots[j].bias = t.b[j];
      }
    }
    at::Tensor got = Runner(m, {}).logits(ids);
    EXPECT_LT((got - want).abs().max().item<double>(), 1e-4) << fam;
    EXPECT_GT((m.blocks[0].linear(Role::Q).weight - load_model(d).blocks[0].linear(Role::Q).weight.to(at::kFloat)).abs().max().item<double>(),
              1e-3)
        << fam << ": the scales changed nothing";
  }
}

// ---- the method end to end on stories260K ---------------------------------------------------

namespace {

const std::string kModel = sq::testing::kStoriesModel;

using Ladder = sq::testing::StoriesLadder;

}  // namespace

// The W2 per-channel run (SliderQuant below GPTQ and RTN, every window stage's loss decreasing)
// is one rung of RatioCli.W2LadderBeatsGptqSliderquantAndAFixedRatio (tests/test_ratio.cpp).

TEST(SliderquantCli, W4A4TrainsRecordsActivationsReloadsAndResumes) {
  Ladder l("slider");
  nlohmann::json recipe = nlohmann::json::parse(read_file(std::string(SQ_SOURCE_DIR) + "/configs/test/stories-sliderquant-w4a4.json"));
  recipe["pipeline"][0]["options"]["epochs"] = 0;
  write_file_atomic(l.dir + "/untrained.json", recipe.dump());
  const double untrained = Ladder::ppl(l.run(l.dir + "/untrained.json", "untrained"));
  const double trained = Ladder::ppl(l.run("stories-sliderquant-w4a4", "w4a4"));
  std::printf("stories260K W4A4 on its own samples: untrained %.3f, sliderquant %.3f\n", untrained, trained);
  EXPECT_LT(trained, untrained);
  auto qc = nlohmann::json::parse(read_file(l.dir + "/w4a4/quantization_config.json"));
  EXPECT_EQ(qc["activations"]["bits"], 4);
  EXPECT_EQ(qc["activations"]["attn_qkv_bits"], 4);
  // The written model (rotated, scales merged, activation quantizers) evaluates the same.
  sq::testing::CliResult e = sq::testing::run_cli("eval " + l.dir + "/w4a4 --ppl " + l.dir +
                                                  "/eval.txt --seqlen 512 -q --json " + l.dir + "/re.json");
  ASSERT_EQ(e.code, 0) << e.out;
  EXPECT_NEAR(Ladder::ppl(nlohmann::json::parse(read_file(l.dir + "/re.json"))), trained, 1e-5 * trained);
  // A run killed after 5 window stages resumes from its work directory to the same bytes.
  const std::string work = " --work " + l.dir + "/work --keep-work";
  sq::testing::CliResult killed = sq::testing::run_cli(
      "quantize " + kModel + " --recipe stories-sliderquant-w4a4 --out " + l.dir + "/resumed --calib " + l.dir +
      "/calib.txt -q" + work, "SQ_TEST_STOP_AFTER_WINDOWS=5");
  EXPECT_NE(killed.code, 0);
  EXPECT_TRUE(contains(killed.out, "stopped after 5")) << killed.out;
  EXPECT_FALSE(path_exists(l.dir + "/resumed"));
  sq::testing::CliResult resumed = sq::testing::run_cli("quantize " + kModel + " --recipe stories-sliderquant-w4a4 --out " +
                                                        l.dir + "/resumed --calib " + l.dir + "/calib.txt" + work);
  ASSERT_EQ(resumed.code, 0) << resumed.out;
  EXPECT_TRUE(contains(resumed.out, "5 window stage(s) already trained")) << resumed.out;
  EXPECT_EQ(sha256_file(l.dir + "/resumed/model.safetensors"), sha256_file(l.dir + "/w4a4/model.safetensors"));
}

// ---- the window driver with a toy student ---------------------------------------------------

namespace {

// One learnable scalar per layer multiplies the down projection by (1 + p); p starts at
// 0.5, so the student differs from the full-precision teacher until it learns p = 0.
class ToyStudent : public WindowStudent {
 public:
  explicit ToyStudent(Model& m) : m_(m) {
    for (size_t l = 0; l < m.blocks.size(); ++l) p_.push_back(at::full({1}, 0.5).requires_grad_(true));
  }
  void focus(int64_t first, int64_t last) override { focused.push_back(std::to_string(first) + "-" + std::to_string(last)); }
  std::vector<ParamGroup> param_groups(int64_t first, int64_t last) override {
    ParamGroup g{"p", {}, 0.05};
    for (int64_t l = first; l <= last; ++l) g.params.push_back(p_[size_t(l)]);
    return {g};
  }
  BlockWeights block(int64_t l, double rate) override {
    rates.push_back(rate);
    BlockWeights w = fuse_block_tensors(block_tensors(m_.blocks[size_t(l)], c10::Device(c10::kCPU)), at::kFloat, m_.config);
    w.w_down = w.w_down * (1 + p_[size_t(l)]);
    return w;
  }
  NamedTensors state() override {
    NamedTensors ts;
    for (size_t l = 0; l < p_.size(); ++l) ts.emplace_back("p" + std::to_string(l), p_[l].detach().clone());
    return ts;
  }
  void load_state(const SafetensorsFile& f) override {
    at::NoGradGuard ng;
    for (size_t l = 0; l < p_.size(); ++l) p_[l].copy_(f.tensor("p" + std::to_string(l)));
  }
  double p(size_t l) const { return p_[l].item<double>(); }
  std::vector<std::string> focused;
  std::vector<double> rates;

 private:
  Model& m_;
  std::vector<at::Tensor> p_;
};

}  // namespace

TEST(WindowTrainer, StageOrdersLossesAndLearning) {
  Model m = load_model(kModel);
  Recipe r = parse_recipe(R"({"format": "w4", "pipeline": [{"pass": "rtn"}]})", "t");
  std::vector<int64_t> toks;
  for (int64_t i = 0; i < 4000; ++i) toks.push_back((i * 7919 + i / 13) % m.config.vocab_size);
  CalibrationSet cs = make_calibration_set(toks, 6, 32, 0);
  for (bool per_window : {false, true}) {
    Session s(m, r);
    s.calib = &cs;
    ToyStudent st(m);
    WindowTrainOptions o;
    o.windows = parse_window_schedule("0-1,1-2,2-4,4", 5);
    o.rates = {0.5, 1.0};
    o.stages_per_window = per_window;
    o.epochs = 3;
    o.batch = 2;
    std::vector<WindowLog> logs = train_windows(s, st, o);
    ASSERT_EQ(logs.size(), 8u);
    std::string order;
    for (const WindowLog& l : logs) order += std::to_string(l.stage) + ":" + std::to_string(l.window) + " ";
    EXPECT_EQ(order, per_window ? "0:0 1:0 0:1 1:1 0:2 1:2 0:3 1:3 " : "0:0 0:1 0:2 0:3 1:0 1:1 1:2 1:3 ");
    for (const WindowLog& l : logs) EXPECT_LT(l.last_epoch_loss, l.first_epoch_loss) << order;
    for (size_t l = 0; l < 5; ++l) EXPECT_LT(std::abs(st.p(l)), 0.5) << "layer " << l << " did not learn";
    EXPECT_EQ(s.metrics["windows window seconds"].size(), 8u);
  }
}

// --autocast: the student's parameters stay float32 (and so do their gradients and Adam's
// state), the block forwards run their matrix products in bfloat16 (CPU autocast here, CUDA
// autocast on a GPU), and the window still learns; the trained values differ from a float32
// run by bfloat16 rounding only.
TEST(WindowTrainer, AutocastKeepsFloat32ParametersAndLearns) {
  {
    AutocastGuard on(true, c10::Device(c10::kCPU));
    EXPECT_EQ(at::matmul(at::ones({2, 3}), at::ones({3, 2})).scalar_type(), at::kBFloat16);
  }
  EXPECT_EQ(at::matmul(at::ones({2, 3}), at::ones({3, 2})).scalar_type(), at::kFloat);  // restored

  Model m = load_model(kModel);
  Recipe r = parse_recipe(R"({"format": "w4", "pipeline": [{"pass": "rtn"}]})", "t");
  std::vector<int64_t> toks;
  for (int64_t i = 0; i < 4000; ++i) toks.push_back((i * 7919 + i / 13) % m.config.vocab_size);
  CalibrationSet cs = make_calibration_set(toks, 6, 32, 0);
  std::vector<double> learned[2];
  for (bool autocast : {false, true}) {
    Session s(m, r);
    s.calib = &cs;
    s.train_autocast = autocast;
    EXPECT_EQ(s.train_dtype(), at::kFloat);
    ToyStudent st(m);
    WindowTrainOptions o;
    o.windows = parse_window_schedule("0-1,2-4", 5);
    o.rates = {1.0};
    o.epochs = 3;
    o.batch = 2;
    std::vector<WindowLog> logs = train_windows(s, st, o);
    for (const WindowLog& l : logs) {
      EXPECT_TRUE(std::isfinite(l.last_epoch_loss));
      EXPECT_LT(l.last_epoch_loss, l.first_epoch_loss) << "autocast " << autocast;
    }
    for (size_t l = 0; l < 5; ++l) {
      EXPECT_LT(std::abs(st.p(l)), 0.5) << "layer " << l << " did not learn (autocast " << autocast << ")";
      learned[autocast].push_back(st.p(l));
    }
    for (const ParamGroup& g : st.param_groups(0, 4))
      for (const at::Tensor& p : g.params) EXPECT_EQ(p.scalar_type(), at::kFloat);
  }
  double diff = 0;
  for (size_t l = 0; l < 5; ++l) diff = std::max(diff, std::abs(learned[0][l] - learned[1][l]));
  EXPECT_GT(diff, 0.0);   // the bfloat16 products changed something
  EXPECT_LT(diff, 0.05);  // and only that
}
