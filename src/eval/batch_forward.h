// eval/batch_forward (private to src/eval): final hidden states (before the head) of a group
// of token batches. A resident runner runs each batch through all blocks; a streaming runner
// runs the group layer-major (every batch through block i, then block i+1), keeping hidden
// states in host memory, so each block moves to the device once per group.
#pragma once
#include <ATen/core/Tensor.h>

#include <vector>

#include "sliderquant/model/forward.h"

namespace sq::detail {

// batches: [B, T] int64 each. Returns [B, T, H] per batch on the runner's device.
std::vector<at::Tensor> final_hidden(Runner& runner, const std::vector<at::Tensor>& batches);

// Bytes of host memory the hidden states of a [B, T] batch take in the runner's dtype.
int64_t hidden_bytes(const Runner& runner, int64_t B, int64_t T);

}  // namespace sq::detail
