// quant/dsq: the dual-scale quantizer of D²Quant (Yan et al., arXiv 2602.02546; docs/METHODS.md
// section 2.2 step 5): the alternating fit of row scales r, column scales c and sign codes
// for one group, the nearest-level quantizer, DSQ-RTN and the absorption of c into the
// producing linear. Vectorised over rows and columns; the bits x bits normal equations are
// solved in closed form (Cramer's rule, float64) so nothing synchronises with the host.
#include "sliderquant/quant/dsq.h"

#include <ATen/ATen.h>

#include <vector>

#include "sliderquant/core/error.h"

namespace sq {
namespace {

constexpr double kFp16MinNormal = 6.103515625e-05;  // 2^-14
constexpr double kFp16Max = 65504.0;

at::Tensor fp16_round(const at::Tensor& t) { return t.to(at::kHalf).to(at::kFloat); }

// Solves M x = v for SPD M [rows, b, b], v [rows, b] (b = 1..3), in float64 with a small
// ridge (so rows whose sign patterns coincide split the scale instead of dividing by 0).
at::Tensor solve_small(const at::Tensor& M_in, const at::Tensor& v_in) {
  const int64_t b = M_in.size(1);
  at::Tensor M = M_in.to(at::kDouble), v = v_in.to(at::kDouble);
  at::Tensor ridge = M.diagonal(0, 1, 2).mean(1).mul(1e-7).add(1e-30);  // [rows]
  M = M + at::diag_embed(ridge.unsqueeze(1).expand({-1, b}));
  auto m = [&](int i, int j) { return M.select(1, i).select(1, j); };  // [rows]
  auto x = [&](int i) { return v.select(1, i); };
  if (b == 1) return v.div(M.select(1, 0)).to(at::kFloat);
  if (b == 2) {
    at::Tensor det = m(0, 0) * m(1, 1) - m(0, 1) * m(1, 0);
    at::Tensor r0 = (m(1, 1) * x(0) - m(0, 1) * x(1)) / det;
    at::Tensor r1 = (m(0, 0) * x(1) - m(1, 0) * x(0)) / det;
    return at::stack({r0, r1}, 1).to(at::kFloat);
  }
  SQ_CHECK(b == 3, "dsq: " << b << " bits (supported: 2..3)");
  // Cramer's rule: x_k = det(M with column k replaced by v) / det(M).
  auto det3 = [](const std::vector<std::vector<at::Tensor>>& a) {
    return a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
           a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
  };
  std::vector<std::vector<at::Tensor>> a(3, std::vector<at::Tensor>(3));
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) a[i][j] = m(i, j);
  at::Tensor det = det3(a);
  std::vector<at::Tensor> sol;
  for (int k = 0; k < 3; ++k) {
    auto ak = a;
    for (int i = 0; i < 3; ++i) ak[i][k] = x(i);
    sol.push_back(det3(ak) / det);
  }
  return at::stack(sol, 1).to(at::kFloat);
}

// signs[code, k] = 2 * bit_k(code) - 1: [2^bits, bits] float32 on OPTS' device.
at::Tensor sign_table(int bits, const at::TensorOptions& opts) {
  return dsq_levels(at::eye(bits, opts)).t().contiguous();  // levels of the unit r's
}

}  // namespace

std::pair<at::Tensor, at::Tensor> dsq_nearest(const at::Tensor& W, const at::Tensor& c, const at::Tensor& r) {
  at::Tensor X = W.to(at::kFloat);                      // [out, n]
  at::Tensor cc = c.to(X.device(), at::kFloat);         // [n]
  at::Tensor L = dsq_levels(r.to(X.device(), at::kFloat));  // [out, 2^bits]
  at::Tensor Y = X.div(cc.unsqueeze(0));                // [out, n]
  at::Tensor codes = Y.unsqueeze(2).sub(L.unsqueeze(1)).abs_().argmin(2);  // [out, n]
  at::Tensor dq = at::gather(L, 1, codes).mul_(cc.unsqueeze(0));          // [out, n]
  return {codes, dq};
}

