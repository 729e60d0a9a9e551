// quant/gptq: GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for
// Generative Pre-trained Transformers", Algorithm 1; IST-DASLab/gptq gptq.py `fasterquant`;
// docs/METHODS.md section 5.2) and the Hessian accumulator of its `add_batch`; GPTAQ (Li et al.
// 2025, "GPTQv2", as used by D²Quant arXiv 2602.02546; docs/METHODS.md 2.2 step 2 and 5.9) as
// the same loop plus the P term, and its dXXT accumulator.
// Owns the column order (natural, act-order, group-preserving = D²Quant's GAR), damping,
// the upper Cholesky factor of H^-1 and the lazy block updates; the quantizers themselves
// are quant/rtn (uniform grids) and quant/dsq (DSQ levels).
// Dynamic group parameters are found on the truly current columns by default, so the result
// does not depend on block_size; params_at_block_start reads them as gptq.py does (the group's
// columns as they stood when the current lazy block began, before its in-block updates). Runs on W's device with no host sync in the column loop.
#include "sliderquant/quant/gptq.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <tuple>
#include <vector>

#include "sliderquant/core/error.h"
#include "sliderquant/quant/dsq.h"
#include "sliderquant/quant/ggml_grid.h"

namespace sq {

HessianAccumulator::HessianAccumulator(int64_t in_features) : in_(in_features) {
  SQ_CHECK(in_features > 0, "HessianAccumulator: in_features must be positive, got " << in_features);
  H_ = at::zeros({in_, in_}, at::kFloat);  // moves to the inputs' device on the first add
}

void HessianAccumulator::add(const at::Tensor& X) {
  SQ_CHECK(X.defined() && X.dim() >= 1 && X.size(-1) == in_,
           "HessianAccumulator: input has shape " << (X.defined() ? X.sizes() : at::IntArrayRef{})
                                                  << ", expected [..., " << in_ << "]");
  at::Tensor x = X.reshape({-1, in_}).to(at::kFloat);  // [tokens, in]
  const int64_t t = x.size(0);
  if (t == 0) return;
  if (n_ == 0 && H_.device() != x.device()) H_ = at::zeros({in_, in_}, x.options());
  SQ_CHECK(H_.device() == x.device(),
           "HessianAccumulator: input on " << x.device() << " but the Hessian is on " << H_.device());
  H_.mul_(static_cast<double>(n_) / static_cast<double>(n_ + t));
  n_ += t;
  x = x.mul(std::sqrt(2.0 / static_cast<double>(n_)));
  H_.addmm_(x.t(), x);
}

CrossAccumulator::CrossAccumulator(int64_t in_features) : in_(in_features) {
  SQ_CHECK(in_features > 0, "CrossAccumulator: in_features must be positive, got " << in_features);
  D_ = at::zeros({in_, in_}, at::kFloat);  // moves to the inputs' device on the first add
}

void CrossAccumulator::add(const at::Tensor& X_fp, const at::Tensor& X_q) {
  SQ_CHECK(X_fp.defined() && X_q.defined() && X_fp.sizes() == X_q.sizes() && X_q.dim() >= 1 && X_q.size(-1) == in_,
           "CrossAccumulator: inputs have shapes " << (X_fp.defined() ? X_fp.sizes() : at::IntArrayRef{}) << " (fp) and "
                                                   << (X_q.defined() ? X_q.sizes() : at::IntArrayRef{})
                                                   << " (quantized), expected equal shapes [..., " << in_ << "]");
  at::Tensor xq = X_q.reshape({-1, in_}).to(at::kFloat);                 // [tokens, in]
  at::Tensor xf = X_fp.reshape({-1, in_}).to(xq.device(), at::kFloat);  // [tokens, in]
  const int64_t t = xq.size(0);
  if (t == 0) return;
  if (n_ == 0 && D_.device() != xq.device()) D_ = at::zeros({in_, in_}, xq.options());
  SQ_CHECK(D_.device() == xq.device(),
           "CrossAccumulator: input on " << xq.device() << " but dXXT is on " << D_.device());
  D_.mul_(static_cast<double>(n_) / static_cast<double>(n_ + t));
  n_ += t;
  const double s = 2.0 / static_cast<double>(n_);
  D_.addmm_(xf.sub(xq).t(), xq, /*beta=*/1, /*alpha=*/s);
}

namespace {

// Processing order of the columns: perm[k] = original column processed k-th. [in] long.
at::Tensor column_order(const at::Tensor& diag, GptqOrder order, int64_t width) {
  const int64_t in = diag.size(0);
  switch (order) {
    case GptqOrder::Natural:
      return at::arange(in, diag.options().dtype(at::kLong));
    case GptqOrder::ActOrder:
      return std::get<1>(at::sort(diag, /*stable=*/true, /*dim=*/0, /*descending=*/true));
    case GptqOrder::GroupPreserving: {  // on the host: groups by their largest diagonal, columns within by theirs
      at::Tensor d = diag.to(at::kCPU, at::kFloat).contiguous();
      const float* dp = d.data_ptr<float>();
      const int64_t G = (in + width - 1) / width;  // a short last group (ragged format) sorts like the others
      std::vector<int64_t> gord(static_cast<size_t>(G));
      std::vector<float> gmax(static_cast<size_t>(G));
      for (int64_t g = 0; g < G; ++g) {
        gord[size_t(g)] = g;
        gmax[size_t(g)] = *std::max_element(dp + g * width, dp + std::min(in, (g + 1) * width));
      }
      std::stable_sort(gord.begin(), gord.end(), [&](int64_t a, int64_t b) { return gmax[size_t(a)] > gmax[size_t(b)]; });
      std::vector<int64_t> perm;
      perm.reserve(size_t(in));
      for (int64_t g : gord) {
        const size_t first = perm.size();
        for (int64_t c = g * width; c < std::min(in, (g + 1) * width); ++c) perm.push_back(c);
        std::stable_sort(perm.begin() + long(first), perm.end(), [&](int64_t x, int64_t y) { return dp[x] > dp[y]; });
      }
      return at::tensor(perm, at::TensorOptions().dtype(at::kLong)).to(diag.device());
    }
  }
  SQ_FAIL("gptq: unknown column order");
}

// The current values of the permuted columns [c, c + width), c = i1 + i, inside block
// [i1, i2): the in-block part from W1, the rest from W with this block's pending update
// (GPTAQ: P defined, W1's first i columns are the pre-quantization w_j).
at::Tensor current_group(const at::Tensor& W, const at::Tensor& W1, const at::Tensor& Err1, const at::Tensor& U,
                         const at::Tensor& P, int64_t i1, int64_t i2, int64_t i, int64_t width) {
  const int64_t c = i1 + i, end = std::min(c + width, W.size(1));
  at::Tensor inside = W1.narrow(1, i, std::min(end, i2) - c);  // [out, *]
  if (end <= i2) return inside;
  at::Tensor rest = W.narrow(1, i2, end - i2);  // [out, end - i2]
  if (i > 0) {
    at::Tensor upd = Err1.narrow(1, 0, i).mm(U.narrow(0, i1, i).narrow(1, i2, end - i2));
    if (P.defined()) upd.sub_(W1.narrow(1, 0, i).mm(P.narrow(0, i1, i).narrow(1, i2, end - i2)));
    rest = rest - upd;
  }
  return at::cat({inside, rest}, 1);
}

// Upper U with H^-1 = U^T U, as gptq.py: cholesky, cholesky_inverse, cholesky(upper).
at::Tensor upper_cholesky_of_inverse(const at::Tensor& H, const QFormat& f, double percdamp) {
  at::Tensor L, info;
  std::tie(L, info) = at::linalg_cholesky_ex(H);
  SQ_CHECK(info.item<int64_t>() == 0, "gptq (" << f.name() << "): the damped Hessian [" << H.size(0) << ", "
                                                 << H.size(1) << "] is not positive definite (percdamp "
                                                 << percdamp << "); raise percdamp or add calibration tokens");
  at::Tensor U;
  std::tie(U, info) = at::linalg_cholesky_ex(at::cholesky_inverse(L), /*upper=*/true);
  SQ_CHECK(info.item<int64_t>() == 0, "gptq (" << f.name() << "): H^-1 lost positive definiteness in float32 "
                                                 << "(percdamp " << percdamp << "); raise percdamp");
  return U;
}

// GPTQ, or GPTAQ when dXXT_in is defined: one column loop for both.
GptqResult quantize_columns(const at::Tensor& W_in, const at::Tensor& H_in, const at::Tensor& dXXT_in,
                            const QFormat& f, const GptqOptions& opts) {
  SQ_CHECK(W_in.defined() && W_in.dim() == 2, "gptq: expected a weight [out, in]");
  const int64_t out = W_in.size(0), in = W_in.size(1);
  f.check(out, in, "gptq weight");
  SQ_CHECK(H_in.defined() && H_in.dim() == 2 && H_in.size(0) == in && H_in.size(1) == in,
           "gptq: Hessian has shape " << H_in.sizes() << ", expected [" << in << ", " << in << "]");
  SQ_CHECK(opts.block_size >= 1, "gptq: block_size must be >= 1, got " << opts.block_size);
  SQ_CHECK(opts.percdamp >= 0, "gptq: percdamp must be >= 0, got " << opts.percdamp);
  const bool gptaq = dXXT_in.defined();
  SQ_CHECK(!gptaq || (dXXT_in.dim() == 2 && dXXT_in.size(0) == in && dXXT_in.size(1) == in),
           "gptaq: dXXT has shape " << dXXT_in.sizes() << ", expected [" << in << ", " << in << "]");
  SQ_CHECK(!f.dsq || opts.order == GptqOrder::Natural || opts.order == GptqOrder::GroupPreserving,
           "gptq: DSQ format " << f.name() << " needs contiguous groups: use order natural or group_preserving");
  SQ_CHECK(!f.ggml() || opts.order == GptqOrder::Natural || opts.order == GptqOrder::GroupPreserving,
           "gptq: ggml grid " << f.name() << " needs whole super-blocks of " << f.super_block()
                              << " columns: use order natural or group_preserving, not act_order");
  const int64_t G = f.groups(in), width = f.group_width(in), maxq = f.maxq();
  const bool grid = f.ggml();
  const int64_t sb = grid ? f.super_block() : width;  // columns whose parameters are found together
  const auto fopt = W_in.options().dtype(at::kFloat);

  at::Tensor W0 = W_in.to(at::kFloat);  // [out, in] the original weight
  SQ_CHECK(at::isfinite(W0).all().item<bool>(), "gptq: the weight [" << out << ", " << in << "] has NaN or Inf");
  at::Tensor H = H_in.to(W0.device(), at::kFloat).clone();  // [in, in] working copy

  // 1. Dead inputs (never active): H_ii = 1, W[:, i] = 0.
  at::Tensor dead = H.diagonal().eq(0);  // [in]
  H.diagonal().masked_fill_(dead, 1);
  at::Tensor W = W0.masked_fill(dead.unsqueeze(0), 0);  // [out, in]
  at::Tensor D;  // [in, in] GPTAQ's dXXT, working copy
  if (gptaq) D = dXXT_in.to(W0.device(), at::kFloat).masked_fill(dead.unsqueeze(0), 0);

  // 2. Column order; col_group[k] = the scales column used by the k-th processed column.
  at::Tensor perm = column_order(H.diagonal(), opts.order, sb);  // [in]
  std::vector<int64_t> perm_host(in);
  {
    at::Tensor ph = perm.to(at::kCPU).contiguous();
    std::copy(ph.data_ptr<int64_t>(), ph.data_ptr<int64_t>() + in, perm_host.begin());
  }
  const bool static_params = opts.static_groups && (G > 1 || grid);
  const bool with_g_idx = opts.order == GptqOrder::ActOrder && !static_params && G > 1;
  std::vector<int64_t> col_group(in);
  for (int64_t k = 0; k < in; ++k) col_group[k] = (with_g_idx ? k : perm_host[k]) / width;
  // Each group's columns are contiguous in processing order; group_len[k] > 0 at a group's first
  // column: its number of columns (width, or fewer for the short last group of a ragged format).
  std::vector<int64_t> group_len(in, 0);
  for (int64_t k = 0; k < in;) {
    int64_t e = k + 1;
    while (e < in && col_group[e] == col_group[k]) ++e;
    group_len[k] = e - k;
    k = e;
  }

  at::Tensor scales, zeros;  // [out, G] uniform formats
  at::Tensor levels_r;       // [out, G, bits] DSQ formats
  at::Tensor cscale;         // [in] DSQ column scales in processing order
  QTensor gq;                // ggml grids: every field, filled super-block by super-block
  if (grid) {
    gq = ggml_grid_quantize(W, f);  // shapes (and, with static groups, the parameters)
    gq = gq.to(W.device());
    scales = gq.scales;
    zeros = f.min_form() ? gq.mins : gq.zeros;  // the per-group offset of the column loop
  } else if (f.dsq) {
    levels_r = at::empty({out, G, f.bits}, fopt);
    cscale = at::empty({in}, fopt);
  } else {
    scales = at::empty({out, G}, fopt);
    zeros = at::empty({out, G}, fopt);
  }
  if (static_params && f.dsq) {  // every group fitted on the original (dead-zeroed) W
    for (int64_t g = 0; g < G; ++g) {
      DsqFit fit = dsq_fit(W.narrow(1, g * width, width), f.bits, opts.dsq_iters);
      levels_r.select(1, g).copy_(fit.r);
      cscale.narrow(0, g * width, width).copy_(fit.c);  // original order, permuted below
    }
    cscale = cscale.index_select(0, perm);
  } else if (static_params && grid) {
    // ggml_grid_quantize above already ran on the original (dead-zeroed) W
  } else if (static_params) {  // every group's parameters from the original (dead-zeroed) W
    QParams p = find_group_params(W, f, opts.clip);  // [out, G]; a short last group on its own columns
    scales.copy_(p.scale);
    zeros.copy_(p.zero);
  }
  if (opts.order != GptqOrder::Natural) {
    W = W.index_select(1, perm);
    H = H.index_select(0, perm).index_select(1, perm);
    if (gptaq) D = D.index_select(0, perm).index_select(1, perm);
  }

  // 3-4. Damping and U = chol(H^-1, upper); GPTAQ: P = alpha * triu(dXXT U^T, 1) U.
  H.diagonal().add_(H.diagonal().mean().mul(opts.percdamp));
  at::Tensor U = upper_cholesky_of_inverse(H, f, opts.percdamp);  // [in, in]
  at::Tensor P;                                                    // [in, in] strictly upper
  if (gptaq) P = at::triu(D.mm(U.t()), 1).mm(U).mul_(opts.gptaq_alpha);

  // 5-6. Lazy blocks: quantize column by column inside a block, update the rest at its end.
  at::Tensor Qc = at::empty({out, in}, fopt);  // [out, in] codes in processing order
  for (int64_t i1 = 0; i1 < in; i1 += opts.block_size) {
    const int64_t i2 = std::min(i1 + opts.block_size, in), count = i2 - i1;
    at::Tensor W1 = W.narrow(1, i1, count).clone();  // [out, count]
    at::Tensor Err1 = at::zeros({out, count}, fopt);  // [out, count]
    at::Tensor U1 = U.narrow(0, i1, count).narrow(1, i1, count);  // [count, count]
    for (int64_t i = 0; i < count; ++i) {
      const int64_t col = i1 + i, g = col_group[col];
      if (!static_params && grid && col % sb == 0) {
        at::Tensor cur = current_group(W, W1, Err1, U, P, i1, i2, i, sb);  // [out, sb] processing order
        // Back to stored order inside the super-block, then ggml's own search on it.
        const int64_t S = perm_host[col] / sb, gs = sb / width;
        std::vector<int64_t> pos(sb);
        for (int64_t k = 0; k < sb; ++k) pos[perm_host[col + k] - S * sb] = k;
        at::Tensor idx = at::tensor(pos, at::TensorOptions().dtype(at::kLong)).to(cur.device());
        QTensor b = ggml_grid_quantize(cur.index_select(1, idx), f);
        scales.narrow(1, S * gs, gs).copy_(b.scales);
        zeros.narrow(1, S * gs, gs).copy_(f.min_form() ? b.mins : b.zeros);
        if (f.kquant()) {
          gq.sub_scales.narrow(1, S * gs, gs).copy_(b.sub_scales);
          gq.super_d.narrow(1, S, 1).copy_(b.super_d);
          if (f.min_form()) {
            gq.sub_mins.narrow(1, S * gs, gs).copy_(b.sub_mins);
            gq.super_dmin.narrow(1, S, 1).copy_(b.super_dmin);
          }
        }
      } else if (!grid && !static_params && group_len[col] > 0) {
        const int64_t len = group_len[col];
        at::Tensor cur = opts.params_at_block_start
                             ? W.narrow(1, col, len)                           // gptq.py: the block's start
                             : current_group(W, W1, Err1, U, P, i1, i2, i, len);  // [out, len]
        if (f.dsq) {
          DsqFit fit = dsq_fit(cur, f.bits, opts.dsq_iters);
          levels_r.select(1, g).copy_(fit.r);
          cscale.narrow(0, col, len).copy_(fit.c);
        } else {
          QParams p = find_params(cur, f.bits, f.symmetric, opts.clip);
          scales.narrow(1, g, 1).copy_(p.scale);
          zeros.narrow(1, g, 1).copy_(p.zero);
        }
      }
      at::Tensor w = W1.narrow(1, i, 1);  // [out, 1]; never updated again: the pre-quantization w_j
      at::Tensor q, dq;                   // [out, 1] codes and dequantized column
      if (f.dsq) {
        std::tie(q, dq) = dsq_nearest(w, cscale.narrow(0, col, 1), levels_r.select(1, g));
      } else if (grid) {
        ggml_grid_nearest(f, w, scales.narrow(1, g, 1), zeros.narrow(1, g, 1), q, dq);
      } else {
        QParams p{scales.narrow(1, g, 1), zeros.narrow(1, g, 1)};  // [out, 1]
        q = quantize_codes(w, p, maxq);
        dq = p.scale.mul(q.sub(p.zero));
      }
      Qc.narrow(1, col, 1).copy_(q);
      at::Tensor err = w.sub(dq).div_(U1.select(0, i).select(0, i));  // [out, 1]
      Err1.narrow(1, i, 1).copy_(err);
      if (i + 1 < count) {
        at::Tensor upd = err.mm(U1.narrow(0, i, 1).narrow(1, i + 1, count - i - 1));  // [out, rest of block]
        if (gptaq) upd.sub_(w.mm(P.narrow(0, col, 1).narrow(1, col + 1, count - i - 1)));
        W1.narrow(1, i + 1, count - i - 1).sub_(upd);
      }
    }
    if (i2 < in) {
      at::Tensor upd = Err1.mm(U.narrow(0, i1, count).narrow(1, i2, in - i2));  // [out, in - i2]
      if (gptaq) upd.sub_(W1.mm(P.narrow(0, i1, count).narrow(1, i2, in - i2)));
      W.narrow(1, i2, in - i2).sub_(upd);
    }
  }

  // 7. Back to the original column order.
  GptqResult r;
  if (grid) r.q = gq;  // integer fields; scales / zeros / mins below are the same tensors
  r.q.format = f;
  r.q.scales = scales;
  r.q.zeros = grid && f.min_form() ? at::Tensor() : zeros;
  if (grid && f.min_form()) r.q.mins = zeros;
  r.q.levels_r = levels_r;
  r.q.col_scale = cscale;
  if (opts.order != GptqOrder::Natural) {
    at::Tensor invperm = at::empty_like(perm).scatter_(0, perm, at::arange(in, perm.options()));  // [in]
    Qc = Qc.index_select(1, invperm);
    if (f.dsq) r.q.col_scale = cscale.index_select(0, invperm);
    if (with_g_idx) r.q.g_idx = invperm.div(width, "floor").to(at::kInt);
  }
  r.q.codes = Qc.to(at::kByte);
  r.error = output_error(W0, r.q.dequantize(), H_in);
  return r;
}

}  // namespace

GptqResult gptq_quantize(const at::Tensor& W, const at::Tensor& H, const QFormat& f, const GptqOptions& opts) {
  return quantize_columns(W, H, at::Tensor(), f, opts);
}

GptqResult gptaq_quantize(const at::Tensor& W, const at::Tensor& H, const at::Tensor& dXXT, const QFormat& f,
                          const GptqOptions& opts) {
  SQ_CHECK(dXXT.defined(), "gptaq: dXXT is undefined (use gptq_quantize for plain GPTQ)");
  return quantize_columns(W, H, dXXT, f, opts);
}

double output_error(const at::Tensor& W, const at::Tensor& Q, const at::Tensor& H) {
  SQ_CHECK(W.dim() == 2 && Q.sizes() == W.sizes() && H.dim() == 2 && H.size(0) == W.size(1) &&
               H.size(1) == W.size(1),
           "output_error: W " << W.sizes() << ", Q " << Q.sizes() << ", H " << H.sizes() << " do not match");
  at::Tensor D = W.to(at::kDouble) - Q.to(W.device(), at::kDouble);  // [out, in]
  return D.mm(H.to(W.device(), at::kDouble)).mul_(D).sum().item<double>();
}

}  // namespace sq
