// passes/adaptive: adaptive layer-wise transforms (Pham et al., arXiv 2511.17809; METHODS.md
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
#include <ATen/ATen.h>

#include <array>
#include <cmath>
#include <map>
#include <optional>

#include <nlohmann/json.hpp>

#include "block_linears.h"
#include "options.h"
#include "sliderquant/core/util.h"
#include "sliderquant/core/log.h"
#include "sliderquant/io/safetensors.h"
#include "sliderquant/pipeline/pass.h"
#include "sliderquant/pipeline/session.h"
#include "sliderquant/pipeline/window_trainer.h"
#include "sliderquant/quant/learnable.h"
#include "sliderquant/transform/hadamard.h"
#include "sliderquant/transform/selector.h"
#include "sliderquant/transform/smooth.h"

namespace sq::passes {
namespace {

constexpr int kPoints = 6;  // the five OnlinePoints, then the V cache (folded)
constexpr int kVCache = 5;
const char* kPointName[kPoints] = {"qkv_in", "o_in", "gate_up_in", "down_in", "k_cache", "v_cache"};
// The point whose choice the K and V caches follow (same head space).
constexpr int kHeadChoice = int(OnlinePoint::OIn);

struct Opts {
  std::string mode = "adaptive", select = "kurtosis";
  double beta_attn = 0, beta_ffn = 0;
  std::string heavy_tail = "rotation";
  int64_t epochs = 15, search_epochs = 5, batch = 4;
  double lr = 5e-3, lwc_lr = 5e-2, choice_lr = 5e-2, lwc_init = 4.0, lac_init = 4.0;
  bool lac = true;
  std::string weights = "rtn";
  int abits = 4, k_bits = 4, v_bits = 4;
  int64_t kv_group = 0;
  bool fp_inputs = true;
  uint64_t seed = 0;
};

Opts read(const nlohmann::json& o) {
  Opts r;
  r.mode = o.value("mode", r.mode);
  r.select = o.value("select", r.select);
  r.beta_attn = o.value("beta_attn", r.beta_attn);
  r.beta_ffn = o.value("beta_ffn", r.beta_ffn);
  r.heavy_tail = o.value("heavy_tail", r.heavy_tail);
  r.epochs = o.value("epochs", r.epochs);
  r.search_epochs = o.value("search_epochs", r.search_epochs);
  r.batch = o.value("batch", r.batch);
  r.lr = o.value("lr", r.lr);
  r.lwc_lr = o.value("lwc_lr", r.lwc_lr);
  r.choice_lr = o.value("choice_lr", r.choice_lr);
  r.lwc_init = o.value("lwc_init", r.lwc_init);
  r.lac = o.value("lac", r.lac);
  r.lac_init = o.value("lac_init", r.lac_init);
  r.weights = o.value("weights", r.weights);
  r.abits = o.value("abits", r.abits);
  r.k_bits = o.value("k_bits", r.k_bits);
  r.v_bits = o.value("v_bits", r.v_bits);
  r.kv_group = o.value("kv_group", r.kv_group);
  r.fp_inputs = o.value("fp_inputs", r.fp_inputs);
  r.seed = o.value("seed", r.seed);
  return r;
}

void validate(const nlohmann::json& o, const std::string& where) {
  check_keys(o,
             {"mode", "select", "beta_attn", "beta_ffn", "heavy_tail", "epochs", "search_epochs", "batch", "lr",
              "lwc_lr", "choice_lr", "lwc_init", "lac", "lac_init", "weights", "abits", "k_bits", "v_bits", "kv_group",
              "fp_inputs", "seed"},
             where);
  const std::string mode = get_or<std::string>(o, "mode", "adaptive", where);
  SQ_CHECK(mode == "adaptive" || mode == "rotation" || mode == "affine",
           where << ": mode must be \"adaptive\", \"rotation\" or \"affine\"");
  const std::string sel = get_or<std::string>(o, "select", "kurtosis", where);
  SQ_CHECK(sel == "kurtosis" || sel == "search", where << ": select must be \"kurtosis\" or \"search\"");
  const std::string ht = get_or<std::string>(o, "heavy_tail", "rotation", where);
  SQ_CHECK(ht == "rotation" || ht == "affine", where << ": heavy_tail must be \"rotation\" or \"affine\"");
  get_or<double>(o, "beta_attn", 0.0, where);
  get_or<double>(o, "beta_ffn", 0.0, where);
  for (const char* k : {"epochs", "search_epochs"})
    SQ_CHECK(get_or<int64_t>(o, k, 0, where) >= 0, where << ": " << k << " must be >= 0");
  SQ_CHECK(get_or<int64_t>(o, "batch", 4, where) >= 1, where << ": batch must be >= 1");
  for (const char* k : {"lr", "lwc_lr", "choice_lr"})
    SQ_CHECK(get_or<double>(o, k, 0.0, where) >= 0, where << ": " << k << " must be >= 0");
  get_or<double>(o, "lwc_init", 4.0, where);
  get_or<bool>(o, "lac", true, where);
  get_or<double>(o, "lac_init", 4.0, where);
  const std::string wq = get_or<std::string>(o, "weights", "rtn", where);
  SQ_CHECK(wq == "rtn" || wq == "none",
           where << ": weights must be \"rtn\" (learned clipping) or \"none\" (left for the next pass, e.g. gptq)");
  for (const char* k : {"abits", "k_bits", "v_bits"}) {
    const int b = get_or<int>(o, k, 4, where);
    SQ_CHECK((b >= 2 && b <= 8) || b == 16, where << ": " << k << " must be 2..8 or 16 (off)");
  }
  SQ_CHECK(get_or<int64_t>(o, "kv_group", 0, where) >= 0, where << ": kv_group must be >= 0 (0 = per head)");
  get_or<bool>(o, "fp_inputs", true, where);
  get_or<uint64_t>(o, "seed", 0, where);
}

nlohmann::json resolve(const nlohmann::json& o) {
  Opts r = read(o);
  return {{"mode", r.mode},       {"select", r.select},       {"beta_attn", r.beta_attn},
          {"beta_ffn", r.beta_ffn}, {"heavy_tail", r.heavy_tail}, {"epochs", r.epochs},
          {"search_epochs", r.search_epochs}, {"batch", r.batch}, {"lr", r.lr},
          {"lwc_lr", r.lwc_lr},   {"choice_lr", r.choice_lr}, {"lwc_init", r.lwc_init},
          {"lac", r.lac},         {"lac_init", r.lac_init},   {"weights", r.weights},
          {"abits", r.abits},     {"k_bits", r.k_bits},       {"v_bits", r.v_bits},
          {"kv_group", r.kv_group}, {"fp_inputs", r.fp_inputs}, {"seed", r.seed}};
}

// n = n1 * n2 with n1 <= n2 as close to sqrt(n) as possible (FlatQuant's get_decompose_dim);
// with `hadamard`, only splits whose both orders have a Hadamard matrix (0 when none).
int64_t kron_split(int64_t n, bool hadamard) {
  for (int64_t n1 = int64_t(std::sqrt(double(n))); n1 >= 1; --n1)
    if (n % n1 == 0 && (!hadamard || (hadamard_supported(n1) && hadamard_supported(n / n1)))) return n1;
  return 0;
}

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
  static std::string name(int64_t l, int i) { return linear_name(l, i); }

