// pack/native: the native packed layout of a QTensor (unchanged in format versions 1 and 2;
// the model directory around it is formats/native), layout only:
// it never re-decides codes. Per quantized linear NAME (the HF weight name without
// ".weight"):
//   NAME.qweight  int32 [out, ceil(in * bits / 32)]   codes, bit-packed along the input dim
//   NAME.scales   float16 [out, groups]
//   NAME.qzeros   int32 [out, ceil(groups * bits / 32)] zeros, bit-packed (asymmetric only)
//   NAME.g_idx    int32 [in]                            only when the QTensor has one
// DSQ formats ("w2g128d"; D²Quant arXiv 2602.02546) store, instead of scales/qzeros/g_idx:
//   NAME.dsq_r     float16 [out, groups, bits]   row scales r_k per (row, group)
//   NAME.col_scale float16 [in]                  column scales, only when not absorbed
// Bit order: each row is one little-endian bit stream; code j occupies stream bits
// [j*bits, (j+1)*bits), least significant bit first; stream bit k is bit (k % 32) of
// word k / 32. Codes may straddle words (3, 5, 6, 7 bits). Unused high bits are zero.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "sliderquant/quant/format.h"

namespace sq {

// Packs codes [rows, n] (uint8, values < 2^bits) into int32 [rows, ceil(n*bits/32)].
at::Tensor pack_bits(const at::Tensor& codes, int bits);
// Inverse of pack_bits: int32 [rows, words] -> uint8 [rows, n].
at::Tensor unpack_bits(const at::Tensor& words, int bits, int64_t n);

// The tensors of one quantized linear, named NAME.qweight etc.
std::vector<std::pair<std::string, at::Tensor>> pack_qtensor(const std::string& name, const QTensor& q);
// Rebuilds the QTensor from those tensors; `get` returns the tensor of a full name or an
// undefined tensor. Throws Error naming the tensor when shapes or dtypes disagree with F.
QTensor unpack_qtensor(const std::string& name, const QFormat& f, int64_t out, int64_t in,
                       const std::function<at::Tensor(const std::string&)>& get);

}  // namespace sq
