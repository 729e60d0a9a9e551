// Tests of the transform selector statistics: Pearson kurtosis of known distributions,
// robust z-scores by hand, the threshold rule (direction, per-kind thresholds, z scope) and
// the choice on a model whose Gaussian weights carry planted heavy-tailed groups.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "sliderquant/core/error.h"
#include "sliderquant/model/model.h"
#include "sliderquant/transform/selector.h"
#include "test_util.h"

using namespace sq;
using sq::testing::error_of;

namespace {

const at::TensorOptions kF64 = at::TensorOptions().dtype(at::kDouble);
constexpr int64_t kSamples = int64_t(1) << 22;

void expect_near_all(const std::vector<double>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << i;
}

// Student-t with `df` degrees of freedom: Z / sqrt(chi²_df / df).
at::Tensor student_t(at::IntArrayRef shape, int df, at::Generator& gen) {
  at::Tensor chi2 = at::zeros(shape, kF64);
  for (int i = 0; i < df; ++i) chi2 += at::randn(shape, gen, kF64).square();
  return at::randn(shape, gen, kF64) / (chi2 / df).sqrt();
}

constexpr int64_t kBlocks = 6, kHidden = 64, kInter = 128;

// A model of kBlocks blocks with N(0, 0.02²) weights (seeded per linear) and nothing else.
Model gaussian_model(uint64_t seed) {
  Model m;
  m.blocks.assign(kBlocks, Block(dense_layout()));
  auto gen = at::detail::createCPUGenerator(seed);
  for (int64_t i = 0; i < kBlocks; ++i) {
    Block& b = m.blocks[i];
    const std::vector<std::pair<Linear*, std::pair<int64_t, int64_t>>> shapes = {
        {&b.linear(Role::Q), {kHidden, kHidden}},   {&b.linear(Role::K), {kHidden, kHidden}}, {&b.linear(Role::V), {kHidden, kHidden}},
        {&b.linear(Role::O), {kHidden, kHidden}},   {&b.linear(Role::Gate), {kInter, kHidden}}, {&b.linear(Role::Up), {kInter, kHidden}},
        {&b.linear(Role::Down), {kHidden, kInter}}};
    for (const auto& [l, s] : shapes) {
      l->name = "blocks." + std::to_string(i) + ".linear";
      l->weight = at::randn({s.first, s.second}, gen, at::kFloat) * 0.02;
    }
  }
  return m;
}

}  // namespace

// ---- kurtosis --------------------------------------------------------------------------------

TEST(SelectorKurtosis, GaussianLaplaceUniform) {
  auto gen = at::detail::createCPUGenerator(123);
  at::Tensor gauss = at::randn({kSamples}, gen, kF64);
  at::Tensor laplace = at::empty({kSamples}, kF64).exponential_(1.0, gen) -
                       at::empty({kSamples}, kF64).exponential_(1.0, gen);  // E1 - E2 ~ Laplace(0, 1)
  at::Tensor uniform = at::rand({kSamples}, gen, kF64);
  EXPECT_NEAR(kurtosis(gauss), 3.0, 0.05);
  EXPECT_NEAR(kurtosis(laplace), 6.0, 0.2);
  EXPECT_NEAR(kurtosis(uniform), 1.8, 0.02);
  // Shift and scale invariant; any dtype (computed in float64); shape does not matter.
  EXPECT_NEAR(kurtosis(gauss * 0.01 + 5.0), kurtosis(gauss), 1e-9);
  EXPECT_NEAR(kurtosis(uniform.to(at::kFloat).view({1024, -1})), kurtosis(uniform), 1e-5);
  EXPECT_NEAR(kurtosis(uniform.to(at::kBFloat16)), 1.8, 0.05);
}

TEST(SelectorKurtosis, PartsPoolLikeConcatenationAndBadInputsThrow) {
  auto gen = at::detail::createCPUGenerator(5);
  at::Tensor a = at::randn({300, 40}, gen, kF64), b = at::randn({7, 40}, gen, kF64) * 3 + 1;
  at::Tensor c = student_t({100, 40}, 3, gen).t();  // non-contiguous
  EXPECT_NEAR(kurtosis({a, b, c}), kurtosis(at::cat({a.reshape(-1), b.reshape(-1), c.reshape(-1)})), 1e-9);
  // Population moments, by hand: {0, 0, 0, 4}: μ = 1, σ² = 3, E[(x-μ)^4] = (3·1 + 81) / 4 = 21.
  EXPECT_NEAR(kurtosis(at::tensor({0.0, 0.0, 0.0, 4.0}, kF64)), 21.0 / 9.0, 1e-12);
  EXPECT_NE(error_of([] { kurtosis(at::full({10}, 2.0)); }).find("all 10 entries are equal"), std::string::npos);
  EXPECT_NE(error_of([] { kurtosis(at::zeros({0})); }).find("no entries"), std::string::npos);
  EXPECT_NE(error_of([] { kurtosis(at::tensor({1.0, NAN, 2.0})); }).find("not all finite"), std::string::npos);
}

