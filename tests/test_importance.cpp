// Tests of quant/importance (Hessian-diagonal and empirical-Fisher channel scores, the
// Fisher accumulator, channel counts and deterministic top-k selection) and of the score
// file of pipeline/channel_scores.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <vector>

#include "sliderquant/core/error.h"
#include "sliderquant/io/safetensors.h"
#include "sliderquant/pipeline/channel_scores.h"
#include "sliderquant/quant/gptq.h"
#include "sliderquant/quant/importance.h"
#include "test_util.h"

using namespace sq;
using sq::testing::error_of;
using sq::testing::seeded_randn;

namespace {

std::vector<int64_t> as_vector(const at::Tensor& t) {
  at::Tensor c = t.to(at::kLong).contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

}  // namespace

TEST(ImportanceScores, HessianDiagonalTimesColumnNorm) {
  // By hand: W = [[1, 2], [3, -1]], diag(H) = (2, 5): scores 2 * (1 + 9) = 20, 5 * (4 + 1) = 25.
  at::Tensor W = at::tensor({1.f, 2.f, 3.f, -1.f}).view({2, 2});
  at::Tensor H = at::tensor({2.f, 7.f, 7.f, 5.f}).view({2, 2});  // off-diagonal terms do not count
  at::Tensor s = hessian_channel_scores(W, H);
  EXPECT_EQ(s.scalar_type(), at::kFloat);
  EXPECT_EQ(s[0].item<float>(), 20.f);
  EXPECT_EQ(s[1].item<float>(), 25.f);

  // With a GPTQ Hessian, against the formula written as loops in float64.
  at::Tensor X = seeded_randn({200, 16}, 1);
  HessianAccumulator acc(16);
  acc.add(X);
  at::Tensor W2 = seeded_randn({8, 16}, 2).to(at::kBFloat16);
  s = hessian_channel_scores(W2, acc.H());
  at::Tensor Wd = W2.to(at::kDouble), Hd = acc.H().to(at::kDouble);
  for (int64_t j = 0; j < 16; ++j) {
    double col = 0;
    for (int64_t r = 0; r < 8; ++r) col += Wd[r][j].item<double>() * Wd[r][j].item<double>();
    const double want = Hd[j][j].item<double>() * col;
    EXPECT_NEAR(s[j].item<float>(), want, 1e-5 * want);
  }
  EXPECT_NE(error_of([&] { hessian_channel_scores(W2, acc.H().narrow(0, 0, 4)); }).find("expected [16, 16]"),
            std::string::npos);
}

TEST(ImportanceScores, FisherAccumulatorSumsSquaredGradients) {
  FisherAccumulator acc(2, 3);
  EXPECT_NE(error_of([&] { acc.G(); }).find("no gradient was added"), std::string::npos);
  at::Tensor g1 = at::tensor({1.f, -2.f, 0.f, 3.f, 1.f, -1.f}).view({2, 3});
  at::Tensor g2 = at::tensor({0.5f, 1.f, 2.f, -1.f, 0.f, 1.f}).view({2, 3});
  acc.add(g1);
  acc.add(g2.to(at::kHalf));
  EXPECT_EQ(acc.batches(), 2);
  // G = g1^2 + g2^2 = [[1.25, 5, 4], [10, 1, 2]]; scores = column sums (11.25, 6, 6).
  EXPECT_TRUE(acc.G().equal(at::tensor({1.25f, 5.f, 4.f, 10.f, 1.f, 2.f}).view({2, 3})));
  EXPECT_TRUE(acc.channel_scores().equal(at::tensor({11.25f, 6.f, 6.f})));
  EXPECT_TRUE(fisher_channel_scores(acc.G()).equal(acc.channel_scores()));
  EXPECT_NE(error_of([&] { acc.add(at::zeros({3, 2})); }).find("expected [2, 3]"), std::string::npos);
  // Ties (6, 6) go to the lower index.
  EXPECT_EQ(as_vector(top_k_channels(acc.channel_scores(), 2)), (std::vector<int64_t>{0, 1}));
}

TEST(ImportanceTop, ChannelCount) {
  EXPECT_EQ(channel_count(0.15, 100), 15);  // 0.15 * 100 = 15.000000000000002 in double
  EXPECT_EQ(channel_count(0.10, 256), 26);  // 25.6 rounds up
  EXPECT_EQ(channel_count(0.02, 4096), 82);
  EXPECT_EQ(channel_count(0.20, 4096), 820);
  EXPECT_EQ(channel_count(0.0, 10), 0);
  EXPECT_EQ(channel_count(1.0, 10), 10);
  EXPECT_NE(error_of([] { channel_count(1.5, 10); }).find("must be in [0, 1]"), std::string::npos);
  EXPECT_NE(error_of([] { channel_count(std::nan(""), 10); }).find("must be in [0, 1]"), std::string::npos);
}

TEST(ImportanceTop, SortedIndicesWithDeterministicTies) {
  at::Tensor s = at::tensor({1.f, 3.f, 3.f, 0.f, 3.f, 2.f});
  at::Tensor t = top_k_channels(s, 3);
  EXPECT_EQ(t.scalar_type(), at::kLong);
  EXPECT_EQ(as_vector(t), (std::vector<int64_t>{1, 2, 4}));
  EXPECT_EQ(as_vector(top_k_channels(s, 2)), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(as_vector(top_k_channels(s, 4)), (std::vector<int64_t>{1, 2, 4, 5}));
  EXPECT_EQ(top_k_channels(s, 0).numel(), 0);
  EXPECT_EQ(as_vector(top_channels(s, 0.5)), (std::vector<int64_t>{1, 2, 4}));  // ceil(0.5 * 6) = 3
  EXPECT_EQ(as_vector(top_channels(s, 0.4)), (std::vector<int64_t>{1, 2, 4}));  // ceil(2.4) = 3
  EXPECT_NE(error_of([&] { top_k_channels(s, 7); }).find("cannot select 7 of 6"), std::string::npos);
  at::Tensor bad = s.clone();
  bad[3] = std::nanf("");
  EXPECT_NE(error_of([&] { top_k_channels(bad, 2); }).find("channel 3 is NaN"), std::string::npos);

  // Random scores with many ties, against a full stable sort.
  at::Tensor r = seeded_randn({300}, 3).mul(3).round();
  std::vector<float> v(r.data_ptr<float>(), r.data_ptr<float>() + 300);
  std::vector<int64_t> idx(300);
  std::iota(idx.begin(), idx.end(), 0);
  std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return v[a] > v[b]; });
  for (int64_t k : {1, 17, 45, 150, 300}) {
    std::vector<int64_t> want(idx.begin(), idx.begin() + k);
    std::sort(want.begin(), want.end());
    EXPECT_EQ(as_vector(top_k_channels(r.to(at::kDouble), k)), want) << k;
  }
}

