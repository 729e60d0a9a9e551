// quant/format: the quantization format of a weight (bits, group size, symmetry), the
// quantized tensor (codes, scales, zeros, optional group index) and THE dequantize that
// defines what codes mean, plus honest bits-per-weight accounting.
// Tensor in, tensor out: knows nothing of models or files.
//
// Meaning of codes (uniform affine, GPTQ/OmniQuant convention, METHODS.md section 0):
//   w_hat[r, j] = scales[r, g(j)] * (codes[r, j] - zeros[r, g(j)])
//   g(j) = g_idx[j] when g_idx is defined, else j / group_size (per-channel: 0).
//   codes in [0, 2^bits - 1]; asymmetric zeros are integers in [0, 2^bits - 1];
//   symmetric formats use the fixed zero 2^(bits-1) (codes still unsigned).
// Scales are rounded to float16-representable values before codes are chosen, so the
// packed model (fp16 scales) dequantizes to exactly what was evaluated.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace sq {

struct QFormat {
  int bits = 4;              // 2..8
  int64_t group_size = -1;   // -1 = per-channel (one group spanning every input column)
  bool symmetric = false;

  int64_t maxq() const { return (int64_t(1) << bits) - 1; }
  // Groups per row for IN input columns; throws Error unless IN is a multiple of group_size.
  int64_t groups(int64_t in_features) const;
  int64_t group_width(int64_t in_features) const;  // columns per group
  // Throws Error naming TENSOR when a [out, in] weight cannot take this format.
  void check(int64_t out_features, int64_t in_features, const std::string& tensor) const;
  // "w4g128", "w4" (per-channel), "w3g64s" (symmetric). parse() accepts these and throws
  // UsageError otherwise; bits outside 2..8 and group sizes < 1 are rejected.
  std::string name() const;
  static QFormat parse(const std::string& s);
  bool operator==(const QFormat& o) const {
    return bits == o.bits && group_size == o.group_size && symmetric == o.symmetric;
  }
};

struct QTensor {
  QFormat format;
  at::Tensor codes;   // [out, in] uint8
  at::Tensor scales;  // [out, groups] float32 (float16-representable)
  at::Tensor zeros;   // [out, groups] float32 holding integers
  at::Tensor g_idx;   // [in] int32 column -> group, or undefined (= j / group_size)

  int64_t out_features() const { return codes.size(0); }
  int64_t in_features() const { return codes.size(1); }
  // [out, in] float32 on the codes' device.
  at::Tensor dequantize() const;
};

// Bits per weight as stored: codes (bits each) + per group one fp16 scale and one
// zero of `bits` bits (none for symmetric formats) + 32 bits per column for g_idx.
double bits_per_weight(const QFormat& f, int64_t out_features, int64_t in_features, bool with_g_idx);

}  // namespace sq