DsqFit dsq_fit(const at::Tensor& W, int bits, int iters) {
  SQ_CHECK(W.defined() && W.dim() == 2 && W.size(0) > 0 && W.size(1) > 0,
           "dsq_fit: expected one group [out, g], got " << (W.defined() ? W.sizes() : at::IntArrayRef{}));
  SQ_CHECK(bits == 2 || bits == 3, "dsq_fit: " << bits << " bits (DSQ supports 2 and 3)");
  SQ_CHECK(iters >= 0, "dsq_fit: iters must be >= 0, got " << iters);
  at::Tensor X = W.to(at::kFloat);  // [out, g]
  const auto opts = X.options();
  at::Tensor S = sign_table(bits, opts);  // [2^bits, bits]

  // Init: c = mean|W| per column (1 for all-zero columns), normalised to mean 1.
  at::Tensor c = X.abs().mean(0);  // [g]
  c = at::where(c > 0, c, at::ones_like(c));
  c = c.div(c.mean());
  at::Tensor c2sum = c.mul(c).sum();
  // Greedy binary coding of the residual: B_k = sign(R), r_k = sum_j c_j R_ij B_kij / sum_j c_j^2.
  at::Tensor R = X.clone();                                  // [out, g]
  at::Tensor codes = at::zeros(X.sizes(), opts.dtype(at::kLong));  // [out, g]
  std::vector<at::Tensor> rk;
  for (int k = 0; k < bits; ++k) {
    at::Tensor pos = R >= 0;                                         // [out, g]
    at::Tensor B = pos.to(at::kFloat).mul_(2).sub_(1);               // [out, g]
    at::Tensor r = R.abs().mul(c.unsqueeze(0)).sum(1).div(c2sum);    // [out]
    R.sub_(B.mul(c.unsqueeze(0)).mul_(r.unsqueeze(1)));
    codes.add_(pos.to(at::kLong).mul_(int64_t(1) << k));
    rk.push_back(r);
  }
  at::Tensor r = at::stack(rk, 1);  // [out, bits]
  at::Tensor pow2 = at::pow(2, at::arange(bits, opts.dtype(at::kLong)));  // [bits]

  for (int it = 0; it < iters; ++it) {
    // (i) r per row: (A^T A) r = A^T w with A[j, k] = c_j B_kij.
    at::Tensor A = S.index_select(0, codes.view({-1})).view({X.size(0), X.size(1), bits});  // [out, g, bits]
    A.mul_(c.view({1, -1, 1}));
    at::Tensor M = at::matmul(A.transpose(1, 2), A);                    // [out, bits, bits]
    at::Tensor v = at::matmul(A.transpose(1, 2), X.unsqueeze(2)).squeeze(2);  // [out, bits]
    r = solve_small(M, v);
    at::Tensor neg = r < 0;  // fold sign flips into B: flip bit k of the row's codes
    r = r.abs();
    codes = at::bitwise_xor(codes, neg.to(at::kLong).mul(pow2.unsqueeze(0)).sum(1, /*keepdim=*/true));
    // (ii) c_j = sum_i W_ij S_ij / sum_i S_ij^2 (a negative c is a column-wide sign flip,
    // which (iii) absorbs since the levels are symmetric); then mean(c) = 1, r carries it.
    at::Tensor Sv = at::gather(dsq_levels(r), 1, codes);  // [out, g]
    at::Tensor num = X.mul(Sv).sum(0), den = Sv.mul(Sv).sum(0);  // [g]
    c = at::where(den > 0, num.div(den.clamp_min(1e-30)), c).abs_().clamp_min_(kFp16MinNormal);
    at::Tensor cm = c.mean();
    c = c.div(cm);
    r = r.mul(cm);
    // (iii) every element to its nearest level.
    codes = dsq_nearest(X, c, r).first;
  }

  DsqFit f;
  f.c = fp16_round(c.clamp(kFp16MinNormal, kFp16Max));
  f.r = fp16_round(r.clamp_max(kFp16Max));
  f.codes = dsq_nearest(X, f.c, f.r).first.to(at::kByte);
  return f;
}

QTensor dsq_rtn_quantize(const at::Tensor& W, const QFormat& f, int iters) {
  SQ_CHECK(W.defined() && W.dim() == 2, "dsq_rtn_quantize: expected a weight [out, in]");
  SQ_CHECK(f.dsq, "dsq_rtn_quantize: format " << f.name() << " is not a DSQ format (e.g. w2g128d)");
  const int64_t out = W.size(0), in = W.size(1);
  f.check(out, in, "dsq_rtn_quantize weight");
  const int64_t G = f.groups(in), width = f.group_width(in);
  QTensor q;
  q.format = f;
  std::vector<at::Tensor> codes, rs, cs;
  for (int64_t g = 0; g < G; ++g) {
    DsqFit fit = dsq_fit(W.narrow(1, g * width, width), f.bits, iters);
    codes.push_back(fit.codes);
    rs.push_back(fit.r);
    cs.push_back(fit.c);
  }
  q.codes = at::cat(codes, 1);        // [out, in]
  q.levels_r = at::stack(rs, 1);      // [out, G, bits]
  q.col_scale = at::cat(cs, 0);       // [in]
  return q;
}

void absorb_column_scale(QTensor& down, QTensor& up) {
  SQ_CHECK(up.codes.defined() && up.out_features() == down.in_features(),
           "absorb_column_scale: up has " << (up.codes.defined() ? up.out_features() : 0) << " rows but down has "
                                          << down.in_features() << " input columns");
  SQ_CHECK(!up.g_idx.defined() || !up.format.dsq, "absorb_column_scale: up is DSQ with a g_idx");
  at::Tensor c = take_column_scale(down).to(up.codes.device(), at::kFloat);  // [up.out]
  if (up.format.dsq) {
    up.levels_r = fp16_round(up.levels_r.to(at::kFloat).mul(c.view({-1, 1, 1})));
  } else {
    up.scales = fp16_round(up.scales.to(at::kFloat).mul(c.unsqueeze(1)));
  }
}

}  // namespace sq
