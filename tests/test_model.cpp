// Tests of the model layer: config parsing per family, loading checks, the forward pass
// against stories260K's golden logits, GQA/RoPE/sliding-window properties on synthetic
// checkpoints of every family, and the block runner's streaming mode.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/io/safetensors.h"
#include "sliderquant/model/arch.h"
#include "sliderquant/model/forward.h"
#include "sliderquant/model/model.h"
#include "sliderquant/model/synthetic.h"

using namespace sq;

namespace {

const std::string kStories = std::string(SQ_FIXTURES_DIR) + "/stories260K";

std::vector<int64_t> prompt_ids() {
  auto j = nlohmann::json::parse(read_file(kStories + "/reference/prompt1.json"));
  return j["prompt_ids"].get<std::vector<int64_t>>();
}

at::Tensor golden_logits() {
  std::string raw = read_file(kStories + "/reference/prompt1.logits.f32");
  EXPECT_EQ(raw.size(), size_t(42 * 512 * 4));
  return at::from_blob(raw.data(), {42, 512}, at::kFloat).clone();
}

at::Tensor ids_tensor(const std::vector<int64_t>& ids) {
  return at::tensor(at::ArrayRef<int64_t>(ids)).view({1, int64_t(ids.size())});
}

std::string tmp_dir(const std::string& name) {
  std::string d = ::testing::TempDir() + "sq_model_" + name;
  std::string cmd = "rm -rf '" + d + "' && mkdir -p '" + d + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  return d;
}

std::string base_config(const std::string& arch, const std::string& extra = "") {
  return R"({"architectures": [")" + arch + R"("], "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 100)" +
         extra + "}";
}

SyntheticOptions seeded(uint64_t seed) {
  SyntheticOptions o;
  o.seed = seed;
  return o;
}

}  // namespace

// ---- config.json -------------------------------------------------------------------------

TEST(ModelConfig, FamiliesAndQuirks) {
  ModelConfig l = parse_model_config(base_config("LlamaForCausalLM"), "c.json");
  EXPECT_EQ(l.family, "llama");
  EXPECT_EQ(l.head_dim, 16);
  EXPECT_FALSE(l.qkv_bias);
  EXPECT_FALSE(l.qk_norm);
  ModelConfig lb = parse_model_config(base_config("LlamaForCausalLM", R"(, "attention_bias": true)"), "c.json");
  EXPECT_TRUE(lb.qkv_bias && lb.o_bias);
  ModelConfig q2 = parse_model_config(base_config("Qwen2ForCausalLM", R"(, "tie_word_embeddings": true)"), "c.json");
  EXPECT_EQ(q2.family, "qwen2");
  EXPECT_TRUE(q2.qkv_bias);
  EXPECT_FALSE(q2.o_bias);
  EXPECT_TRUE(q2.tie_word_embeddings);
  ModelConfig q3 = parse_model_config(base_config("Qwen3ForCausalLM", R"(, "head_dim": 32)"), "c.json");
  EXPECT_TRUE(q3.qk_norm);
  EXPECT_EQ(q3.head_dim, 32);
  EXPECT_EQ(q3.q_dim(), 128);
  ModelConfig m = parse_model_config(base_config("MistralForCausalLM", R"(, "sliding_window": 4096)"), "c.json");
  EXPECT_EQ(m.family, "mistral");
  EXPECT_EQ(m.sliding_window, 4096);
  ModelConfig m2 = parse_model_config(base_config("MistralForCausalLM", R"(, "sliding_window": null)"), "c.json");
  EXPECT_EQ(m2.sliding_window, 0);
  ModelConfig l3 = parse_model_config(base_config("LlamaForCausalLM", R"(, "eos_token_id": [128001, 128009],
      "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
      "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})"), "c.json");
  ASSERT_TRUE(l3.rope_scaling.has_value());
  EXPECT_EQ(l3.rope_scaling->type, "llama3");
  EXPECT_EQ(l3.eos_token_ids, (std::vector<int64_t>{128001, 128009}));
}

