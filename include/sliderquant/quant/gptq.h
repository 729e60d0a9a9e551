// quant/gptq: GPTQ (Frantar et al. 2022; IST-DASLab/gptq gptq.py; METHODS.md section 5.2)
// as a pure function of a weight and its Hessian, plus the Hessian accumulator.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "sliderquant/quant/format.h"
#include "sliderquant/quant/rtn.h"

namespace sq {

// H = 2/n sum_t x_t x_t^T over every token row x_t [in] seen, accumulated in float32
// on the device of the inputs (running rescale, as GPTQ's add_batch).
class HessianAccumulator {
 public:
  explicit HessianAccumulator(int64_t in_features);
  void add(const at::Tensor& X);  // [..., in]; any float dtype
  const at::Tensor& H() const { return H_; }  // [in, in] float32
  int64_t tokens() const { return n_; }

 private:
  at::Tensor H_;
  int64_t in_;
  int64_t n_ = 0;
};

enum class GptqOrder {
  Natural,         // columns in their stored order
  ActOrder,        // all columns by diag(H) descending (needs static groups or g_idx)
  GroupPreserving  // within each group by diag(H) descending, groups by their max diag(H):
                   // groups stay contiguous, so no g_idx is needed at inference
};

struct GptqOptions {
  double percdamp = 0.01;        // damp = percdamp * mean(diag H)
  int64_t block_size = 128;      // lazy batch-update block
  GptqOrder order = GptqOrder::Natural;
  bool static_groups = false;    // group params from the original W up front
  ClipSearch clip;               // MSE clip search in find_params
};

struct GptqResult {
  QTensor q;
  double error = 0;  // tr((W - Q) H (W - Q)^T) with the undamped H
};

// W [out, in] (any float dtype, any device; computed in float32 on W's device);
// H [in, in] from HessianAccumulator. ActOrder without static_groups yields a g_idx
// (g_idx[j] = position of column j in the processing order / group width); the other
// orders keep groups in the original column space (g(j) = j / width). Orders sort diag(H)
// stably. Dynamic group parameters come from the truly current columns (gptq.py reads the
// block's columns before their in-block updates), so codes do not depend on block_size.
// Throws Error when the damped H is not positive definite or W has NaN/Inf.
GptqResult gptq_quantize(const at::Tensor& W, const at::Tensor& H, const QFormat& f,
                         const GptqOptions& opts = {});

// tr((W - Q) H (W - Q)^T): the layer-output error GPTQ minimises, in float64.
double output_error(const at::Tensor& W, const at::Tensor& Q, const at::Tensor& H);

}  // namespace sq
