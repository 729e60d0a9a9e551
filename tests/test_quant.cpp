// Tests of quant/format, quant/rtn and quant/gptq: hand-computed RTN cases, properties over
// a table of formats, the MSE clip search, bits-per-weight accounting, format names, and
// GPTQ against RTN (H = I), against itself (block sizes) and against a slow float64
// column-by-column transcription of gptq.py (gptq_reference below), plus the Hessian.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "sliderquant/core/error.h"
#include "sliderquant/quant/format.h"
#include "sliderquant/quant/gptq.h"
#include "sliderquant/quant/rtn.h"
#include "test_util.h"

using namespace sq;

namespace {
at::Tensor randn(at::IntArrayRef shape, uint64_t seed) { return sq::testing::seeded_randn(shape, seed); }
using sq::testing::correlated_inputs;


at::Tensor hessian_of(const at::Tensor& X) {
  HessianAccumulator acc(X.size(1));
  acc.add(X);
  return acc.H();
}

int64_t count_mismatches(const at::Tensor& a, const at::Tensor& b) {
  return a.to(at::kLong).ne(b.to(at::kLong)).sum().item<int64_t>();
}

// ---- the slow reference: gptq.py without lazy blocks, column by column in float64 -------

struct RefResult {
  at::Tensor codes;    // [out, in] long, original column order
  at::Tensor dequant;  // [out, in] double
  bool with_g_idx = false;
};

// block_start > 0: dynamic group parameters from W as it stood at the start of the lazy block of
// that many columns (gptq.py); 0: from the current columns. A short last group (ragged format) is
// a group of its own in every order.
RefResult gptq_reference(const at::Tensor& W_in, const at::Tensor& H_in, const QFormat& f, GptqOrder order,
                         bool static_groups, double percdamp = 0.01, int64_t block_start = 0) {
  const int64_t out = W_in.size(0), in = W_in.size(1);
  const int64_t width = f.group_width(in), G = f.groups(in), maxq = f.maxq();
  auto glen = [&](int64_t g) { return std::min(width, in - g * width); };
  at::Tensor W = W_in.to(at::kDouble).clone();
  at::Tensor H = H_in.to(at::kDouble).clone();
  for (int64_t i = 0; i < in; ++i) {
    if (H[i][i].item<double>() == 0) {
      H[i][i] = 1.0;
      W.select(1, i).zero_();
    }
  }
  std::vector<double> d(in);
  for (int64_t i = 0; i < in; ++i) d[i] = H[i][i].item<double>();
  std::vector<int64_t> perm(in);
  std::iota(perm.begin(), perm.end(), 0);
  auto by_diag = [&](int64_t a, int64_t b) { return d[a] > d[b]; };
  if (order == GptqOrder::ActOrder) std::stable_sort(perm.begin(), perm.end(), by_diag);
  if (order == GptqOrder::GroupPreserving) {
    std::vector<int64_t> gorder(G);
    std::iota(gorder.begin(), gorder.end(), 0);
    auto gmax = [&](int64_t g) { return *std::max_element(d.begin() + g * width, d.begin() + g * width + glen(g)); };
    std::stable_sort(gorder.begin(), gorder.end(), [&](int64_t a, int64_t b) { return gmax(a) > gmax(b); });
    perm.clear();
    for (int64_t g : gorder) {
      std::vector<int64_t> cols(glen(g));
      std::iota(cols.begin(), cols.end(), g * width);
      std::stable_sort(cols.begin(), cols.end(), by_diag);
      perm.insert(perm.end(), cols.begin(), cols.end());
    }
  }
  const bool stat = static_groups && G > 1;
  RefResult r;
  r.with_g_idx = order == GptqOrder::ActOrder && !stat && G > 1;
  std::vector<at::Tensor> scale(G), zero(G);  // [out] double each
  if (stat) {
    for (int64_t g = 0; g < G; ++g) {
      QParams p = find_params(W.narrow(1, g * width, glen(g)).to(at::kFloat), f.bits, f.symmetric, {});
      scale[g] = p.scale.squeeze(1).to(at::kDouble);
      zero[g] = p.zero.squeeze(1).to(at::kDouble);
    }
  }
  at::Tensor P = at::tensor(perm, at::kLong);
  W = W.index_select(1, P);
  H = H.index_select(0, P).index_select(1, P);
  H.diagonal().add_(percdamp * H.diagonal().mean().item<double>());
  at::Tensor U = at::linalg_cholesky(at::inverse(H).transpose(0, 1), /*upper=*/true);  // [in, in]
  at::Tensor Qc = at::zeros({out, in}, at::kLong), Dq = at::zeros({out, in}, at::kDouble);
  at::Tensor snap = W;
  for (int64_t k = 0; k < in; ++k) {
    const int64_t g = r.with_g_idx ? k / width : perm[k] / width;
    if (block_start > 0 && k % block_start == 0) snap = W.clone();
    const bool first = r.with_g_idx ? k % width == 0 : (k == 0 || perm[k - 1] / width != g);
    if (!stat && first) {
      const int64_t len = r.with_g_idx ? std::min(width, in - k) : glen(g);
      QParams p = find_params((block_start > 0 ? snap : W).narrow(1, k, len).to(at::kFloat), f.bits, f.symmetric, {});
      scale[g] = p.scale.squeeze(1).to(at::kDouble);
      zero[g] = p.zero.squeeze(1).to(at::kDouble);
    }
    at::Tensor w = W.select(1, k).clone();  // [out]
    at::Tensor q = at::round(w / scale[g]).add(zero[g]).clamp(0, double(maxq));
    at::Tensor dq = scale[g] * (q - zero[g]);
    Qc.select(1, perm[k]).copy_(q);
    Dq.select(1, perm[k]).copy_(dq);
    at::Tensor err = (w - dq) / U[k][k].item<double>();
    W.narrow(1, k, in - k).sub_(at::outer(err, U[k].narrow(0, k, in - k)));
  }
  r.codes = Qc;
  r.dequant = Dq;
  return r;
}

}  // namespace

