// quant/act_quant: per-token activation fake quantization and its straight-through pieces
// (see the header for the exact definitions).
#include "sliderquant/quant/act_quant.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "sliderquant/core/error.h"
#include "sliderquant/quant/format.h"

namespace sq {

at::Tensor round_ste(const at::Tensor& x) { return x + (at::round(x) - x).detach(); }

int64_t partial_count(double rate, int64_t n) {
  SQ_CHECK(rate > 0.0 && rate <= 1.0, "quantization rate " << rate << " is outside (0, 1]");
  return std::max<int64_t>(1, std::min<int64_t>(n, int64_t(std::ceil(rate * double(n) - 1e-9))));
}

at::Tensor splice_columns(const at::Tensor& Q, const at::Tensor& X, int64_t K) {
  const int64_t n = X.size(-1);
  if (K >= n) return Q;
  return at::cat({Q.narrow(-1, 0, K), X.narrow(-1, K, n - K)}, -1);
}

at::Tensor fake_quant_per_token(const at::Tensor& x, int bits, double rate, const at::Tensor& clip) {
  if (bits >= 16) return x;
  SQ_CHECK(supported_bits(bits), "activation quantization: " << bits << " bits (supported: 2..8, or 16 = off)");
  const int64_t C = x.size(-1), K = partial_count(rate, C);
  at::Tensor X = x.to(at::kFloat);
  at::Tensor part = K < C ? X.narrow(-1, 0, K) : X;
  const double maxq = double((int64_t(1) << bits) - 1);
  at::Tensor lo = at::amin(part, {-1}, true), hi = at::amax(part, {-1}, true);
  if (clip.defined()) {
    hi = hi * clip[0];
    lo = lo * clip[1];
  }
  at::Tensor s = ((hi - lo) / maxq).clamp_min(1e-5);
  at::Tensor z = at::round((-lo / s).clamp(-1e4, 1e4)).detach();
  at::Tensor q = at::clamp(round_ste(part / s) + z, 0.0, maxq);
  at::Tensor dq = (q - z) * s;
  return splice_columns(dq, X, K).to(x.scalar_type());
}

}  // namespace sq
