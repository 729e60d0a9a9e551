// arch/dense_layout: the decoder block of every supported dense family (Llama naming,
// shared by Llama, Mistral, Qwen2 and Qwen3): attention q, k, v, o and a SwiGLU MLP
// gate, up, down. This table is the only place that spells the seven linears out.
#include "sliderquant/model/layout.h"

namespace sq {

const BlockLayout& dense_layout() {
  static const BlockLayout layout{
      // name        hf                   role        out           in            group               bias
      {{"attn.q", "self_attn.q_proj", Role::Q, Dim::QHeads, Dim::Hidden, TapPoint::QkvIn, BiasFlag::Qkv},
       {"attn.k", "self_attn.k_proj", Role::K, Dim::KvHeads, Dim::Hidden, TapPoint::QkvIn, BiasFlag::Qkv},
       {"attn.v", "self_attn.v_proj", Role::V, Dim::KvHeads, Dim::Hidden, TapPoint::QkvIn, BiasFlag::Qkv},
       {"attn.o", "self_attn.o_proj", Role::O, Dim::Hidden, Dim::QHeads, TapPoint::OIn, BiasFlag::O},
       {"mlp.gate", "mlp.gate_proj", Role::Gate, Dim::Inter, Dim::Hidden, TapPoint::GateUpIn, BiasFlag::Mlp},
       {"mlp.up", "mlp.up_proj", Role::Up, Dim::Inter, Dim::Hidden, TapPoint::GateUpIn, BiasFlag::Mlp},
       {"mlp.down", "mlp.down_proj", Role::Down, Dim::Hidden, Dim::Inter, TapPoint::DownIn, BiasFlag::Mlp}},
      // absorption edges: norms into the linears they feed, v into o (per KV head), up into down
      {{"attn_norm", {"attn.q", "attn.k", "attn.v"}},
       {"mlp_norm", {"mlp.gate", "mlp.up"}},
       {"attn.v", {"attn.o"}},
       {"mlp.up", {"mlp.down"}}},
      FfnKind::Dense};
  return layout;
}

}  // namespace sq