// ---- robust z --------------------------------------------------------------------------------

TEST(SelectorRobustZ, HandComputed) {
  // median 3, |x - 3| = {2, 1, 0, 1, 97} -> MAD 1.
  expect_near_all(robust_z({1, 2, 3, 4, 100}), {-1.349, -0.6745, 0.0, 0.6745, 65.4265}, 1e-12);
  // Even count: median (2 + 3)/2 = 2.5, |x - 2.5| = {1.5, .5, .5, 1.5} -> MAD 1; order kept.
  expect_near_all(robust_z({4, 1, 3, 2}), {1.01175, -1.01175, 0.33725, -0.33725}, 1e-12);
  // MAD 2: median 10, deviations {4, 2, 0, 2, 6} -> 2.
  expect_near_all(robust_z({6, 12, 10, 8, 16}), {-1.349, 0.6745, 0.0, -0.6745, 2.0235}, 1e-12);
  expect_near_all(robust_z({5, 5, 5, 9}), {0, 0, 0, 0}, 0);  // MAD 0 -> zeros
  EXPECT_TRUE(robust_z({}).empty());
  expect_near_all(robust_z({7}), {0}, 0);
  EXPECT_NE(error_of([] { robust_z({1, INFINITY}); }).find("not finite"), std::string::npos);
}

// ---- the threshold rule ----------------------------------------------------------------------

TEST(SelectorRule, ThresholdsDirectionAndScope) {
  using LK = LayerKind;
  using TK = TransformKind;
  // Pooled z of {3, 3.1, 2.9, 3.05, 9, 3, 4}: median 3.05, MAD 0.05.
  const std::vector<double> k = {3.0, 3.1, 2.9, 3.05, 9.0, 3.0, 4.0};
  const std::vector<LK> l = {LK::Attention, LK::Attention, LK::Attention, LK::Mlp, LK::Mlp, LK::Mlp, LK::Attention};
  Selection s = select_transforms(k, l, 3.5, 3.5);
  expect_near_all(s.z, {-0.6745, 0.6745, -2.0235, 0.0, 80.2655, -0.6745, 12.8155}, 1e-9);
  EXPECT_EQ(s.kinds, (std::vector<TK>{TK::Affine, TK::Affine, TK::Affine, TK::Affine, TK::Rotation, TK::Affine,
                                      TK::Rotation}));
  // Separate thresholds: attention needs z > 20 now.
  s = select_transforms(k, l, 20.0, 3.5);
  EXPECT_EQ(s.kinds[6], TK::Affine);
  EXPECT_EQ(s.kinds[4], TK::Rotation);
  // Strict comparison: z == β is not heavy ({0..4}: median 2, MAD 1, z = 0.6745·(x - 2) exactly).
  s = select_transforms({0, 1, 2, 3, 4}, std::vector<LK>(5, LK::Mlp), 0.0, 0.6745);
  EXPECT_EQ(s.z[3], 0.6745);
  EXPECT_EQ(s.kinds, (std::vector<TK>{TK::Affine, TK::Affine, TK::Affine, TK::Affine, TK::Rotation}));
  // The other direction flips every decision.
  SelectorOptions flip;
  flip.heavy_tail = HeavyTail::ToAffine;
  Selection f = select_transforms(k, l, 3.5, 3.5, flip);
  EXPECT_EQ(f.kinds, (std::vector<TK>{TK::Rotation, TK::Rotation, TK::Rotation, TK::Rotation, TK::Affine,
                                      TK::Rotation, TK::Affine}));
  // Per-kind z: attention {3, 3.1, 2.9, 4} (median 3.05, MAD 0.1), MLP {3.05, 9, 3} (median 3.05, MAD 0.05).
  SelectorOptions per;
  per.scope = ZScope::PerKind;
  s = select_transforms(k, l, 3.5, 3.5, per);
  expect_near_all(s.z, {-0.33725, 0.33725, -1.01175, 0.0, 80.2655, -0.6745, 6.40775}, 1e-9);
  EXPECT_EQ(s.kinds[4], TK::Rotation);
  EXPECT_EQ(s.kinds[6], TK::Rotation);
  EXPECT_NE(error_of([&] { select_transforms(k, {LK::Mlp}, 1, 1); }).find("7 kurtosis values but 1 layer kinds"),
            std::string::npos);
  EXPECT_STREQ(transform_kind_name(TK::Rotation), "rotation");
  EXPECT_STREQ(layer_kind_name(LK::Mlp), "mlp");
}

// ---- on a model ------------------------------------------------------------------------------