// ---- formats ---------------------------------------------------------------------------

TEST(QuantFormat, NamesRoundTrip) {
  for (const char* s : {"w4g128", "w4", "w3g64s", "w2s", "w8g32", "w2g16"}) EXPECT_EQ(QFormat::parse(s).name(), s);
  QFormat f = QFormat::parse("w3g64s");
  EXPECT_EQ(f.bits, 3);
  EXPECT_EQ(f.group_size, 64);
  EXPECT_TRUE(f.symmetric);
  EXPECT_EQ(QFormat::parse("w4").group_size, -1);
  for (const char* s : {"w1", "w9", "w4g0", "x4", "", "w", "4", "w4g", "w4gs", "w4g128ss", "w4s8", "w4g-1", "w16"})
    EXPECT_THROW(QFormat::parse(s), UsageError) << s;
}

TEST(QuantFormat, CheckNamesTensorAndRaggedGroups) {
  // A group size that does not divide the width leaves a short last group (GPTQ's j // group_size)
  // for uniform formats; DSQ and ggml grids need whole groups and say so, naming the tensor.
  QFormat f = QFormat::parse("w4g64");
  EXPECT_NO_THROW(f.check(8, 172, "x"));
  EXPECT_TRUE(f.ragged(172));
  EXPECT_FALSE(f.ragged(192));
  EXPECT_EQ(f.groups(172), 3);
  EXPECT_EQ(f.group_width(172), 64);
  for (const char* name : {"w2g64d", "q4_0"}) {
    QFormat d = QFormat::parse(name);
    try {
      d.check(8, 172, "model.layers.0.mlp.down_proj.weight");
      FAIL() << name << ": ragged groups accepted";
    } catch (const Error& e) {
      std::string m = e.what();
      EXPECT_NE(m.find("model.layers.0.mlp.down_proj.weight"), std::string::npos) << m;
      EXPECT_NE(m.find("172"), std::string::npos) << m;
    }
  }
  EXPECT_THROW(QFormat::parse("w2g64d").groups(172), Error);
  EXPECT_NO_THROW(f.check(8, 192, "x"));
  EXPECT_NO_THROW(QFormat::parse("w4").check(8, 172, "x"));  // per-channel always fits
  EXPECT_EQ(f.groups(192), 3);
  EXPECT_EQ(QFormat::parse("w4").groups(172), 1);
  EXPECT_EQ(QFormat::parse("w4").group_width(172), 172);
}