  bool searching = false;  // mixtures of both candidates (search phase)

  // Sets every point's kind: KINDS[l][p] for the four linear-input points, the caches follow
  // the o input; points without a Hadamard split become affine.
  void set_kinds(const std::vector<std::array<TransformKind, 4>>& kinds) {
    for (size_t l = 0; l < layers_.size(); ++l) {
      Layer& L = ensure(int64_t(l));
      for (int p = 0; p < kPoints; ++p) {
        const TransformKind k = kinds[l][size_t(p < 4 ? p : kHeadChoice)];
        L.pt[p].kind = (k == TransformKind::Rotation && !L.pt[p].rotation_ok) ? TransformKind::Affine : k;
      }
    }
  }
  // The search's hardened choice per layer and linear-input point (σ(a) > 0.5 = affine).
  std::vector<std::array<TransformKind, 4>> searched() {
    std::vector<std::array<TransformKind, 4>> r(layers_.size());
    for (size_t l = 0; l < layers_.size(); ++l)
      for (int p = 0; p < 4; ++p) {
        const Point& P = ensure(int64_t(l)).pt[p];
        r[l][size_t(p)] = !P.rotation_ok || P.alpha.item<double>() > 0 ? TransformKind::Affine : TransformKind::Rotation;
      }
    return r;
  }
  // Points (of every layer: all layers have the same widths) that have no Hadamard split.
  std::vector<std::pair<std::string, int64_t>> forced_affine() {
    std::vector<std::pair<std::string, int64_t>> r;
    for (int p = 0; p < kPoints; ++p)
      if (!ensure(0).pt[size_t(p)].rotation_ok) r.emplace_back(kPointName[p], ensure(0).pt[size_t(p)].n);
    return r;
  }
  bool rotation_ok(int64_t l, int p) { return ensure(l).pt[size_t(p)].rotation_ok; }

