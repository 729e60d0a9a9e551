// Tests of the transform layer: Hadamard matrices (orthogonality, Sylvester structure,
// seeded random signs, block-diagonal groups), the fast Walsh-Hadamard transform against
// the matrix product, and QuaRot/D²Quant residual rotations that leave the logits of every
// family's synthetic checkpoint and of stories260K (tied embeddings) unchanged.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <string>

#include "sliderquant/core/error.h"
#include "sliderquant/model/forward.h"
#include "sliderquant/model/model.h"
#include "sliderquant/model/synthetic.h"
#include "sliderquant/transform/hadamard.h"
#include "sliderquant/transform/rotation.h"

using namespace sq;

namespace {

const std::string kStoriesHf = std::string(SQ_FIXTURES_DIR) + "/stories260K/hf";

double orth_err(const at::Tensor& q) {
  return (at::matmul(q, q.t()) - at::eye(q.size(0), q.options())).abs().max().item<double>();
}

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

std::string tmp_dir(const std::string& name) {
  std::string d = ::testing::TempDir() + "sq_transform_" + name;
  std::string cmd = "rm -rf '" + d + "' && mkdir -p '" + d + "'";
  EXPECT_EQ(std::system(cmd.c_str()), 0);
  return d;
}

at::Tensor test_ids(int64_t vocab) {
  return (at::arange(0, 40, at::kLong) * 7 + 3).remainder(vocab).view({1, 40});
}

at::Tensor logits_of(const Model& m, const at::Tensor& ids) { return Runner(m, {}).logits(ids); }

template <class Fn>
void expect_throw_with(Fn fn, const std::string& part) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one containing '" << part << "'";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
  }
}

// Fuses, rotates fully and rotates block-diagonally (block 32) fresh copies of DIR's model;
// each keeps the logits within 1e-4 and leaves the mapped master weights untouched.
void expect_rotations_keep_logits(const std::string& dir, const std::string& what) {
  Model base = load_model(dir);
  const at::Tensor ids = test_ids(base.config.vocab_size);
  const at::Tensor want = logits_of(base, ids);

  Model fused = load_model(dir);
  const at::Tensor q_view = fused.blocks[0].linear(Role::Q).weight, q_orig = q_view.clone();
  fuse_norms(fused);
  EXPECT_LT(max_diff(logits_of(fused, ids), want), 1e-4) << what << " fuse_norms";
  EXPECT_TRUE(at::equal(fused.blocks[1].mlp_norm, at::ones({base.config.hidden_size}))) << what;
  EXPECT_TRUE(at::equal(fused.final_norm, at::ones({base.config.hidden_size}))) << what;
  EXPECT_EQ(fused.blocks[0].linear(Role::Q).weight.scalar_type(), at::kFloat) << what;
  EXPECT_LT(max_diff(fused.blocks[0].linear(Role::Q).weight, q_orig.to(at::kFloat) * base.blocks[0].attn_norm.to(at::kFloat)),
            1e-7)
      << what;
  if (base.blocks[0].q_norm.defined()) {  // Qwen3's per-head norms are not fused
    EXPECT_TRUE(at::equal(fused.blocks[0].q_norm, base.blocks[0].q_norm)) << what;
  }
  EXPECT_TRUE(at::equal(q_view, q_orig)) << what << ": the mapped master weight was written";

  for (int64_t block : {int64_t(0), int64_t(32)}) {
    Model rot = load_model(dir);
    rotate_model(rot, block, 1234);
    const std::string tag = what + " block " + std::to_string(block);
    EXPECT_LT(max_diff(logits_of(rot, ids), want), 1e-4) << tag;
    // The rotation did something: the rotated q weight is not the fused one.
    EXPECT_GT(max_diff(rot.blocks[0].linear(Role::Q).weight, fused.blocks[0].linear(Role::Q).weight), 1e-3) << tag;
    EXPECT_GT(max_diff(rot.blocks[0].linear(Role::Down).weight, base.blocks[0].linear(Role::Down).weight.to(at::kFloat)), 1e-3) << tag;
    if (rot.blocks[0].linear(Role::O).bias.defined()) {
      EXPECT_GT(max_diff(rot.blocks[0].linear(Role::O).bias, base.blocks[0].linear(Role::O).bias.to(at::kFloat)), 1e-4) << tag;
    }
    EXPECT_FALSE(rot.config.tie_word_embeddings) << tag;
  }
}

struct FakeOverride : WeightOverride {
  at::Tensor w;
  explicit FakeOverride(at::Tensor t) : w(std::move(t)) {}
  at::Tensor weight() const override { return w; }
  std::string describe() const override { return "fake int4"; }
};

}  // namespace

// ---- Hadamard matrices -------------------------------------------------------------------

