// transform/rotation: QuaRot's exact residual-stream rotation, fused into the weights
// (Ashkboos et al. 2024, "QuaRot", sec. 4.1: fuse_layer_norms + rotate_model; no online
// Hadamards) and D²Quant's groupwise block-diagonal variant (docs/METHODS.md 2.2 step 1; SliderQuant
// W4A4 uses the full one, docs/METHODS.md 1.3 step 2). The logits are unchanged (up to rounding).
// Runs before quantization: it refuses Linears that already carry a quantized override.
// Replaces tensors (new float32 CPU tensors); never writes into the mapped checkpoint.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>

#include "sliderquant/model/model.h"

namespace sq {

// Multiplies each RMSNorm weight into the input columns of the linears it feeds
// (attn_norm -> q,k,v; mlp_norm -> gate,up; final_norm -> lm_head) and sets the norm
// weights to ones. A tied lm_head gets its own tensor (config.tie_word_embeddings becomes
// false) unless final_norm is already all ones. Qwen3's per-head q_norm/k_norm act after
// the projections and stay as they are; biases are unaffected.
void fuse_norms(Model& m);

// Rotates the residual stream by Q [H, H] (orthogonal): embed, q, k, v, gate, up and lm_head
// weights W <- W·Q; o and down weights W <- Qᵀ·W and their biases b <- Qᵀ·b. Requires fused
// norms (all ones). Computed in float64 like QuaRot on Q's device (CPU or CUDA), stored as
// float32 CPU tensors.
void rotate_residual(Model& m, const at::Tensor& Q);

// fuse_norms + rotate_residual with random_hadamard(H, seed) (block == 0) or
// block_diag_random_hadamard(H, block, seed) (D²Quant's groupwise rotation, e.g. 128),
// the products computed on `device`.
void rotate_model(Model& m, int64_t block, uint64_t seed, c10::Device device = c10::Device(c10::kCPU));

}  // namespace sq
