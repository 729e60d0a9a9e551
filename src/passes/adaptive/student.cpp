// passes/adaptive/student: the transform points of a block (rotation and affine candidates,
// the learnable diagonal, the search's choice logits), the block's weights with every
// transform folded in, and the training side the window driver calls.
#include <cmath>

#include "adaptive.h"
#include "sliderquant/transform/hadamard.h"

namespace sq::passes::adaptive {
namespace {

// n = n1 * n2 with n1 <= n2 as close to sqrt(n) as possible (FlatQuant's get_decompose_dim);
// with `hadamard`, only splits whose both orders have a Hadamard matrix (0 when none).
int64_t kron_split(int64_t n, bool hadamard) {
  for (int64_t n1 = int64_t(std::sqrt(double(n))); n1 >= 1; --n1)
    if (n % n1 == 0 && (!hadamard || (hadamard_supported(n1) && hadamard_supported(n / n1)))) return n1;
  return 0;
}

}  // namespace

void AdaptiveStudent::focus(int64_t first, int64_t last) {
  // The search's noise depends on the window only, so a resumed run draws the same.
  gen_ = at::detail::createCPUGenerator(o_.seed * 7919ULL + 17 + uint64_t(first) * 1000003ULL);
  for (auto it = fp_.begin(); it != fp_.end();) it = (it->first < first || it->first > last) ? fp_.erase(it) : ++it;
}

std::vector<ParamGroup> AdaptiveStudent::param_groups(int64_t first, int64_t last) {
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

BlockWeights AdaptiveStudent::block(int64_t l, double) {
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
  for (int i = 0; i < int(L.lwc.size()); ++i)
    if (L.lwc[size_t(i)]) weight_of(t, i) = L.lwc[size_t(i)]->fake_quant(weight_of(t, i));
  BlockWeights w = fuse_block_tensors(t, s_.train_dtype(), s_.model.config);
  for (int p = 0; p < kOnlinePoints; ++p) w.online[p] = cast(T[size_t(p)]);
  w.online_q = cast(online_inverse_transpose(T[int(OnlinePoint::KCache)]));
  w.act = act();
  if (L.lac.defined()) w.act_clip = at::sigmoid(L.lac);
  return w;
}

NamedTensors AdaptiveStudent::state() {
  NamedTensors ts;
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer& L = layers_[l];
    if (!L.ready) continue;
    for (auto& [n, t] : params(int64_t(l))) ts.emplace_back(n, t->detach().cpu());
  }
  return ts;
}

void AdaptiveStudent::load_state(const SafetensorsFile& f) {
  at::NoGradGuard ng;
  for (size_t l = 0; l < layers_.size(); ++l)
    for (auto& [n, t] : params(int64_t(l)))
      if (f.find(n)) t->copy_(f.tensor(n));
}

ActQuant AdaptiveStudent::act() const {
  ActQuant a;
  a.bits = o_.abits;
  a.k_bits = o_.k_bits;
  a.v_bits = o_.v_bits;
  a.kv_group = o_.kv_group;
  return a;
}

OnlineTransform AdaptiveStudent::cast(const OnlineTransform& t) const {
  auto c = [&](const at::Tensor& x) { return x.defined() ? x.to(s_.train_dtype()) : x; };
  OnlineTransform r{c(t.scale), c(t.p1), c(t.p2)};
  r.mix = c(t.mix);
  for (const OnlineTransform& a : t.alt) r.alt.push_back(cast(a));
  return r;
}

std::vector<std::pair<std::string, at::Tensor*>> AdaptiveStudent::params(int64_t l) {
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
  for (int i = 0; i < int(L.lwc.size()); ++i)
    if (L.lwc[size_t(i)]) {
      r.emplace_back(name(l, i) + ".lwc_gamma", &L.lwc[size_t(i)]->gamma());
      r.emplace_back(name(l, i) + ".lwc_beta", &L.lwc[size_t(i)]->beta());
    }
  if (L.lac.defined()) r.emplace_back(b + "lac", &L.lac);
  return r;
}

AdaptiveStudent::Layer& AdaptiveStudent::ensure(int64_t l) {
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
  L.lwc.resize(lin.size());
  for (int i = 0; i < int(L.lwc.size()); ++i) {
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
OnlineTransform AdaptiveStudent::transform_of(const Layer& L, int p) const {
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
BlockTensors AdaptiveStudent::transformed(Layer& L, const BlockTensors& fp, std::array<OnlineTransform, kPoints>& T) const {
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

}  // namespace sq::passes::adaptive
