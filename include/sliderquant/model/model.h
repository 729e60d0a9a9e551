// model/model: a decoder-only model's weights under canonical names, loaded from an HF
// model directory. Weights stay as zero-copy views of the mapped safetensors files in
// their stored dtype (host memory); the forward pass moves and converts them per block.
// Knows nothing of quantization methods: a Linear only answers for its effective weight.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <set>
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

// Dynamic activation quantization that is part of the model's forward pass (weight-
// activation settings such as W4A4): per-token asymmetric fake quantization of every block
// linear's input at `bits`, and of attention's Q and K (after RoPE) and V at `attn_bits`
// (quant/act_quant.h fake_quant_per_token); 16 = off. `rate` < 1 quantizes only the first
// share of channels (used while SliderQuant trains; deployed models use 1).
// KV-cache quantization (k_bits, v_bits): asymmetric, per token, in groups of `kv_group`
// consecutive channels of each head (0 = the whole head), K after RoPE and after the
// K-cache online transform; applied on top of attn_bits (which, when < 16, quantizes Q, K
// and V per head and token first, SliderQuant's convention).
struct ActQuant {
  int bits = 16;
  int attn_bits = 16;
  double rate = 1.0;
  int k_bits = 16, v_bits = 16;
  int64_t kv_group = 0;
  bool on() const { return bits < 16 || attn_bits < 16 || k_bits < 16 || v_bits < 16; }
};

// An online transform x -> x T of the deployed model, applied in the forward pass where it
// cannot be folded into weights (FlatQuant / QuaRot style), before activation quantization:
//   T = diag(scale) · (p1 ⊗ p2),  x T = vec(p1ᵀ · X · p2) with X = (x ⊙ scale) viewed as
// [n1, n2] (row-major). Any part may be undefined (scale: ones; p1: [1,1] identity, then
// p2 is the dense [n, n] matrix; p2 undefined too: identity). The consuming weights store
// W T^{-T} (W T for orthogonal T), so the linear computes the same function.
struct OnlineTransform {
  at::Tensor scale;   // [n]
  at::Tensor p1, p2;  // [n1, n1], [n2, n2] with n1 * n2 = n
  // Training only (a differentiable choice between two transforms, never stored): when
  // `mix` is defined, x T = mix · (x alt[0]) + (1 − mix) · (x alt[1]) and the parts above
  // are unused; mix is 0 or 1 in value, so T is exactly one candidate, while its gradient
  // reaches the choice.
  at::Tensor mix{};
  std::vector<OnlineTransform> alt{};
  bool defined() const { return scale.defined() || p1.defined() || p2.defined() || mix.defined(); }
};
// Where a block applies online transforms: the inputs of its linear groups (TapPoint
// order of model/forward.h), and K after RoPE per head (q then gets q T^{-T}, so Q Kᵀ is
// unchanged). A V-cache transform folds into v_proj and o_proj and needs no entry.
enum class OnlinePoint { QkvIn = 0, OIn = 1, GateUpIn = 2, DownIn = 3, KCache = 4 };
constexpr int kOnlinePoints = 5;
const char* online_point_name(OnlinePoint p);  // "qkv_in", "o_in", "gate_up_in", "down_in", "k_cache"

// Learned activation clipping (FlatQuant's LAC): per block, a [kActClipPoints, 2] float
// tensor of factors in (0, 1] (column 0 shrinks each token's max, column 1 its min) for the
// per-token quantizers of the four linear-group inputs and of the K and V caches.
enum class ActClipPoint { QkvIn = 0, OIn = 1, GateUpIn = 2, DownIn = 3, KCache = 4, VCache = 5 };
constexpr int kActClipPoints = 6;

struct Linear {
  std::string name;   // canonical, e.g. "blocks.3.attn.q"
  at::Tensor weight;  // [out, in] the full-precision (master) weight
  at::Tensor bias;    // [out] or undefined
  std::shared_ptr<const WeightOverride> override_;  // set once quantized
  // The weight the forward pass uses: the override's when set, else the master weight.
  at::Tensor effective_weight() const { return override_ ? override_->weight() : weight; }
};

