// model/forward: the decoder forward pass shared by every supported family, following the
// HF Llama reference numerics: RMSNorm in float32 then cast back before the weight, RoPE
// tables in float32 cast to the activation dtype, softmax in float32.
#include "sliderquant/model/forward.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <cmath>

#include "sliderquant/core/error.h"
#include "sliderquant/core/torch_compat.h"
#include "sliderquant/quant/act_quant.h"

namespace sq {

at::Tensor rope_inv_freq(const ModelConfig& c) {
  const int64_t d = c.head_dim;
  at::Tensor inv = 1.0 / at::pow(c.rope_theta, at::arange(0, d, 2, at::kLong).to(at::kFloat) / double(d));
  if (!c.rope_scaling) return inv;
  const RopeScaling& s = *c.rope_scaling;
  if (s.type == "linear") return inv / s.factor;
  // llama3: long wavelengths divided by factor, short ones kept, a smooth blend between.
  const double old_len = double(s.original_max_position_embeddings);
  const double low_wl = old_len / s.low_freq_factor, high_wl = old_len / s.high_freq_factor;
  at::Tensor wavelen = 2.0 * M_PI / inv;
  at::Tensor scaled = at::where(wavelen > low_wl, inv / s.factor, inv);
  at::Tensor smooth = (old_len / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  at::Tensor smoothed = (1.0 - smooth) * scaled / s.factor + smooth * scaled;
  at::Tensor medium = (wavelen >= high_wl).logical_and(wavelen <= low_wl);
  return at::where(medium, smoothed, scaled);
}

RopeTable make_rope(const ModelConfig& c, int64_t n, c10::Device device) {
  at::Tensor inv = rope_inv_freq(c);                                         // [hd/2]
  at::Tensor pos = at::arange(0, n, at::kLong).to(at::kFloat);               // [n]
  at::Tensor freqs = at::outer(pos, inv);                                    // [n, hd/2]
  at::Tensor emb = at::cat({freqs, freqs}, -1);                              // [n, hd]
  return {emb.cos().to(device), emb.sin().to(device)};
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor xf = x.to(at::kFloat);
  at::Tensor y = xf * at::rsqrt(xf.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * y.to(x.scalar_type());
}

namespace {

int64_t nb(const at::Tensor& t) { return t.defined() ? t.numel() * int64_t(t.element_size()) : 0; }

at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t h = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, h, h), x.narrow(-1, 0, h)}, -1);
}

// x [B, heads, T, hd]; cos/sin [T, hd] float32
at::Tensor apply_rope(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin) {
  at::Tensor c = cos.to(x.scalar_type()), s = sin.to(x.scalar_type());
  return x * c + rotate_half(x) * s;
}

at::Tensor cat_or_undef(const std::vector<at::Tensor>& ts) {
  for (const at::Tensor& t : ts)
    if (!t.defined()) return {};
  return at::cat(ts, 0);
}

at::Tensor to_dev(const at::Tensor& t, c10::ScalarType dtype, c10::Device device, const std::string& name) {
  if (!t.defined()) return {};
  at::Tensor r = t.to(device, dtype).contiguous();
  SQ_CHECK(r.isfinite().all().item<bool>(), "tensor " << name << " contains NaN or Inf values");
  return r;
}

}  // namespace

int64_t BlockWeights::nbytes() const {
  int64_t n = nb(attn_norm) + nb(q_norm) + nb(k_norm) + nb(mlp_norm) + nb(mlp_norm_bias) + nb(w_qkv) + nb(b_qkv) +
              nb(w_o) + nb(b_o) + nb(w_gate_up) + nb(b_gate_up) + nb(w_down) + nb(b_down) + nb(act_clip);
  for (const OnlineTransform* t : {&online[0], &online[1], &online[2], &online[3], &online[4], &online_q})
    n += nb(t->scale) + nb(t->p1) + nb(t->p2);
  n += nb(moe.router) + nb(moe.shared_gate_up) + nb(moe.shared_down) + nb(moe.shared_gate);
  for (size_t e = 0; e < moe.gate_up.size(); ++e) n += nb(moe.gate_up[e]) + nb(moe.down[e]);
  return n;
}

