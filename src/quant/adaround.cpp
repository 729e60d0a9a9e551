// quant/adaround: AdaRound's learned rounding over fixed min-max scales (see header).
#include "sliderquant/quant/adaround.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "sliderquant/core/error.h"
#include "sliderquant/quant/rtn.h"

namespace sq {
namespace {
constexpr double kZeta = 1.1, kGamma = -0.1;
}

AdaRoundQuantizer::AdaRoundQuantizer(const at::Tensor& W, const QFormat& f) : format_(f) {
  SQ_CHECK(!f.dsq && !f.symmetric && !f.ggml(), "AdaRound: needs an asymmetric uniform format, got " << f.name());
  SQ_CHECK(W.defined() && W.dim() == 2, "AdaRound: expected a weight [out, in]");
  at::NoGradGuard ng;
  const at::Tensor Wf = W.detach().to(at::kFloat);
  base_ = rtn_quantize(Wf, f);
  const int64_t gw = f.group_width(W.size(1));
  s_ = expand_groups(base_.scales.to(Wf.device()), W.size(1), gw);
  z_ = expand_groups(base_.zeros.to(Wf.device()), W.size(1), gw);
  const at::Tensor x = Wf / s_;
  floor_ = at::floor(x);
  const at::Tensor rest = (x - floor_).clamp(0, 1);
  const at::Tensor p = ((rest - kGamma) / (kZeta - kGamma)).clamp(1e-6, 1 - 1e-6);
  V_ = at::log(p / (1 - p)).contiguous().requires_grad_(true);
}

at::Tensor AdaRoundQuantizer::h() const {
  return (at::sigmoid(V_) * (kZeta - kGamma) + kGamma).clamp(0, 1);
}

at::Tensor AdaRoundQuantizer::fake_quant(bool hard) const {
  const at::Tensor r = hard ? (V_.detach() >= 0).to(at::kFloat) : h();
  return s_ * ((floor_ + r + z_).clamp(0, double(format_.maxq())) - z_);
}

at::Tensor AdaRoundQuantizer::regularizer(double beta) const {
  return (1 - (2 * h() - 1).abs().pow(beta)).mean();
}

QTensor AdaRoundQuantizer::quantize() const {
  at::NoGradGuard ng;
  QTensor q = base_;
  const at::Tensor r = (V_.detach() >= 0).to(at::kFloat);
  q.codes = (floor_ + r + z_).clamp(0, double(format_.maxq())).to(at::kByte).to(base_.codes.device());
  return q;
}

double AdaRoundQuantizer::undecided() const {
  at::NoGradGuard ng;
  const at::Tensor hv = h();
  return ((hv > 0.01) & (hv < 0.99)).to(at::kFloat).mean().item<double>();
}

}  // namespace sq
