// quant/learnable: differentiable quantizers for methods that learn their quantization
// by gradient descent (SliderQuant, OmniQuant-style block reconstruction; docs/METHODS.md 1.3
// and 5): learnable weight clipping (LWC) and a low-rank (LoRA) weight update. Straight-
// through rounding, the partial-mode column count and dynamic per-token activation fake
// quantization live in quant/act_quant.h (included here). Each piece also has
// a "partial" mode (SliderQuant's intra-layer sliding): a rate r in (0, 1] quantizes only
// the first ceil(r * n) input columns / channels and passes the rest through.
// Tensor in, tensor out; knows nothing of models. Gradients flow through every output.
//
// LWC (OmniQuant, Shao et al. 2024, sec. 3.2): per output row (or row-group)
//   hi = sigmoid(gamma) * max(W_g), lo = sigmoid(beta) * min(W_g), gamma = beta = init (4)
//   s = round_up_fp16((hi - lo) / maxq), z = clamp(round(-lo / s), 0, maxq)
//   W_hat = s * (clamp(round(W / s) + z, 0, maxq) - z), round(W / s) with a straight-through
//   gradient, the zero point without one (as OmniQuant); the fp16 rounding of s is applied with a straight-through gradient too, so
//   the fake-quantized weight at rate 1 equals the hardened QTensor's dequantize() exactly.
// Deviation from OmniQuant, deliberate: the zero point is clamped to [0, maxq] so every
// result is storable in the packed format (it only matters for rows whose clipped range
// excludes zero). Group statistics are always computed over the whole group, also in
// partial mode (the official code slices the scale tensor instead, which misaligns groups).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "sliderquant/quant/act_quant.h"  // round_ste, partial_count, fake_quant_per_token
#include "sliderquant/quant/format.h"

namespace sq {

class LwcQuantizer {
 public:
  LwcQuantizer() = default;
  // Parameters [out, groups] float32 on DEVICE, both set to `init`. Asymmetric, non-DSQ
  // formats only (throws Error otherwise).
  LwcQuantizer(const QFormat& f, int64_t out, int64_t in, double init, c10::Device device);

  const QFormat& format() const { return format_; }
  at::Tensor& gamma() { return gamma_; }  // upper-bound logits (learnable leaf)
  at::Tensor& beta() { return beta_; }    // lower-bound logits (learnable leaf)
  const at::Tensor& gamma() const { return gamma_; }
  const at::Tensor& beta() const { return beta_; }

  // Fake-quantized W [out, in] (float32, differentiable in W, gamma and beta). With
  // rate < 1 only the first partial_count(rate, in) columns are quantized.
  at::Tensor fake_quant(const at::Tensor& W, double rate = 1.0) const;
  // The hardened result of fake_quant(W, 1): codes, fp16-exact scales, zeros (no grad).
  QTensor quantize(const at::Tensor& W) const;

 private:
  struct Params {
    at::Tensor scale, zero;  // [out*groups, 1]: scale with STE fp16 rounding, zero with STE round
  };
  Params params(const at::Tensor& Wg) const;  // Wg [out*groups, width]
  QFormat format_;
  int64_t out_ = 0, in_ = 0;
  at::Tensor gamma_, beta_;
};

// Low-rank update W + (B A) * scaling, scaling = alpha / rank (alpha = 1 as SliderQuant's
// LoRAQuantLinear). A [rank, in] ~ U(-1/sqrt(in), 1/sqrt(in)) (Kaiming-uniform with
// a = sqrt(5), nn.Linear's default) from a generator seeded with `seed`; B [out, rank] = 0,
// so the update starts at exactly zero.
struct LoraDelta {
  at::Tensor A, B;  // float32 leaves on the device
  double scaling = 0.25;
  LoraDelta() = default;
  LoraDelta(int64_t out, int64_t in, int64_t rank, uint64_t seed, c10::Device device);
  bool defined() const { return A.defined(); }
  at::Tensor delta() const;  // [out, in] = B A * scaling
};

}  // namespace sq