at::Tensor apply_online(const OnlineTransform& t, const at::Tensor& x) {
  if (t.mix.defined()) {
    SQ_CHECK(t.alt.size() == 2, "a mixed online transform needs two candidates");
    return t.mix * apply_online(t.alt[0], x) + (1 - t.mix) * apply_online(t.alt[1], x);
  }
  at::Tensor y = t.scale.defined() ? x * t.scale : x;
  if (!t.p2.defined()) return y;
  if (!t.p1.defined()) return at::matmul(y, t.p2);
  const int64_t n1 = t.p1.size(0), n2 = t.p2.size(0);
  SQ_CHECK(n1 * n2 == x.size(-1), "online transform of size " << n1 << " x " << n2 << " on " << x.size(-1)
                                                               << " channels");
  std::vector<int64_t> shape = x.sizes().vec(), grid(shape.begin(), shape.end() - 1);
  grid.push_back(n1);
  grid.push_back(n2);
  return at::matmul(t.p1.t(), at::matmul(y.reshape(grid), t.p2)).reshape(shape);  // p1ᵀ X p2
}

OnlineTransform online_inverse_transpose(const OnlineTransform& t) {
  SQ_CHECK(!t.mix.defined(), "the inverse of a mixed online transform is not an online transform");
  auto inv_t = [](const at::Tensor& p) {
    return p.defined() ? at::linalg_inv(p.to(at::kDouble)).t().contiguous().to(p.scalar_type()) : p;
  };
  OnlineTransform r;
  if (t.scale.defined()) r.scale = (1.0 / t.scale.to(at::kDouble)).to(t.scale.scalar_type());
  r.p1 = inv_t(t.p1);
  r.p2 = inv_t(t.p2);
  return r;
}

namespace {
// x Tᵀ for T = diag(s)·(p1 ⊗ p2): Tᵀ = (p1ᵀ ⊗ p2ᵀ)·diag(s).
at::Tensor apply_transposed(const OnlineTransform& t, const at::Tensor& x) {
  auto tr = [](const at::Tensor& p) { return p.defined() ? p.t() : p; };
  at::Tensor y = apply_online({at::Tensor(), tr(t.p1), tr(t.p2)}, x);
  return t.scale.defined() ? y * t.scale : y;
}
}  // namespace

at::Tensor fold_online_inverse(const at::Tensor& W, const OnlineTransform& t) {
  if (!t.mix.defined()) return apply_online(online_inverse_transpose(t), W);
  SQ_CHECK(t.alt.size() == 2, "a mixed online transform needs two candidates");
  const bool first = t.mix.item<double>() > 0.5;  // the value is alt[0]
  const OnlineTransform inv = online_inverse_transpose(t.alt[first ? 0 : 1]);
  const at::Tensor U = apply_online(inv, W);
  const at::Tensor g = t.mix - t.mix.detach();  // zero in value, carries dL/dh
  // U (A − R)ᵀ T_sel^{-T} with the selected factor cancelling: U − U Rᵀ A^{-T} (A selected)
  // or U Aᵀ R^{-T} − U (R selected).
  const at::Tensor V = apply_online(inv, apply_transposed(t.alt[first ? 1 : 0], U));
  return U - g * (first ? U - V : V - U);
}