TEST(HadamardMatrix, OrthogonalSymmetricSylvester) {
  for (int64_t n = 1; n <= 1024; n *= 2) {
    at::Tensor h = hadamard_matrix(n);
    EXPECT_EQ(h.scalar_type(), at::kFloat);
    EXPECT_LT(orth_err(h), 1e-6) << n;
    EXPECT_TRUE(at::equal(h, h.t())) << n;
    EXPECT_LT(max_diff(h.abs(), at::full({n, n}, 1.0 / std::sqrt(double(n)))), 1e-7) << n;
  }
  at::Tensor h2 = hadamard_matrix(2, at::kDouble) * std::sqrt(2.0);
  EXPECT_TRUE(at::equal(h2, at::tensor({1.0, 1.0, 1.0, -1.0}, at::kDouble).view({2, 2})));
  at::Tensor h8 = hadamard_matrix(8, at::kDouble) * std::sqrt(8.0);  // (-1)^popcount(i & j)
  for (int i = 0; i < 8; ++i) {
    for (int j = 0; j < 8; ++j) EXPECT_EQ(h8[i][j].item<double>(), __builtin_popcount(i & j) % 2 ? -1.0 : 1.0);
  }
  expect_throw_with([] { hadamard_matrix(12); }, "12 is not a power of two");
  expect_throw_with([] { hadamard_matrix(0); }, "not a power of two");
}

TEST(HadamardRandom, OrthogonalSeededSignedRows) {
  for (int64_t n = 2; n <= 1024; n *= 2) {
    at::Tensor q = random_hadamard(n, 7);
    EXPECT_LT(orth_err(q), 1e-6) << n;
    // diag(s)·H: every row is a row of H times ±1.
    at::Tensor ratio = q / hadamard_matrix(n);  // [n, n], constant ±1 along each row
    EXPECT_TRUE(at::equal(ratio.abs(), at::ones({n, n}))) << n;
    EXPECT_TRUE(at::equal(ratio, ratio.select(1, 0).unsqueeze(1).expand({n, n}))) << n;
  }
  EXPECT_TRUE(at::equal(random_hadamard(64, 3), random_hadamard(64, 3)));
  EXPECT_FALSE(at::equal(random_hadamard(64, 3), random_hadamard(64, 4)));
  EXPECT_FALSE(at::equal(random_hadamard(64, 3), hadamard_matrix(64)));
  EXPECT_EQ(random_hadamard(16, 1, at::kDouble).scalar_type(), at::kDouble);
}

TEST(HadamardBlockDiag, OrthogonalBlocksWithOwnSigns) {
  for (int64_t b = 1; b <= 1024; b *= 2) {
    at::Tensor q = block_diag_random_hadamard(1024, b, 11);
    EXPECT_LT(orth_err(q), 1e-6) << b;
    EXPECT_EQ(q.ne(0).sum().item<int64_t>(), 1024 * b) << b;  // only the diagonal blocks
  }
  at::Tensor q = block_diag_random_hadamard(96, 32, 5);  // a non-power-of-two dim
  EXPECT_LT(orth_err(q), 1e-6);
  for (int g = 0; g < 3; ++g) {
    at::Tensor blk = q.narrow(0, 32 * g, 32).narrow(1, 32 * g, 32);
    EXPECT_TRUE(at::equal(blk.abs(), hadamard_matrix(32).abs())) << g;
  }
  at::Tensor b0 = q.narrow(0, 0, 32).narrow(1, 0, 32), b1 = q.narrow(0, 32, 32).narrow(1, 32, 32);
  EXPECT_FALSE(at::equal(b0, b1));  // each block its own signs
  EXPECT_TRUE(at::equal(block_diag_random_hadamard(64, 64, 9), random_hadamard(64, 9)));
  EXPECT_TRUE(at::equal(block_diag_random_hadamard(96, 32, 5), q));
  EXPECT_FALSE(at::equal(block_diag_random_hadamard(96, 32, 6), q));
  // A short last block (100 = 3 x 32 + 4) gets a Hadamard of its own order; blocks of any
  // supported order (48 = 4 x 12, Paley I with q = 11).
  for (auto [dim, block] : {std::pair<int64_t, int64_t>{100, 32}, {576, 128}, {96, 48}, {576, 0}}) {
    if (block == 0) block = dim;
    at::Tensor r = block_diag_random_hadamard(dim, block, 4, at::kDouble);
    EXPECT_LT(orth_err(r), 1e-6) << dim << " " << block;
    const int64_t last = dim % block == 0 ? block : dim % block;
    EXPECT_EQ(r.ne(0).sum().item<int64_t>(), (dim / block) * block * block + (dim % block ? last * last : 0))
        << dim << " " << block;
  }
  expect_throw_with([] { block_diag_random_hadamard(102, 32, 0); }, "last block of 6 has no Hadamard");
  expect_throw_with([] { block_diag_random_hadamard(96, 92, 0); }, "block 92 has no Hadamard");
}