TEST(RtnQuant, RaggedLastGroupIsItsOwnGroup) {
  at::Tensor W = randn({6, 200}, 71);  // w3g64: groups of 64, 64, 64 and 8 columns
  for (const char* name : {"w3g64", "w4g64s", "w2g128"}) {
    SCOPED_TRACE(name);
    QFormat f = QFormat::parse(name);
    const int64_t G = f.groups(200), width = f.group_width(200);
    ClipSearch clip;
    clip.enabled = std::string(name) == "w2g128";
    QTensor q = rtn_quantize(W, f, clip);
    ASSERT_EQ(q.scales.sizes(), at::IntArrayRef({6, G}));
    ASSERT_EQ(q.codes.sizes(), at::IntArrayRef({6, 200}));
    for (int64_t g = 0; g < G; ++g) {  // each group's parameters are those of its own columns alone
      const int64_t len = std::min(width, 200 - g * width);
      QParams p = find_params(W.narrow(1, g * width, len), f.bits, f.symmetric, clip);
      EXPECT_TRUE(at::equal(q.scales.select(1, g), p.scale.squeeze(1))) << "group " << g;
      EXPECT_TRUE(at::equal(q.zeros.select(1, g), p.zero.squeeze(1))) << "group " << g;
      at::Tensor codes = quantize_codes(W.narrow(1, g * width, len), p, f.maxq());
      EXPECT_TRUE(at::equal(q.codes.narrow(1, g * width, len).to(at::kFloat), codes)) << "group " << g;
    }
    at::Tensor idx = at::arange(200, at::kLong).div(width, "floor");
    at::Tensor want = q.scales.index_select(1, idx) * (q.codes.to(at::kFloat) - q.zeros.index_select(1, idx));
    EXPECT_TRUE(at::allclose(q.dequantize(), want, 0, 0));
    if (!clip.enabled) {  // min-max ranges: every weight within one step of its value
      EXPECT_LT((q.dequantize() - W).abs().max().item<double>(), q.scales.max().item<double>());
    }
  }
}

TEST(QuantFormat, BitsPerWeightByHand) {
  EXPECT_DOUBLE_EQ(bits_per_weight(QFormat::parse("w4g128"), 4096, 4096, false), 4.0 + (16.0 + 4.0) / 128.0);
  EXPECT_DOUBLE_EQ(bits_per_weight(QFormat::parse("w4g128"), 4096, 4096, true), 4.0 + 20.0 / 128.0 + 32.0 / 4096.0);
  EXPECT_DOUBLE_EQ(bits_per_weight(QFormat::parse("w3g64s"), 11008, 4096, false), 3.0 + 16.0 / 64.0);
  EXPECT_DOUBLE_EQ(bits_per_weight(QFormat::parse("w2"), 4096, 11008, false), 2.0 + 18.0 / 11008.0);
}

TEST(QuantFormat, DequantizeWithGroupIndex) {
  QTensor q;
  q.format = QFormat::parse("w2g2");
  q.codes = at::tensor({0, 1, 2, 3}, at::kByte).view({1, 4});
  q.scales = at::tensor({1.0f, 10.0f}).view({1, 2});
  q.zeros = at::tensor({1.0f, 0.0f}).view({1, 2});
  EXPECT_TRUE(at::equal(q.dequantize(), at::tensor({-1.0f, 0.0f, 20.0f, 30.0f}).view({1, 4})));
  q.g_idx = at::tensor({1, 0, 0, 1}, at::kInt);
  EXPECT_TRUE(at::equal(q.dequantize(), at::tensor({0.0f, 0.0f, 1.0f, 30.0f}).view({1, 4})));
}

// ---- RTN ---------------------------------------------------------------------------------