BlockWeights prepare_block(const Block& b, const ModelConfig& c, c10::ScalarType dt, c10::Device dev,
                           int64_t index) {
  const std::string p = "layer " + std::to_string(index) + " ";
  BlockWeights w;
  w.attn_norm = to_dev(b.attn_norm, dt, dev, p + "attn_norm");
  w.mlp_norm = to_dev(b.mlp_norm, dt, dev, p + "mlp_norm");
  w.mlp_norm_bias = to_dev(b.mlp_norm_bias, dt, dev, p + "mlp_norm bias");
  w.q_norm = to_dev(b.q_norm, dt, dev, p + "q_norm");
  w.k_norm = to_dev(b.k_norm, dt, dev, p + "k_norm");
  const BlockLayout& lay = *b.layout;
  const Linear &q = b.linear(Role::Q), &k = b.linear(Role::K), &v = b.linear(Role::V), &o = b.linear(Role::O);
  w.w_qkv = to_dev(at::cat({q.effective_weight(), k.effective_weight(), v.effective_weight()}, 0), dt, dev,
                   p + "q/k/v weights");
  w.b_qkv = to_dev(cat_or_undef({q.bias, k.bias, v.bias}), dt, dev, p + "q/k/v biases");
  w.w_o = to_dev(o.effective_weight(), dt, dev, p + "o weight");
  w.b_o = to_dev(o.bias, dt, dev, p + "o bias");
  if (lay.moe()) {
    MoeWeights& m = w.moe;
    m.router = to_dev(b.linear(Role::Router).effective_weight(), at::kFloat, dev, p + "router");
    m.top_k = c.experts_per_token;
    m.norm_topk = c.norm_topk_prob;
    for (int e = 0; e < lay.experts; ++e) {
      const Linear& g = b.slots[size_t(lay.expert_index(e, Role::Gate))];
      const Linear& u = b.slots[size_t(lay.expert_index(e, Role::Up))];
      const Linear& d = b.slots[size_t(lay.expert_index(e, Role::Down))];
      const std::string n = p + "expert " + std::to_string(e);
      m.gate_up.push_back(to_dev(at::cat({g.effective_weight(), u.effective_weight()}, 0), dt, dev, n + " gate/up"));
      m.down.push_back(to_dev(d.effective_weight(), dt, dev, n + " down"));
    }
    if (lay.shared_expert) {
      const Linear& g = b.slots[size_t(lay.shared_index(Role::Gate))];
      const Linear& u = b.slots[size_t(lay.shared_index(Role::Up))];
      const Linear& d = b.slots[size_t(lay.shared_index(Role::Down))];
      m.shared_gate_up = to_dev(at::cat({g.effective_weight(), u.effective_weight()}, 0), dt, dev, p + "shared expert gate/up");
      m.shared_down = to_dev(d.effective_weight(), dt, dev, p + "shared expert down");
      m.shared_gate = to_dev(b.linear(Role::SharedGate).effective_weight(), dt, dev, p + "shared expert gate");
    }
  } else {
    const Linear &gate = b.linear(Role::Gate), &up = b.linear(Role::Up), &down = b.linear(Role::Down);
    w.w_gate_up = to_dev(at::cat({gate.effective_weight(), up.effective_weight()}, 0), dt, dev, p + "gate/up weights");
    w.b_gate_up = to_dev(cat_or_undef({gate.bias, up.bias}), dt, dev, p + "gate/up biases");
    w.w_down = to_dev(down.effective_weight(), dt, dev, p + "down weight");
    w.b_down = to_dev(down.bias, dt, dev, p + "down bias");
  }
  for (int k = 0; k < kOnlinePoints; ++k) {
    const OnlineTransform& t = b.online[k];
    const std::string n = p + "online transform " + online_point_name(OnlinePoint(k));
    w.online[k] = {to_dev(t.scale, dt, dev, n), to_dev(t.p1, dt, dev, n), to_dev(t.p2, dt, dev, n)};
  }
  if (b.act_clip.defined()) w.act_clip = to_dev(b.act_clip, at::kFloat, dev, p + "activation clipping");
  const OnlineTransform qs = online_inverse_transpose(b.online[int(OnlinePoint::KCache)]);
  w.online_q = {to_dev(qs.scale, dt, dev, p + "q side of k_cache"), to_dev(qs.p1, dt, dev, p + "q side of k_cache"),
                to_dev(qs.p2, dt, dev, p + "q side of k_cache")};
  return w;
}


Routing route_tokens(const MoeWeights& w, const at::Tensor& h) {
  at::Tensor probs = at::softmax(at::linear(h.to(at::kFloat), w.router), -1);  // [N, E] float32
  auto [top, idx] = probs.topk(w.top_k, -1);
  if (w.norm_topk) top = top / top.sum(-1, /*keepdim=*/true);
  return {idx, top};
}

