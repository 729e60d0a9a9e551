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
  t.q = dev32(b.q.weight, d), t.k = dev32(b.k.weight, d), t.v = dev32(b.v.weight, d), t.o = dev32(b.o.weight, d);
  t.gate = dev32(b.gate.weight, d), t.up = dev32(b.up.weight, d), t.down = dev32(b.down.weight, d);
  t.bq = dev32(b.q.bias, d), t.bk = dev32(b.k.bias, d), t.bv = dev32(b.v.bias, d), t.bo = dev32(b.o.bias, d);
  t.bgate = dev32(b.gate.bias, d), t.bup = dev32(b.up.bias, d), t.bdown = dev32(b.down.bias, d);
  for (const at::Tensor* w : {&t.q, &t.k, &t.v, &t.o, &t.gate, &t.up, &t.down})
    SQ_CHECK(w->defined(), "block_tensors: a linear has no full-precision weight (already packed?)");
  return t;
}

BlockWeights fuse_block_tensors(const BlockTensors& t, c10::ScalarType dt) {
  auto cvt = [&](const at::Tensor& x) { return x.defined() ? x.to(dt) : x; };
  auto cat = [&](std::initializer_list<at::Tensor> xs) -> at::Tensor {
    for (const at::Tensor& x : xs)
      if (!x.defined()) return {};
    return at::cat(std::vector<at::Tensor>(xs), 0).to(dt);
  };
  BlockWeights w;
  w.attn_norm = cvt(t.attn_norm), w.q_norm = cvt(t.q_norm), w.k_norm = cvt(t.k_norm);
  w.mlp_norm = cvt(t.mlp_norm), w.mlp_norm_bias = cvt(t.mlp_norm_bias);
  w.w_qkv = cat({t.q, t.k, t.v}), w.b_qkv = cat({t.bq, t.bk, t.bv});
  w.w_o = cvt(t.o), w.b_o = cvt(t.bo);
  w.w_gate_up = cat({t.gate, t.up}), w.b_gate_up = cat({t.bgate, t.bup});
  w.w_down = cvt(t.down), w.b_down = cvt(t.bdown);
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
  if (s.qkv.defined()) {
    r.attn_norm = r.attn_norm / s.qkv;
    r.q = r.q * s.qkv, r.k = r.k * s.qkv, r.v = r.v * s.qkv;
  }
  if (s.gate_up.defined()) {
    r.mlp_norm = r.mlp_norm / s.gate_up;
    r.mlp_norm_bias = div_if(r.mlp_norm_bias, s.gate_up);
    r.gate = r.gate * s.gate_up, r.up = r.up * s.gate_up;
  }
  if (s.v_o.defined()) {
    r.v = r.v / s.v_o.unsqueeze(1);
    r.bv = div_if(r.bv, s.v_o);
    r.o = r.o * expand_heads(s.v_o, c);
  }
  if (s.up_down.defined()) {
    r.up = r.up / s.up_down.unsqueeze(1);
    r.bup = div_if(r.bup, s.up_down);
    r.down = r.down * s.up_down;
  }
  if (s.q_k.defined()) {
    if (c.qk_norm) {  // per-head norms act after the projections: scale their weights
      at::Tensor per_dim = at::cat({s.q_k, s.q_k}, 1).reshape({-1});  // [hd]
      r.q_norm = r.q_norm / per_dim;
      r.k_norm = r.k_norm * per_dim;
    } else {
      at::Tensor kv = qk_kv_channels(s.q_k);  // [nkv*hd]
      at::Tensor qch = expand_heads(kv, c);   // [nh*hd]
      r.q = r.q / qch.unsqueeze(1);
      r.bq = div_if(r.bq, qch);
      r.k = r.k * kv.unsqueeze(1);
      r.bk = mul_if(r.bk, kv);
    }
  }
  return r;
}

}  // namespace sq