TEST(SelectorModel, GroupsByTransformPoint) {
  Model m = gaussian_model(1);
  std::vector<TransformChoice> c = model_kurtosis(m);
  ASSERT_EQ(c.size(), size_t(4 * kBlocks));
  const Block& b = m.blocks[2];
  EXPECT_EQ(c[8].block, 2);
  EXPECT_EQ(c[8].point, TapPoint::QkvIn);
  EXPECT_DOUBLE_EQ(c[8].kurtosis, kurtosis({b.linear(Role::Q).weight, b.linear(Role::K).weight, b.linear(Role::V).weight}));
  EXPECT_DOUBLE_EQ(c[9].kurtosis, kurtosis(b.linear(Role::O).weight));
  EXPECT_NEAR(c[10].kurtosis, kurtosis(at::cat({b.linear(Role::Gate).weight, b.linear(Role::Up).weight})), 1e-12);
  EXPECT_EQ(c[11].point, TapPoint::DownIn);
  EXPECT_DOUBLE_EQ(c[11].kurtosis, kurtosis(b.linear(Role::Down).weight));
  EXPECT_EQ(layer_kind(TapPoint::OIn), LayerKind::Attention);
  EXPECT_EQ(layer_kind(TapPoint::GateUpIn), LayerKind::Mlp);
  m.blocks[3].linear(Role::Up).weight = at::Tensor();
  m.blocks[3].linear(Role::Up).name = "blocks.3.mlp.up";
  EXPECT_NE(error_of([&] { model_kurtosis(m); }).find("blocks.3.mlp.up has no master weight"), std::string::npos);
}

TEST(SelectorModel, FlagsExactlyThePlantedHeavyTailedGroups) {
  Model m = gaussian_model(2);
  auto gen = at::detail::createCPUGenerator(77);
  // Block 1 q/k/v: two input columns of k scaled 20x (outlier channels).
  m.blocks[1].linear(Role::K).weight.narrow(1, 10, 2).mul_(20);
  // Block 3 down: Student-t (3 degrees of freedom) weights.
  m.blocks[3].linear(Role::Down).weight = (student_t({kHidden, kInter}, 3, gen) * 0.02).to(at::kFloat);
  // Block 4 o: one input column scaled 30x.
  m.blocks[4].linear(Role::O).weight.narrow(1, 5, 1).mul_(30);
  // Block 5 gate: a handful of large weights.
  m.blocks[5].linear(Role::Gate).weight.view({-1}).narrow(0, 100, 16).fill_(0.5);
  const std::vector<std::pair<int64_t, TapPoint>> planted = {
      {1, TapPoint::QkvIn}, {3, TapPoint::DownIn}, {4, TapPoint::OIn}, {5, TapPoint::GateUpIn}};
  auto is_planted = [&](const TransformChoice& c) {
    for (const auto& [b, p] : planted) {
      if (c.block == b && c.point == p) return true;
    }
    return false;
  };

  std::vector<TransformChoice> c = select_model_transforms(m, 10.0, 10.0);
  ASSERT_EQ(c.size(), size_t(4 * kBlocks));
  for (const TransformChoice& x : c) {
    const bool heavy = is_planted(x);
    EXPECT_EQ(x.kind, heavy ? TransformKind::Rotation : TransformKind::Affine)
        << "block " << x.block << " " << tap_name(x.point) << " kurtosis " << x.kurtosis << " z " << x.z;
    if (heavy) {
      EXPECT_GT(x.kurtosis, 4.5) << x.block;
    } else {
      EXPECT_NEAR(x.kurtosis, 3.0, 0.3) << x.block << " " << tap_name(x.point);
      EXPECT_LT(std::abs(x.z), 10.0) << x.block << " " << tap_name(x.point);
    }
  }

  // Attention threshold out of reach: only the MLP plants are flagged. Direction flipped:
  // the plants become affine and the rest rotations.
  for (const TransformChoice& x : select_model_transforms(m, 1e12, 10.0)) {
    const bool flagged = is_planted(x) && layer_kind(x.point) == LayerKind::Mlp;
    EXPECT_EQ(x.kind, flagged ? TransformKind::Rotation : TransformKind::Affine) << x.block << tap_name(x.point);
  }
  SelectorOptions flip;
  flip.heavy_tail = HeavyTail::ToAffine;
  for (const TransformChoice& x : select_model_transforms(m, 10.0, 10.0, flip)) {
    EXPECT_EQ(x.kind, is_planted(x) ? TransformKind::Affine : TransformKind::Rotation) << x.block;
  }
  // Per-kind z scope flags the same groups here.
  SelectorOptions per;
  per.scope = ZScope::PerKind;
  for (const TransformChoice& x : select_model_transforms(m, 10.0, 10.0, per)) {
    EXPECT_EQ(x.kind, is_planted(x) ? TransformKind::Rotation : TransformKind::Affine) << x.block;
  }
}
