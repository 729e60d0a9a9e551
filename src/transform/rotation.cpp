// transform/rotation: norm fusion and the residual-stream rotation of QuaRot (Ashkboos et al.
// 2024, fuse_layer_norms + rotate_model), full or block-diagonal as in D²Quant's groupwise
// rotation. Every weight it touches is replaced by a new float32 CPU tensor (the masters are
// copy-on-write views of the mapped checkpoint and must not be written).
#include "sliderquant/transform/rotation.h"

#include <ATen/ATen.h>

#include <string>

#include "sliderquant/core/error.h"
#include "sliderquant/transform/hadamard.h"

namespace sq {

namespace {

at::Tensor f32(const at::Tensor& t) { return t.to(at::kCPU, at::kFloat); }

bool all_ones(const at::Tensor& t) { return at::all(f32(t) == 1.0f).item<bool>(); }

void check_plain(const Linear& l, const char* what) {
  SQ_CHECK(!l.override_, what << ": " << l.name << " is already quantized (" << l.override_->describe()
                              << "); rotate the model before quantizing it");
  SQ_CHECK(l.weight.defined(), what << ": " << l.name << " has no master weight");
}

void check_all_plain(const Model& m, const char* what) {
  for (const Block& b : m.blocks) {
    for (const Linear* l : b.linears()) check_plain(*l, what);
  }
  check_plain(m.lm_head, what);
}

// W [out, in] * norm [in]: the norm scales the linear's input columns.
void scale_columns(Linear& l, const at::Tensor& norm) {
  SQ_CHECK(l.weight.size(1) == norm.size(0), "fuse_norms: " << l.name << " has " << l.weight.size(1)
                                                             << " input columns but its norm has " << norm.size(0));
  l.weight = f32(l.weight) * f32(norm).unsqueeze(0);
}

at::Tensor ones_like_norm(const at::Tensor& norm) { return at::ones({norm.size(0)}, at::kFloat); }

// t in float64 on Q's device (where the products are computed).
at::Tensor f64_at(const at::Tensor& t, const at::Tensor& Q64) { return t.to(Q64.device(), at::kDouble); }

// W [out, H] <- W·Q (input side).
at::Tensor rotate_in(const at::Tensor& W, const at::Tensor& Q64) { return f32(at::matmul(f64_at(W, Q64), Q64)); }

// W [H, in] <- Qᵀ·W and b [H] <- Qᵀ·b (output side).
void rotate_out(Linear& l, const at::Tensor& Q64) {
  l.weight = f32(at::matmul(Q64.t(), f64_at(l.weight, Q64)));
  if (l.bias.defined()) l.bias = f32(at::matmul(Q64.t(), f64_at(l.bias, Q64)));
}

}  // namespace

void fuse_norms(Model& m) {
  check_all_plain(m, "fuse_norms");
  for (Block& b : m.blocks) {
    // Each norm's weight moves into the input columns of the linears it feeds (its edge).
    for (const std::string& n : b.layout->edge_from("attn_norm")->to) scale_columns(b.slots[size_t(b.layout->find(n))], b.attn_norm);
    b.attn_norm = ones_like_norm(b.attn_norm);
    for (const std::string& n : b.layout->edge_from("mlp_norm")->to) scale_columns(b.slots[size_t(b.layout->find(n))], b.mlp_norm);
    b.mlp_norm = ones_like_norm(b.mlp_norm);
  }
  if (all_ones(m.final_norm)) {  // nothing to fuse: a tied head may stay tied
    m.final_norm = ones_like_norm(m.final_norm);
    return;
  }
  // The embedding must not take the final norm: a tied head gets its own tensor.
  scale_columns(m.lm_head, m.final_norm);
  m.config.tie_word_embeddings = false;
  m.final_norm = ones_like_norm(m.final_norm);
}

void rotate_residual(Model& m, const at::Tensor& Q) {
  const int64_t H = m.config.hidden_size;
  SQ_CHECK(Q.dim() == 2 && Q.size(0) == H && Q.size(1) == H,
           "rotate_residual: Q has shape " << Q.sizes() << " but the hidden size is " << H);
  check_all_plain(m, "rotate_residual");
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    const Block& b = m.blocks[i];
    SQ_CHECK(all_ones(b.attn_norm) && all_ones(b.mlp_norm),
             "rotate_residual: blocks." << i << " norms are not all ones: fuse_norms first");
  }
  SQ_CHECK(all_ones(m.final_norm), "rotate_residual: final_norm is not all ones: fuse_norms first");
  const at::Tensor Q64 = Q.to(at::kDouble);  // [H, H] on Q's device
  const double err = (at::matmul(Q64, Q64.t()) - at::eye(H, Q64.options())).abs().max().item<double>();
  SQ_CHECK(err < 1e-4, "rotate_residual: Q is not orthogonal (max |Q Qt - I| = " << err << ")");

  const bool tied = m.config.tie_word_embeddings;
  m.embed = rotate_in(m.embed, Q64);
  if (tied) {
    m.lm_head.weight = m.embed;  // W·Q for both: the head stays tied
  } else {
    m.lm_head.weight = rotate_in(m.lm_head.weight, Q64);
  }
  for (Block& b : m.blocks) {
    // Linears reading the residual stream rotate their inputs, those writing it their outputs.
    for (int j = 0; j < b.layout->size(); ++j) {
      const LinearSlot& sl = b.layout->slots[size_t(j)];
      Linear& l = b.slots[size_t(j)];
      if (sl.in == Dim::Hidden) l.weight = rotate_in(l.weight, Q64);
      if (sl.out == Dim::Hidden) rotate_out(l, Q64);
    }
  }
}

void rotate_model(Model& m, int64_t block, uint64_t seed, c10::Device device) {
  const int64_t H = m.config.hidden_size;
  SQ_CHECK(block >= 0, "rotate_model: block " << block << " must be >= 0 (0 = one rotation of size " << H << ")");
  SQ_CHECK(block > 0 || hadamard_supported(H),
           "rotate_model: hidden size " << H << " has no Hadamard matrix (" << H
                                        << " is not a supported multiple of 4); give a block size for a groupwise "
                                           "rotation");
  // Any order with a Hadamard matrix (576 = 16 x 36, Paley II); block > 0: one per block, a short last
  // block (H not a multiple of it) with its own order.
  at::Tensor Q = block == 0 ? random_hadamard_any(H, seed, at::kDouble)
                            : block_diag_random_hadamard(H, block, seed, at::kDouble);
  fuse_norms(m);
  rotate_residual(m, Q.to(device));
}

}  // namespace sq
