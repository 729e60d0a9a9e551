// Tests of GPTAQ (Li et al. 2025, "GPTQv2"; METHODS.md 2.2 step 2 / 5.9) and of D²Quant's
// dual-scale quantizer DSQ (arXiv 2602.02546, METHODS.md 2.2 step 5): GPTAQ with dXXT = 0
// is GPTQ bit for bit, matches a slow float64 column-by-column transcription, does not
// depend on the block size and lowers ||W X_fp - Q X_q||^2; DSQ's fit against uniform RTN,
// its levels/codes against dequantize, GPTQ with DSQ against DSQ-RTN, format names and
// bits, and the column-scale absorption identity on a SwiGLU MLP.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "sliderquant/core/error.h"
#include "sliderquant/quant/dsq.h"
#include "sliderquant/quant/format.h"
#include "sliderquant/quant/gptq.h"
#include "sliderquant/quant/rtn.h"
#include "test_util.h"

using namespace sq;

namespace {
at::Tensor randn(at::IntArrayRef shape, uint64_t seed) { return sq::testing::seeded_randn(shape, seed); }
using sq::testing::correlated_inputs;


// Student-t with 3 degrees of freedom: z / sqrt(chi2_3 / 3). [rows, cols]
at::Tensor student_t3(int64_t rows, int64_t cols, uint64_t seed) {
  at::Tensor z = randn({rows, cols}, seed);
  at::Tensor chi2 = randn({3, rows, cols}, seed + 1).pow(2).sum(0);
  return z.div(chi2.div(3).sqrt());
}

// The fp model's inputs and the quantized model's: X_q = X_fp + structured noise (a
// systematic low-rank drift plus a small feature-mixing error). [n, in] each.
std::pair<at::Tensor, at::Tensor> fp_and_quantized_inputs(int64_t n, int64_t in, uint64_t seed) {
  at::Tensor Xf = correlated_inputs(n, in, seed);
  at::Tensor mix = randn({in, in}, seed + 5).mul(0.15 / std::sqrt(double(in)));
  at::Tensor drift = randn({n, 4}, seed + 6).mm(randn({4, in}, seed + 7)).mul(0.3);
  return {Xf, Xf + Xf.mm(mix) + drift};
}

at::Tensor hessian_of(const at::Tensor& X) {
  HessianAccumulator acc(X.size(1));
  acc.add(X);
  return acc.H();
}

at::Tensor cross_of(const at::Tensor& Xf, const at::Tensor& Xq) {
  CrossAccumulator acc(Xq.size(1));
  acc.add(Xf, Xq);
  return acc.dXXT();
}

// ||X_fp W^T - X_q Q^T||^2 in float64: GPTAQ's objective.
double asym_objective(const at::Tensor& W, const at::Tensor& Q, const at::Tensor& Xf, const at::Tensor& Xq) {
  at::Tensor d = Xf.to(at::kDouble).mm(W.to(at::kDouble).t()) - Xq.to(at::kDouble).mm(Q.to(at::kDouble).t());
  return d.pow(2).sum().item<double>();
}

int64_t count_mismatches(const at::Tensor& a, const at::Tensor& b) {
  return a.to(at::kLong).ne(b.to(at::kLong)).sum().item<int64_t>();
}

double sq_err(const at::Tensor& a, const at::Tensor& b) {
  return (a.to(at::kDouble) - b.to(at::kDouble)).pow(2).sum().item<double>();
}

QTensor qtensor_of(const DsqFit& fit, int bits, int64_t width) {
  QTensor q;
  q.format = QFormat::parse("w" + std::to_string(bits) + "g" + std::to_string(width) + "d");
  q.codes = fit.codes;
  q.levels_r = fit.r.unsqueeze(1);  // [out, 1, bits]
  q.col_scale = fit.c;
  return q;
}

// Slow GPTAQ: float64, natural order, no lazy blocks, min-max params on the current
// group: q = Q(w_k), e = (w_k - q) / U_kk, W[:, k:] -= e U[k, k:] - w_k P[k, k:].
at::Tensor gptaq_reference(const at::Tensor& W_in, const at::Tensor& H_in, const at::Tensor& D_in, const QFormat& f,
                           double alpha = 0.25, double percdamp = 0.01) {
  const int64_t out = W_in.size(0), in = W_in.size(1), width = f.group_width(in), maxq = f.maxq();
  at::Tensor W = W_in.to(at::kDouble).clone();
  at::Tensor H = H_in.to(at::kDouble).clone();
  H.diagonal().add_(percdamp * H.diagonal().mean().item<double>());
  at::Tensor U = at::linalg_cholesky(at::inverse(H).transpose(0, 1), /*upper=*/true);  // [in, in]
  at::Tensor P = at::triu(D_in.to(at::kDouble).mm(U.t()), 1).mm(U).mul(alpha);       // [in, in]
  at::Tensor codes = at::zeros({out, in}, at::kLong);
  at::Tensor scale, zero;  // [out] double
  for (int64_t k = 0; k < in; ++k) {
    if (k % width == 0) {
      QParams p = find_params(W.narrow(1, k, width).to(at::kFloat), f.bits, f.symmetric, {});
      scale = p.scale.squeeze(1).to(at::kDouble);
      zero = p.zero.squeeze(1).to(at::kDouble);
    }
    at::Tensor w = W.select(1, k).clone();  // [out]
    at::Tensor q = at::round(w / scale).add(zero).clamp(0, double(maxq));
    codes.select(1, k).copy_(q);
    at::Tensor e = (w - scale * (q - zero)) / U[k][k].item<double>();
    W.narrow(1, k, in - k).sub_(at::outer(e, U[k].narrow(0, k, in - k)) - at::outer(w, P[k].narrow(0, k, in - k)));
  }
  return codes;
}

}  // namespace

