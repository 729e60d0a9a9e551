// core/torch_compat: the libtorch 1.13 / 2.x differences, in one file.
#include "sliderquant/core/torch_compat.h"

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/cuda.h>

#include <algorithm>
#include <vector>

#if defined(SQ_HAVE_CUDA_LIBS) && __has_include(<c10/cuda/CUDACachingAllocator.h>) && \
    __has_include(<cuda_runtime_api.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>
#define SQ_CUDA_STATS 1
#else
#define SQ_CUDA_STATS 0
#endif

#include "sliderquant/core/error.h"

namespace sq {

at::Tensor causal_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            double scale, int64_t sliding_window) {
  const int64_t T = q.size(2), S = k.size(2);
#if SQ_TORCH2
  if (sliding_window <= 0 || sliding_window >= S) {
    return at::scaled_dot_product_attention(q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0,
                                            /*is_causal=*/true, /*scale=*/scale);
  }
#endif
  // Eager path: scores in the input dtype, softmax in float32 (as HF's eager attention), one
  // block of queries at a time against only the keys it may see (causal, and the sliding window).
  // Keys after a block's last query would be masked to exactly zero probability, so leaving them
  // out changes no value, while the scores held at once shrink from T x S to kBlock x S and the
  // products to about half (SmolLM2-135M at 2048 tokens: 9 heads x 2048 x 2048 float32 scores,
  // 151 MB per layer, were the largest cost of a float32 evaluation on the CPU).
  constexpr int64_t kBlock = 256;
  auto opts = at::TensorOptions().device(q.device()).dtype(at::kLong);
  auto block = [&](int64_t i0, int64_t i1) {
    const int64_t p0 = S - T + i0, p1 = S - T + i1;  // positions of the block's queries
    const int64_t k0 = sliding_window > 0 ? std::max<int64_t>(0, p0 - sliding_window + 1) : 0, k1 = p1;
    at::Tensor kb = k.narrow(2, k0, k1 - k0), vb = v.narrow(2, k0, k1 - k0);
    at::Tensor scores = at::matmul(q.narrow(2, i0, i1 - i0), kb.transpose(-2, -1)).mul_(scale);  // [B,H,i1-i0,k1-k0]
    at::Tensor qi = at::arange(p0, p1, opts).unsqueeze(1);  // query positions
    at::Tensor kj = at::arange(k0, k1, opts).unsqueeze(0);  // key positions
    at::Tensor masked = kj > qi;
    if (sliding_window > 0) masked = masked.logical_or(kj <= qi - sliding_window);
    at::Tensor probs = at::softmax(scores.to(at::kFloat).masked_fill_(masked, -INFINITY), -1);
    return at::matmul(probs.to(q.scalar_type()), vb);
  };
  if (T <= kBlock) return block(0, T);
  std::vector<at::Tensor> parts;
  for (int64_t i0 = 0; i0 < T; i0 += kBlock) parts.push_back(block(i0, std::min(T, i0 + kBlock)));
  return at::cat(parts, 2);
}

bool cuda_available() { return torch::cuda::is_available(); }

double synced_seconds_since(std::chrono::steady_clock::time_point t0) {
  cuda_synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void cuda_synchronize() {
  if (cuda_available()) torch::cuda::synchronize();
}

int64_t cuda_peak_bytes() {
#if SQ_CUDA_STATS
  if (!cuda_available()) return 0;
  auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(c10::cuda::current_device());
  return stats.allocated_bytes[size_t(c10::CachingAllocator::StatType::AGGREGATE)].peak;
#else
  return 0;
#endif
}

void cuda_reset_peak() {
#if SQ_CUDA_STATS
  if (cuda_available()) c10::cuda::CUDACachingAllocator::resetPeakStats(c10::cuda::current_device());
#endif
}

int64_t cuda_total_bytes() {
#if SQ_CUDA_STATS
  if (!cuda_available()) return 0;
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) return 0;
  return int64_t(total_b);
#else
  return 0;
#endif
}

#ifdef SQ_HAVE_CUDA_LIBS
constexpr bool kCudaBuild = true;  // linked against libtorch_cuda / c10_cuda
#else
constexpr bool kCudaBuild = false;
#endif

c10::Device resolve_device(const std::string& name) {
  if (name == "auto") return cuda_available() ? c10::Device(c10::kCUDA, 0) : c10::Device(c10::kCPU);
  if (name == "cpu") return c10::Device(c10::kCPU);
  if (name.rfind("cuda", 0) == 0) {
    c10::Device d(c10::kCUDA, 0);
    try {
      d = c10::Device(name);
      if (!d.has_index()) d = c10::Device(c10::kCUDA, 0);  // "cuda" is cuda:0
    } catch (const std::exception&) {
      throw UsageError("unknown device '" + name + "' (use auto, cpu, cuda or cuda:N)");
    }
    SQ_CHECK(cuda_available(), "--device " << name << " asked for CUDA, but this build's libtorch ("
                                   << torch_version_string() << ") "
                                   << (kCudaBuild ? "sees no CUDA device (no GPU or no driver here)"
                                                  : "is built without CUDA (see README: the CUDA build)"));
    SQ_CHECK(d.index() < int(torch::cuda::device_count()),
             "--device " << name << ": only " << torch::cuda::device_count()
                            << " CUDA device(s) visible (CUDA_VISIBLE_DEVICES renumbers them from 0)");
#if SQ_CUDA_STATS
    // The chosen device becomes the current one: synchronisation, the peak-memory counters and
    // any allocation without an explicit index then follow --device cuda:N.
    c10::cuda::set_device(static_cast<c10::DeviceIndex>(d.index()));
#endif
    return d;
  }
  throw UsageError("unknown device '" + name + "' (use auto, cpu, cuda or cuda:N)");
}

std::string torch_version_string() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

AutocastGuard::AutocastGuard(bool on, c10::Device device, c10::ScalarType dtype) : on_(on), cuda_(device.is_cuda()) {
  if (!on_) return;
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  const c10::DeviceType t = cuda_ ? c10::DeviceType::CUDA : c10::DeviceType::CPU;
  prev_enabled_ = at::autocast::is_autocast_enabled(t);
  prev_dtype_ = at::autocast::get_autocast_dtype(t);
  at::autocast::set_autocast_dtype(t, dtype);
  at::autocast::set_autocast_enabled(t, true);
#else
  if (cuda_) {
    prev_enabled_ = at::autocast::is_enabled();
    prev_dtype_ = at::autocast::get_autocast_gpu_dtype();
    at::autocast::set_autocast_gpu_dtype(dtype);
    at::autocast::set_enabled(true);
  } else {
    prev_enabled_ = at::autocast::is_cpu_enabled();
    prev_dtype_ = at::autocast::get_autocast_cpu_dtype();
    at::autocast::set_autocast_cpu_dtype(dtype);
    at::autocast::set_cpu_enabled(true);
  }
#endif
  at::autocast::increment_nesting();
}

AutocastGuard::~AutocastGuard() {
  if (!on_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  const c10::DeviceType t = cuda_ ? c10::DeviceType::CUDA : c10::DeviceType::CPU;
  at::autocast::set_autocast_enabled(t, prev_enabled_);
  at::autocast::set_autocast_dtype(t, prev_dtype_);
#else
  if (cuda_) {
    at::autocast::set_enabled(prev_enabled_);
    at::autocast::set_autocast_gpu_dtype(prev_dtype_);
  } else {
    at::autocast::set_cpu_enabled(prev_enabled_);
    at::autocast::set_autocast_cpu_dtype(prev_dtype_);
  }
#endif
}

}  // namespace sq