  void focus(int64_t first, int64_t last) override {
    // The search's noise depends on the window only, so a resumed run draws the same.
    gen_ = at::detail::createCPUGenerator(o_.seed * 7919ULL + 17 + uint64_t(first) * 1000003ULL);
    for (auto it = fp_.begin(); it != fp_.end();) it = (it->first < first || it->first > last) ? fp_.erase(it) : ++it;
  }

  std::vector<ParamGroup> param_groups(int64_t first, int64_t last) override {
    ParamGroup tr{"transform", {}, o_.lr}, lwc{"lwc", {}, o_.lwc_lr}, ch{"choice", {}, o_.choice_lr};
    for (int64_t l = first; l <= last; ++l) {
      Layer& L = ensure(l);
      for (Point& P : L.pt) {
        tr.params.push_back(P.d);
        if (uses_affine(P)) {
          if (P.a1.defined()) tr.params.push_back(P.a1);
          tr.params.push_back(P.a2);
        }
        if (searching && P.rotation_ok && &P - L.pt.data() < 4) ch.params.push_back(P.alpha);
      }
      for (auto& q : L.lwc)
        if (q) lwc.params.insert(lwc.params.end(), {q->gamma(), q->beta()});
      if (L.lac.defined()) lwc.params.push_back(L.lac);
    }
    std::vector<ParamGroup> g;
    for (ParamGroup* p : {&tr, &lwc, &ch})
      if (p->lr > 0 && !p->params.empty()) g.push_back(std::move(*p));
    return g;
  }

  BlockWeights block(int64_t l, double) override {
    Layer& L = ensure(l);
    auto it = fp_.find(l);
    if (it == fp_.end()) it = fp_.emplace(l, block_tensors(s_.model.blocks[size_t(l)], s_.runner.device)).first;
    if (searching)
      for (double& n : L.noise) {
        const double u = std::min(std::max(at::rand({1}, gen_).item<double>(), 1e-6), 1 - 1e-6);
        n = std::log(u / (1 - u));
      }
    std::array<OnlineTransform, kPoints> T;
    BlockTensors t = transformed(L, it->second, T);
    for (int i = 0; i < kLinears; ++i)
      if (L.lwc[size_t(i)]) weight_of(t, i) = L.lwc[size_t(i)]->fake_quant(weight_of(t, i));
    BlockWeights w = fuse_block_tensors(t, s_.runner.dtype);
    for (int p = 0; p < kOnlinePoints; ++p) w.online[p] = cast(T[size_t(p)]);
    w.online_q = cast(online_inverse_transpose(T[int(OnlinePoint::KCache)]));
    w.act = act();
    if (L.lac.defined()) w.act_clip = at::sigmoid(L.lac);
    return w;
  }