TEST(RtnQuant, ExactAsymmetricCase) {
  // [-1, 0, 0.6, 2] at 2 bits: scale (2 - -1)/3 = 1, zero round(1/1) = 1.
  QTensor q = rtn_quantize(at::tensor({-1.0f, 0.0f, 0.6f, 2.0f}).view({1, 4}), QFormat::parse("w2"));
  EXPECT_FLOAT_EQ(q.scales.item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(q.zeros.item<float>(), 1.0f);
  EXPECT_TRUE(at::equal(q.codes, at::tensor({0, 1, 2, 3}, at::kByte).view({1, 4})));
  EXPECT_TRUE(at::equal(q.dequantize(), at::tensor({-1.0f, 0.0f, 1.0f, 2.0f}).view({1, 4})));
  // Ties round half to even (torch.round, as GPTQ): 0.5 -> 0 -> code 1.
  QTensor t = rtn_quantize(at::tensor({-1.0f, 0.0f, 0.5f, 2.0f}).view({1, 4}), QFormat::parse("w2"));
  EXPECT_TRUE(at::equal(t.codes, at::tensor({0, 1, 1, 3}, at::kByte).view({1, 4})));
  // A positive-only row still includes 0 in its range: [0, 3] -> scale 1, zero 0.
  QTensor p = rtn_quantize(at::tensor({1.0f, 3.0f}).view({1, 2}), QFormat::parse("w2"));
  EXPECT_FLOAT_EQ(p.scales.item<float>(), 1.0f);
  EXPECT_FLOAT_EQ(p.zeros.item<float>(), 0.0f);
}

TEST(RtnQuant, ExactSymmetricCase) {
  // 3 bits symmetric: xmax = 3, scale 6/7 rounded UP to fp16 = 1756/2048, zero 4.
  QTensor q = rtn_quantize(at::tensor({-2.0f, 1.0f, 0.4f, 3.0f}).view({1, 4}), QFormat::parse("w3s"));
  const float s = 1756.0f / 2048.0f;
  EXPECT_EQ(q.scales.item<float>(), s);
  EXPECT_EQ(q.zeros.item<float>(), 4.0f);
  EXPECT_TRUE(at::equal(q.codes, at::tensor({2, 5, 4, 7}, at::kByte).view({1, 4})));
  EXPECT_TRUE(at::allclose(q.dequantize(), at::tensor({-2 * s, s, 0.0f, 3 * s}).view({1, 4}), 0, 0));
}

TEST(RtnQuant, AllZeroRow) {
  // GPTQ's rule: range [-1, 1]; 4 bits: scale 2/15 rounded up to fp16 = 1093/8192, zero 7.
  QTensor q = rtn_quantize(at::zeros({2, 8}), QFormat::parse("w4"));
  EXPECT_EQ(q.scales[0].item<float>(), 1093.0f / 8192.0f);
  EXPECT_EQ(q.zeros[0].item<float>(), 7.0f);
  EXPECT_TRUE(at::equal(q.dequantize(), at::zeros({2, 8})));
  QTensor s = rtn_quantize(at::zeros({2, 8}), QFormat::parse("w4s"));
  EXPECT_TRUE(at::equal(s.dequantize(), at::zeros({2, 8})));
  EXPECT_EQ(s.zeros[0].item<float>(), 8.0f);
}

TEST(RtnQuant, PropertiesOverFormats) {
  // Rows with offsets and spreads of several magnitudes, one all-zero row, one tiny row.
  at::Tensor W = randn({16, 128}, 7).mul(randn({16, 1}, 8).exp()).add(randn({16, 1}, 9).mul(0.3));
  W[3].zero_();
  W[5].mul_(1e-7);
  for (int bits : {2, 3, 4, 8}) {
    for (int64_t gs : {int64_t(-1), int64_t(32), int64_t(64)}) {
      for (bool sym : {false, true}) {
        QFormat f{bits, gs, sym};
        SCOPED_TRACE(f.name());
        QTensor q = rtn_quantize(W, f);
        const int64_t G = f.groups(128), width = f.group_width(128);
        ASSERT_EQ(q.codes.scalar_type(), at::kByte);
        ASSERT_EQ(q.scales.sizes(), (std::vector<int64_t>{16, G}));
        EXPECT_LE(q.codes.max().item<int64_t>(), f.maxq());
        EXPECT_TRUE(at::equal(q.scales.to(at::kHalf).to(at::kFloat), q.scales)) << "scales not fp16";
        EXPECT_GT(q.scales.min().item<float>(), 0.0f);
        EXPECT_TRUE(at::equal(q.zeros.round(), q.zeros));
        EXPECT_GE(q.zeros.min().item<float>(), 0.0f);
        EXPECT_LE(q.zeros.max().item<float>(), float(f.maxq()));
        if (sym) {
          EXPECT_TRUE(at::equal(q.zeros, at::full_like(q.zeros, float(1 << (bits - 1)))));
        }
        // Min-max never clips: every weight within half a step of its dequantized value.
        at::Tensor step = q.scales.repeat_interleave(width, 1);  // [16, 128]
        at::Tensor excess = (W - q.dequantize()).abs() - step * 0.5 * (1 + 1e-6) - 1e-6;
        EXPECT_LE(excess.max().item<float>(), 0.0f);
      }
    }
  }
}

TEST(RtnQuant, MseClipNeverWorseThanMinMax) {
  // Heavy-tailed rows: Student-t with 3 degrees of freedom (randn / sqrt(chi2_3 / 3)).
  at::Tensor Z = randn({64, 128}, 11);
  at::Tensor chi2 = randn({3, 64, 128}, 12).pow(2).sum(0).div(3);
  at::Tensor W = Z / chi2.sqrt();  // [64, 128]
  ClipSearch clip;
  clip.enabled = true;
  for (const char* name : {"w3", "w4", "w2g64"}) {
    SCOPED_TRACE(name);
    QFormat f = QFormat::parse(name);
    auto row_err = [&](const QTensor& q) {  // sum |q - w|^2.4 per (row, group)
      return (q.dequantize() - W).abs().pow(2.4).view({64 * f.groups(128), -1}).sum(1).to(at::kDouble);
    };
    at::Tensor e_mm = row_err(rtn_quantize(W, f)), e_mse = row_err(rtn_quantize(W, f, clip));
    EXPECT_LE((e_mse - e_mm * (1 + 1e-5)).max().item<double>(), 0.0);
    EXPECT_GT((e_mse < e_mm * 0.99).sum().item<int64_t>(), 0) << "the clip search never helped";
  }
}

// ---- GPTQ ----------------------------------------------------------------------------------

TEST(GptqQuant, IdentityHessianEqualsRtn) {
  at::Tensor W = randn({64, 256}, 21);
  at::Tensor H = at::eye(256);
  ClipSearch clip;
  clip.enabled = true;
  for (const char* name : {"w4", "w3g64", "w2g32s"}) {
    SCOPED_TRACE(name);
    QFormat f = QFormat::parse(name);
    GptqResult g = gptq_quantize(W, H, f);
    QTensor r = rtn_quantize(W, f);
    EXPECT_TRUE(at::equal(g.q.codes, r.codes));
    EXPECT_TRUE(at::equal(g.q.scales, r.scales));
    EXPECT_TRUE(at::equal(g.q.zeros, r.zeros));
    EXPECT_FALSE(g.q.g_idx.defined());
    EXPECT_NEAR(g.error, output_error(W, r.dequantize(), H), 1e-9 * (1 + g.error));
  }
  GptqOptions o;
  o.clip = clip;
  QFormat f = QFormat::parse("w3g64");
  EXPECT_TRUE(at::equal(gptq_quantize(W, H, f, o).q.codes, rtn_quantize(W, f, clip).codes));
}

TEST(GptqQuant, BlockSizeDoesNotChangeCodes) {
  at::Tensor X = correlated_inputs(512, 128, 31);
  at::Tensor H = hessian_of(X);
  at::Tensor W = randn({32, 128}, 32);
  for (const char* name : {"w3g32", "w4", "w2g64"}) {
    SCOPED_TRACE(name);
    QFormat f = QFormat::parse(name);
    GptqOptions o;
    o.block_size = 128;
    GptqResult ref = gptq_quantize(W, H, f, o);
    for (int64_t bs : {1, 48}) {  // 48: groups of 32 and 64 straddle block boundaries
      o.block_size = bs;
      GptqResult g = gptq_quantize(W, H, f, o);
      EXPECT_LE(count_mismatches(g.q.codes, ref.q.codes), 2) << "block size " << bs;
      EXPECT_NEAR(g.error, ref.error, 1e-3 * ref.error);
    }
  }
}

TEST(GptqQuant, BeatsRtnOnCorrelatedInputs) {
  at::Tensor X = correlated_inputs(1024, 128, 41);
  at::Tensor H = hessian_of(X);
  at::Tensor W = randn({64, 128}, 42);
  for (const char* name : {"w2", "w3", "w4", "w3g32"}) {
    SCOPED_TRACE(name);
    QFormat f = QFormat::parse(name);
    double e_gptq = gptq_quantize(W, H, f).error;
    double e_rtn = output_error(W, rtn_quantize(W, f).dequantize(), H);
    EXPECT_LT(e_gptq, 0.9 * e_rtn) << "gptq " << e_gptq << " rtn " << e_rtn;
  }
}

// GPTQ with options O against the slow reference (same order, static groups and, when
// ref_block_start > 0, gptq.py's block-start group parameters): the same g_idx presence, codes
// equal up to 0.1% (float32 vs float64 ties), the same output error.
static GptqResult expect_matches_reference(const at::Tensor& W, const at::Tensor& H, const QFormat& f, const GptqOptions& o,
                                           int64_t ref_block_start, RefResult& r) {
  GptqResult g = gptq_quantize(W, H, f, o);
  r = gptq_reference(W, H, f, o.order, o.static_groups, 0.01, ref_block_start);
  EXPECT_EQ(g.q.g_idx.defined(), r.with_g_idx);
  EXPECT_LE(count_mismatches(g.q.codes, r.codes), W.numel() / 1000);
  const double e_ref = output_error(W, r.dequant, H);
  EXPECT_NEAR(g.error, e_ref, 1e-3 * e_ref);
  return g;
}

TEST(GptqQuant, OrdersMatchSlowReference) {
  at::Tensor X = correlated_inputs(512, 256, 51);
  at::Tensor H = hessian_of(X);
  at::Tensor W = randn({32, 256}, 52);
  struct Case {
    const char* fmt;
    GptqOrder order;
    bool stat;
  };
  const Case cases[] = {{"w3g64", GptqOrder::Natural, false},         {"w3g64", GptqOrder::ActOrder, false},
                        {"w3g64", GptqOrder::ActOrder, true},          {"w3g64", GptqOrder::GroupPreserving, false},
                        {"w4g32s", GptqOrder::GroupPreserving, true},  {"w2", GptqOrder::ActOrder, false},
                        {"w4g128", GptqOrder::ActOrder, false}};
  for (const Case& c : cases) {
    QFormat f = QFormat::parse(c.fmt);
    SCOPED_TRACE(std::string(c.fmt) + " order " + std::to_string(int(c.order)) + (c.stat ? " static" : ""));
    GptqOptions o;
    o.order = c.order;
    o.static_groups = c.stat;
    o.block_size = 64;
    RefResult r;
    GptqResult g = expect_matches_reference(W, H, f, o, 0, r);
    EXPECT_LT((g.q.dequantize().to(at::kDouble) - r.dequant).abs().max().item<double>(), 1e-4 + 0.6 * g.q.scales.max().item<double>());
    if (g.q.g_idx.defined()) {  // group of column j = its position in the processing order / width
      at::Tensor counts = at::bincount(g.q.g_idx.to(at::kLong));
      EXPECT_TRUE(at::equal(counts, at::full({f.groups(256)}, f.group_width(256), at::kLong)));
    }
  }
}

TEST(GptqQuant, RaggedGroupsAndBlockStartParamsMatchSlowReference) {
  // 200 columns: w3g64 has a short last group of 8 (w4g32: of 8 too). block_start reads each
  // group's parameters as gptq.py does, from W at the start of the lazy block (block 64 holds two
  // groups of 32, so the second one differs from the current-columns rule).
  at::Tensor X = correlated_inputs(512, 200, 61);
  at::Tensor H = hessian_of(X);
  at::Tensor W = randn({24, 200}, 62);
  struct Case {
    const char* fmt;
    GptqOrder order;
    bool stat;
    int64_t block_start;
  };
  const Case cases[] = {{"w3g64", GptqOrder::Natural, false, 0},         {"w3g64", GptqOrder::ActOrder, false, 0},
                        {"w3g64", GptqOrder::ActOrder, true, 0},          {"w3g64", GptqOrder::GroupPreserving, false, 0},
                        {"w4g32s", GptqOrder::GroupPreserving, true, 0},  {"w4g32", GptqOrder::Natural, false, 64},
                        {"w4g32", GptqOrder::ActOrder, false, 64},        {"w3g64", GptqOrder::GroupPreserving, false, 64}};
  for (const Case& c : cases) {
    QFormat f = QFormat::parse(c.fmt);
    SCOPED_TRACE(std::string(c.fmt) + " order " + std::to_string(int(c.order)) + (c.stat ? " static" : "") +
                 " block_start " + std::to_string(c.block_start));
    GptqOptions o;
    o.order = c.order;
    o.static_groups = c.stat;
    o.block_size = c.block_start > 0 ? c.block_start : 48;
    o.params_at_block_start = c.block_start > 0;
    RefResult r;
    GptqResult g = expect_matches_reference(W, H, f, o, c.block_start, r);
    EXPECT_EQ(g.q.scales.size(1), f.groups(200));
    if (g.q.g_idx.defined()) {  // processing-order groups: 64, 64, 64, then the last 8 columns
      at::Tensor counts = at::bincount(g.q.g_idx.to(at::kLong));
      EXPECT_EQ(counts[f.groups(200) - 1].item<int64_t>(), 200 % f.group_width(200));
    }
    const double e_rtn = output_error(W, rtn_quantize(W, f).dequantize(), H);
    EXPECT_LT(g.error, e_rtn);
  }
  // block_start with whole lazy blocks per group (block = group = 64) is the current-columns rule.
  GptqOptions a, b;
  a.block_size = b.block_size = 64;
  b.params_at_block_start = true;
  EXPECT_TRUE(at::equal(gptq_quantize(W, H, QFormat::parse("w3g64"), a).q.codes,
                        gptq_quantize(W, H, QFormat::parse("w3g64"), b).q.codes));
}

TEST(GptqQuant, DeadColumnsAreZeroed) {
  at::Tensor X = correlated_inputs(256, 64, 61);
  for (int64_t j : {3, 17, 40}) X.select(1, j).zero_();
  at::Tensor H = hessian_of(X);
  at::Tensor W = randn({16, 64}, 62);
  for (GptqOrder order : {GptqOrder::Natural, GptqOrder::ActOrder, GptqOrder::GroupPreserving}) {
    GptqOptions o;
    o.order = order;
    GptqResult g = gptq_quantize(W, H, QFormat::parse("w3g16"), o);
    at::Tensor dq = g.q.dequantize();
    for (int64_t j : {3, 17, 40}) EXPECT_TRUE(at::equal(dq.select(1, j), at::zeros({16}))) << "column " << j;
    EXPECT_TRUE(std::isfinite(g.error));
  }
}

TEST(GptqQuant, GroupPreservingOnDominantColumns) {
  // A few inputs far louder than the rest: act-order's case. Group-preserving keeps groups
  // contiguous (no g_idx) and should be no worse than natural order.
  at::Tensor X = correlated_inputs(1024, 256, 71);
  for (int64_t j : {5, 70, 150, 230}) X.select(1, j).mul_(20);
  at::Tensor H = hessian_of(X);
  at::Tensor W = randn({64, 256}, 72);
  QFormat f = QFormat::parse("w3g64");
  GptqOptions o;
  const double e_nat = gptq_quantize(W, H, f, o).error;
  o.order = GptqOrder::GroupPreserving;
  GptqResult gp = gptq_quantize(W, H, f, o);
  o.order = GptqOrder::ActOrder;
  const double e_act = gptq_quantize(W, H, f, o).error;
  EXPECT_FALSE(gp.q.g_idx.defined());
  EXPECT_LE(gp.error, e_nat) << "natural " << e_nat << " group-preserving " << gp.error << " act-order " << e_act;
  RecordProperty("natural", std::to_string(e_nat));
  RecordProperty("group_preserving", std::to_string(gp.error));
  RecordProperty("act_order", std::to_string(e_act));
}

TEST(GptqQuant, HessianAccumulator) {
  at::Tensor X = randn({2, 50, 24}, 81);  // [batch, tokens, in]
  HessianAccumulator one(24), two(24);
  one.add(X);
  two.add(X[0]);
  two.add(X[1].to(at::kDouble));
  EXPECT_EQ(one.tokens(), 100);
  EXPECT_EQ(two.tokens(), 100);
  at::Tensor X2 = X.reshape({100, 24}).to(at::kDouble);
  at::Tensor expect = X2.t().mm(X2).mul(2.0 / 100);
  EXPECT_TRUE(at::allclose(one.H().to(at::kDouble), expect, 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(two.H(), one.H(), 1e-5, 1e-5));
  EXPECT_THROW(one.add(at::zeros({3, 23})), Error);
}

TEST(GptqQuant, RejectsBadInputs) {
  at::Tensor W = randn({8, 64}, 91);
  EXPECT_THROW(gptq_quantize(W, at::eye(32), QFormat::parse("w4")), Error);
  EXPECT_THROW(gptq_quantize(W, at::eye(64), QFormat::parse("w2g48d")), Error);  // DSQ needs whole groups
  EXPECT_THROW(gptq_quantize(W, at::eye(64).neg(), QFormat::parse("w4")), Error);  // not PD
}
