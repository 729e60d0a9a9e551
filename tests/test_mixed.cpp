// Tests of quant/mixed and pack/native_mixed: exact scatter and packing round trips,
// bits per weight by hand (and against the packed sizes), the group rule, and the error
// against all-low-bit RTN on a weight with planted important channels.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "sliderquant/core/error.h"
#include "sliderquant/pack/native_mixed.h"
#include "sliderquant/quant/gptq.h"
#include "sliderquant/quant/importance.h"
#include "sliderquant/quant/mixed.h"
#include "sliderquant/quant/rtn.h"
#include "test_util.h"

using namespace sq;
using sq::testing::error_of;
using sq::testing::seeded_randn;

namespace {

QFormat fmt(const char* s) { return QFormat::parse(s); }

void expect_same_qtensor(const QTensor& a, const QTensor& b) {
  EXPECT_EQ(a.format, b.format);
  EXPECT_TRUE(a.codes.equal(b.codes));
  EXPECT_TRUE(a.scales.equal(b.scales));
  EXPECT_TRUE(a.zeros.equal(b.zeros));
}

std::map<std::string, at::Tensor> as_map(const std::vector<std::pair<std::string, at::Tensor>>& ts) {
  return std::map<std::string, at::Tensor>(ts.begin(), ts.end());
}

}  // namespace

TEST(MixedPrecision, DequantizeScattersBothPartsExactly) {
  at::Tensor W = seeded_randn({64, 640}, 1);
  const QFormat hi = fmt("w3g64"), lo = fmt("w2g64");
  const int64_t k = mixed_hi_count(0.10, 640, hi, lo);
  ASSERT_EQ(k, 64);
  at::Tensor cols = top_k_channels(W.abs().sum(0), k);
  MixedQTensor q = MixedQTensor::rtn(W, cols, hi, lo);
  EXPECT_EQ(q.hi_cols.scalar_type(), at::kInt);
  EXPECT_TRUE(q.hi_cols.to(at::kLong).equal(cols));
  EXPECT_EQ(q.lo_cols().size(0), 640 - 64);
  // Each part is exactly RTN of its own columns, and dequantize puts them back in place.
  at::Tensor lo_cols = q.lo_cols();
  expect_same_qtensor(q.hi, rtn_quantize(W.index_select(1, cols), hi));
  expect_same_qtensor(q.lo, rtn_quantize(W.index_select(1, lo_cols), lo));
  at::Tensor D = q.dequantize();
  EXPECT_EQ(D.sizes(), W.sizes());
  EXPECT_TRUE(D.index_select(1, cols).equal(q.hi.dequantize()));
  EXPECT_TRUE(D.index_select(1, lo_cols).equal(q.lo.dequantize()));
}

TEST(MixedPrecision, PackRoundTripExact) {
  at::Tensor W = seeded_randn({48, 256}, 2);
  struct Case {
    const char* hi;
    const char* lo;
    double ratio;
  };
  for (const Case& c : {Case{"w3g64", "w2g64", 0.10}, Case{"w4", "w2g32s", 0.05}, Case{"w3s", "w2", 0.10},
                        Case{"w4g16", "w3g128", 0.02}}) {
    SCOPED_TRACE(std::string(c.hi) + " + " + c.lo);
    const QFormat hi = fmt(c.hi), lo = fmt(c.lo);
    const int64_t k = mixed_hi_count(c.ratio, 256, hi, lo);
    MixedQTensor q = MixedQTensor::rtn(W, top_k_channels(seeded_randn({256}, 3), k), hi, lo);
    auto packed = pack_mixed("blocks.0.mlp.up", q);
    std::set<std::string> names;
    for (const auto& [n, t] : packed) names.insert(n);
    std::set<std::string> want = {"blocks.0.mlp.up.hi_cols", "blocks.0.mlp.up.hi.qweight", "blocks.0.mlp.up.hi.scales",
                                  "blocks.0.mlp.up.lo.qweight", "blocks.0.mlp.up.lo.scales"};
    if (!hi.symmetric) want.insert("blocks.0.mlp.up.hi.qzeros");
    if (!lo.symmetric) want.insert("blocks.0.mlp.up.lo.qzeros");
    EXPECT_EQ(names, want);
    auto m = as_map(packed);
    EXPECT_EQ(m.at("blocks.0.mlp.up.hi_cols").scalar_type(), at::kInt);
    EXPECT_EQ(m.at("blocks.0.mlp.up.hi_cols").sizes(), at::IntArrayRef({k}));
    MixedQTensor back = unpack_mixed("blocks.0.mlp.up", hi, lo, 48, 256, [&](const std::string& n) {
      auto it = m.find(n);
      return it == m.end() ? at::Tensor() : it->second;
    });
    EXPECT_TRUE(back.hi_cols.equal(q.hi_cols));
    expect_same_qtensor(back.hi, q.hi);
    expect_same_qtensor(back.lo, q.lo);
    EXPECT_TRUE(back.dequantize().equal(q.dequantize()));
    EXPECT_EQ(back.bits_per_weight(), q.bits_per_weight());
  }
}

