// quant/act_quant: dynamic per-token activation fake quantization (the "A" of W4A4-style
// formats, as the forward pass applies it), with the straight-through rounding and the
// partial-mode column count it shares with the learnable weight quantizers
// (quant/learnable.h). Partial mode (SliderQuant's intra-layer sliding): a rate r in (0, 1]
// quantizes only the first ceil(r * n) columns / channels and passes the rest through.
// Tensor in, tensor out; knows nothing of models. Gradients flow through every output.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace sq {

// round(x) in the forward pass, identity gradient.
at::Tensor round_ste(const at::Tensor& x);

// Number of leading columns / channels quantized at RATE (0, 1]: ceil(rate * n), at least 1.
int64_t partial_count(double rate, int64_t n);

// Y where the first K columns (last dim) come from Q and the rest from X (Q when K covers
// every column).
at::Tensor splice_columns(const at::Tensor& Q, const at::Tensor& X, int64_t K);

// Dynamic per-token asymmetric fake quantization along the last dimension at `bits`
// (one (scale, zero) per row of the flattened [..., C] input from that row's min and max,
// scale >= 1e-5, zero = round(-min / scale) unclamped: OmniQuant's per-token quantizer).
// Straight-through rounding; gradients also flow through the scale.
// With rate < 1 only the first partial_count(rate, C) channels are quantized (the row's
// range is taken over those channels). CLIP (optional, [2] float32: FlatQuant's learned
// activation clipping) multiplies each row's max by clip[0] and its min by clip[1]; the
// gradient reaches it through the scale. bits >= 16 returns x unchanged. Computed in
// float32, returned in x's dtype.
at::Tensor fake_quant_per_token(const at::Tensor& x, int bits, double rate = 1.0, const at::Tensor& clip = {});

}  // namespace sq
