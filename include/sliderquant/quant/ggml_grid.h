// quant/ggml_grid: ggml block grids (llama.cpp's GGUF types q4_0..q8_0, q4_1, q5_1, q2_k..q6_k)
// as quantizer formats (quant/format.h states what their QTensors mean): round-to-nearest
// onto the grid with ggml's own reference quantizer (so the codes and scales equal
// llama.cpp's quantize_row_*_ref), the exact GGUF bytes of a grid QTensor, and what
// llama-quantize does for rows that do not fill whole super-blocks.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "sliderquant/quant/format.h"

namespace sq {

// W [out, in] (IN a multiple of f.super_block()) quantized as ggml's reference quantizer
// does, every field decoded into the QTensor. IMATRIX [in] (optional): ggml's
// importance-weighted search (quantize_row_*_impl), as llama-quantize with an imatrix.
QTensor ggml_grid_quantize(const at::Tensor& W, const QFormat& f, const at::Tensor& imatrix = at::Tensor());

// The GGUF bytes of a grid QTensor (rows one after another, ggml's row size each); Error
// naming WHAT when a field does not fit the type.
std::vector<uint8_t> ggml_grid_encode(const QTensor& q, const std::string& what);

// Codes of X [rows, cols] for the fixed per-row grid of one sub-block: SCALE/ZERO or
// SCALE/MIN [rows, 1] (min forms: ZERO_OR_MIN is the min): the nearest grid point.
// Returns [rows, cols] float32 codes and the dequantized values.
void ggml_grid_nearest(const QFormat& f, const at::Tensor& X, const at::Tensor& scale, const at::Tensor& zero_or_min,
                       at::Tensor& codes, at::Tensor& dq);

// llama-quantize's per-tensor fallback for rows of IN columns that are not a multiple of
// 256: q4_k -> q5_0, q5_k -> q5_1, q6_k -> q8_0, q2_k / q3_k -> q4_0 (llama.cpp uses
// iq4_nl, which this project cannot write). Returns F itself when IN fits (or F is not a
// k-quant); WHY gets the reason when it falls back.
QFormat ggml_grid_fallback(const QFormat& f, int64_t in, std::string* why = nullptr);

}  // namespace sq