// ---- GPTAQ ---------------------------------------------------------------------------------

TEST(GptaqQuant, CrossAccumulatorRunningScaling) {
  auto [Xf, Xq] = fp_and_quantized_inputs(96, 16, 3);
  CrossAccumulator acc(16);
  acc.add(Xf.narrow(0, 0, 40), Xq.narrow(0, 0, 40));
  acc.add(Xf.narrow(0, 40, 56).view({2, 28, 16}), Xq.narrow(0, 40, 56).view({2, 28, 16}));
  EXPECT_EQ(acc.tokens(), 96);
  at::Tensor expect = (Xf - Xq).t().mm(Xq).mul(2.0 / 96);
  EXPECT_TRUE(at::allclose(acc.dXXT(), expect, 1e-4, 1e-4));
  EXPECT_THROW(acc.add(Xf, Xq.narrow(0, 0, 10)), Error);
}

TEST(GptaqQuant, ZeroCrossTermIsGptqBitForBit) {
  at::Tensor X = correlated_inputs(384, 96, 11);
  at::Tensor H = hessian_of(X);
  at::Tensor W = randn({24, 96}, 12);
  at::Tensor Z = at::zeros({96, 96});
  for (const char* name : {"w3g32", "w4", "w2g32d", "w3g48d"}) {
    for (GptqOrder order : {GptqOrder::Natural, GptqOrder::ActOrder, GptqOrder::GroupPreserving}) {
      QFormat f = QFormat::parse(name);
      if (f.dsq && order == GptqOrder::ActOrder) continue;
      SCOPED_TRACE(std::string(name) + " order " + std::to_string(int(order)));
      GptqOptions o;
      o.order = order;
      o.block_size = 40;  // groups straddle block boundaries
      GptqResult a = gptq_quantize(W, H, f, o), b = gptaq_quantize(W, H, Z, f, o);
      EXPECT_TRUE(at::equal(a.q.codes, b.q.codes));
      EXPECT_TRUE(at::equal(a.q.dequantize(), b.q.dequantize()));
      EXPECT_EQ(a.error, b.error);
    }
  }
}

TEST(GptaqQuant, MatchesSlowReferenceAndIgnoresBlockSize) {
  auto [Xf, Xq] = fp_and_quantized_inputs(512, 128, 21);
  at::Tensor H = hessian_of(Xq), D = cross_of(Xf, Xq);
  at::Tensor W = randn({32, 128}, 22);
  for (const char* name : {"w3g32", "w4"}) {
    SCOPED_TRACE(name);
    QFormat f = QFormat::parse(name);
    at::Tensor ref = gptaq_reference(W, H, D, f);
    for (int64_t bs : {1, 48, 128}) {
      GptqOptions o;
      o.block_size = bs;
      GptqResult g = gptaq_quantize(W, H, D, f, o);
      EXPECT_LE(count_mismatches(g.q.codes, ref), 3) << "block size " << bs;
    }
  }
}

