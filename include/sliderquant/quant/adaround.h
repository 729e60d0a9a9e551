// quant/adaround: AdaRound (Nagel et al. 2020), learned up/down rounding of a weight in a
// uniform asymmetric format (docs/METHODS.md section 3.1 step 4: the high-impact channels'
// quantizer). Scales and zeros are fixed (min-max RTN, fp16-exact); each weight learns
// V with the rectified sigmoid h(V) = clip(sigmoid(V) (zeta - gamma) + gamma, 0, 1),
// zeta = 1.1, gamma = -0.1:
//   soft:  w~ = s (clamp(floor(W / s) + h(V) + z, 0, maxq) - z)
//   hard:  h(V) replaced by [V >= 0]
// V starts at h(V) = frac(W / s), so the hardened initial state is nearest rounding.
// Regulariser sum(1 - |2 h(V) - 1|^beta) (beta annealed by the caller) pushes h to 0 or 1.
// Tensor code: knows nothing of models.
#pragma once
#include <ATen/core/Tensor.h>

#include "sliderquant/quant/format.h"

namespace sq {

class AdaRoundQuantizer {
 public:
  AdaRoundQuantizer() = default;
  // W [out, in] (any float dtype and device); F uniform and asymmetric (else Error).
  AdaRoundQuantizer(const at::Tensor& W, const QFormat& f);

  at::Tensor& V() { return V_; }  // [out, in] float32 leaf (requires grad)
  const at::Tensor& V() const { return V_; }
  at::Tensor h() const;           // rectified sigmoid of V
  // The (soft or hardened) fake-quantized weight [out, in] float32, differentiable in V.
  at::Tensor fake_quant(bool hard) const;
  // sum(1 - |2 h - 1|^beta) / numel (mean, so its weight does not scale with the layer).
  at::Tensor regularizer(double beta) const;
  // The hardened QTensor (codes with [V >= 0], the fixed scales and zeros).
  QTensor quantize() const;
  // Share of weights whose h(V) is not yet within 0.01 of 0 or 1.
  double undecided() const;

 private:
  QFormat format_;
  at::Tensor floor_;         // [out, in] floor(W / s) float32
  at::Tensor s_, z_;         // [out, in] per-column expansions of scales and zeros
  QTensor base_;             // RTN result: scales and zeros
  at::Tensor V_;
};

}  // namespace sq
