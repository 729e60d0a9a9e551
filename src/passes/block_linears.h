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

// Throws naming PASS and the linear when a planned format is DSQ or symmetric.
inline void check_lwc_formats(const Session& s, const char* pass) {
  for (const Block& b : s.model.blocks)
    for (const Linear* l : b.linears()) {
      const LinearPlan* p = s.plan_for(l->name);
      if (p && p->format)
        SQ_CHECK(!p->format->dsq && !p->format->symmetric,
                 pass << ": " << l->name << " has format " << p->format->name()
                      << "; learnable clipping needs an asymmetric uniform format (e.g. w2, w4g128)");
    }
}

}  // namespace sq::passes
