// passes/block_linears (private): the seven linears of a decoder block as the learned
// passes (sliderquant, adaptive) address them: canonical names, their tensors in a
// BlockTensors, and the check that their formats suit learnable clipping.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>

#include "sliderquant/core/error.h"
#include "sliderquant/pipeline/session.h"
#include "sliderquant/transform/smooth.h"

namespace sq::passes {

constexpr int kLinears = 7;
inline const char* const kLinearSuffix[kLinears] = {"attn.q",   "attn.k", "attn.v",  "attn.o",
                                                    "mlp.gate", "mlp.up", "mlp.down"};

inline std::string linear_name(int64_t layer, int i) {
  return "blocks." + std::to_string(layer) + "." + kLinearSuffix[i];
}
inline at::Tensor& weight_of(BlockTensors& t, int i) { return t.w[size_t(i)]; }
inline at::Tensor& bias_of(BlockTensors& t, int i) { return t.b[size_t(i)]; }

// Throws naming PASS and the linear when a planned format is DSQ or symmetric.
inline void check_lwc_formats(const Session& s, const char* pass) {
  for (int64_t l = 0; l < int64_t(s.model.blocks.size()); ++l)
    for (int i = 0; i < kLinears; ++i) {
      const LinearPlan* p = s.plan_for(linear_name(l, i));
      if (p && p->format)
        SQ_CHECK(!p->format->dsq && !p->format->symmetric,
                 pass << ": " << linear_name(l, i) << " has format " << p->format->name()
                      << "; learnable clipping needs an asymmetric uniform format (e.g. w2, w4g128)");
    }
}

}  // namespace sq::passes