  NamedTensors state() override {
    NamedTensors ts;
    for (size_t l = 0; l < layers_.size(); ++l) {
      Layer& L = layers_[l];
      if (!L.ready) continue;
      for (auto& [n, t] : params(int64_t(l))) ts.emplace_back(n, t->detach().cpu());
    }
    return ts;
  }
  void load_state(const SafetensorsFile& f) override {
    at::NoGradGuard ng;
    for (size_t l = 0; l < layers_.size(); ++l)
      for (auto& [n, t] : params(int64_t(l)))
        if (f.find(n)) t->copy_(f.tensor(n));
  }

  // Folds the transforms, quantizes every planned linear with its learned clipping, and
  // writes weights, online transforms and activation settings into the model.
  void finish() {
    at::NoGradGuard ng;
    fp_.clear();
    auto host = [](const at::Tensor& x) { return x.defined() ? x.detach().to(at::kCPU, at::kFloat).contiguous() : x; };
    for (size_t l = 0; l < layers_.size(); ++l) {
      Layer& L = ensure(int64_t(l));
      Block& b = s_.model.blocks[l];
      std::array<OnlineTransform, kPoints> T;
      BlockTensors t = transformed(L, block_tensors(b, s_.runner.device), T);
      std::vector<Linear*> lin = b.linears();
      for (int i = 0; i < kLinears; ++i) {
        Linear& li = *lin[size_t(i)];
        li.weight = host(weight_of(t, i));
        if (li.bias.defined()) li.bias = host(bias_of(t, i));
        if (L.lwc[size_t(i)] && o_.weights == "rtn")
          s_.set_quantized(li.name, L.lwc[size_t(i)]->quantize(weight_of(t, i)).to(c10::Device(c10::kCPU)));
      }
      if (L.lac.defined()) b.act_clip = host(at::sigmoid(L.lac));
      for (int p = 0; p < kOnlinePoints; ++p) {
        b.online[p] = {host(T[size_t(p)].scale), host(T[size_t(p)].p1), host(T[size_t(p)].p2)};
        b.online_kind[p] = transform_kind_name(L.pt[size_t(p)].kind);
      }
    }
    s_.model.act = act();
  }

  std::string describe() {
    std::string r;
    for (size_t l = 0; l < layers_.size(); ++l) {
      r += (l ? "; " : "") + std::to_string(l) + ":";
      for (int p = 0; p < kPoints; ++p) r += std::string(" ") + (ensure(int64_t(l)).pt[p].kind == TransformKind::Rotation ? "R" : "A");
    }
    return r;
  }

 private:
  struct Layer {
    bool ready = false;
    std::array<Point, kPoints> pt;
    std::array<std::optional<LwcQuantizer>, kLinears> lwc;
    at::Tensor lac;  // [kActClipPoints, 2] logits of the activation clipping factors (LAC)
    std::array<double, 4> noise{};  // the search's logistic noise of the current step
  };

  bool uses_affine(const Point& P) const { return searching ? true : P.kind == TransformKind::Affine || !P.rotation_ok; }

  ActQuant act() const {
    ActQuant a;
    a.bits = o_.abits;
    a.k_bits = o_.k_bits;
    a.v_bits = o_.v_bits;
    a.kv_group = o_.kv_group;
    return a;
  }
  OnlineTransform cast(const OnlineTransform& t) const {
    auto c = [&](const at::Tensor& x) { return x.defined() ? x.to(s_.runner.dtype) : x; };
    OnlineTransform r{c(t.scale), c(t.p1), c(t.p2)};
    r.mix = c(t.mix);
    for (const OnlineTransform& a : t.alt) r.alt.push_back(cast(a));
    return r;
  }

