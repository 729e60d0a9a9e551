// quant/rtn: per-row quantization parameters (GPTQ quant.py `Quantizer.find_params`, with
// the MSE clip search of `Quantizer(mse=True)`; docs/METHODS.md sections 0 and 5.1) and
// round-to-nearest of a whole weight. Pure tensor code, no host sync, so GPTQ can call
// find_params inside its column loop on CUDA.
// Deviations from GPTQ, both deliberate: scales are rounded UP to float16 (nearest would
// let the extreme weight fall outside the grid by up to maxq*2^-11 steps), and symmetric
// rows always span [-xmax, xmax] (GPTQ keeps xmin = 0 for non-negative rows, clipping them).
#include "sliderquant/quant/rtn.h"

#include <ATen/ATen.h>

#include <vector>

#include "sliderquant/core/error.h"
#include "sliderquant/quant/dsq.h"
#include "sliderquant/quant/ggml_grid.h"

namespace sq {

namespace {

constexpr float kFp16MinNormal = 6.103515625e-05f;  // 2^-14
constexpr float kFp16Max = 65504.f;

// Scale and zero [rows, 1] for the ranges [xmin, xmax] ([rows], xmin <= 0 <= xmax, not both 0).
QParams params_from_range(const at::Tensor& xmin, const at::Tensor& xmax, int64_t maxq, bool symmetric) {
  QParams p;
  p.scale = round_up_fp16(xmax.sub(xmin).div_(static_cast<double>(maxq))).unsqueeze(1);
  if (symmetric) {
    p.zero = at::full_like(p.scale, static_cast<double>((maxq + 1) / 2));
  } else {
    p.zero = at::round(xmin.unsqueeze(1).neg().div(p.scale)).clamp_(0, static_cast<double>(maxq));
  }
  return p;
}

// sum_j |dequant(q(w)) - w|^norm per row: [rows].
at::Tensor clip_error(const at::Tensor& X, const QParams& p, int64_t maxq, double norm) {
  at::Tensor q = quantize_codes(X, p, maxq).to(at::kFloat);
  at::Tensor dq = p.scale.mul(q.sub_(p.zero));
  return dq.sub_(X).abs_().pow_(norm).sum(1);
}

}  // namespace

at::Tensor round_up_fp16(const at::Tensor& s) {
  at::Tensor c = s.clamp(kFp16MinNormal, kFp16Max);
  at::Tensor h = c.to(at::kHalf).to(at::kFloat);
  at::Tensor ulp = at::exp2(at::floor(at::log2(h)).sub_(10));  // spacing of normal fp16 at h
  return at::where(h < c, h + ulp, h);
}

QParams find_params(const at::Tensor& W, int bits, bool symmetric, const ClipSearch& clip) {
  SQ_CHECK(W.dim() == 2 && W.size(1) > 0, "find_params: expected a [rows, cols] tensor, got " << W.sizes());
  SQ_CHECK(supported_bits(bits), "find_params: " << bits << " bits (supported: 2..8)");
  const int64_t maxq = (int64_t(1) << bits) - 1;
  at::Tensor X = W.to(at::kFloat);                    // [rows, cols]
  at::Tensor xmin = at::amin(X, {1}).clamp_max_(0);   // [rows]
  at::Tensor xmax = at::amax(X, {1}).clamp_min_(0);   // [rows]
  if (symmetric) {
    xmax = at::maximum(xmin.neg(), xmax);
    xmin = xmax.neg();
  }
  at::Tensor dead = xmin.eq(0).logical_and_(xmax.eq(0));  // all-zero rows: range [-1, 1]
  xmin = xmin.masked_fill(dead, -1);
  xmax = xmax.masked_fill(dead, 1);
  QParams best = params_from_range(xmin, xmax, maxq, symmetric);
  if (!clip.enabled) return best;

  // i = 0 (p = 1) is min-max; a shrink replaces it only when strictly better.
  at::Tensor best_err = clip_error(X, best, maxq, clip.norm).unsqueeze(1);  // [rows, 1]
  const int steps = static_cast<int>(clip.maxshrink * clip.grid);
  for (int i = 1; i < steps; ++i) {
    const double p = 1.0 - static_cast<double>(i) / clip.grid;
    QParams cand = params_from_range(xmin.mul(p), xmax.mul(p), maxq, symmetric);
    at::Tensor err = clip_error(X, cand, maxq, clip.norm).unsqueeze(1);
    at::Tensor better = err < best_err;
    best_err = at::where(better, err, best_err);
    best.scale = at::where(better, cand.scale, best.scale);
    best.zero = at::where(better, cand.zero, best.zero);
  }
  return best;
}

at::Tensor quantize_codes(const at::Tensor& W, const QParams& p, int64_t maxq) {
  return at::round(W.to(at::kFloat).div(p.scale)).add_(p.zero).clamp_(0, static_cast<double>(maxq));
}

QParams find_group_params(const at::Tensor& W, const QFormat& f, const ClipSearch& clip) {
  SQ_CHECK(W.dim() == 2, "find_group_params: expected a weight [out, in], got " << W.sizes());
  const int64_t out = W.size(0), in = W.size(1), G = f.groups(in), width = f.group_width(in);
  const int64_t full = in / width;  // whole groups; a ragged format has one short group after them
  at::Tensor X = W.to(at::kFloat);
  std::vector<at::Tensor> s, z;
  if (full > 0) {
    QParams p = find_params(X.narrow(1, 0, full * width).reshape({out * full, width}), f.bits, f.symmetric, clip);
    s.push_back(p.scale.view({out, full}));
    z.push_back(p.zero.view({out, full}));
  }
  if (full < G) {
    QParams p = find_params(X.narrow(1, full * width, in - full * width), f.bits, f.symmetric, clip);
    s.push_back(p.scale.view({out, 1}));
    z.push_back(p.zero.view({out, 1}));
  }
  return {at::cat(s, 1).contiguous(), at::cat(z, 1).contiguous()};
}

at::Tensor expand_groups(const at::Tensor& t, int64_t in_features, int64_t width) {
  return t.repeat_interleave(width, 1).narrow(1, 0, in_features);
}

QTensor rtn_quantize(const at::Tensor& W, const QFormat& f, const ClipSearch& clip) {
  SQ_CHECK(W.dim() == 2, "rtn_quantize: expected a weight [out, in], got " << W.sizes());
  if (f.dsq) return dsq_rtn_quantize(W, f);
  if (f.ggml()) return ggml_grid_quantize(W, f);  // ggml's own search (no clip search)
  const int64_t out = W.size(0), in = W.size(1);
  f.check(out, in, "rtn_quantize weight");
  const int64_t width = f.group_width(in);
  QParams p = find_group_params(W, f, clip);  // [out, G]
  QParams e{expand_groups(p.scale, in, width), expand_groups(p.zero, in, width)};  // [out, in]
  QTensor q;
  q.format = f;
  q.codes = quantize_codes(W.to(at::kFloat), e, f.maxq()).to(at::kByte);
  q.scales = p.scale;
  q.zeros = p.zero;
  return q;
}

}  // namespace sq
