// quant/dsq: D²Quant's dual-scale quantizer (DSQ; Yan et al., arXiv 2602.02546, docs/METHODS.md
// section 2.2 step 5): per group of columns, w_ij ~ c_j * sum_k r_{k,i} B_{k,ij} with
// B in {+-1}, row scales r_k >= 0 (per row and group) and one column scale c_j > 0, i.e. a
// non-uniform 2^bits-level grid per row. The fit, the nearest-level quantizer that GPTQ
// calls column by column, DSQ-RTN of a whole weight, and moving c into the producing
// linear. Pure tensor code with no host sync (safe inside GPTQ's column loop on CUDA).
#pragma once
#include <ATen/core/Tensor.h>

#include <utility>

#include "sliderquant/quant/format.h"

namespace sq {

struct DsqFit {
  at::Tensor r;      // [out, bits] float32, >= 0, float16-representable
  at::Tensor c;      // [g] float32, > 0, float16-representable
  at::Tensor codes;  // [out, g] uint8: bit k = sign of B_k (1 -> +1, 0 -> -1)
};

// Fits one group W [out, g] (any float dtype; computed in float32 on W's device), bits 2..3.
// init: c = mean|W| per column, greedy B_k = sign(residual), r_k by least squares;
// then ITERS rounds of (i) r per row from the bits x bits normal equations (negative r_k
// folded into B_k), (ii) c_j = sum_i W_ij S_ij / sum_i S_ij^2 with S = sum_k r_k B_k,
// (iii) every element to its nearest level. c is kept at mean 1 (r carries the magnitude);
// finally r and c are rounded to float16 and the codes re-chosen for the rounded values.
DsqFit dsq_fit(const at::Tensor& W, int bits, int iters = 15);

// Nearest level per element: W [out, n], c [n] (> 0), r [out, bits]. Returns the codes
// [out, n] (long) and the dequantized values c_j * level [out, n] float32.
std::pair<at::Tensor, at::Tensor> dsq_nearest(const at::Tensor& W, const at::Tensor& c, const at::Tensor& r);

// DSQ-RTN: dsq_fit on each group of W [out, in] and nearest levels, no error feedback.
QTensor dsq_rtn_quantize(const at::Tensor& W, const QFormat& f, int iters = 15);

// Absorbs DOWN's column scale (DSQ, with col_scale) into UP, the linear producing DOWN's
// input (down.in == up.out): row j of UP is multiplied by c_j through its per-row scales
// (uniform: scales[j, :]; DSQ: levels_r[j, :, :]), rounded to the nearest float16, so
// UP.dequantize() changes by a relative <= 2^-11 per row beyond the exact fold. DOWN is
// left without col_scale. For a float UP weight do it directly: up_w.mul_(c.unsqueeze(1)).
void absorb_column_scale(QTensor& down, QTensor& up);

}  // namespace sq
