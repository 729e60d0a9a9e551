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
//
// ggml grids (llama.cpp's GGUF block types as quantizer formats; names "q4_0", "q5_0",
// "q8_0", "q4_1", "q5_1", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"): `grid` names the type,
// bits/group_size/symmetric describe its sub-blocks (group = ggml's sub-block: 32 for the
// legacy types, Q4_K and Q5_K; 16 for Q2_K, Q3_K and Q6_K), and IN must be a multiple of
// the super-block (32 for the legacy types, 256 for the k-quants). Two forms:
//   zero form (q4_0, q5_0, q8_0, q3_k, q6_k; symmetric, zero 2^(bits-1)):
//       w_hat = scales * (codes - zeros)              (ggml: d1 * (q - 8|16|128|4|32))
//   min form (q4_1, q5_1, q2_k, q4_k, q5_k; `mins` instead of zeros):
//       w_hat = scales * codes - mins                 (ggml: d1 * q - m1)
// For the k-quants scales = d * sub_scales and mins = dmin * sub_mins, each product in
// float32 (exactly as ggml forms d1 and m1), with d/dmin (per super-block, fp16 values)
// and the small integer sub-block scales/mins kept so the GGUF bytes can be re-emitted
// exactly. q4_1/q5_1: scales = d and mins = -m, both fp16 values. So dequantize() equals
// ggml's dequantization of the exported block bit for bit.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace sq {

// True for the bit widths a weight format (and per-token activation quantization) supports:
// 2..8. Settings that may also be switched off accept 16 on top ("2..8 or 16 = off").
inline bool supported_bits(int64_t bits) { return bits >= 2 && bits <= 8; }

// The ggml block type of a grid format (None: a plain uniform or DSQ format).
enum class GgmlGrid : uint8_t { None, Q4_0, Q5_0, Q8_0, Q4_1, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K };

struct QFormat {
  int bits = 4;              // 2..8 (supported_bits)
  int64_t group_size = -1;   // -1 = per-channel (one group spanning every input column)
  bool symmetric = false;
  bool dsq = false;          // dual-scale binary-coding levels (bits 2..3), see above
  GgmlGrid grid = GgmlGrid::None;  // a ggml block type (see above); bits etc. follow from it

  bool ggml() const { return grid != GgmlGrid::None; }
  bool kquant() const;         // Q2_K..Q6_K
  bool min_form() const;       // w = scales * codes - mins (q4_1, q5_1, q2_k, q4_k, q5_k)
  int64_t super_block() const; // columns per ggml block: 256 (k-quants), 32 (legacy), else group width
  // The format of grid G ("q4_k" etc. parse to these).
  static QFormat of_grid(GgmlGrid g);

  int64_t maxq() const { return (int64_t(1) << bits) - 1; }
  // Groups per row for IN input columns: ceil(IN / group_size). A group size that does not
  // divide IN gives a short last group ("ragged", as GPTQ's g_idx = j // group_size): uniform
  // formats only; DSQ and ggml grids need whole groups (check() says so).
  int64_t groups(int64_t in_features) const;
  int64_t group_width(int64_t in_features) const;  // columns per (full) group
  bool ragged(int64_t in_features) const { return group_size > 0 && in_features % group_size != 0; }
  // Throws Error naming TENSOR when a [out, in] weight cannot take this format.
  void check(int64_t out_features, int64_t in_features, const std::string& tensor) const;
  // "w4g128", "w4" (per-channel), "w3g64s" (symmetric), "w2g128d" (DSQ). parse() accepts
  // these and throws UsageError otherwise; bits outside 2..8 (DSQ: 2..3), group sizes < 1
  // and symmetric DSQ are rejected.
  std::string name() const;
  static QFormat parse(const std::string& s);
  bool operator==(const QFormat& o) const {
    return bits == o.bits && group_size == o.group_size && symmetric == o.symmetric && dsq == o.dsq &&
           grid == o.grid;
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
  // ggml grids (see above). Min forms: mins [out, groups] float32 and zeros undefined.
  at::Tensor mins;        // [out, groups] float32
  at::Tensor sub_scales;  // k-quants: [out, groups] int8 (Q2_K 0..15, Q3_K -32..31, Q4/5_K 0..63, Q6_K int8)
  at::Tensor sub_mins;    // Q2_K/Q4_K/Q5_K: [out, groups] int8 (0..15 / 0..63)
  at::Tensor super_d;     // k-quants: [out, in / 256] float32 (fp16 values)
  at::Tensor super_dmin;  // Q2_K/Q4_K/Q5_K: [out, in / 256] float32 (fp16 values)

  int64_t out_features() const { return codes.size(0); }
  int64_t in_features() const { return codes.size(1); }
  // [out, in] float32 on the codes' device.
  at::Tensor dequantize() const;
  // A copy with every defined tensor moved to DEVICE.
  QTensor to(const c10::Device& device) const;
};

// ggml's type id (GgmlType, io/ggml_types.h) of grid G; G must not be None.
uint32_t ggml_grid_type_id(GgmlGrid g);
// "q4_k" etc. for a grid, "" for None.
const char* ggml_grid_name(GgmlGrid g);

// k-quants: scales = d * sub_scales and (min forms) mins = dmin * sub_mins from Q's
// integer fields, in float32 as ggml computes them. No-op for other formats.
void ggml_grid_fill(QTensor& q);

// Bits per weight as stored (ggml grids: the block's bytes * 8 / its elements): codes (bits each) + per group one fp16 scale and one
// zero of `bits` bits (none for symmetric formats) + 32 bits per column for g_idx.
// DSQ: codes + per (row, group) `bits` fp16 row scales + 16 bits per column for the
// column scale (spread over the rows) unless with_col_scale is false (it was absorbed
// into the producing linear; with_g_idx must be false).
double bits_per_weight(const QFormat& f, int64_t out_features, int64_t in_features, bool with_g_idx,
                       bool with_col_scale = true);

// Ragged groups: the group of each input column, j // width, as a [in] int64 tensor on DEVICE.
at::Tensor group_index(int64_t in_features, int64_t width, c10::Device device);
// W [out, in] widened to [out, groups * width] by repeating its last column into the short last
// group, so per-group min / max / absmax are those of the real columns; W itself when no group is
// short. Callers compute on the [out * groups, width] view and keep the first IN columns.
at::Tensor pad_groups(const at::Tensor& W, const QFormat& f);

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
