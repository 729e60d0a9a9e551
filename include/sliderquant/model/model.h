// model/model: a decoder-only model's weights under canonical names, loaded from an HF
// model directory. Weights stay as zero-copy views of the mapped safetensors files in
// their stored dtype (host memory); the forward pass moves and converts them per block.
// Knows nothing of quantization methods: a Linear only answers for its effective weight.
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <string>
#include <vector>

#include "sliderquant/model/arch.h"

namespace sq {

class Checkpoint;

// What a quantization pass puts in place of a Linear's weight: the forward pass asks it
// for the weight to use and never branches on methods (the pipeline wraps a QTensor).
class WeightOverride {
 public:
  virtual ~WeightOverride() = default;
  virtual at::Tensor weight() const = 0;  // [out, in]
  virtual std::string describe() const = 0;
};

struct Linear {
  std::string name;   // canonical, e.g. "blocks.3.attn.q"
  at::Tensor weight;  // [out, in] the full-precision (master) weight
  at::Tensor bias;    // [out] or undefined
  std::shared_ptr<const WeightOverride> override_;  // set once quantized
  // The weight the forward pass uses: the override's when set, else the master weight.
  at::Tensor effective_weight() const { return override_ ? override_->weight() : weight; }
};

struct Block {
  at::Tensor attn_norm;       // [H]
  at::Tensor q_norm, k_norm;  // [head_dim] (Qwen3) or undefined
  at::Tensor mlp_norm;        // [H]
  Linear q, k, v, o;          // q [nh*hd, H], k/v [nkv*hd, H], o [H, nh*hd]
  Linear gate, up, down;      // gate/up [I, H], down [H, I]
  std::vector<Linear*> linears();
  std::vector<const Linear*> linears() const;
  int64_t nbytes() const;  // bytes of all tensors as stored
};

struct Model {
  std::string dir;
  ModelConfig config;
  const ArchSpec* arch = nullptr;
  at::Tensor embed;       // [V, H]
  at::Tensor final_norm;  // [H]
  Linear lm_head;         // [V, H] (shares embed's storage when tied)
  std::vector<Block> blocks;
  std::shared_ptr<Checkpoint> checkpoint;  // keeps the mappings alive

  int64_t nbytes() const;  // bytes of all distinct tensors as stored
};

// Loads config.json and the weights of DIR; checks every tensor's presence, shape and
// dtype (floating point) against the config, naming the tensor and file on mismatch.
Model load_model(const std::string& dir);

}  // namespace sq