namespace {

// The routed MLP on H [B, T, H] (after the MLP norm): each expert on the tokens routed to it,
// its output scaled by the routing weight, plus the gated shared expert.
template <class Act, class Tap>
at::Tensor moe_forward(const BlockWeights& w, const at::Tensor& h, const Act& act, const Tap& tap,
                       const BlockTaps* taps) {
  const MoeWeights& m = w.moe;
  const at::Tensor flat = h.reshape({-1, h.size(-1)});
  const Routing r = route_tokens(m, flat);
  const bool all = taps && taps->all_experts && taps->expert_fn;
  at::Tensor y = at::zeros_like(flat);
  auto swiglu = [](const at::Tensor& gu) {
    const int64_t I = gu.size(-1) / 2;
    return at::silu(gu.narrow(-1, 0, I)) * gu.narrow(-1, I, I);
  };
  for (int64_t e = 0; e < int64_t(m.gate_up.size()); ++e) {
    at::Tensor hit = (r.experts == e).nonzero();  // [n, 2]: token, slot
    if (all) {  // statistics over every token; the output below still uses the routed ones
      const at::Tensor ones = at::ones({flat.size(0)}, flat.options().dtype(at::kFloat));
      taps->expert_fn(TapPoint::GateUpIn, int(e), flat, ones);
      taps->expert_fn(TapPoint::DownIn, int(e), swiglu(at::linear(act(flat, ActClipPoint::GateUpIn), m.gate_up[size_t(e)])),
                      ones);
    }
    if (hit.size(0) == 0) continue;
    const at::Tensor rows = hit.select(1, 0), slot = hit.select(1, 1);
    const at::Tensor rw = r.weights.index({rows, slot});  // [n] float32
    const at::Tensor xe = flat.index_select(0, rows);
    if (taps && taps->expert_fn && !all) taps->expert_fn(TapPoint::GateUpIn, int(e), xe, rw);
    const at::Tensor me = swiglu(at::linear(act(xe, ActClipPoint::GateUpIn), m.gate_up[size_t(e)]));
    if (taps && taps->expert_fn && !all) taps->expert_fn(TapPoint::DownIn, int(e), me, rw);
    const at::Tensor ye = at::linear(act(me, ActClipPoint::DownIn), m.down[size_t(e)]) * rw.to(flat.scalar_type()).unsqueeze(1);
    y = y.index_add(0, rows, ye);
  }
  if (m.shared_gate_up.defined()) {
    const at::Tensor ms = swiglu(at::linear(act(flat, ActClipPoint::GateUpIn), m.shared_gate_up));
    tap(TapPoint::DownIn, ms);
    const at::Tensor ys = at::linear(act(ms, ActClipPoint::DownIn), m.shared_down);
    y = y + at::sigmoid(at::linear(flat, m.shared_gate)) * ys;
  }
  return y.view(h.sizes());
}

}  // namespace

