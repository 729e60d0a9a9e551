// transform/smooth: equivalent channel scales on a block's tensors (see the header).
#include "sliderquant/transform/smooth.h"

#include <ATen/ATen.h>

#include "sliderquant/core/error.h"

namespace sq {
namespace {

at::Tensor dev32(const at::Tensor& t, c10::Device d) { return t.defined() ? t.to(d, at::kFloat) : t; }
at::Tensor mul_if(const at::Tensor& t, const at::Tensor& s) { return t.defined() ? t * s : t; }
at::Tensor div_if(const at::Tensor& t, const at::Tensor& s) { return t.defined() ? t / s : t; }

// s [nkv, hd/2] -> per KV-head channel [nkv * hd] and per query-head channel [nh * hd].
at::Tensor qk_kv_channels(const at::Tensor& s) { return at::cat({s, s}, 1).reshape({-1}); }
at::Tensor expand_heads(const at::Tensor& per_kv, const ModelConfig& c) {  // [nkv*hd] -> [nh*hd]
  const int64_t rep = c.num_heads / c.num_kv_heads, hd = c.head_dim;
  return per_kv.view({c.num_kv_heads, 1, hd}).expand({c.num_kv_heads, rep, hd}).reshape({-1});
}

}  // namespace

BlockTensors block_tensors(const Block& b, c10::Device d) {
  BlockTensors t;
  t.attn_norm = dev32(b.attn_norm, d);
  t.q_norm = dev32(b.q_norm, d);
  t.k_norm = dev32(b.k_norm, d);
  t.mlp_norm = dev32(b.mlp_norm, d);
  t.mlp_norm_bias = dev32(b.mlp_norm_bias, d);
  t.layout = b.layout;
  for (const Linear* l : b.linears()) {
    SQ_CHECK(l->weight.defined(), "block_tensors: " << l->name << " has no full-precision weight (already packed?)");
    t.w.push_back(dev32(l->weight, d));
    t.b.push_back(dev32(l->bias, d));
  }
  return t;
}

BlockWeights fuse_block_tensors(const BlockTensors& t, c10::ScalarType dt, const ModelConfig& c) {
  auto cvt = [&](const at::Tensor& x) { return x.defined() ? x.to(dt) : x; };
  auto cat = [&](std::initializer_list<at::Tensor> xs) -> at::Tensor {
    for (const at::Tensor& x : xs)
      if (!x.defined()) return {};
    return at::cat(std::vector<at::Tensor>(xs), 0).to(dt);
  };
  BlockWeights w;
  w.attn_norm = cvt(t.attn_norm), w.q_norm = cvt(t.q_norm), w.k_norm = cvt(t.k_norm);
  w.mlp_norm = cvt(t.mlp_norm), w.mlp_norm_bias = cvt(t.mlp_norm_bias);
  auto W = [&](Role r) { return t.weight(r); };
  auto B = [&](Role r) { return t.bias(r); };
  w.w_qkv = cat({W(Role::Q), W(Role::K), W(Role::V)}), w.b_qkv = cat({B(Role::Q), B(Role::K), B(Role::V)});
  w.w_o = cvt(W(Role::O)), w.b_o = cvt(B(Role::O));
  const BlockLayout& lay = *t.layout;
  if (!lay.moe()) {
    w.w_gate_up = cat({W(Role::Gate), W(Role::Up)}), w.b_gate_up = cat({B(Role::Gate), B(Role::Up)});
    w.w_down = cvt(W(Role::Down)), w.b_down = cvt(B(Role::Down));
    return w;
  }
  MoeWeights& m = w.moe;
  m.router = W(Role::Router).to(at::kFloat);
  m.top_k = c.experts_per_token;
  m.norm_topk = c.norm_topk_prob;
  auto slot = [&](int i) { return t.w[size_t(i)]; };
  for (int e = 0; e < lay.experts; ++e) {
    m.gate_up.push_back(cat({slot(lay.expert_index(e, Role::Gate)), slot(lay.expert_index(e, Role::Up))}));
    m.down.push_back(cvt(slot(lay.expert_index(e, Role::Down))));
  }
  if (lay.shared_expert) {
    m.shared_gate_up = cat({slot(lay.shared_index(Role::Gate)), slot(lay.shared_index(Role::Up))});
    m.shared_down = cvt(slot(lay.shared_index(Role::Down)));
    m.shared_gate = cvt(W(Role::SharedGate));
  }
  return w;
}

LetScales let_identity(const ModelConfig& c, bool qkv, bool gate_up, bool v_o, bool up_down, bool q_k,
                       c10::Device d) {
  auto ones = [&](std::vector<int64_t> shape) {
    return at::ones(shape, at::TensorOptions().dtype(at::kFloat).device(d)).requires_grad_(true);
  };
  LetScales s;
  const int64_t H = c.hidden_size, hd = c.head_dim;
  if (qkv) s.qkv = ones({H});
  if (gate_up) s.gate_up = ones({H});
  if (v_o) s.v_o = ones({c.num_kv_heads * hd});
  if (up_down) s.up_down = ones({c.intermediate_size});
  if (q_k) s.q_k = ones({c.qk_norm ? 1 : c.num_kv_heads, hd / 2});
  return s;
}

BlockTensors apply_let(const BlockTensors& t, const LetScales& s, const ModelConfig& c) {
  BlockTensors r = t;
  const BlockLayout& lay = *t.layout;
  auto W = [&](Role role) -> at::Tensor& { return r.weight(role); };
  auto B = [&](Role role) -> at::Tensor& { return r.bias(role); };
  // The consumers of a norm (its absorption edge) take the scale on their input columns.
  auto scale_consumers = [&](const char* norm, const at::Tensor& sc) {
    for (const std::string& n : lay.edge_from(norm)->to) r.w[size_t(lay.find(n))] = r.w[size_t(lay.find(n))] * sc;
  };
  if (s.qkv.defined()) {
    r.attn_norm = r.attn_norm / s.qkv;
    scale_consumers("attn_norm", s.qkv);
  }
  if (s.gate_up.defined()) {
    r.mlp_norm = r.mlp_norm / s.gate_up;
    r.mlp_norm_bias = div_if(r.mlp_norm_bias, s.gate_up);
    scale_consumers("mlp_norm", s.gate_up);
  }
  if (s.v_o.defined()) {
    W(Role::V) = W(Role::V) / s.v_o.unsqueeze(1);
    B(Role::V) = div_if(B(Role::V), s.v_o);
    W(Role::O) = W(Role::O) * expand_heads(s.v_o, c);
  }
  if (s.up_down.defined()) {
    W(Role::Up) = W(Role::Up) / s.up_down.unsqueeze(1);
    B(Role::Up) = div_if(B(Role::Up), s.up_down);
    W(Role::Down) = W(Role::Down) * s.up_down;
  }
  if (s.q_k.defined()) {
    if (c.qk_norm) {  // per-head norms act after the projections: scale their weights
      at::Tensor per_dim = at::cat({s.q_k, s.q_k}, 1).reshape({-1});  // [hd]
      r.q_norm = r.q_norm / per_dim;
      r.k_norm = r.k_norm * per_dim;
    } else {
      at::Tensor kv = qk_kv_channels(s.q_k);  // [nkv*hd]
      at::Tensor qch = expand_heads(kv, c);   // [nh*hd]
      W(Role::Q) = W(Role::Q) / qch.unsqueeze(1);
      B(Role::Q) = div_if(B(Role::Q), qch);
      W(Role::K) = W(Role::K) * kv.unsqueeze(1);
      B(Role::K) = mul_if(B(Role::K), kv);
    }
  }
  return r;
}

}  // namespace sq