TEST(ImportanceTop, HessianScoresFindPlantedChannels) {
  at::Tensor W = seeded_randn({32, 128}, 4);
  const std::vector<int64_t> planted = {3, 17, 40, 99};
  for (int64_t j : planted) W.select(1, j).mul_(6);
  HessianAccumulator acc(128);
  acc.add(seeded_randn({512, 128}, 5));
  EXPECT_EQ(as_vector(top_k_channels(hessian_channel_scores(W, acc.H()), 4)), planted);
}

TEST(ImportanceFile, RoundTrip) {
  const std::string path = sq::testing::fresh_path("scores.safetensors");
  std::map<std::string, at::Tensor> scores = {{"blocks.0.attn.q", seeded_randn({64}, 6).abs()},
                                              {"blocks.0.mlp.down", seeded_randn({172}, 7).abs().to(at::kHalf)}};
  save_channel_scores(path, scores, {{"score", "fisher"}, {"content", "ignored"}});
  std::map<std::string, std::string> meta;
  auto back = load_channel_scores(path, &meta);
  ASSERT_EQ(back.size(), 2u);
  EXPECT_TRUE(back.at("blocks.0.attn.q").equal(scores.at("blocks.0.attn.q")));
  EXPECT_TRUE(back.at("blocks.0.mlp.down").equal(scores.at("blocks.0.mlp.down").to(at::kFloat)));
  EXPECT_EQ(back.at("blocks.0.mlp.down").scalar_type(), at::kFloat);
  EXPECT_EQ(meta.at("score"), "fisher");
  EXPECT_EQ(meta.at("content"), "sliderquant.channel_scores");

  // Another safetensors file is refused; so is a score that is not 1-D.
  const std::string other = sq::testing::fresh_path("other.safetensors");
  write_safetensors(other, {{"x", at::zeros({4})}});
  EXPECT_NE(error_of([&] { load_channel_scores(other); }).find("not a channel-score file"), std::string::npos);
  EXPECT_NE(error_of([&] {
              save_channel_scores(other, {{"w", at::zeros({2, 2})}});
            }).find("score w must be a 1-D float tensor"),
            std::string::npos);
}
