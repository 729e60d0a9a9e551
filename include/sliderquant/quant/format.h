// quant/format: the quantization format of a weight (bits, group size, symmetry), the
// quantized tensor (codes, scales, zeros, optional group index) and THE dequantize that
// defines what codes mean, plus honest bits-per-weight accounting.
// Tensor in, tensor out: knows nothing of models or files.
//
// Meaning of codes (uniform affine, GPTQ/OmniQuant convention, docs/METHODS.md section 0):
//   w_hat[r, j] = scales[r, g(j)] * (codes[r, j] - zeros[r, g(j)])
//   g(j) = g_idx[j] when g_idx is defined, else j / group_size (per-channel: 0).
//   codes in [0, 2^bits - 1]; asymmetric zeros are integers in [0, 2^bits - 1];
//   symmetric formats use the fixed zero 2^(bits-1) (codes still unsigned).
// Scales are rounded to float16-representable values before codes are chosen, so the
// packed model (fp16 scales) dequantizes to exactly what was evaluated.
//
// DSQ formats (D²Quant's dual-scale quantizer, arXiv 2602.02546 section 2.2 step 5; names
// "w2g128d", "w3g128d"; 2 or 3 bits, asymmetric only) use no scales/zeros. Instead:
//   w_hat[r, j] = col_scale[j] * sum_k levels_r[r, g(j), k] * (2 * bit_k(codes[r, j]) - 1)
//   bit_k(code) = (code >> k) & 1 (1 -> +1, 0 -> -1); col_scale = 1 when undefined
// i.e. the code picks one of the row-group's 2^bits levels +-r0 +-r1 [+-r2], times the
// column scale (which the pipeline may absorb into the rows of the producing linear).
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace sq {

// True for the bit widths a weight format (and per-token activation quantization) supports:
// 2..8. Settings that may also be switched off accept 16 on top ("2..8 or 16 = off").
inline bool supported_bits(int64_t bits) { return bits >= 2 && bits <= 8; }

struct QFormat {
  int bits = 4;              // 2..8 (supported_bits)
  int64_t group_size = -1;   // -1 = per-channel (one group spanning every input column)
  bool symmetric = false;
  bool dsq = false;          // dual-scale binary-coding levels (bits 2..3), see above

  int64_t maxq() const { return (int64_t(1) << bits) - 1; }
  // Groups per row for IN input columns; throws Error unless IN is a multiple of group_size.
  int64_t groups(int64_t in_features) const;
  int64_t group_width(int64_t in_features) const;  // columns per group
  // Throws Error naming TENSOR when a [out, in] weight cannot take this format.
  void check(int64_t out_features, int64_t in_features, const std::string& tensor) const;
  // "w4g128", "w4" (per-channel), "w3g64s" (symmetric), "w2g128d" (DSQ). parse() accepts
  // these and throws UsageError otherwise; bits outside 2..8 (DSQ: 2..3), group sizes < 1
  // and symmetric DSQ are rejected.
  std::string name() const;
  static QFormat parse(const std::string& s);
  bool operator==(const QFormat& o) const {
    return bits == o.bits && group_size == o.group_size && symmetric == o.symmetric && dsq == o.dsq;
  }
};

struct QTensor {
  QFormat format;
  at::Tensor codes;   // [out, in] uint8
  at::Tensor scales;  // [out, groups] float32 (float16-representable)
  at::Tensor zeros;   // [out, groups] float32 holding integers
  at::Tensor g_idx;   // [in] int32 column -> group, or undefined (= j / group_size)
  // DSQ formats only (scales/zeros/g_idx undefined):
  at::Tensor levels_r;   // [out, groups, bits] float32 (float16-representable, >= 0)
  at::Tensor col_scale;  // [in] float32 (float16-representable, > 0), undefined once absorbed

  int64_t out_features() const { return codes.size(0); }
  int64_t in_features() const { return codes.size(1); }
  // [out, in] float32 on the codes' device.
  at::Tensor dequantize() const;
  // A copy with every defined tensor moved to DEVICE.
  QTensor to(const c10::Device& device) const;
};

// Bits per weight as stored: codes (bits each) + per group one fp16 scale and one
// zero of `bits` bits (none for symmetric formats) + 32 bits per column for g_idx.
// DSQ: codes + per (row, group) `bits` fp16 row scales + 16 bits per column for the
// column scale (spread over the rows) unless with_col_scale is false (it was absorbed
// into the producing linear; with_g_idx must be false).
double bits_per_weight(const QFormat& f, int64_t out_features, int64_t in_features, bool with_g_idx,
                       bool with_col_scale = true);

// The 2^bits levels of each row: levels[..., code] = sum_k r[..., k] * (2 * bit_k(code) - 1).
// r [..., bits] float -> [..., 2^bits].
at::Tensor dsq_levels(const at::Tensor& r);

// Hands the DSQ column scale over to the caller: returns col_scale [in] float32 and leaves
// Q without one, so Q.dequantize() becomes W_hat / col_scale (per column). The caller must
// then multiply row j of the linear that produces this linear's input j (for down_proj:
// up_proj, whose output is multiplied elementwise by silu(gate)) by c[j]. Throws Error
// when Q is not DSQ or has no column scale.
at::Tensor take_column_scale(QTensor& q);

}  // namespace sq