TEST(GptaqQuant, LowersAsymmetricObjective) {
  auto [Xf, Xq] = fp_and_quantized_inputs(1024, 128, 31);
  at::Tensor H = hessian_of(Xq), D = cross_of(Xf, Xq);
  at::Tensor W = randn({64, 128}, 32);
  for (const char* name : {"w3g32", "w2g64", "w2g64d"}) {
    SCOPED_TRACE(name);
    QFormat f = QFormat::parse(name);
    GptqOptions o;
    o.order = GptqOrder::GroupPreserving;
    double e_gptq = asym_objective(W, gptq_quantize(W, H, f, o).q.dequantize(), Xf, Xq);
    double e_gptaq = asym_objective(W, gptaq_quantize(W, H, D, f, o).q.dequantize(), Xf, Xq);
    double e_fp = asym_objective(W, W, Xf, Xq);  // not quantizing at all
    std::printf("  %s: ||W X_fp - Q X_q||^2  gptq %.1f  gptaq %.1f  (W itself %.1f)\n", name, e_gptq, e_gptaq, e_fp);
    EXPECT_LT(e_gptaq, 0.97 * e_gptq);
  }
}

TEST(GptaqQuant, RejectsBadCrossTerm) {
  at::Tensor W = randn({4, 32}, 1), H = at::eye(32);
  EXPECT_THROW(gptaq_quantize(W, H, at::zeros({32, 16}), QFormat::parse("w4")), Error);
  EXPECT_THROW(gptaq_quantize(W, H, at::Tensor(), QFormat::parse("w4")), Error);
}

// ---- DSQ -----------------------------------------------------------------------------------

TEST(DsqFormat, NamesBitsAndChecks) {
  QFormat f = QFormat::parse("w2g128d");
  EXPECT_TRUE(f.dsq);
  EXPECT_EQ(f.bits, 2);
  EXPECT_EQ(f.group_size, 128);
  EXPECT_EQ(f.name(), "w2g128d");
  EXPECT_EQ(QFormat::parse("W3D").name(), "w3d");
  EXPECT_FALSE(QFormat::parse("w2g128") == f);
  EXPECT_THROW(QFormat::parse("w4g128d"), UsageError);
  EXPECT_THROW(QFormat::parse("w2g128sd"), UsageError);
  EXPECT_THROW(QFormat::parse("w2g128dx"), UsageError);
  QFormat bad = f;
  bad.bits = 4;
  EXPECT_THROW(bad.check(8, 128, "t"), Error);
  // codes + 2 fp16 r per (row, group of 128) + one fp16 c per column spread over the rows.
  EXPECT_DOUBLE_EQ(bits_per_weight(f, 4096, 11008, false), 2.0 + 32.0 / 128.0 + 16.0 / 4096.0);
  EXPECT_DOUBLE_EQ(bits_per_weight(f, 4096, 11008, false, /*with_col_scale=*/false), 2.0 + 32.0 / 128.0);
  EXPECT_DOUBLE_EQ(bits_per_weight(QFormat::parse("w3g64d"), 512, 256, false), 3.0 + 48.0 / 64.0 + 16.0 / 512.0);
}

TEST(DsqFormat, DequantizeByHand) {
  // One row, one group of 4 columns, 2 bits: r = (1, 0.25); codes 0..3 -> levels
  // -r0-r1, +r0-r1, -r0+r1, +r0+r1 (bit k = 1 means +r_k); times col_scale.
  QTensor q;
  q.format = QFormat::parse("w2g4d");
  q.codes = at::tensor({0, 1, 2, 3}, at::kByte).view({1, 4});
  q.levels_r = at::tensor({1.0f, 0.25f}).view({1, 1, 2});
  EXPECT_TRUE(at::equal(q.dequantize(), at::tensor({-1.25f, 0.75f, -0.75f, 1.25f}).view({1, 4})));
  q.col_scale = at::tensor({1.0f, 2.0f, 0.5f, 4.0f});
  EXPECT_TRUE(at::equal(q.dequantize(), at::tensor({-1.25f, 1.5f, -0.375f, 5.0f}).view({1, 4})));
  at::Tensor c = take_column_scale(q);
  EXPECT_EQ(c.size(0), 4);
  EXPECT_FALSE(q.col_scale.defined());
  EXPECT_THROW(take_column_scale(q), Error);
  QTensor u;
  u.format = QFormat::parse("w4");
  EXPECT_THROW(take_column_scale(u), Error);
}

