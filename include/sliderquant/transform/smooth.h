// transform/smooth: learnable equivalent channel scales (OmniQuant's LET without shifts,
// as SliderQuant trains them in weight-activation mode; docs/METHODS.md 1.3 step 4) applied to
// one decoder block's tensors. Every pair divides a producer's output channel by s and
// multiplies the consumer's matching input column by s, so the block computes the same
// function (up to rounding) while the quantizers see rescaled weights and activations:
//   qkv:     attn_norm / s,              q, k, v columns * s          s [H]
//   gate_up: mlp_norm (and its bias) / s, gate, up columns * s         s [H]
//   v_o:     v rows (and bias) / s,       o columns * s expanded over the query heads
//            that share each KV head (GQA)                           s [nkv * hd]
//   up_down: up rows (and bias) / s,      down columns * s             s [I]
//   q_k:     q rows (and bias) / s,       k rows (and bias) * s, with s tied across the
//            two halves of each head (RoPE rotates channel d with d + hd/2, so the scaling
//            must commute with it) and shared by the query heads of a KV head
//                                                                    s [nkv, hd/2]
//            On models with per-head q/k RMSNorm (Qwen3) the pair acts on those norm
//            weights instead: q_norm / s, k_norm * s                  s [1, hd/2]
// Differentiable in the scales and the tensors. Pure tensor code on a block's parameters.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "sliderquant/model/forward.h"
#include "sliderquant/model/model.h"

namespace sq {

// A decoder block's parameters as float32 tensors (biases and optional norms undefined
// when absent), on one device.
struct BlockTensors {
  const BlockLayout* layout = nullptr;
  at::Tensor attn_norm, q_norm, k_norm, mlp_norm, mlp_norm_bias;
  std::vector<at::Tensor> w, b;  // per layout slot: weight [out, in] and bias (or undefined)
  at::Tensor& weight(Role r) { return w[size_t(layout->index(r))]; }
  const at::Tensor& weight(Role r) const { return w[size_t(layout->index(r))]; }
  at::Tensor& bias(Role r) { return b[size_t(layout->index(r))]; }
  const at::Tensor& bias(Role r) const { return b[size_t(layout->index(r))]; }
};
// The block's full-precision master tensors (effective weights are ignored).
BlockTensors block_tensors(const Block& b, c10::Device device);

// The forward pass's form (q/k/v and gate/up fused) in DTYPE, differentiable; act off. A MoE
// block's routed MLP goes to BlockWeights::moe (each expert's gate/up fused, the router in
// float32, C's top-k and normalisation), as prepare_block lays it out.
BlockWeights fuse_block_tensors(const BlockTensors& t, c10::ScalarType dtype, const ModelConfig& c);

struct LetScales {
  at::Tensor qkv, gate_up, v_o, up_down, q_k;  // each optional (undefined = that pair off)
};
// Scales of 1 (float32 leaves requiring grad) for the pairs switched on.
LetScales let_identity(const ModelConfig& c, bool qkv, bool gate_up, bool v_o, bool up_down, bool q_k,
                       c10::Device device);
BlockTensors apply_let(const BlockTensors& t, const LetScales& s, const ModelConfig& c);

}  // namespace sq