  std::vector<std::pair<std::string, at::Tensor*>> params(int64_t l) {
    Layer& L = ensure(l);
    std::vector<std::pair<std::string, at::Tensor*>> r;
    const std::string b = "blocks." + std::to_string(l) + ".";
    for (int p = 0; p < kPoints; ++p) {
      Point& P = L.pt[size_t(p)];
      const std::string n = b + kPointName[p] + ".";
      r.emplace_back(n + "d", &P.d);
      if (P.a1.defined()) r.emplace_back(n + "a1", &P.a1);
      r.emplace_back(n + "a2", &P.a2);
      r.emplace_back(n + "alpha", &P.alpha);
    }
    for (int i = 0; i < kLinears; ++i)
      if (L.lwc[size_t(i)]) {
        r.emplace_back(name(l, i) + ".lwc_gamma", &L.lwc[size_t(i)]->gamma());
        r.emplace_back(name(l, i) + ".lwc_beta", &L.lwc[size_t(i)]->beta());
      }
    if (L.lac.defined()) r.emplace_back(b + "lac", &L.lac);
    return r;
  }

  Layer& ensure(int64_t l) {
    Layer& L = layers_[size_t(l)];
    if (L.ready) return L;
    const c10::Device dev = s_.runner.device;
    const ModelConfig& c = s_.model.config;
    const int64_t dims[kPoints] = {c.hidden_size, c.q_dim(), c.hidden_size, c.intermediate_size, c.head_dim, c.head_dim};
    auto leaf = [&](at::Tensor t) { return t.to(dev, at::kFloat).set_requires_grad(true); };
    for (int p = 0; p < kPoints; ++p) {
      Point& P = L.pt[size_t(p)];
      P.n = dims[p];
      const int64_t h1 = kron_split(P.n, true);
      P.rotation_ok = h1 > 0;
      if (P.rotation_ok) {
        at::Generator gen = at::detail::createCPUGenerator(o_.seed * 1000003ULL + uint64_t(l) * 16 + uint64_t(p));
        P.signs = (at::randint(0, 2, {P.n}, gen, at::TensorOptions().dtype(at::kFloat)) * 2 - 1).to(dev);
        if (h1 > 1) P.h1 = hadamard_any(h1).to(dev);
        P.h2 = hadamard_any(P.n / h1).to(dev);
      }
      P.n1 = kron_split(P.n, false);
      P.d = leaf(at::ones({P.n}));
      if (P.n1 > 1) P.a1 = leaf(at::eye(P.n1));
      P.a2 = leaf(at::eye(P.n / P.n1));
      P.alpha = leaf(at::zeros({}));
    }
    const Block& blk = s_.model.blocks[size_t(l)];
    std::vector<const Linear*> lin = blk.linears();
    for (int i = 0; i < kLinears; ++i) {
      const LinearPlan* pl = s_.plan_for(name(l, i));
      if (pl && pl->format)
        L.lwc[size_t(i)].emplace(*pl->format, lin[size_t(i)]->weight.size(0), lin[size_t(i)]->weight.size(1),
                                 o_.lwc_init, dev);
    }
    if (o_.lac && (o_.abits < 16 || o_.k_bits < 16 || o_.v_bits < 16))
      L.lac = leaf(at::full({kActClipPoints, 2}, o_.lac_init));
    L.ready = true;
    return L;
  }