TEST(DsqFit, BeatsUniformRtnAt2Bits) {
  const QFormat rtn2 = QFormat::parse("w2g128");
  for (int kind = 0; kind < 2; ++kind) {
    at::Tensor W = kind == 0 ? randn({256, 128}, 41) : student_t3(256, 128, 42);
    SCOPED_TRACE(kind == 0 ? "gaussian" : "student-t3");
    DsqFit fit = dsq_fit(W, 2);
    double e_dsq = sq_err(qtensor_of(fit, 2, 128).dequantize(), W);
    double e_rtn = sq_err(rtn_quantize(W, rtn2).dequantize(), W);
    double e_rtn_mse = sq_err(rtn_quantize(W, rtn2, ClipSearch{true}).dequantize(), W);
    std::printf("  %s: ||W - W_hat||^2 / ||W||^2  dsq2 %.4f  rtn2 %.4f  rtn2+mse %.4f\n", kind == 0 ? "gauss" : "t3",
                e_dsq / sq_err(W, at::zeros_like(W)), e_rtn / sq_err(W, at::zeros_like(W)),
                e_rtn_mse / sq_err(W, at::zeros_like(W)));
    EXPECT_LT(e_dsq, 0.8 * e_rtn);
    EXPECT_LT(e_dsq, e_rtn_mse);
  }
}

TEST(DsqFit, LevelsAndCodesAgreeWithDequantize) {
  at::Tensor W = student_t3(48, 64, 51);
  for (int bits : {2, 3}) {
    SCOPED_TRACE(bits);
    DsqFit fit = dsq_fit(W, bits);
    ASSERT_EQ(fit.r.sizes(), at::IntArrayRef({48, bits}));
    ASSERT_EQ(fit.c.sizes(), at::IntArrayRef({64}));
    ASSERT_EQ(fit.codes.sizes(), at::IntArrayRef({48, 64}));
    EXPECT_EQ(fit.codes.scalar_type(), at::kByte);
    EXPECT_LT(fit.codes.max().item<int64_t>(), int64_t(1) << bits);
    EXPECT_GE(fit.r.min().item<float>(), 0.0f);
    EXPECT_GT(fit.c.min().item<float>(), 0.0f);
    EXPECT_TRUE(at::equal(fit.r.to(at::kHalf).to(at::kFloat), fit.r));
    EXPECT_TRUE(at::equal(fit.c.to(at::kHalf).to(at::kFloat), fit.c));
    // The slow obvious meaning: w = c_j sum_k r_ik (2 bit_k - 1), per element.
    at::Tensor dq = qtensor_of(fit, bits, 64).dequantize();
    auto cd = fit.codes.accessor<uint8_t, 2>();
    auto r = fit.r.accessor<float, 2>();
    auto c = fit.c.accessor<float, 1>();
    auto d = dq.accessor<float, 2>();
    auto w = W.accessor<float, 2>();
    int64_t not_nearest = 0;
    for (int64_t i = 0; i < 48; ++i)
      for (int64_t j = 0; j < 64; ++j) {
        auto level = [&](int code) {
          double s = 0;
          for (int k = 0; k < bits; ++k) s += r[i][k] * (((code >> k) & 1) ? 1.0 : -1.0);
          return s;
        };
        ASSERT_NEAR(d[i][j], c[j] * level(cd[i][j]), 1e-5 * (1 + std::fabs(d[i][j])));
        const double mine = std::fabs(w[i][j] / c[j] - level(cd[i][j]));
        for (int code = 0; code < (1 << bits); ++code)
          if (std::fabs(w[i][j] / c[j] - level(code)) < mine - 1e-5) ++not_nearest;
      }
    EXPECT_EQ(not_nearest, 0);
  }
}