TEST(MixedPrecision, BitsPerWeightByHand) {
  // 64 x 640, 10% = 64 channels at w3g64 (1 group per row), 576 at w2g64 (9 groups per row):
  //   codes   64 * (64 * 3 + 576 * 2)     = 86016
  //   hi      64 rows * 1 group * (16 + 3) = 1216   (fp16 scale + 3-bit zero)
  //   lo      64 rows * 9 groups * (16 + 2) = 10368
  //   index   64 channels * 32             = 2048
  //   total 99648 bits / 40960 weights = 2.4328125 bits per weight.
  const QFormat hi = fmt("w3g64"), lo = fmt("w2g64");
  EXPECT_DOUBLE_EQ(mixed_bits_per_weight(hi, lo, 64, 640, 64), 99648.0 / 40960.0);
  EXPECT_DOUBLE_EQ(99648.0 / 40960.0, 2.4328125);
  MixedQTensor q = MixedQTensor::rtn(seeded_randn({64, 640}, 4), at::arange(0, 640, 10), hi, lo);
  EXPECT_DOUBLE_EQ(q.bits_per_weight(), 2.4328125);
  // The packed tensors hold the same bits plus the padding of each row's last word: here
  // only the zeros (hi: 3 of 32 bits used per row, lo: 18 of 32).
  double packed_bits = 0;
  for (const auto& [n, t] : pack_mixed("L", q)) packed_bits += 8.0 * double(t.numel() * t.element_size());
  EXPECT_DOUBLE_EQ(packed_bits, 99648.0 + 64 * (32 - 3) + 64 * (32 - 18));

  // Per-channel parts take any count: 64 x 256 with 26 channels at w4, 230 at w2:
  //   64 * (26 * 4 + 230 * 2) + 64 * (16 + 4) + 64 * (16 + 2) + 26 * 32 = 39360 bits over 16384.
  EXPECT_DOUBLE_EQ(mixed_bits_per_weight(fmt("w4"), fmt("w2"), 64, 256, 26), 39360.0 / 16384.0);
  // Symmetric parts store no zeros: 64 * (26 * 4 + 230 * 2) + 64 * 16 * 2 + 26 * 32.
  EXPECT_DOUBLE_EQ(mixed_bits_per_weight(fmt("w4s"), fmt("w2s"), 64, 256, 26), (36096.0 + 2048 + 832) / 16384.0);
}

TEST(MixedPrecision, GroupRule) {
  // Each part's group size must divide its own column count; mixed_hi_count rounds up.
  EXPECT_EQ(mixed_hi_count(0.10, 256, fmt("w3g64"), fmt("w2g64")), 64);  // ceil(25.6) = 26 -> 64
  EXPECT_EQ(mixed_hi_count(0.10, 256, fmt("w3"), fmt("w2g64")), 64);
  EXPECT_EQ(mixed_hi_count(0.10, 256, fmt("w3g2"), fmt("w2")), 26);
  EXPECT_EQ(mixed_hi_count(0.10, 256, fmt("w3"), fmt("w2")), 26);
  EXPECT_EQ(mixed_hi_count(0.02, 4096, fmt("w3g128"), fmt("w2g128")), 128);
  EXPECT_EQ(mixed_hi_count(0.15, 4096, fmt("w3g64"), fmt("w2g128")), 640);  // 614.4 -> 640
  EXPECT_EQ(mixed_hi_count(0.0, 256, fmt("w3"), fmt("w2")), 1);
  EXPECT_NE(error_of([] { mixed_hi_count(0.10, 64, fmt("w3g64"), fmt("w2g64")); }).find("no count of hi channels"),
            std::string::npos);
  at::Tensor W = seeded_randn({8, 256}, 5);
  std::string e = error_of([&] { MixedQTensor::rtn(W, at::arange(26), fmt("w3g64"), fmt("w2g64")); });
  EXPECT_NE(e.find("the hi part has 26 of 256 columns, not a multiple of its group size 64"), std::string::npos) << e;
  EXPECT_NE(e.find("mixed_hi_count"), std::string::npos) << e;
}

