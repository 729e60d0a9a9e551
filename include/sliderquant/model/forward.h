// model/forward: the one decoder forward pass (RMSNorm, RoPE in HF's rotate-half layout,
// causal GQA attention, SwiGLU MLP) and the block runner that moves weights to the compute
// device: the whole model when it fits the memory budget, else one block at a time.
// Calibration reuses Runner::block() to run the model block by block.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "sliderquant/model/model.h"

namespace sq {

struct RunnerOptions {
  c10::ScalarType dtype = c10::kFloat;    // compute dtype of weights and activations
  c10::Device device = c10::Device(c10::kCPU);
  // Bytes of converted weights allowed to stay on the device; -1 = automatic
  // (CPU: half the physical memory; CUDA: 85% of the device's memory minus activations).
  int64_t resident_budget = -1;
};

// RoPE tables for positions [0, n): cos/sin [n, head_dim] in float32 on the device.
struct RopeTable {
  at::Tensor cos, sin;
};
RopeTable make_rope(const ModelConfig& c, int64_t n, c10::Device device);
// The inverse frequencies [head_dim/2] (float32) after rope_scaling, as HF computes them.
at::Tensor rope_inv_freq(const ModelConfig& c);

// A MoE block's routed MLP in the compute dtype (the router in float32).
struct MoeWeights {
  at::Tensor router;                      // [E, H] float32
  std::vector<at::Tensor> gate_up, down;  // per expert: [2 I_e, H], [H, I_e]
  at::Tensor shared_gate_up, shared_down, shared_gate;  // shared expert and its [1, H] gate, or undefined
  int64_t top_k = 0;
  bool norm_topk = false;
  bool defined() const { return router.defined(); }
};

// A block's weights converted to the compute dtype and device (q/k/v and gate/up fused).
struct BlockWeights {
  at::Tensor attn_norm, q_norm, k_norm, mlp_norm, mlp_norm_bias;
  at::Tensor w_qkv, b_qkv;  // [q_dim + 2 kv_dim, H], bias or undefined
  at::Tensor w_o, b_o;
  at::Tensor w_gate_up, b_gate_up;  // [2 I, H]
  at::Tensor w_down, b_down;
  MoeWeights moe;  // a routed MLP instead of w_gate_up / w_down (MoE layers)
  ActQuant act;  // activation fake quantization inside block_forward (off unless set)
  at::Tensor act_clip;  // [kActClipPoints, 2] float32 clipping factors of those quantizers, or undefined
  // Online transforms (model.h), in the compute dtype; online_q is the q side of the
  // K-cache transform (T^{-T}), derived by prepare_block.
  OnlineTransform online[kOnlinePoints];
  OnlineTransform online_q;
  int64_t nbytes() const;
};
// x T along the last dimension (model.h OnlineTransform; undefined parts are identities;
// a mixed transform applies both candidates). Differentiable in x and the transform's tensors.
at::Tensor apply_online(const OnlineTransform& t, const at::Tensor& x);
// The transform x -> x T^{-T} (scale 1/scale, factors p1^{-T}, p2^{-T}), computed in float64
// (not for mixed transforms).
OnlineTransform online_inverse_transpose(const OnlineTransform& t);
// W T^{-T}: what the consumers of an input transformed by T store (rows of W times T^{-T}).
// For a mixed T (T(h) = h·A + (1 − h)·R, h ∈ {0, 1} in value) the value is W T_sel^{-T} and
// the derivative in h is exact: d(W T^{-T})/dh = −W T^{-T} (A − R)ᵀ T^{-T}, in Kronecker form.
at::Tensor fold_online_inverse(const at::Tensor& W, const OnlineTransform& t);
BlockWeights prepare_block(const Block& b, const ModelConfig& c, c10::ScalarType dtype,
                           c10::Device device, int64_t index);

// TapPoint (the inputs of a block's linear groups) is in model/layout.h.

// Explicit taps into block_forward: `fn` sees each tap point's input ([B, T, in]); when
// `stop_after` is set, the forward returns an undefined tensor right after that tap.
// In a MoE block, `fn` sees the block-wide inputs (GateUpIn: the router's and shared expert's
// input, all tokens; DownIn: the shared expert's down input) and `expert_fn` each routed
// expert's own inputs: the [n, in] rows of the tokens routed to expert E and their routing
// weights [n] (float32), for the expert's gate/up (GateUpIn) and down (DownIn) linears.
// With `all_experts`, expert_fn sees every token for every expert with weight 1 (statistics
// only: the block output still uses the routed tokens alone).
struct BlockTaps {
  std::function<void(TapPoint, const at::Tensor&)> fn;
  std::optional<TapPoint> stop_after;
  std::function<void(TapPoint, int expert, const at::Tensor& x, const at::Tensor& weight)> expert_fn;
  bool all_experts = false;
};

// The routing of N tokens [N, H] (the MLP-norm output) by a MoE block: the top-k experts of
// each token [N, k] (int64) and their weights [N, k] float32, as the forward computes them.
struct Routing {
  at::Tensor experts, weights;
};
Routing route_tokens(const MoeWeights& w, const at::Tensor& h);

// x [B, T, H] -> [B, T, H]: one decoder layer on positions [0, T). Taps see each linear
// group's input after its online transform (what the stored weights multiply) and before
// activation quantization (w.act). Differentiable (autograd) when
// called outside inference mode with weights that require grad.
at::Tensor block_forward(const BlockWeights& w, const ModelConfig& c, const at::Tensor& x,
                         const RopeTable& rope, const BlockTaps* taps = nullptr);
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

class Runner {
 public:
  Runner(const Model& model, RunnerOptions opts);
  const RunnerOptions& options() const { return opts_; }
  bool resident() const { return resident_; }
  const Model& model() const { return model_; }

  at::Tensor embed(const at::Tensor& ids) const;        // [B,T] int64 (any device) -> [B,T,H]
  at::Tensor block(int64_t i, const at::Tensor& x);     // runs layer i (loads it if needed)
  at::Tensor head(const at::Tensor& x);                 // final norm + lm_head -> [B,T,V]
  at::Tensor logits(const at::Tensor& ids);             // the whole model
  // Loads block i onto the device (no-op when resident) and drops the previous one.
  const BlockWeights& weights(int64_t i);
  int64_t resident_bytes() const;

 private:
  const Model& model_;
  RunnerOptions opts_;
  bool resident_ = false;
  std::vector<BlockWeights> blocks_;  // all blocks when resident
  BlockWeights current_;              // streaming mode: the block on the device
  int64_t current_index_ = -1;
  at::Tensor final_norm_, final_norm_bias_, lm_head_;
  RopeTable rope_;
  const RopeTable& rope(int64_t n);
};

}  // namespace sq