struct Block {
  const BlockLayout* layout = nullptr;  // what `slots` holds (the family's layout)
  at::Tensor attn_norm;       // [H]
  at::Tensor q_norm, k_norm;  // [head_dim] (Qwen3) or undefined
  at::Tensor mlp_norm;        // [H]
  at::Tensor mlp_norm_bias;   // [H] or undefined: added to the norm's output (a mean-shift
                              // correction such as D²Quant's DAC; stored as
                              // post_attention_layernorm.bias)
  std::vector<Linear> slots;  // one Linear per layout slot, in table order
  OnlineTransform online[kOnlinePoints];  // online transforms (all undefined by default)
  std::string online_kind[kOnlinePoints];  // what each is ("rotation", "affine"; informative)
  at::Tensor act_clip;        // [kActClipPoints, 2] learned activation clipping, or undefined

  Block() = default;
  explicit Block(const BlockLayout& l) : layout(&l), slots(size_t(l.size())) {}
  Linear& linear(Role r) { return slots[size_t(layout_or_throw().index(r))]; }
  const Linear& linear(Role r) const { return slots[size_t(layout_or_throw().index(r))]; }
  std::vector<Linear*> linears();
  std::vector<const Linear*> linears() const;
  std::vector<Linear*> group(TapPoint g);  // the linears reading tap g, in table order
  std::vector<const Linear*> group(TapPoint g) const;
  int64_t nbytes() const;  // bytes of all tensors as stored

 private:
  const BlockLayout& layout_or_throw() const;
};

struct Model {
  std::string dir;
  ModelConfig config;
  const ArchSpec* arch = nullptr;
  at::Tensor embed;       // [V, H]
  at::Tensor final_norm;  // [H]
  at::Tensor final_norm_bias;  // [H] or undefined (stored as model.norm.bias)
  Linear lm_head;         // [V, H] (shares embed's storage when tied)
  std::vector<Block> blocks;
  ActQuant act;           // activation quantization of the deployed model (off by default)
  std::shared_ptr<Checkpoint> checkpoint;  // keeps the mappings alive

  int64_t nbytes() const;  // bytes of all distinct tensors as stored
};

// Every tensor of the model's current state under canonical names (embed, norms and their
// biases, linear weights and biases, online transforms as blocks.N.online.POINT.{scale,p1,p2},
// activation clipping as blocks.N.act_clip,
// final norm, lm_head unless tied), in forward order.
// A linear whose master weight is undefined (loaded packed) is listed with an undefined tensor.
std::vector<std::pair<std::string, at::Tensor>> canonical_tensors(const Model& m);

// Supplies a Linear whose weight is stored in another form (packed codes, ...): returns
// false to let the loader read HF_PREFIX.weight as usual; otherwise sets the Linear's
// override (its `weight` may stay undefined) and adds the tensor names it read to `used`.
using LinearResolver =
    std::function<bool(const std::string& canonical, const std::string& hf_prefix, int64_t out, int64_t in,
                       const Checkpoint& ck, Linear& linear, std::set<std::string>& used)>;

// Loads config.json and the weights of DIR; checks every tensor's presence, shape and
// dtype (floating point) against the config, naming the tensor and file on mismatch.
// Throws "tensor NAME in FILE holds NaN or Inf values" unless every value of T, read as NAME
// from CK, is finite. load_model checks every tensor it reads; a resolver checks the float
// tensors it reads itself (scales, zeros) with this.
void check_finite(const at::Tensor& t, const std::string& name, const Checkpoint& ck);

Model load_model(const std::string& dir, const LinearResolver& resolver = {});
// The same from a configuration and weights obtained elsewhere (a converted file): SOURCE
// is what errors name and what Model::dir holds.
Model load_model_from(const std::string& source, ModelConfig config, std::shared_ptr<Checkpoint> checkpoint,
                      const LinearResolver& resolver = {});

}  // namespace sq
