// passes/adaptive (private): adaptive layer-wise transforms (Pham et al., arXiv 2511.17809; docs/METHODS.md
// sections 4 and 5.6/5.8) in FlatQuant's per-linear-group online-transform framework.
// Every block gets a transform T = diag(d) · (P1 ⊗ P2) at five points: the q/k/v input, the
// o_proj input, the gate/up input, the down_proj input (all applied online, model.h
// OnlineTransform; consumers store W T^{-T}) and K after RoPE (online, Q gets T^{-T}); the
// V cache gets a per-head transform folded into v_proj rows and o_proj columns. Each point
// is either a rotation (seeded random signs times a Hadamard P1 ⊗ P2 of supported orders,
// transform/hadamard.h, fixed) or an affine transform (learnable P1, P2 initialised to the
// identity, explicit inverses); both carry a learnable per-channel diagonal d (init 1).
// A point whose order has no Hadamard split (stories260K's 172 = 4 x 43) is affine, logged.
// Choice per layer: `mode` "rotation" / "affine" (homogeneous baselines), or "adaptive" with
// `select` "kurtosis" (transform/selector.h; K/V caches follow the o_proj input's choice)
// or "search": a learnable choice factor a per point (the caches share the o input's):
// for `search_epochs` each step uses T_affine with probability σ(a), else T_rotation
// (sampled, straight-through gradient to a, see transform_of), trained with the block loss,
// hardened (σ(a) > 0.5 = affine), then trained `epochs` hard; the search result is kept in
// the work directory, so a resumed run does not search again. Weights get learnable
// clipping (LWC), activations learnable clipping (LAC: per block and quantizer point, a
// sigmoid factor on each token's max and min); training is block-wise on the window driver
// (one-layer windows) with FlatQuant's full-precision inputs by default; the weights are
// then hardened by RTN with the learned clipping (`weights: "rtn"`), or left transformed in
// full precision for a following weight pass such as GPTQ (`weights: "none"`, recipes
// *-gptq). Activations are quantized per token (abits) after the transforms, the K/V caches
// per token in groups (kv_bits, kv_group); all of it is written into the model (online
// transforms and clipping factors as tensors, quantization_config.json) so eval runs it
// exactly.
//
// Files: options.cpp (the option table and the pass), student.cpp (the transforms and their
// training side), finish.cpp (choices, hardening into the model), search.cpp (the run: the
// kurtosis selector or the searched choice, then block-wise training).
#pragma once
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <array>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "../block_linears.h"
#include "sliderquant/pipeline/pass.h"
#include "sliderquant/pipeline/session.h"
#include "sliderquant/pipeline/window_trainer.h"
#include "sliderquant/quant/learnable.h"
#include "sliderquant/transform/selector.h"
#include "sliderquant/transform/smooth.h"

namespace sq::passes::adaptive {

constexpr int kPoints = 6;  // the five OnlinePoints, then the V cache (folded)
constexpr int kVCache = 5;
inline const char* const kPointName[kPoints] = {"qkv_in", "o_in", "gate_up_in", "down_in", "k_cache", "v_cache"};
// The point whose choice the K and V caches follow (same head space).
constexpr int kHeadChoice = int(OnlinePoint::OIn);

struct Opts {
  std::string mode, select;
  double beta_attn, beta_ffn;
  std::string heavy_tail;
  int64_t epochs, search_epochs, batch;
  double lr, lwc_lr, choice_lr, lwc_init, lac_init;
  bool lac;
  std::string weights;
  int abits, k_bits, v_bits;
  int64_t kv_group;
  bool fp_inputs;
  uint64_t seed;
};

const std::vector<OptionSpec>& options();                 // options.cpp
void run(Session& s, const nlohmann::json& options);      // search.cpp

using Kinds = std::vector<std::array<TransformKind, 4>>;

// One transform point's candidates and choice.
struct Point {
  int64_t n = 0, n1 = 1;
  bool rotation_ok = false;
  at::Tensor signs, h1, h2;    // the rotation's fixed parts (h1 undefined when n1 == 1)
  at::Tensor d, a1, a2;        // learnable: diagonal and the affine factors
  at::Tensor alpha;            // learnable choice logit (search)
  TransformKind kind = TransformKind::Affine;
};

class AdaptiveStudent : public WindowStudent {
 public:
  AdaptiveStudent(Session& s, const Opts& o) : s_(s), o_(o), layers_(s.model.blocks.size()) {
    check_lwc_formats(s, "adaptive");
  }
  const std::string& name(int64_t l, int i) const { return linear_name(s_, l, i); }

  bool searching = false;  // mixtures of both candidates (search phase)

  // finish.cpp: the choices.
  // Sets every point's kind: KINDS[l][p] for the four linear-input points, the caches follow
  // the o input; points without a Hadamard split become affine.
  void set_kinds(const Kinds& kinds);
  // The search's hardened choice per layer and linear-input point (σ(a) > 0.5 = affine).
  Kinds searched();
  // Points (of every layer: all layers have the same widths) that have no Hadamard split.
  std::vector<std::pair<std::string, int64_t>> forced_affine();
  bool rotation_ok(int64_t l, int p) { return ensure(l).pt[size_t(p)].rotation_ok; }
  std::string describe();
  // Folds the transforms, quantizes every planned linear with its learned clipping, and
  // writes weights, online transforms and activation settings into the model.
  void finish();

  // student.cpp: the training side (WindowStudent).
  void focus(int64_t first, int64_t last) override;
  std::vector<ParamGroup> param_groups(int64_t first, int64_t last) override;
  BlockWeights block(int64_t l, double) override;
  NamedTensors state() override;
  void load_state(const SafetensorsFile& f) override;

 private:
  struct Layer {
    bool ready = false;
    std::array<Point, kPoints> pt;
    std::vector<std::optional<LwcQuantizer>> lwc;  // per layout slot
    at::Tensor lac;  // [kActClipPoints, 2] logits of the activation clipping factors (LAC)
    std::array<double, 4> noise{};  // the search's logistic noise of the current step
  };

  bool uses_affine(const Point& P) const { return searching ? true : P.kind == TransformKind::Affine || !P.rotation_ok; }
  ActQuant act() const;
  OnlineTransform cast(const OnlineTransform& t) const;
  std::vector<std::pair<std::string, at::Tensor*>> params(int64_t l);
  Layer& ensure(int64_t l);
  OnlineTransform transform_of(const Layer& L, int p) const;
  BlockTensors transformed(Layer& L, const BlockTensors& fp, std::array<OnlineTransform, kPoints>& T) const;

  Session& s_;
  Opts o_;
  std::vector<Layer> layers_;
  std::map<int64_t, BlockTensors> fp_;
  at::Generator gen_ = at::detail::createCPUGenerator(o_.seed * 7919ULL + 17);
};

}  // namespace sq::passes::adaptive
