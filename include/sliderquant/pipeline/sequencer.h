// pipeline/sequencer: THE block-by-block calibration driver, written once and reused by
// every method. It keeps two streams of block inputs in host memory (the full-precision
// teacher stream and the quantized student stream), and within each block quantizes the
// linear groups in forward order (q/k/v, o, gate/up, down), feeding each group the inputs
// produced by what is already quantized (explicit taps, see model/forward.h). After each
// block it advances both streams and checkpoints the block's results in the work
// directory, so a killed run resumes from the last finished block.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <vector>

#include "sliderquant/model/forward.h"
#include "sliderquant/pipeline/session.h"

namespace sq {

struct GroupInputs {
  int64_t block = 0;
  TapPoint point = TapPoint::QkvIn;
  int expert = -1;          // >= 0: routed expert E's linears, H from the tokens routed to it
  int64_t tokens = 0;       // calibration tokens behind H (an expert's routed tokens)
  bool starved = false;     // an expert below min_expert_tokens: H is the stated fallback's
  std::vector<std::string> linears;  // canonical names in this group that the plan quantizes
  at::Tensor H;                      // [in, in] float32: 2/n sum x x^T over the student stream
  at::Tensor dXXT;                   // [in, in] float32: 2/n sum (x_fp - x) x^T (GPTAQ), or undefined
};

struct SequencerOptions {
  bool teacher_stream = false;  // also advance the full-precision stream
  bool hessians = true;         // accumulate H per group on the student stream
  bool cross_terms = false;     // also dXXT from the teacher stream's inputs (GPTAQ); needs teacher_stream
  // Mean-shift hook (D²Quant's DAC): after a block's attention is quantized and before its
  // gate/up are, called with the per-channel mean over calibration tokens of
  // (teacher - student) MLP-norm output, where the teacher is the block with its
  // full-precision weights on the same student input. The hook may set the block's
  // mlp_norm_bias; gate/up then see the corrected inputs.
  std::function<void(Session&, int64_t block, const at::Tensor& mean_shift)> before_mlp;
  // Called once after the last block with the mean of (teacher - student) final-norm
  // output, teacher = last block with quantized attention and full-precision MLP.
  std::function<void(Session&, const at::Tensor& mean_shift)> after_last;
  // Mixture-of-experts blocks. Each routed expert's H comes only from the calibration tokens
  // routed to it, each token's x weighted by its routing weight (H_e = 2/n Σ r² x xᵀ, the
  // weight the forward scales the expert's output by). With calibrate_all_experts, every
  // token passes through every expert for statistics only (weight 1; the stream still uses
  // the routed output). An expert with fewer than min_expert_tokens routed tokens is starved:
  // its H is the token-weighted mean H of the block's other experts at that input
  // (starved_fallback "mean"), or the identity, i.e. round-to-nearest ("rtn", also used when
  // every expert of the block is starved). Cross terms (GPTAQ) are not computed for experts.
  int64_t min_expert_tokens = 16;
  bool calibrate_all_experts = false;
  std::string starved_fallback = "mean";
};

// Calls quantize_group for every group of every block in order; the callback must call
// Session::set_quantized for each linear it quantizes.
void run_block_sequential(Session& s, const SequencerOptions& o,
                          const std::function<void(Session&, const GroupInputs&)>& quantize_group);

}  // namespace sq