  // The transform of point P: diag(d) times the chosen candidate. While searching, the
  // candidate is sampled per step, affine with probability σ(a) (logistic noise, GDAS-style
  // straight-through: the value is exactly one candidate, the gradient reaches a through
  // σ(a + noise)); a convex mixture of a rotation and the identity can be singular.
  OnlineTransform transform_of(const Layer& L, int p) const {
    const Point& P = L.pt[size_t(p)];
    auto rot = [&](const at::Tensor& d) { return OnlineTransform{d * P.signs, P.h1, P.h2}; };
    auto aff = [&](const at::Tensor& d) { return OnlineTransform{d, P.a1, P.a2}; };
    if (!P.rotation_ok || (!searching && P.kind == TransformKind::Affine)) return aff(P.d);
    if (!searching) return rot(P.d);
    const int c = p < 4 ? p : kHeadChoice;
    const at::Tensor soft = at::sigmoid(L.pt[size_t(c)].alpha + L.noise[size_t(c)]);
    const at::Tensor hard = (soft > 0.5).to(at::kFloat);
    // The caches follow the o input's draw without a gradient of their own (the q side of
    // the K transform needs an explicit inverse).
    if (p >= 4) return hard.item<double>() > 0.5 ? aff(P.d) : rot(P.d);
    OnlineTransform t;
    t.mix = hard + soft - soft.detach();
    t.alt = {aff(P.d), rot(P.d)};
    return t;
  }

  // The block's tensors with every transform folded into the consuming weights (W T^{-T});
  // T receives the transforms (index kVCache: the folded per-head V transform).
  BlockTensors transformed(Layer& L, const BlockTensors& fp, std::array<OnlineTransform, kPoints>& T) const {
    const ModelConfig& c = s_.model.config;
    for (int p = 0; p < kPoints; ++p) T[size_t(p)] = transform_of(L, p);
    BlockTensors t = fp;
    auto fold = [&](const at::Tensor& W, int p) { return fold_online_inverse(W, T[size_t(p)]); };
    const int64_t nkv = c.num_kv_heads, nh = c.num_heads, hd = c.head_dim, H = c.hidden_size;
    // V cache: v_h -> v_h Tv per KV head: v rows Tvᵀ W_h (bias b_h Tv); o columns W_h Tv^{-T}.
    const OnlineTransform& tv = T[kVCache];
    at::Tensor &v = t.weight(Role::V), &bv = t.bias(Role::V), &o = t.weight(Role::O);
    v = apply_online(tv, v.reshape({nkv, hd, H}).transpose(1, 2)).transpose(1, 2).reshape({nkv * hd, H});
    if (bv.defined()) bv = apply_online(tv, bv.reshape({nkv, hd})).reshape({nkv * hd});
    o = fold(o.reshape({H, nh, hd}), kVCache).reshape({H, nh * hd});
    // Every linear folds the transform of the input it reads (online points 0-3 are the taps).
    for (int j = 0; j < t.layout->size(); ++j) t.w[size_t(j)] = fold(t.w[size_t(j)], int(t.layout->slots[size_t(j)].group));
    return t;
  }