TEST(DsqFit, MoreBitsAndIterationsHelp) {
  at::Tensor W = randn({256, 128}, 61);
  double e0 = sq_err(qtensor_of(dsq_fit(W, 2, 0), 2, 128).dequantize(), W);
  double e2 = sq_err(qtensor_of(dsq_fit(W, 2), 2, 128).dequantize(), W);
  double e3 = sq_err(qtensor_of(dsq_fit(W, 3), 3, 128).dequantize(), W);
  std::printf("  ||W - W_hat||^2: dsq2 init %.2f  dsq2 %.2f  dsq3 %.2f\n", e0, e2, e3);
  EXPECT_LE(e2, e0 * 1.0001);
  EXPECT_LT(e3, 0.5 * e2);
  // Degenerate inputs stay finite: a zero row, a zero column, a constant row, all zeros.
  at::Tensor Z = randn({8, 16}, 62);
  Z[0].zero_();
  Z.select(1, 3).zero_();
  Z[1].fill_(0.5);
  DsqFit fz = dsq_fit(Z, 3);
  at::Tensor dz = qtensor_of(fz, 3, 16).dequantize();
  EXPECT_TRUE(at::isfinite(dz).all().item<bool>());
  EXPECT_LT(dz[0].abs().max().item<float>(), 1e-3);
  EXPECT_LT(sq_err(dz, Z), 0.2 * sq_err(Z, at::zeros_like(Z)));
  EXPECT_TRUE(at::isfinite(qtensor_of(dsq_fit(at::zeros({4, 16}), 2), 2, 16).dequantize()).all().item<bool>());
}

TEST(DsqGptq, BeatsDsqRtnOnCorrelatedInputs) {
  at::Tensor X = correlated_inputs(1024, 256, 71);
  at::Tensor H = hessian_of(X);
  at::Tensor W = randn({64, 256}, 72);
  for (const char* name : {"w2g128d", "w3g64d"}) {
    SCOPED_TRACE(name);
    QFormat f = QFormat::parse(name);
    double e_rtn = output_error(W, dsq_rtn_quantize(W, f).dequantize(), H);
    EXPECT_DOUBLE_EQ(e_rtn, output_error(W, rtn_quantize(W, f).dequantize(), H));
    for (GptqOrder order : {GptqOrder::Natural, GptqOrder::GroupPreserving}) {
      GptqOptions o;
      o.order = order;
      GptqResult g = gptq_quantize(W, H, f, o);
      EXPECT_TRUE(g.q.col_scale.defined());
      EXPECT_FALSE(g.q.scales.defined());
      EXPECT_EQ(g.q.levels_r.sizes(), at::IntArrayRef({64, f.groups(256), f.bits}));
      std::printf("  %s order %d: output error gptq-dsq %.1f  dsq-rtn %.1f\n", name, int(order), g.error, e_rtn);
      EXPECT_LT(g.error, 0.8 * e_rtn);
    }
    GptqOptions act;
    act.order = GptqOrder::ActOrder;
    EXPECT_THROW(gptq_quantize(W, H, f, act), Error);
  }
  // H = I: GPTQ with DSQ is DSQ-RTN (the first column's fit sees the untouched group).
  QFormat f = QFormat::parse("w2g64d");
  GptqResult g = gptq_quantize(W, at::eye(256), f);
  QTensor r = dsq_rtn_quantize(W, f);
  EXPECT_TRUE(at::equal(g.q.codes, r.codes));
  EXPECT_TRUE(at::equal(g.q.levels_r, r.levels_r));
  EXPECT_TRUE(at::equal(g.q.col_scale, r.col_scale));
}

TEST(DsqAbsorb, SwiGluOutputUnchanged) {
  const int64_t d = 32, h = 64, n = 16;
  at::Tensor x = randn({n, d}, 81), gate = randn({h, d}, 82), up = randn({h, d}, 83);
  QTensor down = dsq_rtn_quantize(randn({d, h}, 84), QFormat::parse("w2g32d"));
  auto mlp = [&](const at::Tensor& up_w, const at::Tensor& down_w) {  // [n, d]
    return at::silu(x.mm(gate.t())).mul(x.mm(up_w.t())).mm(down_w.t());
  };
  at::Tensor y = mlp(up, down.dequantize());
  QTensor down2 = down;
  at::Tensor c = take_column_scale(down2);  // [h]
  at::Tensor y2 = mlp(up.mul(c.unsqueeze(1)), down2.dequantize());
  EXPECT_LT((y2 - y).norm().item<double>(), 1e-5 * y.norm().item<double>());
  // Into a quantized up_proj: through its fp16 row scales, exact up to fp16 rounding.
  QTensor upq = rtn_quantize(up, QFormat::parse("w4g16"));
  at::Tensor yq = mlp(upq.dequantize(), down.dequantize());
  QTensor down3 = down;
  absorb_column_scale(down3, upq);
  EXPECT_FALSE(down3.col_scale.defined());
  at::Tensor yq2 = mlp(upq.dequantize(), down3.dequantize());
  EXPECT_LT((yq2 - yq).norm().item<double>(), 2e-3 * yq.norm().item<double>());
}
