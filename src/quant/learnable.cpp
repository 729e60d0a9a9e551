// quant/learnable: differentiable quantizers (see the header for the exact definitions).
#include "sliderquant/quant/learnable.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <cmath>

#include "sliderquant/core/error.h"
#include "sliderquant/quant/rtn.h"

namespace sq {

LwcQuantizer::LwcQuantizer(const QFormat& f, int64_t out, int64_t in, double init, c10::Device device)
    : format_(f), out_(out), in_(in) {
  SQ_CHECK(!f.dsq && !f.symmetric && !f.ggml(),
           "learnable weight clipping supports asymmetric uniform formats, not " << f.name());
  f.check(out, in, "learnable clipping weight");
  const int64_t G = f.groups(in);
  auto opts = at::TensorOptions().dtype(at::kFloat).device(device);
  gamma_ = at::full({out, G}, init, opts).requires_grad_(true);
  beta_ = at::full({out, G}, init, opts).requires_grad_(true);
}

LwcQuantizer::Params LwcQuantizer::params(const at::Tensor& Wg) const {
  const double maxq = double(format_.maxq());
  at::Tensor hi = at::sigmoid(gamma_.reshape({-1, 1})) * at::amax(Wg, {1}, true);
  at::Tensor lo = at::sigmoid(beta_.reshape({-1, 1})) * at::amin(Wg, {1}, true);
  at::Tensor s = (hi - lo) / maxq;
  s = s + (round_up_fp16(s.detach()) - s).detach();  // fp16-exact value, identity gradient
  // The zero point carries no gradient (OmniQuant rounds it with a plain round()).
  at::Tensor z = at::clamp(at::round(-lo / s), 0.0, maxq).detach();
  return {s, z};
}

at::Tensor LwcQuantizer::fake_quant(const at::Tensor& W, double rate) const {
  SQ_CHECK(W.dim() == 2 && W.size(0) == out_ && W.size(1) == in_,
           "learnable clipping: weight " << W.sizes() << " does not match [" << out_ << ", " << in_ << "]");
  const int64_t G = format_.groups(in_), width = format_.group_width(in_);
  at::Tensor X = W.to(at::kFloat);
  at::Tensor Wg = pad_groups(X, format_).reshape({out_ * G, width});  // a short last group: padded, cut below
  Params p = params(Wg);
  at::Tensor q = at::clamp(round_ste(Wg / p.scale) + p.zero, 0.0, double(format_.maxq()));
  at::Tensor dq = ((q - p.zero) * p.scale).reshape({out_, G * width}).narrow(1, 0, in_);
  return splice_columns(dq, X, partial_count(rate, in_));
}

QTensor LwcQuantizer::quantize(const at::Tensor& W) const {
  at::NoGradGuard no_grad;
  const int64_t G = format_.groups(in_), width = format_.group_width(in_);
  at::Tensor Wg = pad_groups(W.to(at::kFloat), format_).reshape({out_ * G, width});
  Params p = params(Wg);
  QTensor r;
  r.format = format_;
  r.codes = at::clamp(at::round(Wg / p.scale) + p.zero, 0.0, double(format_.maxq()))
                .to(at::kByte)
                .view({out_, G * width})
                .narrow(1, 0, in_)
                .contiguous();
  r.scales = p.scale.view({out_, G}).contiguous();
  r.zeros = p.zero.view({out_, G}).contiguous();
  return r;
}

LoraDelta::LoraDelta(int64_t out, int64_t in, int64_t rank, uint64_t seed, c10::Device device)
    : scaling(1.0 / double(rank)) {
  SQ_CHECK(rank >= 1, "LoRA rank must be at least 1, got " << rank);
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const double bound = 1.0 / std::sqrt(double(in));
  A = at::empty({rank, in}, at::kFloat).uniform_(-bound, bound, gen).to(device).requires_grad_(true);
  B = at::zeros({out, rank}, at::TensorOptions().dtype(at::kFloat).device(device)).requires_grad_(true);
}

at::Tensor LoraDelta::delta() const { return at::matmul(B, A) * scaling; }

}  // namespace sq
