// passes/block_linears (private): a decoder block's linears (its layout's slots) as the
// learned passes (sliderquant, adaptive) address them: canonical names, their tensors in a
// BlockTensors, and the check that their formats suit learnable clipping.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>

#include "sliderquant/core/error.h"
#include "sliderquant/pipeline/session.h"
#include "sliderquant/transform/smooth.h"

namespace sq::passes {

// The canonical name of slot I of block LAYER (the block layout's table, model/layout.h).
inline const std::string& linear_name(const Session& s, int64_t layer, int i) {
  return s.model.blocks[size_t(layer)].slots[size_t(i)].name;
}
inline at::Tensor& weight_of(BlockTensors& t, int i) { return t.w[size_t(i)]; }
inline at::Tensor& bias_of(BlockTensors& t, int i) { return t.b[size_t(i)]; }

// The uniform asymmetric format learnable clipping trains on for F: F itself, or for a ggml
// grid the proxy with its bits and sub-block width (e.g. q2_k -> w2g16).
inline QFormat lwc_format(const QFormat& f) {
  if (!f.ggml()) return f;
  QFormat u;
  u.bits = f.bits;
  u.group_size = f.group_size;
  return u;
}

// Throws naming PASS and the linear when a planned format is DSQ or symmetric (ggml grids
// pass when ALLOW_GGML: the pass trains on lwc_format's proxy and rounds onto the grid).
inline void check_lwc_formats(const Session& s, const char* pass, bool allow_ggml = false) {
  for (const Block& b : s.model.blocks)
    for (const Linear* l : b.linears()) {
      const LinearPlan* p = s.plan_for(l->name);
      if (p && p->format && allow_ggml && p->format->ggml()) continue;
      if (p && p->format)
        SQ_CHECK(!p->format->dsq && !p->format->symmetric && !p->format->ggml(),
                 pass << ": " << l->name << " has format " << p->format->name()
                      << "; learnable clipping needs an asymmetric uniform format (e.g. w2, w4g128)");
    }
}

}  // namespace sq::passes
