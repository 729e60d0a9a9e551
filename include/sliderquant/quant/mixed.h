// quant/mixed: a weight quantized at two widths by input channel (docs/METHODS.md section 3.1
// step 2, arXiv 2511.17801): the selected channels hi_cols at b_H bits, every other
// channel at b_L bits, each part a QTensor over its own columns in its own uniform
// QFormat (grouped over the part's columns, in increasing column order).
//
// Group rule: a part's group size must divide the part's column count (ragged groups are
// not supported, as everywhere in quant/format); mixed_hi_count rounds a ratio's channel
// count up to the smallest count for which both parts divide. Per-channel parts fit any
// count. DSQ formats are not supported in a part. The packed layout is pack/native_mixed.
//
// Bits per weight, honest and in the accounting of quant/format (packed word padding not
// counted): codes + scales + zeros (+ g_idx) of both parts + 32 bits per hi_cols entry,
// over out * in weights.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "sliderquant/quant/format.h"
#include "sliderquant/quant/rtn.h"

namespace sq {

struct MixedQTensor {
  at::Tensor hi_cols;  // [k] int32, strictly increasing, in [0, in), 0 < k < in
  QTensor hi;          // [out, k]: column i is weight column hi_cols[i]
  QTensor lo;          // [out, in - k]: the other columns in increasing order
  int64_t in = 0;      // input features of the whole weight

  int64_t out_features() const { return hi.out_features(); }
  int64_t in_features() const { return in; }
  at::Tensor lo_cols() const;     // [in - k] int64: the complement of hi_cols, increasing
  at::Tensor dequantize() const;  // [out, in] float32: each part's dequantize scattered back
  double bits_per_weight() const;

  // RTN of each part of W [out, in] (any float dtype) with the channels HI_COLS (any
  // integer dtype, [k], strictly increasing) at HI and the rest at LO. Throws Error when a
  // part's group size does not divide its width (naming mixed_hi_count) or a format is DSQ.
  static MixedQTensor rtn(const at::Tensor& W, const at::Tensor& hi_cols, const QFormat& hi, const QFormat& lo,
                          const ClipSearch& clip = {});
};

// bits_per_weight of a mixed layer [out, in] with K hi channels (no g_idx in either part).
double mixed_bits_per_weight(const QFormat& hi, const QFormat& lo, int64_t out, int64_t in, int64_t k);

// The smallest k >= channel_count(ratio, in), k >= 1, such that HI's group size divides k
// and LO's divides in - k (and k < in). Throws Error when no such k exists.
int64_t mixed_hi_count(double ratio, int64_t in, const QFormat& hi, const QFormat& lo);

// Checks a channel list for a weight with IN input features (1-D, integer, strictly
// increasing, in [0, in), 0 < k < in) and returns it as int32 [k] on the CPU; WHAT names
// the tensor in errors.
at::Tensor checked_hi_cols(const at::Tensor& hi_cols, int64_t in, const std::string& what);
// Checks that the two part formats fit a mixed [out, in] weight with K hi channels (uniform
// formats; each part's group size divides its width); throws Error naming WHAT.
void check_mixed_formats(const QFormat& hi, const QFormat& lo, int64_t out, int64_t in, int64_t k,
                         const std::string& what);

}  // namespace sq