at::Tensor block_forward(const BlockWeights& w, const ModelConfig& c, const at::Tensor& x,
                         const RopeTable& rope, const BlockTaps* taps) {
  // Returns true when the forward should stop after this tap point.
  auto tap = [&](TapPoint p, const at::Tensor& t) {
    if (!taps) return false;
    if (taps->fn) taps->fn(p, t);
    return taps->stop_after.has_value() && *taps->stop_after == p;
  };
  const int64_t B = x.size(0), T = x.size(1);
  const int64_t nh = c.num_heads, nkv = c.num_kv_heads, hd = c.head_dim;
  // --- attention
  at::Tensor h = apply_online(w.online[0], rms_norm(x, w.attn_norm, c.rms_norm_eps));
  if (tap(TapPoint::QkvIn, h)) return {};
  const ActQuant& aq = w.act;
  auto clip = [&](ActClipPoint p) { return w.act_clip.defined() ? w.act_clip[int(p)] : at::Tensor(); };
  auto act = [&](const at::Tensor& t, ActClipPoint p) { return fake_quant_per_token(t, aq.bits, aq.rate, clip(p)); };
  auto attn_act = [&](const at::Tensor& t) { return fake_quant_per_token(t, aq.attn_bits, aq.rate); };
  at::Tensor qkv = at::linear(act(h, ActClipPoint::QkvIn), w.w_qkv, w.b_qkv);  // [B, T, q_dim + 2 kv_dim]
  at::Tensor q = qkv.narrow(-1, 0, nh * hd).view({B, T, nh, hd});
  at::Tensor k = qkv.narrow(-1, nh * hd, nkv * hd).view({B, T, nkv, hd});
  at::Tensor v = qkv.narrow(-1, (nh + nkv) * hd, nkv * hd).view({B, T, nkv, hd});
  if (w.q_norm.defined()) {
    q = rms_norm(q, w.q_norm, c.rms_norm_eps);
    k = rms_norm(k, w.k_norm, c.rms_norm_eps);
  }
  at::Tensor cos = rope.cos.narrow(0, 0, T), sin = rope.sin.narrow(0, 0, T);
  q = apply_rope(q.transpose(1, 2), cos, sin);  // [B, nh, T, hd]
  k = apply_rope(k.transpose(1, 2), cos, sin);  // [B, nkv, T, hd]
  v = v.transpose(1, 2);
  if (w.online[int(OnlinePoint::KCache)].defined()) {  // K T and Q T^{-T}: Q Kᵀ unchanged
    k = apply_online(w.online[int(OnlinePoint::KCache)], k);
    q = apply_online(w.online_q, q);
  }
  if (aq.attn_bits < 16) {  // OmniQuant's Q/K (after RoPE) and V quantizers, per head and token
    q = attn_act(q);
    k = attn_act(k);
    v = attn_act(v);
  }
  // KV-cache quantization: asymmetric per token in groups of kv_group channels of a head.
  auto kv_quant = [&](const at::Tensor& t, int bits, ActClipPoint p) {
    if (bits >= 16) return t;
    const int64_t g = aq.kv_group > 0 ? aq.kv_group : hd;
    SQ_CHECK(hd % g == 0, "KV group size " << g << " does not divide head_dim " << hd);
    std::vector<int64_t> shape = t.sizes().vec(), grid(shape.begin(), shape.end() - 1);
    grid.push_back(hd / g);
    grid.push_back(g);
    return fake_quant_per_token(t.reshape(grid), bits, 1.0, clip(p)).reshape(shape);
  };
  k = kv_quant(k, aq.k_bits, ActClipPoint::KCache);
  v = kv_quant(v, aq.v_bits, ActClipPoint::VCache);
  if (nkv != nh) {  // each KV head serves nh/nkv consecutive query heads
    const int64_t rep = nh / nkv;
    k = k.unsqueeze(2).expand({B, nkv, rep, T, hd}).reshape({B, nh, T, hd});
    v = v.unsqueeze(2).expand({B, nkv, rep, T, hd}).reshape({B, nh, T, hd});
  }
  at::Tensor a = causal_attention(q, k, v, 1.0 / std::sqrt(double(hd)), c.sliding_window);
  a = apply_online(w.online[1], a.transpose(1, 2).reshape({B, T, nh * hd}));
  if (tap(TapPoint::OIn, a)) return {};
  at::Tensor out = x + at::linear(act(a, ActClipPoint::OIn), w.w_o, w.b_o);
  // --- SwiGLU MLP
  h = rms_norm(out, w.mlp_norm, c.rms_norm_eps);
  if (w.mlp_norm_bias.defined()) h = h + w.mlp_norm_bias;
  h = apply_online(w.online[2], h);
  if (tap(TapPoint::GateUpIn, h)) return {};
  if (w.moe.defined()) return out + moe_forward(w, h, act, tap, taps);
  at::Tensor gu = at::linear(act(h, ActClipPoint::GateUpIn), w.w_gate_up, w.b_gate_up);
  const int64_t I = c.intermediate_size;
  at::Tensor m = apply_online(w.online[3], at::silu(gu.narrow(-1, 0, I)) * gu.narrow(-1, I, I));
  if (tap(TapPoint::DownIn, m)) return {};
  return out + at::linear(act(m, ActClipPoint::DownIn), w.w_down, w.b_down);
}