TEST(MixedPrecision, Errors) {
  at::Tensor W = seeded_randn({8, 64}, 6);
  EXPECT_NE(error_of([&] {
              MixedQTensor::rtn(W, at::tensor({3, 2}), fmt("w3"), fmt("w2"));
            }).find("strictly increasing"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              MixedQTensor::rtn(W, at::tensor({3, 64}), fmt("w3"), fmt("w2"));
            }).find("[1] = 64 is outside [0, 64)"),
            std::string::npos);
  EXPECT_NE(error_of([&] { MixedQTensor::rtn(W, at::arange(64), fmt("w3"), fmt("w2")); }).find("0 < k < in"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              MixedQTensor::rtn(W, at::tensor({1}), fmt("w3"), fmt("w2g32d"));
            }).find("lo part's format w2g32d is DSQ"),
            std::string::npos);
  MixedQTensor q = MixedQTensor::rtn(W, at::tensor({1, 5}), fmt("w3"), fmt("w2"));
  auto m = as_map(pack_mixed("L", q));
  auto get = [&](const std::string& n) {
    auto it = m.find(n);
    return it == m.end() ? at::Tensor() : it->second;
  };
  m.at("L.hi_cols") = m.at("L.hi_cols").to(at::kLong);
  EXPECT_NE(error_of([&] { unpack_mixed("L", fmt("w3"), fmt("w2"), 8, 64, get); }).find("L.hi_cols has dtype"),
            std::string::npos);
  m.erase("L.hi_cols");
  EXPECT_NE(error_of([&] { unpack_mixed("L", fmt("w3"), fmt("w2"), 8, 64, get); }).find("L.hi_cols is missing"),
            std::string::npos);
  m["L.hi_cols"] = at::arange(40, at::kInt);  // 40 channels: the hi part has the wrong width
  EXPECT_NE(error_of([&] { unpack_mixed("L", fmt("w3"), fmt("w2"), 8, 64, get); }).find("L.hi.qweight has shape"),
            std::string::npos);
}

TEST(MixedPrecision, BeatsAllLowBitRtnOnPlantedChannels) {
  // A weight whose 16 planted input channels are 8x larger, inputs with uneven scales:
  // the Hessian score finds the planted channels, and 3 bits on them (12.5% of channels)
  // with 2 bits elsewhere has a smaller output error than 2 bits everywhere (0.61x here) and
  // than the same bits spent on arbitrary channels.
  at::Tensor W = seeded_randn({128, 512}, 7);
  std::vector<int64_t> planted;
  for (int64_t j = 5; j < 512; j += 32) planted.push_back(j);
  for (int64_t j : planted) W.select(1, j).mul_(8);
  HessianAccumulator acc(512);
  acc.add(sq::testing::correlated_inputs(2048, 512, 8));
  const at::Tensor& H = acc.H();
  const QFormat hi = fmt("w3g64"), lo = fmt("w2g64");
  const int64_t k = mixed_hi_count(0.10, 512, hi, lo);  // ceil(51.2) = 52 -> 64
  ASSERT_EQ(k, 64);
  at::Tensor cols = top_k_channels(hessian_channel_scores(W, H), k);
  for (int64_t j : planted) EXPECT_TRUE(cols.eq(j).any().item<bool>()) << "planted channel " << j;
  MixedQTensor q = MixedQTensor::rtn(W, cols, hi, lo);
  const double mixed = output_error(W, q.dequantize(), H);
  const double low = output_error(W, rtn_quantize(W, lo).dequantize(), H);
  // The same budget spent on arbitrary channels instead of the selected ones.
  const double arbitrary = output_error(W, MixedQTensor::rtn(W, at::arange(k), hi, lo).dequantize(), H);
  std::cout << "[mixed w3g64/w2g64, 12.5% channels] output error " << mixed << " vs all-w2g64 " << low
            << " vs the first 64 channels " << arbitrary << "; bits/weight " << q.bits_per_weight() << " vs "
            << bits_per_weight(lo, 128, 512, false) << "\n";
  EXPECT_LT(mixed, 0.75 * low);
  EXPECT_LT(mixed, arbitrary);
}