TEST(HadamardFwht, EqualsMatrixProduct) {
  auto gen = at::detail::createCPUGenerator(42);
  for (int64_t n = 1; n <= 512; n *= 2) {
    at::Tensor x = at::randn({3, 5, n}, gen, at::TensorOptions().dtype(at::kDouble));
    at::Tensor y = fwht(x);
    EXPECT_EQ(y.sizes(), x.sizes());
    EXPECT_LT(max_diff(y, at::matmul(x, hadamard_matrix(n, at::kDouble))), 1e-12) << n;
    at::Tensor xf = x.to(at::kFloat);
    EXPECT_LT(max_diff(fwht(xf), at::matmul(xf, hadamard_matrix(n))), 1e-5) << n;
    EXPECT_LT(max_diff(fwht(fwht(x)), x), 1e-12) << n;  // H·H = I
  }
  at::Tensor strided = at::randn({8, 16}, gen, at::TensorOptions().dtype(at::kDouble)).t();  // non-contiguous
  EXPECT_LT(max_diff(fwht(strided), at::matmul(strided, hadamard_matrix(8, at::kDouble))), 1e-12);
  expect_throw_with([] { fwht(at::zeros({2, 12})); }, "12 is not a power of two");
  expect_throw_with([] { fwht(at::zeros({4}, at::kLong)); }, "not floating point");
}

// ---- rotations on models -----------------------------------------------------------------

TEST(TransformRotation, EveryFamilyKeepsLogits) {
  for (const std::string fam : {"llama", "mistral", "qwen2", "qwen3"}) {
    std::string d = tmp_dir("fam_" + fam);
    ModelConfig c = synthetic_config(fam, "tiny");
    ASSERT_EQ(c.hidden_size, 64);
    SyntheticOptions o;
    o.seed = 21;
    write_synthetic_model(d, c, o);
    expect_rotations_keep_logits(d, fam);
  }
}

// Widths that are not powers of two (SmolLM2's 576 = 16 x 36 and its kind): a hidden size of 48
// (4 x 12, Paley I) rotates with one Hadamard-like matrix (block 0) or in blocks of 32 with a
// short last block of 16, and the logits stay.
TEST(TransformRotation, NonPowerOfTwoHiddenKeepsLogits) {
  std::string d = tmp_dir("h48");
  ModelConfig c = synthetic_config("llama", "tiny");
  c.hidden_size = 48;
  c.num_heads = 6;
  c.num_kv_heads = 3;
  c.head_dim = 8;
  write_synthetic_model(d, c, {});
  expect_rotations_keep_logits(d, "llama hidden 48");
}

// Llama with attention_bias and mlp_bias: o and down biases rotate with their weights.
TEST(TransformRotation, OutputBiasesRotate) {
  std::string d = tmp_dir("bias");
  ModelConfig c = synthetic_config("llama", "tiny");
  c.qkv_bias = c.o_bias = c.mlp_bias = true;
  write_synthetic_model(d, c, {});
  Model m = load_model(d);
  ASSERT_TRUE(m.blocks[0].linear(Role::O).bias.defined() && m.blocks[0].linear(Role::Down).bias.defined());
  expect_rotations_keep_logits(d, "llama+bias");
}

TEST(TransformRotation, Stories260KTiedKeepsLogits) {
  Model m = load_model(kStoriesHf);
  ASSERT_TRUE(m.config.tie_word_embeddings);
  expect_rotations_keep_logits(kStoriesHf, "stories260K");
  // Untied by fusion: the embedding does not take the final norm.
  Model f = load_model(kStoriesHf);
  fuse_norms(f);
  EXPECT_FALSE(f.config.tie_word_embeddings);
  EXPECT_TRUE(at::equal(f.embed, m.embed));
  EXPECT_NE(f.lm_head.weight.data_ptr(), f.embed.data_ptr());
}

// A tied head whose final norm is already ones stays tied through fusion and rotation.
TEST(TransformRotation, TiedHeadStaysTiedWhenFinalNormIsOnes) {
  Model m = load_model(kStoriesHf);
  m.final_norm = at::ones({m.config.hidden_size});
  const at::Tensor ids = test_ids(m.config.vocab_size);
  const at::Tensor want = logits_of(m, ids);
  rotate_model(m, 16, 3);
  EXPECT_TRUE(m.config.tie_word_embeddings);
  EXPECT_EQ(m.lm_head.weight.data_ptr(), m.embed.data_ptr());
  EXPECT_LT(max_diff(logits_of(m, ids), want), 1e-4);
}

TEST(TransformRotation, RefusesUnfusedQuantizedAndBadQ) {
  Model m = load_model(kStoriesHf);
  const int64_t H = m.config.hidden_size;
  expect_throw_with([&] { rotate_residual(m, random_hadamard(H, 1)); }, "fuse_norms first");
  fuse_norms(m);
  expect_throw_with([&] { rotate_residual(m, random_hadamard(32, 1)); }, "hidden size is 64");
  expect_throw_with([&] { rotate_residual(m, 2 * random_hadamard(H, 1)); }, "not orthogonal");
  expect_throw_with([&] { rotate_model(m, 58, 1); }, "block 58 has no Hadamard");
  m.blocks[2].linear(Role::V).override_ = std::make_shared<FakeOverride>(m.blocks[2].linear(Role::V).weight);
  expect_throw_with([&] { rotate_residual(m, random_hadamard(H, 1)); }, "blocks.2.attn.v is already quantized");
  expect_throw_with([&] { fuse_norms(m); }, "blocks.2.attn.v is already quantized");
}