TEST(ModelConfig, ErrorsNameTheProblem) {
  auto msg = [](const std::string& text) {
    try {
      parse_model_config(text, "/m/config.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  std::string e = msg(base_config("GPTNeoXForCausalLM"));
  EXPECT_NE(e.find("GPTNeoXForCausalLM"), std::string::npos) << e;
  EXPECT_NE(e.find("LlamaForCausalLM"), std::string::npos) << e;  // lists the supported ones
  EXPECT_NE(e.find("Qwen3ForCausalLM"), std::string::npos) << e;
  e = msg(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 4, "vocab_size": 10})");
  EXPECT_NE(e.find("intermediate_size"), std::string::npos) << e;
  EXPECT_NE(e.find("/m/config.json"), std::string::npos) << e;
  e = msg(R"({"hidden_size": 64})");
  EXPECT_NE(e.find("architectures"), std::string::npos) << e;
  e = msg("{not json");
  EXPECT_NE(e.find("invalid JSON"), std::string::npos) << e;
  e = msg(base_config("LlamaForCausalLM", R"(, "rope_scaling": {"rope_type": "yarn", "factor": 4.0})"));
  EXPECT_NE(e.find("yarn"), std::string::npos) << e;
  e = msg(base_config("Qwen2ForCausalLM", R"(, "use_sliding_window": true)"));
  EXPECT_NE(e.find("use_sliding_window"), std::string::npos) << e;
  e = msg(base_config("LlamaForCausalLM", R"(, "num_key_value_heads": 3)"));
  EXPECT_NE(e.find("multiple"), std::string::npos) << e;
  e = msg(base_config("LlamaForCausalLM", R"(, "hidden_act": "gelu")"));
  EXPECT_NE(e.find("gelu"), std::string::npos) << e;
}

TEST(ModelConfig, RoundTripsThroughJson) {
  for (const char* p : {"tiny", "llama3-8b", "mistral-7b", "qwen2.5-7b", "qwen3-8b"}) {
    ModelConfig c = synthetic_config("", p);
    ModelConfig r = parse_model_config(model_config_json(c), p);
    EXPECT_EQ(r.family, c.family) << p;
    EXPECT_EQ(r.hidden_size, c.hidden_size) << p;
    EXPECT_EQ(r.head_dim, c.head_dim) << p;
    EXPECT_EQ(r.num_kv_heads, c.num_kv_heads) << p;
    EXPECT_EQ(r.qk_norm, c.qk_norm) << p;
    EXPECT_EQ(r.qkv_bias, c.qkv_bias) << p;
    EXPECT_EQ(r.sliding_window, c.sliding_window) << p;
    EXPECT_EQ(r.rope_scaling.has_value(), c.rope_scaling.has_value()) << p;
  }
  // Llama-2-7B: 6.74e9 parameters.
  EXPECT_EQ(synthetic_config("llama", "llama2-7b").param_count(), 6738415616LL);
}

// Llama-3 RoPE scaling against a slow float64 transcription of the published formula.
TEST(ModelRope, Llama3ScalingMatchesReference) {
  ModelConfig c = synthetic_config("llama", "llama3-8b");
  at::Tensor inv = rope_inv_freq(c);
  ASSERT_EQ(inv.size(0), 64);
  for (int64_t i = 0; i < 64; ++i) {
    double f = 1.0 / std::pow(500000.0, double(2 * i) / 128.0);
    double wl = 2 * M_PI / f, lo = 8192.0 / 1.0, hi = 8192.0 / 4.0, want;
    if (wl < hi) want = f;
    else if (wl > lo) want = f / 8.0;
    else {
      double s = (8192.0 / wl - 1.0) / (4.0 - 1.0);
      want = (1 - s) * f / 8.0 + s * f;
    }
    EXPECT_NEAR(inv[i].item<float>(), want, 1e-6 * std::max(want, 1e-3)) << i;
  }
}

// ---- loading -----------------------------------------------------------------------------

TEST(ModelLoad, StoriesShapesAndTiedHead) {
  Model m = load_model(kStories + "/hf");
  EXPECT_EQ(m.config.num_layers, 5);
  EXPECT_EQ(m.config.num_kv_heads, 4);
  EXPECT_TRUE(m.config.tie_word_embeddings);
  EXPECT_EQ(m.lm_head.weight.data_ptr(), m.embed.data_ptr());
  EXPECT_EQ(m.config.param_count(), 260032);
  EXPECT_EQ(m.blocks[2].linear(Role::K).weight.sizes(), (at::IntArrayRef{32, 64}));
}

TEST(ModelLoad, MismatchedCheckpointsAreRefused) {
  std::string d = tmp_dir("mismatch");
  ModelConfig c = synthetic_config("llama", "tiny");
  write_synthetic_model(d, c, {});
  EXPECT_NO_THROW(load_model(d));
  // config says 3 layers; the weights have 2
  ModelConfig c3 = c;
  c3.num_layers = 3;
  write_file_atomic(d + "/config.json", model_config_json(c3));
  try {
    load_model(d);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.2."), std::string::npos) << e.what();
  }
  // config says hidden 32 (shapes disagree)
  ModelConfig cw = c;
  cw.intermediate_size = 96;
  write_file_atomic(d + "/config.json", model_config_json(cw));
  try {
    load_model(d);
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("shape"), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_model(d + "/nope"), Error);
}

TEST(ModelLoad, NanWeightsAreReported) {
  std::string d = tmp_dir("nan");
  ModelConfig c = synthetic_config("llama", "tiny");
  write_synthetic_model(d, c, {});
  Model m = load_model(d);
  at::Tensor w = m.blocks[1].linear(Role::Up).weight.clone();
  w[3][5] = NAN;
  m.blocks[1].linear(Role::Up).weight = w;
  try {
    Runner r(m, {});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("layer 1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("NaN"), std::string::npos) << e.what();
  }
}

// ---- the forward pass against golden logits --------------------------------------------

TEST(ModelForward, Stories260KMatchesGoldenLogitsFloat32) {
  Model m = load_model(kStories + "/hf");
  Runner r(m, {});
  at::Tensor logits = r.logits(ids_tensor(prompt_ids())).squeeze(0);
  at::Tensor gold = golden_logits();
  double err = (logits - gold).abs().max().item<double>();
  EXPECT_LT(err, 1e-4) << "max abs logit error " << err;
}

TEST(ModelForward, Stories260KBf16CheckpointAgrees) {
  at::Tensor gold = golden_logits();
  Model m = load_model(kStories + "/hf_bf16");
  // bf16 weights computed in float32: only the weight rounding differs.
  {
    Runner r(m, {});
    double err = (r.logits(ids_tensor(prompt_ids())).squeeze(0) - gold).abs().max().item<double>();
    EXPECT_LT(err, 0.2) << err;  // measured 0.118 (logits span about +-15)
  }
  // bf16 weights and bf16 activations: bf16 rounding at every op.
  {
    RunnerOptions o;
    o.dtype = at::kBFloat16;
    Runner r(m, o);
    at::Tensor logits = r.logits(ids_tensor(prompt_ids())).squeeze(0).to(at::kFloat);
    double err = (logits - gold).abs().max().item<double>();
    EXPECT_LT(err, 0.5) << "bf16 " << err;  // measured 0.288
    // and the greedy prediction agrees on nearly every position
    double agree = (logits.argmax(-1) == gold.argmax(-1)).to(at::kFloat).mean().item<double>();
    EXPECT_GT(agree, 0.9) << agree;
  }
}

TEST(ModelForward, StreamingRunnerEqualsResident) {
  Model m = load_model(kStories + "/hf");
  Runner res(m, {});
  RunnerOptions o;
  o.resident_budget = 0;
  Runner str(m, o);
  EXPECT_TRUE(res.resident());
  EXPECT_FALSE(str.resident());
  at::Tensor ids = ids_tensor(prompt_ids());
  EXPECT_TRUE(at::equal(res.logits(ids), str.logits(ids)));
}

// A grouped-query model equals the multi-head model whose K/V heads are repeated
// explicitly (HF's repeat_kv: KV head j serves query heads j*rep .. j*rep+rep-1).
TEST(ModelForward, GqaEqualsExplicitlyRepeatedHeads) {
  std::string d = tmp_dir("gqa");
  ModelConfig c = synthetic_config("llama", "tiny");  // 4 heads, 2 KV heads
  write_synthetic_model(d, c, {});
  Model gqa = load_model(d);
  Model mha = load_model(d);
  mha.config.num_kv_heads = 4;
  const int64_t hd = c.head_dim;
  for (auto& b : mha.blocks) {
    for (Linear* l : {&b.linear(Role::K), &b.linear(Role::V)}) {
      at::Tensor w = l->weight.to(at::kFloat).view({2, 1, hd, c.hidden_size});
      l->weight = w.expand({2, 2, hd, c.hidden_size}).reshape({4 * hd, c.hidden_size});
    }
  }
  at::Tensor ids = at::randint(0, c.vocab_size, {2, 17}, at::kLong);
  Runner a(gqa, {}), b(mha, {});
  EXPECT_LT((a.logits(ids) - b.logits(ids)).abs().max().item<double>(), 1e-5);
}

// Mistral's window: positions < window see exactly the full-attention logits; later ones differ.
TEST(ModelForward, SlidingWindowMasksOldTokens) {
  std::string d = tmp_dir("swa");
  ModelConfig c = synthetic_config("mistral", "tiny");
  c.sliding_window = 0;
  write_synthetic_model(d, c, seeded(7));
  Model full = load_model(d);
  Model win = load_model(d);
  win.config.sliding_window = 8;
  // Scale weights up so attention is far from uniform and the mask shows.
  at::Tensor ids = at::randint(0, c.vocab_size, {1, 24}, at::kLong);
  Runner a(full, {}), b(win, {});
  at::Tensor la = a.logits(ids), lb = b.logits(ids);
  EXPECT_LT((la.narrow(1, 0, 8) - lb.narrow(1, 0, 8)).abs().max().item<double>(), 1e-6);
  EXPECT_GT((la.narrow(1, 8, 16) - lb.narrow(1, 8, 16)).abs().max().item<double>(), 1e-7);
}

// Every family: a synthetic checkpoint loads, runs, gives a finite deterministic loss near
// log(vocab) (random weights), identical across two loads; sharded output loads too.
TEST(ModelForward, EveryFamilyRunsSynthetic) {
  for (const std::string fam : {"llama", "mistral", "qwen2", "qwen3"}) {
    std::string d = tmp_dir("fam_" + fam);
    ModelConfig c = synthetic_config(fam, "tiny");
    SyntheticOptions o;
    o.seed = 3;
    o.max_shard_bytes = 60000;  // force several shards
    write_synthetic_model(d, c, o);
    EXPECT_TRUE(path_exists(d + "/model.safetensors.index.json")) << fam;
    Model m = load_model(d);
    EXPECT_EQ(m.config.family, fam);
    EXPECT_EQ(m.blocks[0].linear(Role::Q).bias.defined(), fam == "qwen2") << fam;
    EXPECT_EQ(m.blocks[0].q_norm.defined(), fam == "qwen3") << fam;
    at::Tensor ids = at::arange(0, 40, at::kLong).remainder(c.vocab_size).view({1, 40});
    Runner r(m, {});
    at::Tensor logits = r.logits(ids);
    EXPECT_EQ(logits.sizes(), (at::IntArrayRef{1, 40, c.vocab_size})) << fam;
    EXPECT_TRUE(logits.isfinite().all().item<bool>()) << fam;
    at::Tensor lp = at::log_softmax(logits.squeeze(0).narrow(0, 0, 39), -1);
    double loss = -lp.gather(1, ids.squeeze(0).narrow(0, 1, 39).unsqueeze(1)).mean().item<double>();
    EXPECT_NEAR(loss, std::log(double(c.vocab_size)), 0.5) << fam;
    Model m2 = load_model(d);
    Runner r2(m2, {});
    EXPECT_TRUE(at::equal(logits, r2.logits(ids))) << fam;
  }
}

TEST(ModelSynthetic, SeededAndReproducible) {
  std::string a = tmp_dir("seed_a"), b = tmp_dir("seed_b"), c = tmp_dir("seed_c");
  ModelConfig cfg = synthetic_config("qwen3", "tiny");
  write_synthetic_model(a, cfg, seeded(5));
  write_synthetic_model(b, cfg, seeded(5));
  write_synthetic_model(c, cfg, seeded(6));
  EXPECT_EQ(sha256_file(a + "/model.safetensors"), sha256_file(b + "/model.safetensors"));
  EXPECT_NE(sha256_file(a + "/model.safetensors"), sha256_file(c + "/model.safetensors"));
  EXPECT_THROW(synthetic_config("qwen3", "llama2-7b"), Error);
  EXPECT_THROW(synthetic_config("llama", "gpt5"), UsageError);
}
