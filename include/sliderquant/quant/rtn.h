// quant/rtn: round-to-nearest quantization with min-max ranges or the MSE clip search
// (GPTQ/QuaRot `Quantizer(mse=True)`: shrink min and max by p = 1 - i/grid for
// i < maxshrink*grid, keep per row the (scale, zero) minimising sum |q(w) - w|^norm).
// Also the per-row parameter finder that GPTQ calls group by group.
#pragma once
#include <ATen/core/Tensor.h>

#include "sliderquant/quant/format.h"

namespace sq {

struct ClipSearch {
  bool enabled = false;
  double norm = 2.4;
  int grid = 100;
  double maxshrink = 0.8;
};

struct QParams {
  at::Tensor scale;  // [rows, 1] float32, float16-representable, > 0
  at::Tensor zero;   // [rows, 1] float32 integers
};

// Parameters for each row of W [rows, cols] (one group). The range always includes 0
// (min <= 0 <= max), as GPTQ's find_params does; an all-zero row gets the range [-1, 1]
// (GPTQ's rule). Symmetric: range [-max|w|, max|w|], zero 2^(bits-1). Scales are rounded
// UP to the next float16 value (so the min-max range stays on the grid), at least 2^-14.
// No host synchronisation (safe inside GPTQ's column loop on CUDA).
QParams find_params(const at::Tensor& W, int bits, bool symmetric, const ClipSearch& clip);
// Codes of W [rows, cols] with per-row params: clamp(round(w / s) + z, 0, maxq), as a
// float32 tensor holding integers (convert with .to(kByte) for a QTensor).
at::Tensor quantize_codes(const at::Tensor& W, const QParams& p, int64_t maxq);

// find_params for every group of a weight W [out, in] in a uniform format: scale / zero
// [out, groups]; a ragged format's short last group is fitted on its own columns only.
QParams find_group_params(const at::Tensor& W, const QFormat& f, const ClipSearch& clip);
// Per-group values t [out, groups] spread over the columns: [out, in] (t[:, j // width]).
at::Tensor expand_groups(const at::Tensor& t, int64_t in_features, int64_t width);

// The smallest float16-representable value >= s, elementwise (s clamped into the fp16
// normal range [2^-14, 65504]); scales go through it so packed fp16 scales are exact.
at::Tensor round_up_fp16(const at::Tensor& s);

// RTN of a whole weight [out, in] in its format (DSQ formats: dsq_rtn_quantize, no clip;
// ggml grids: ggml's reference quantizer, quant/ggml_grid.h, no clip).
QTensor rtn_quantize(const at::Tensor& W, const QFormat& f, const ClipSearch& clip = {});

}  // namespace sq
