// quant/importance: per-input-channel importance scores of a linear weight W [out, in] and
// the selection of its high-impact channels (docs/METHODS.md section 3.1 steps 1-2, arXiv
// 2511.17801: channels scored by the empirical Fisher summed over the channel's weights).
// Tensor in, tensor out: knows nothing of models or files (the score file, a reusable
// artifact of the work directory, is pipeline/channel_scores).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace sq {

// The cheap proxy from a GPTQ Hessian H [in, in] (HessianAccumulator, H = 2/n sum x x^T):
//   score[j] = H[j, j] * sum_r W[r, j]^2         (the OBS saliency w^2 / [H^-1]_jj with the
// inverse's diagonal replaced by 1 / H_jj, summed over the column). [in] float32 on W's
// device, computed in float32.
at::Tensor hessian_channel_scores(const at::Tensor& W, const at::Tensor& H);

// The empirical-Fisher score from accumulated squared gradients G [out, in]:
//   score[j] = sum_r G[r, j]. [in] float32 on G's device.
at::Tensor fisher_channel_scores(const at::Tensor& G);

// Sum of grad^2 of one weight over calibration batches (the empirical Fisher diagonal up
// to the 1/batches factor, which no ranking needs), accumulated in float32 on the device
// of the first gradient.
class FisherAccumulator {
 public:
  FisherAccumulator(int64_t out_features, int64_t in_features);
  void add(const at::Tensor& grad);  // [out, in], any float dtype; throws on a shape mismatch
  const at::Tensor& G() const;       // [out, in] float32; throws before the first add
  int64_t batches() const { return batches_; }
  at::Tensor channel_scores() const { return fisher_channel_scores(G()); }  // [in]

 private:
  int64_t out_, in_;
  at::Tensor G_;
  int64_t batches_ = 0;
};

// The number of channels a ratio selects: ceil(ratio * in), where products within a
// relative 1e-9 of an integer count as that integer (0.15 * 100 selects 15, not 16).
// RATIO in [0, 1]; throws otherwise.
int64_t channel_count(double ratio, int64_t in_features);

// The K highest-scoring channels of SCORE [in] (any float dtype and device) as int64 [K]
// on the CPU, sorted ascending; ties go to the lower index, so the choice is deterministic.
// Throws on NaN scores or K outside [0, in].
at::Tensor top_k_channels(const at::Tensor& score, int64_t k);
// top_k_channels(score, channel_count(ratio, in)).
at::Tensor top_channels(const at::Tensor& score, double ratio);

}  // namespace sq
