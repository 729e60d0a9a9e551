// quant/importance: per-input-channel scores (GPTQ-Hessian proxy and empirical Fisher,
// arXiv 2511.17801 / docs/METHODS.md section 3.1 step 1), deterministic top-k channel
// selection.
#include "sliderquant/quant/importance.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "sliderquant/core/error.h"

namespace sq {
namespace {

at::IntArrayRef sizes_of(const at::Tensor& t) { return t.defined() ? t.sizes() : at::IntArrayRef{}; }

}  // namespace

at::Tensor hessian_channel_scores(const at::Tensor& W, const at::Tensor& H) {
  SQ_CHECK(W.defined() && W.dim() == 2, "hessian_channel_scores: W must be [out, in], got " << sizes_of(W));
  const int64_t in = W.size(1);
  SQ_CHECK(H.defined() && H.dim() == 2 && H.size(0) == in && H.size(1) == in,
           "hessian_channel_scores: H has shape " << sizes_of(H) << ", expected [" << in << ", " << in << "]");
  at::Tensor w = W.to(at::kFloat);
  at::Tensor d = H.diagonal().to(w.device(), at::kFloat);  // [in]
  return w.square().sum(0).mul_(d);                        // [in]
}

at::Tensor fisher_channel_scores(const at::Tensor& G) {
  SQ_CHECK(G.defined() && G.dim() == 2, "fisher_channel_scores: G must be [out, in], got " << sizes_of(G));
  return G.to(at::kFloat).sum(0);  // [in]
}

FisherAccumulator::FisherAccumulator(int64_t out_features, int64_t in_features) : out_(out_features), in_(in_features) {
  SQ_CHECK(out_features > 0 && in_features > 0,
           "FisherAccumulator: shape [" << out_features << ", " << in_features << "] must be positive");
}

void FisherAccumulator::add(const at::Tensor& grad) {
  SQ_CHECK(grad.defined() && grad.dim() == 2 && grad.size(0) == out_ && grad.size(1) == in_,
           "FisherAccumulator: gradient has shape " << sizes_of(grad) << ", expected [" << out_ << ", " << in_ << "]");
  SQ_CHECK(c10::isFloatingType(grad.scalar_type()),
           "FisherAccumulator: gradient must be floating point, got " << c10::toString(grad.scalar_type()));
  at::Tensor g = grad.to(at::kFloat);
  if (batches_ == 0) {
    G_ = g.square();
  } else {
    SQ_CHECK(g.device() == G_.device(),
             "FisherAccumulator: gradient on " << g.device() << " but the sum is on " << G_.device());
    G_.addcmul_(g, g);
  }
  ++batches_;
}

const at::Tensor& FisherAccumulator::G() const {
  SQ_CHECK(batches_ > 0, "FisherAccumulator: no gradient was added");
  return G_;
}

int64_t channel_count(double ratio, int64_t in_features) {
  SQ_CHECK(std::isfinite(ratio) && ratio >= 0 && ratio <= 1, "channel ratio " << ratio << " must be in [0, 1]");
  SQ_CHECK(in_features >= 0, "channel_count: negative channel count " << in_features);
  const double x = ratio * static_cast<double>(in_features);
  const double r = std::round(x);
  if (std::abs(x - r) <= 1e-9 * std::max(1.0, x)) return static_cast<int64_t>(r);
  return static_cast<int64_t>(std::ceil(x));
}

at::Tensor top_k_channels(const at::Tensor& score, int64_t k) {
  SQ_CHECK(score.defined() && score.dim() == 1, "top_k_channels: score must be [in], got " << sizes_of(score));
  const int64_t in = score.size(0);
  SQ_CHECK(k >= 0 && k <= in, "top_k_channels: cannot select " << k << " of " << in << " channels");
  at::Tensor s = score.to(at::kCPU, at::kDouble).contiguous();
  const double* v = s.data_ptr<double>();
  for (int64_t j = 0; j < in; ++j) SQ_CHECK(!std::isnan(v[j]), "top_k_channels: score of channel " << j << " is NaN");
  std::vector<int64_t> idx(in);
  std::iota(idx.begin(), idx.end(), 0);
  // Highest score first; equal scores by lower index (the comparison is a strict total order).
  std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                    [&](int64_t a, int64_t b) { return v[a] != v[b] ? v[a] > v[b] : a < b; });
  std::sort(idx.begin(), idx.begin() + k);
  at::Tensor out = at::empty({k}, at::kLong);
  std::copy(idx.begin(), idx.begin() + k, out.data_ptr<int64_t>());
  return out;
}

at::Tensor top_channels(const at::Tensor& score, double ratio) {
  SQ_CHECK(score.defined() && score.dim() == 1, "top_channels: score must be [in], got " << sizes_of(score));
  return top_k_channels(score, channel_count(ratio, score.size(0)));
}

}  // namespace sq
