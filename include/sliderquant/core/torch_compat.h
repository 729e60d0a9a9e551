// core/torch_compat: the only place that knows libtorch 1.13 (Debian) from 2.x (wheels).
// Everything else uses the API common to both through these helpers.
#pragma once
#include <chrono>
#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <torch/version.h>

#include <string>

#if TORCH_VERSION_MAJOR >= 2
#define SQ_TORCH2 1
#else
#define SQ_TORCH2 0
#endif

namespace sq {

// Causal attention on [B, H, T, D] tensors, with an optional sliding window (0 = none).
// q, k, v share dtype; K/V heads must already be expanded to H. Uses the fused
// scaled_dot_product_attention where the libtorch has it (2.x, no window), otherwise
// matmul + float32 softmax (the HF "eager" path).
at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double scale, int64_t sliding_window);

bool cuda_available();
void cuda_synchronize();
// Seconds since T0 after waiting for queued CUDA work (phase timings that mean something).
double synced_seconds_since(std::chrono::steady_clock::time_point t0);
// Peak bytes allocated on the current CUDA device since the last reset (0 without CUDA support).
int64_t cuda_peak_bytes();
void cuda_reset_peak();
// Total memory of the current CUDA device in bytes (0 when unknown or no CUDA).
int64_t cuda_total_bytes();

// Resolve "auto" | "cpu" | "cuda" | "cuda:N" to a device; throws UsageError for bad names
// and Error when CUDA is asked for but unavailable.
c10::Device resolve_device(const std::string& name);

std::string torch_version_string();

// Autocast for a scope (as Python's `with torch.autocast(device_type, dtype)`): on DEVICE's
// kind (CUDA or CPU), matrix products run in DTYPE while tensors stay in their own dtype and
// reductions / norms in float32. ON false: does nothing. Restores the previous state.
class AutocastGuard {
 public:
  AutocastGuard(bool on, c10::Device device, c10::ScalarType dtype = c10::kBFloat16);
  ~AutocastGuard();
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool on_ = false, cuda_ = false, prev_enabled_ = false;
  c10::ScalarType prev_dtype_ = c10::kBFloat16;
};

}  // namespace sq