// ---- Runner ---------------------------------------------------------------------------

Runner::Runner(const Model& model, RunnerOptions opts) : model_(model), opts_(opts) {
  const ModelConfig& c = model.config;
  const int64_t esize = int64_t(c10::elementSize(opts.dtype));
  const int64_t embed_params = c.vocab_size * c.hidden_size * (c.tie_word_embeddings ? 1 : 2);
  const int64_t need = (c.param_count() - embed_params) * esize;
  int64_t budget = opts.resident_budget;
  if (budget < 0) {
    if (opts.device.is_cuda()) {
      int64_t total = cuda_total_bytes();
      budget = total > 0 ? int64_t(0.85 * double(total)) - int64_t(c.vocab_size * c.hidden_size * esize) -
                               (int64_t(8) << 30)
                         : 0;
    } else {
      int64_t pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGE_SIZE);
      budget = pages > 0 ? pages * psize / 2 : (int64_t(1) << 40);
    }
  }
  resident_ = need <= budget;
  if (resident_) {
    blocks_.reserve(model.blocks.size());
    for (size_t i = 0; i < model.blocks.size(); ++i) {
      blocks_.push_back(prepare_block(model.blocks[i], c, opts.dtype, opts.device, int64_t(i)));
      blocks_.back().act = model.act;
    }
  }
  final_norm_ = to_dev(model.final_norm, opts.dtype, opts.device, "final_norm");
  final_norm_bias_ = to_dev(model.final_norm_bias, opts.dtype, opts.device, "final_norm bias");
  lm_head_ = to_dev(model.lm_head.effective_weight(), opts.dtype, opts.device, "lm_head");
}

int64_t Runner::resident_bytes() const {
  int64_t n = nb(final_norm_) + nb(lm_head_) + current_.nbytes();
  for (const BlockWeights& b : blocks_) n += b.nbytes();
  return n;
}

const RopeTable& Runner::rope(int64_t n) {
  if (!rope_.cos.defined() || rope_.cos.size(0) < n) rope_ = make_rope(model_.config, n, opts_.device);
  return rope_;
}

const BlockWeights& Runner::weights(int64_t i) {
  SQ_CHECK(i >= 0 && i < int64_t(model_.blocks.size()), "layer index " << i << " out of range");
  if (resident_) return blocks_[size_t(i)];
  if (current_index_ != i) {
    current_ = BlockWeights();  // free the previous block before loading the next
    current_ = prepare_block(model_.blocks[size_t(i)], model_.config, opts_.dtype, opts_.device, i);
    current_.act = model_.act;
    current_index_ = i;
  }
  return current_;
}

at::Tensor Runner::embed(const at::Tensor& ids) const {
  SQ_CHECK(ids.dim() == 2, "token ids must be [batch, tokens]");
  at::Tensor idx = ids.to(at::kCPU, at::kLong);
  SQ_CHECK(idx.numel() == 0 || (idx.min().item<int64_t>() >= 0 &&
                                idx.max().item<int64_t>() < model_.config.vocab_size),
           "token id out of range for vocab_size " << model_.config.vocab_size);
  return at::embedding(model_.embed, idx).to(opts_.device, opts_.dtype);
}

at::Tensor Runner::block(int64_t i, const at::Tensor& x) {
  const BlockWeights& w = weights(i);
  return block_forward(w, model_.config, x, rope(x.size(1)));
}

at::Tensor Runner::head(const at::Tensor& x) {
  at::Tensor h = rms_norm(x, final_norm_, model_.config.rms_norm_eps);
  if (final_norm_bias_.defined()) h = h + final_norm_bias_;
  return at::linear(h, lm_head_);
}

at::Tensor Runner::logits(const at::Tensor& ids) {
  at::Tensor x = embed(ids);
  for (int64_t i = 0; i < int64_t(model_.blocks.size()); ++i) x = block(i, x);
  return head(x);
}

}  // namespace sq
