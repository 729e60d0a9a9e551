// eval/batch_forward: see batch_forward.h.
#include "batch_forward.h"

#include <ATen/ATen.h>

namespace sq::detail {

std::vector<at::Tensor> final_hidden(Runner& runner, const std::vector<at::Tensor>& batches) {
  const c10::Device dev = runner.options().device;
  const int64_t L = runner.model().config.num_layers;
  std::vector<at::Tensor> h(batches.size());
  if (runner.resident()) {
    for (size_t b = 0; b < batches.size(); ++b) {
      at::Tensor x = runner.embed(batches[b]);
      for (int64_t i = 0; i < L; ++i) x = runner.block(i, x);
      h[b] = x;
    }
    return h;
  }
  for (size_t b = 0; b < batches.size(); ++b) h[b] = runner.embed(batches[b]).cpu();
  for (int64_t i = 0; i < L; ++i)
    for (size_t b = 0; b < batches.size(); ++b) h[b] = runner.block(i, h[b].to(dev)).cpu();
  for (auto& x : h) x = x.to(dev);
  return h;
}

int64_t hidden_bytes(const Runner& runner, int64_t B, int64_t T) {
  return B * T * runner.model().config.hidden_size * int64_t(c10::elementSize(runner.options().dtype));
}

}  // namespace sq::detail
