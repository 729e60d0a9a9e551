// quant/gptq: GPTQ (Frantar et al. 2022; IST-DASLab/gptq gptq.py; docs/METHODS.md section 5.2)
// as a pure function of a weight and its Hessian, plus the Hessian accumulator; GPTAQ
// (Li et al. 2025, "GPTQv2"; docs/METHODS.md sections 2.2 step 2 and 5.9), the same column loop
// with the asymmetric-calibration term P, plus its dXXT accumulator; and DSQ formats
// (D²Quant, arXiv 2602.02546) quantized inside that loop.
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

// dXXT = 2/n sum_t (x_fp,t - x_q,t) x_q,t^T [in, in]: GPTAQ's cross term between the
// full-precision model's inputs x_fp and the partly quantized model's inputs x_q (same
// tokens, same order), with the running 2/n scaling of HessianAccumulator (feed X_q to a
// HessianAccumulator too: H = 2/n sum x_q x_q^T).
class CrossAccumulator {
 public:
  explicit CrossAccumulator(int64_t in_features);
  void add(const at::Tensor& X_fp, const at::Tensor& X_q);  // [..., in] each, same shape
  const at::Tensor& dXXT() const { return D_; }  // [in, in] float32
  int64_t tokens() const { return n_; }

 private:
  at::Tensor D_;
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
  bool params_at_block_start = false;  // dynamic group params as gptq.py: the columns at the lazy block's start
  ClipSearch clip;               // MSE clip search in find_params (uniform formats)
  double gptaq_alpha = 0.25;     // GPTAQ: P = alpha * triu(dXXT U^T, 1) U
  int dsq_iters = 15;            // DSQ formats: dsq_fit iterations per group
};

struct GptqResult {
  QTensor q;
  double error = 0;  // tr((W - Q) H (W - Q)^T) with the undamped H
};

// W [out, in] (any float dtype, any device; computed in float32 on W's device);
// H [in, in] from HessianAccumulator. ActOrder without static_groups yields a g_idx
// (g_idx[j] = position of column j in the processing order / group width); the other
// orders keep groups in the original column space (g(j) = j / width). Orders sort diag(H)
// stably. Dynamic group parameters come from the truly current columns, so codes do not depend
// on block_size, unless params_at_block_start (gptq.py: the group's columns before the current
// lazy block's in-block updates). A ragged format's short last group is its own group.
// Throws Error when the damped H is not positive definite or W has NaN/Inf.
// DSQ formats (f.dsq): at each group's first processed column dsq_fit runs on the current
// group (static_groups: on the original W's groups up front), then every column goes to
// its nearest level; needs the Natural or GroupPreserving order (groups contiguous).
GptqResult gptq_quantize(const at::Tensor& W, const at::Tensor& H, const QFormat& f,
                         const GptqOptions& opts = {});

// GPTAQ: gptq_quantize with dXXT [in, in] from CrossAccumulator (original column order),
// minimising ||W X_fp - Q X_q||^2 instead of ||(W - Q) X_q||^2 (docs/METHODS.md 2.2 step 2):
// dead columns also zero dXXT[:, i]; dXXT gets the column permutation on both sides;
// U = chol(H^-1, upper), P = alpha * triu(dXXT U^T, 1) U; inside a block
// W[:, j+1:] -= e U[j, j+1:] - w_j P[j, j+1:] (w_j = column j just before it is
// quantized), after it W[:, end:] -= E U[blk, end:] - W_blk P[blk, end:] with W_blk the
// same pre-quantization columns (so, as GPTQ here, codes do not depend on block_size;
// the public GPTAQ code multiplies the block's already-quantized columns at the block end,
// which differs only across block boundaries). dXXT = 0 gives GPTQ bit for bit.
// GptqResult::error stays tr((W - Q) H (W - Q)^T).
GptqResult gptaq_quantize(const at::Tensor& W, const at::Tensor& H, const at::Tensor& dXXT, const QFormat& f,
                          const GptqOptions& opts = {});

// tr((W - Q) H (W - Q)^T): the layer-output error GPTQ minimises, in float64.
double output_error(const at::Tensor& W, const at::Tensor& Q, const at::Tensor& H);

}  // namespace sq
