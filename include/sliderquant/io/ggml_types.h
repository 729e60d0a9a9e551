// io/ggml_types: the tensor types of ggml (llama.cpp's tensor library) as they lie in a GGUF
// file: the type table (id, name, elements per block, bytes per block), dequantization of
// every block layout this project reads, the reference quantizers (round-to-nearest and the
// k-quant scale searches as ggml defines them, without an importance matrix unless given),
// and exact block encoders from integer codes chosen elsewhere (a calibrated quantizer).
// Bytes in, floats out: knows nothing of models, files or tensors' names.
//
// Layouts (ggml's ggml-common.h; all little-endian, fp16 = IEEE half):
//   Q4_0  32/blk: d fp16, qs[16]            x = d * (q - 8), q = 4-bit (lo nibble: j, hi: j+16)
//   Q4_1  32/blk: d, m fp16, qs[16]         x = d * q + m
//   Q5_0  32/blk: d fp16, qh[4], qs[16]     x = d * (q - 16), q = nibble | (bit of qh) << 4
//   Q5_1  32/blk: d, m fp16, qh[4], qs[16]  x = d * q + m
//   Q8_0  32/blk: d fp16, qs[32] int8       x = d * q
//   Q2_K..Q6_K 256/blk: super-block scales (d, dmin fp16) over 16 or 32 sub-blocks whose
//   scales (and mins) are 4-, 6- or 8-bit integers; see ggml_types.cpp for each.
#pragma once
#include <cstdint>
#include <string>

namespace sq {

// ggml's type ids (enum ggml_type), as stored in a GGUF tensor info.
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22,
  IQ4_XS = 23, I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30,
  TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
};

struct GgmlTypeInfo {
  GgmlType type;
  const char* name;     // ggml's name: "f32", "q4_0", "q4_K", "bf16", ...
  int64_t block;        // elements per block (1 for plain types)
  int64_t block_bytes;  // bytes per block
  bool readable;        // ggml_dequantize supports it (float, integer, Q4_0..Q8_K; not IQ/TQ/MXFP4)
  bool writable;        // ggml_quantize supports it (F32, F16, BF16, Q4_0..Q8_0, Q2_K..Q8_K)
};

// The row of type id T, or nullptr for an id ggml does not define (or this table omits).
const GgmlTypeInfo* ggml_type_info(uint32_t t);
const GgmlTypeInfo& ggml_type_info(GgmlType t);  // throws Error for an unknown id
std::string ggml_type_name(uint32_t t);          // "q4_K", or "type 77" when unknown
// "q4_k", "Q4_K", "q8_0", "f16", "bf16", "f32" -> type; UsageError listing the writable
// names otherwise.
GgmlType ggml_type_from_name(const std::string& name);
// Bytes of N elements of type T; throws Error unless N is a multiple of the block.
uint64_t ggml_nbytes(GgmlType t, int64_t n);

// Decodes N elements (N a multiple of the block) from SRC into DST (float32). Throws Error
// naming the type when it is not readable.
void ggml_dequantize(GgmlType t, const uint8_t* src, float* dst, int64_t n);

// Encodes N elements (a multiple of the block) of SRC into DST (ggml_nbytes(t, n) bytes) as
// ggml's reference quantizer does (quantize_row_*_ref). With IMATRIX (N weights, one per
// column) Q4_0, Q4_1, Q5_0, Q5_1 and the k-quants use the importance-weighted search ggml
// uses when given one (quantize_row_*_impl); then N must be one matrix row, since ggml
// computes the weights from that row's mean square. Q8_0 and Q8_K ignore IMATRIX, as ggml
// does. Throws Error naming the type when it is not writable.
void ggml_quantize(GgmlType t, const float* src, uint8_t* dst, int64_t n, const float* imatrix = nullptr);

// Exact encoders from codes already chosen (one row of N elements, N a multiple of 32).
// codes: unsigned, as quant/format.h defines them; scale/zero: per group of 32.
//   Q4_0: symmetric 4-bit (zero 8):     d = scale (must be fp16-representable).
//   Q8_0: symmetric 8-bit (zero 128):   q = code - 128, d = scale.
//   Q4_1: asymmetric 4-bit:             d = scale, m = -scale * zero rounded to fp16 (the one
//                                       rounding GGUF imposes; returned as max |error| added).
//   Q5_0 / Q5_1: the 5-bit versions of Q4_0 / Q4_1.
// Returns the largest absolute difference between the block's decoded values and
// scale * (code - zero). Throws Error when a code or scale does not fit the type.
double ggml_encode_codes(GgmlType t, const uint8_t* codes, const float* scale, const float* zero, int64_t n,
                         uint8_t* dst);

// The fields of ggml blocks, both ways, for one row of N elements (N a multiple of the
// block) of Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 or Q2_K..Q6_K:
//   codes [N]: each element's unsigned code (Q8_0: q + 128; Q3_K: q + 4; Q6_K: q + 32, so
//              the value is d1 * (code - 128 | 4 | 32); Q4_0 / Q5_0: code - 8 | 16);
//   d, dmin [N / block]: the block's fp16 values (legacy types: d and, for Q4_1 / Q5_1, m
//              in dmin; k-quants: d and, for Q2_K / Q4_K / Q5_K, dmin);
//   sc, mn [N / 16 or N / 32] (k-quants only): the integer sub-block scales (Q3_K as the
//              signed sc - 32, Q6_K signed) and, for Q2_K / Q4_K / Q5_K, mins.
// Pointers a type does not use may be null. The encoder refuses (Error) values that do not
// fit the type's fields (d not an fp16 value, a code or scale out of range).
void ggml_decode_fields(GgmlType t, const uint8_t* src, int64_t n, uint8_t* codes, float* d, float* dmin, int8_t* sc,
                        int8_t* mn);
void ggml_encode_fields(GgmlType t, const uint8_t* codes, const float* d, const float* dmin, const int8_t* sc,
                        const int8_t* mn, int64_t n, uint8_t* dst);
// Sub-block width of T's fields (16 for Q2_K, Q3_K, Q6_K; 32 otherwise).
int64_t ggml_sub_block(GgmlType t);

// fp16 / bf16 conversions as ggml does them (round to nearest even; bf16 keeps NaN quiet).
uint16_t ggml_fp32_to_fp16(float f);
float ggml_fp16_to_fp32(uint16_t h);
uint16_t ggml_fp32_to_bf16(float f);
float ggml_bf16_to_fp32(uint16_t h);

}  // namespace sq