  Session& s_;
  Opts o_;
  std::vector<Layer> layers_;
  std::map<int64_t, BlockTensors> fp_;
  at::Generator gen_ = at::detail::createCPUGenerator(o_.seed * 7919ULL + 17);
};

using Kinds = std::vector<std::array<TransformKind, 4>>;

// The search's outcome in the work directory (choices and the trained parameters), so a
// resumed run goes straight to the hard phase; keyed by Session::work_identity.
void save_search(const Session& s, AdaptiveStudent& student, const Kinds& kinds) {
  if (s.work_dir.empty()) return;
  nlohmann::json k = nlohmann::json::array();
  for (const auto& layer : kinds) {
    nlohmann::json row = nlohmann::json::array();
    for (TransformKind t : layer) row.push_back(transform_kind_name(t));
    k.push_back(row);
  }
  write_safetensors(path_join(s.work_dir, "adaptive_search.safetensors"), student.state());
  write_file_atomic(path_join(s.work_dir, "adaptive_search.json"),
                    nlohmann::json{{"identity", s.work_identity()}, {"kinds", k}}.dump(2) + "\n");
}

bool load_search(const Session& s, AdaptiveStudent& student, Kinds& kinds) {
  if (s.work_dir.empty()) return false;
  const std::string jp = path_join(s.work_dir, "adaptive_search.json");
  const std::string tp = path_join(s.work_dir, "adaptive_search.safetensors");
  if (!path_exists(jp) || !path_exists(tp)) return false;
  const nlohmann::json j = nlohmann::json::parse(read_file(jp));
  if (j.value("identity", nlohmann::json()) != s.work_identity()) return false;
  const nlohmann::json& k = j.at("kinds");
  SQ_CHECK(k.size() == kinds.size(), jp << ": " << k.size() << " layers, the model has " << kinds.size());
  for (size_t l = 0; l < kinds.size(); ++l)
    for (size_t p = 0; p < 4; ++p)
      kinds[l][p] = k.at(l).at(p).get<std::string>() == "rotation" ? TransformKind::Rotation : TransformKind::Affine;
  student.load_state(*SafetensorsFile::open(tp));
  SQ_INFO("adaptive: resuming with the transform search's result from " << s.work_dir);
  return true;
}

void run(Session& s, const nlohmann::json& json) {
  const Opts o = read(json);
  const int64_t L = s.model.config.num_layers;
  AdaptiveStudent student(s, o);
  for (const auto& [pt, n] : student.forced_affine())
    SQ_INFO("adaptive: " << pt << " (order " << n << ") has no Hadamard split; it gets the affine transform");
  Kinds kurt(static_cast<size_t>(L));
  SelectorOptions so;
  so.heavy_tail = o.heavy_tail == "rotation" ? HeavyTail::ToRotation : HeavyTail::ToAffine;
  for (const TransformChoice& ch : select_model_transforms(s.model, o.beta_attn, o.beta_ffn, so))
    kurt[size_t(ch.block)][size_t(ch.point)] = ch.kind;

  WindowTrainOptions wo;
  for (int64_t l = 0; l < L; ++l) wo.windows.push_back({l, l});
  wo.batch = o.batch;
  wo.seed = o.seed;
  wo.student_inputs_fp = o.fp_inputs;
  if (o.mode == "adaptive" && o.select == "search") {
    Kinds found(static_cast<size_t>(L));
    if (!load_search(s, student, found)) {
      student.searching = true;
      wo.epochs = o.search_epochs;
      wo.label = "adaptive-search";
      train_windows(s, student, wo);
      student.searching = false;
      found = student.searched();
      save_search(s, student, found);
    }
    int agree = 0, total = 0;
    for (size_t l = 0; l < found.size(); ++l)
      for (size_t p = 0; p < 4; ++p)
        if (student.rotation_ok(int64_t(l), int(p))) agree += found[l][p] == kurt[l][p], ++total;
    SQ_INFO("adaptive: the kurtosis selector agrees with the search at " << agree << " of " << total
                                                                        << " points where both kinds exist");
    s.metrics["adaptive selector agreement"] = {double(agree), double(total)};
    student.set_kinds(found);
  } else {
    const TransformKind all = o.mode == "rotation" ? TransformKind::Rotation : TransformKind::Affine;
    student.set_kinds(o.mode == "adaptive" ? kurt : Kinds(size_t(L), {all, all, all, all}));
  }
  SQ_INFO("adaptive: transforms per layer (qkv_in o_in gate_up_in down_in k_cache v_cache; R rotation, A affine): "
          << student.describe());
  wo.epochs = o.epochs;
  wo.label = "adaptive";
  train_windows(s, student, wo);
  student.finish();
  if (o.weights == "none")
    SQ_INFO("adaptive: weights left transformed in full precision for the next pass (weights: \"none\")");
}

}  // namespace

const PassInfo& adaptive_pass() {
  static const PassInfo info{"adaptive",
                             "Adaptive layer-wise transforms: per-point rotation (Hadamard) or learnable Kronecker affine "
                             "transforms applied online, block-wise training with learned weight and activation "
                             "clipping, W/A/KV quantization",
                             true, validate, resolve, run};
  return info;
}

}  // namespace sq::passes
