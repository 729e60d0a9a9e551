// io/ggml_types: ggml's tensor types (see the header). The block layouts, the decoders and
// the reference quantizers follow the definitions in ggml's ggml-common.h and ggml-quants.c
// (quantize_row_*_ref without an importance matrix, quantize_row_*_impl with one), written
// anew for this project. The quantizers are meant to be bit-exact with ggml's C code: every
// float expression keeps ggml's operand order (this file is compiled with
// -ffp-contract=off, so no multiply-add is fused), and rounding uses the same primitives
// (the 1.5*2^23 trick for round-half-even, roundf, truncating casts).
//
// k-quant super-blocks (256 elements; ggml-common.h):
//   Q2_K  84 B: scales[16] (lo nibble scale, hi nibble min), qs[64] (2-bit), d, dmin fp16
//               x = d*sc*q - dmin*m per 16 elements
//   Q3_K 110 B: hmask[32] (3rd bit), qs[64] (low 2 bits), scales[12] (16 x 6 bit), d fp16
//               x = d*(sc-32)*(q-4), q = low | hbit<<2
//   Q4_K 144 B: d, dmin fp16, scales[12] (8 x (6-bit scale, 6-bit min)), qs[128] (4-bit)
//               x = d*sc*q - dmin*m per 32 elements
//   Q5_K 176 B: d, dmin fp16, scales[12], qh[32] (5th bit), qs[128]
//   Q6_K 210 B: ql[128] (low 4 bits), qh[64] (high 2 bits), scales[16] int8, d fp16
//               x = d*sc*(q-32) per 16 elements
//   Q8_K 292 B: d float32, qs[256] int8, bsums[16] int16 (sums of 16 quants)
#include "sliderquant/io/ggml_types.h"

#include <ATen/Parallel.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <functional>

#include "sliderquant/core/error.h"

namespace sq {

namespace {

constexpr int kQK = 32;    // elements per block of the 32-element types
constexpr int kQKK = 256;  // elements per k-quant super-block
constexpr float kGroupMaxEps = 1e-15f;  // ggml's GROUP_MAX_EPS: a group below is all zero

// id, name, block, bytes, readable, writable
constexpr GgmlTypeInfo kTypes[] = {
    {GgmlType::F32, "f32", 1, 4, true, true},
    {GgmlType::F16, "f16", 1, 2, true, true},
    {GgmlType::Q4_0, "q4_0", 32, 18, true, true},
    {GgmlType::Q4_1, "q4_1", 32, 20, true, true},
    {GgmlType::Q5_0, "q5_0", 32, 22, true, true},
    {GgmlType::Q5_1, "q5_1", 32, 24, true, true},
    {GgmlType::Q8_0, "q8_0", 32, 34, true, true},
    {GgmlType::Q8_1, "q8_1", 32, 36, true, false},
    {GgmlType::Q2_K, "q2_K", 256, 84, true, true},
    {GgmlType::Q3_K, "q3_K", 256, 110, true, true},
    {GgmlType::Q4_K, "q4_K", 256, 144, true, true},
    {GgmlType::Q5_K, "q5_K", 256, 176, true, true},
    {GgmlType::Q6_K, "q6_K", 256, 210, true, true},
    {GgmlType::Q8_K, "q8_K", 256, 292, true, true},
    {GgmlType::IQ2_XXS, "iq2_xxs", 256, 66, false, false},
    {GgmlType::IQ2_XS, "iq2_xs", 256, 74, false, false},
    {GgmlType::IQ3_XXS, "iq3_xxs", 256, 98, false, false},
    {GgmlType::IQ1_S, "iq1_s", 256, 50, false, false},
    {GgmlType::IQ4_NL, "iq4_nl", 32, 18, false, false},
    {GgmlType::IQ3_S, "iq3_s", 256, 110, false, false},
    {GgmlType::IQ2_S, "iq2_s", 256, 82, false, false},
    {GgmlType::IQ4_XS, "iq4_xs", 256, 136, false, false},
    {GgmlType::I8, "i8", 1, 1, true, false},
    {GgmlType::I16, "i16", 1, 2, true, false},
    {GgmlType::I32, "i32", 1, 4, true, false},
    {GgmlType::I64, "i64", 1, 8, true, false},
    {GgmlType::F64, "f64", 1, 8, true, false},
    {GgmlType::IQ1_M, "iq1_m", 256, 56, false, false},
    {GgmlType::BF16, "bf16", 1, 2, true, true},
    {GgmlType::TQ1_0, "tq1_0", 256, 54, false, false},
    {GgmlType::TQ2_0, "tq2_0", 256, 66, false, false},
    {GgmlType::MXFP4, "mxfp4", 32, 17, false, false},
};

std::string names_where(bool GgmlTypeInfo::*flag) {
  std::string s;
  for (const GgmlTypeInfo& t : kTypes)
    if (t.*flag) s += (s.empty() ? "" : ", ") + std::string(t.name);
  return s;
}

// ---- small helpers ---------------------------------------------------------------------
inline uint32_t f2u(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float u2f(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float rd_half(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return ggml_fp16_to_fp32(h);
}
inline void wr_half(uint8_t* p, float f) {
  const uint16_t h = ggml_fp32_to_fp16(f);
  std::memcpy(p, &h, 2);
}
// The fp16 value F becomes once stored (what ggml reads back after writing a block's d).
inline float as_half(float f) { return ggml_fp16_to_fp32(ggml_fp32_to_fp16(f)); }

// Round to nearest, ties to even, for |v| < 2^22: adding 1.5 * 2^23 leaves the integer in
// the low mantissa bits (ggml's nearest_int).
inline int nearest_int(float v) {
  const float t = v + 12582912.f;
  int32_t i;
  std::memcpy(&i, &t, 4);
  return (i & 0x007fffff) - 0x00400000;
}

// Runs FN(first_block, end_block) over NB blocks, in parallel when there are many.
void for_blocks(int64_t nb, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (nb <= grain) {
    fn(0, nb);
    return;
  }
  at::parallel_for(0, nb, grain, fn);
}

// The 6-bit scale and min of sub-block J in a Q4_K / Q5_K scales[12] array.
inline void k4_scale_min(int j, const uint8_t* q, uint8_t& sc, uint8_t& m) {
  if (j < 4) {
    sc = q[j] & 63;
    m = q[j + 4] & 63;
  } else {
    sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}
// Packs eight 6-bit scales and mins into scales[12] (inverse of k4_scale_min).
inline void k4_pack(const uint8_t* ls, const uint8_t* lm, uint8_t* out) {
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      out[j] = ls[j];
      out[j + 4] = lm[j];
    } else {
      out[j + 4] = (ls[j] & 0xF) | ((lm[j] & 0xF) << 4);
      out[j - 4] |= (ls[j] >> 4) << 6;
      out[j] |= (lm[j] >> 4) << 6;
    }
  }
}
// The 6-bit scale of sub-block J (0..15) in a Q3_K scales[12] array, minus 32.
inline int k3_scale(int j, const uint8_t* s) {
  const int lo = j < 8 ? (s[j] & 0xF) : (s[j - 8] >> 4);
  const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
  return (lo | (hi << 4)) - 32;
}
inline void k3_pack(const int* l6, uint8_t* s) {  // l6: sixteen values 0..63
  std::memset(s, 0, 12);
  for (int j = 0; j < 16; ++j) {
    const int l = l6[j];
    if (j < 8)
      s[j] = l & 0xF;
    else
      s[j - 8] |= (l & 0xF) << 4;
    s[8 + j % 4] |= (l >> 4) << (2 * (j / 4));
  }
}

// ---- decoders (one block each) ---------------------------------------------------------
void dq_q4_0(const uint8_t* b, float* y) {
  const float d = rd_half(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = ((qs[j] & 0xF) - 8) * d;
    y[j + 16] = ((qs[j] >> 4) - 8) * d;
  }
}
void dq_q4_1(const uint8_t* b, float* y) {
  const float d = rd_half(b), m = rd_half(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = (qs[j] & 0xF) * d + m;
    y[j + 16] = (qs[j] >> 4) * d + m;
  }
}
void dq_q5_0(const uint8_t* b, float* y) {
  const float d = rd_half(b);
  uint32_t qh;
  std::memcpy(&qh, b + 2, 4);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
    y[j] = (((qs[j] & 0xF) | h0) - 16) * d;
    y[j + 16] = (((qs[j] >> 4) | h1) - 16) * d;
  }
}
void dq_q5_1(const uint8_t* b, float* y) {
  const float d = rd_half(b), m = rd_half(b + 2);
  uint32_t qh;
  std::memcpy(&qh, b + 4, 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    const int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
    y[j] = ((qs[j] & 0xF) | h0) * d + m;
    y[j + 16] = ((qs[j] >> 4) | h1) * d + m;
  }
}
void dq_q8_0(const uint8_t* b, float* y) {
  const float d = rd_half(b);
  const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
  for (int j = 0; j < 32; ++j) y[j] = qs[j] * d;
}
void dq_q8_1(const uint8_t* b, float* y) {  // d, s (= d * sum of quants), qs[32]
  const float d = rd_half(b);
  const int8_t* qs = reinterpret_cast<const int8_t*>(b + 4);
  for (int j = 0; j < 32; ++j) y[j] = qs[j] * d;
}
void dq_q2_k(const uint8_t* b, float* y) {
  const uint8_t* sc = b;
  const uint8_t* qs = b + 16;
  const float d = rd_half(b + 80), dmin = rd_half(b + 82);
  for (int c = 0; c < 2; ++c)      // 128-element halves, 32 bytes of qs each
    for (int j = 0; j < 4; ++j)    // 2-bit planes
      for (int h = 0; h < 2; ++h) {  // 16-element sub-blocks
        const int is = c * 8 + j * 2 + h;
        const float dl = d * (sc[is] & 0xF), ml = dmin * (sc[is] >> 4);
        const uint8_t* q = qs + 32 * c + 16 * h;
        float* o = y + 16 * is;
        for (int l = 0; l < 16; ++l) o[l] = dl * ((q[l] >> (2 * j)) & 3) - ml;
      }
}
void dq_q3_k(const uint8_t* b, float* y) {
  const uint8_t* hm = b;
  const uint8_t* qs = b + 32;
  const uint8_t* sc = b + 96;
  const float d = rd_half(b + 108);
  for (int c = 0; c < 2; ++c)
    for (int j = 0; j < 4; ++j)
      for (int h = 0; h < 2; ++h) {
        const int is = c * 8 + j * 2 + h;
        const float dl = d * k3_scale(is, sc);
        const uint8_t* q = qs + 32 * c + 16 * h;
        const uint8_t* hh = hm + 16 * h;
        const int bit = 4 * c + j;
        float* o = y + 16 * is;
        for (int l = 0; l < 16; ++l)
          o[l] = dl * (((q[l] >> (2 * j)) & 3) - (((hh[l] >> bit) & 1) ? 0 : 4));
      }
}
void dq_q4_k(const uint8_t* b, float* y) {
  const float d = rd_half(b), dmin = rd_half(b + 2);
  const uint8_t* sc = b + 4;
  const uint8_t* qs = b + 16;
  for (int c = 0; c < 4; ++c) {
    uint8_t s, m;
    k4_scale_min(2 * c, sc, s, m);
    const float d1 = d * s, m1 = dmin * m;
    k4_scale_min(2 * c + 1, sc, s, m);
    const float d2 = d * s, m2 = dmin * m;
    const uint8_t* q = qs + 32 * c;
    float* o = y + 64 * c;
    for (int l = 0; l < 32; ++l) o[l] = d1 * (q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) o[l + 32] = d2 * (q[l] >> 4) - m2;
  }
}
void dq_q5_k(const uint8_t* b, float* y) {
  const float d = rd_half(b), dmin = rd_half(b + 2);
  const uint8_t* sc = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + 48;
  for (int c = 0; c < 4; ++c) {
    uint8_t s, m;
    k4_scale_min(2 * c, sc, s, m);
    const float d1 = d * s, m1 = dmin * m;
    k4_scale_min(2 * c + 1, sc, s, m);
    const float d2 = d * s, m2 = dmin * m;
    const uint8_t* q = qs + 32 * c;
    const int b1 = 2 * c, b2 = 2 * c + 1;
    float* o = y + 64 * c;
    for (int l = 0; l < 32; ++l) o[l] = d1 * ((q[l] & 0xF) + (((qh[l] >> b1) & 1) ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l) o[l + 32] = d2 * ((q[l] >> 4) + (((qh[l] >> b2) & 1) ? 16 : 0)) - m2;
  }
}
void dq_q6_k(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = rd_half(b + 208);
  for (int c = 0; c < 2; ++c) {
    const uint8_t* l0 = ql + 64 * c;
    const uint8_t* h0 = qh + 32 * c;
    const int8_t* s = sc + 8 * c;
    float* o = y + 128 * c;
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((l0[l] & 0xF) | (((h0[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((l0[l + 32] & 0xF) | (((h0[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((l0[l] >> 4) | (((h0[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((l0[l + 32] >> 4) | (((h0[l] >> 6) & 3) << 4)) - 32;
      o[l] = d * s[is] * q1;
      o[l + 32] = d * s[is + 2] * q2;
      o[l + 64] = d * s[is + 4] * q3;
      o[l + 96] = d * s[is + 6] * q4;
    }
  }
}
void dq_q8_k(const uint8_t* b, float* y) {
  float d;
  std::memcpy(&d, b, 4);
  const int8_t* qs = reinterpret_cast<const int8_t*>(b + 4);
  for (int j = 0; j < kQKK; ++j) y[j] = d * qs[j];
}

// ---- scale searches (ggml-quants.c's make_*_quants) ------------------------------------
// Symmetric signed search (make_qx_quants): codes in [-nmax, nmax-1], stored + nmax in L.
// rmse_type 1 weighs by x^2 unless QW gives weights; 0 is plain round-to-nearest. Returns
// the scale.
float search_signed(int n, int nmax, const float* x, int8_t* L, int rmse_type, const float* qw) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = -nmax / max;
  if (rmse_type == 0) {
    for (int i = 0; i < n; ++i) {
      const int l = nearest_int(iscale * x[i]);
      L[i] = static_cast<int8_t>(nmax + std::max(-nmax, std::min(nmax - 1, l)));
    }
    return 1 / iscale;
  }
  bool return_early = false;
  if (rmse_type < 0) {
    rmse_type = -rmse_type;
    return_early = true;
  }
  SQ_CHECK(n <= 256, "search_signed: group of " << n);
  float wbuf[256];  // the weights, computed once (same values as ggml computes per use)
  for (int i = 0; i < n; ++i)
    wbuf[i] = qw ? qw[i]
                 : rmse_type == 1 ? x[i] * x[i]
                                  : rmse_type == 2 ? 1.f : rmse_type == 3 ? std::fabs(x[i]) : std::sqrt(std::fabs(x[i]));
  auto weight = [&wbuf](int i) { return wbuf[i]; };
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = weight(i);
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 ? sumlx / suml2 : 0.0f;
  if (return_early) return suml2 > 0 ? 0.5f * (scale + 1 / iscale) : 1 / iscale;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      int l = nearest_int(iscale * x[i]);
      l = std::max(-nmax, std::min(nmax - 1, l));
      const float w = weight(i);
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * x[i]);
        L[i] = static_cast<int8_t>(nmax + std::max(-nmax, std::min(nmax - 1, l)));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// Q3_K's signed search (make_q3_quants with do_rmse): round-to-nearest from the largest
// magnitude, then coordinate-wise refinement of the x^2-weighted fit. L gets code + nmax.
float search_q3(int n, int nmax, const float* x, int8_t* L) {
  float max = 0, amax = 0;
  for (int i = 0; i < n; ++i) {
    const float ax = std::fabs(x[i]);
    if (ax > amax) {
      amax = ax;
      max = x[i];
    }
  }
  if (amax < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  const float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearest_int(iscale * x[i]);
    l = std::max(-nmax, std::min(nmax - 1, l));
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * L[i];
      if (slx > 0) {
        float sl2 = suml2 - w * L[i] * L[i];
        int nl = nearest_int(x[i] * sl2 / slx);
        nl = std::max(-nmax, std::min(nmax - 1, nl));
        if (nl != L[i]) {
          slx += w * x[i] * nl;
          sl2 += w * nl * nl;
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<int8_t>(nl);
            sumlx = slx;
            suml2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (!changed) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Asymmetric search with a min (make_qkx2_quants when LEGACY_CLAMP, make_qkx3_quants
// otherwise): codes 0..nmax, x ~ scale * L - the_min. Starts from the min/max grid, then
// tries nstep+1 grid stretches, each refit by weighted least squares (min kept <= 0).
// The two ggml variants differ only in edge handling: the qkx3 form weighs by x^2 when W
// is null, treats max <= min as flat, and clamps the scaled value before rounding.
float search_scale_min(int n, int nmax, const float* x, const float* w_in, uint8_t* L, float* the_min,
                       uint8_t* Laux, float rmin, float rdelta, int nstep, bool use_mad, bool legacy_clamp) {
  SQ_CHECK(n <= 256, "search_scale_min: group of " << n);
  float wbuf[256];  // the weights, computed once
  for (int i = 0; i < n; ++i) wbuf[i] = w_in ? w_in[i] : x[i] * x[i];
  auto wt = [&wbuf](int i) { return wbuf[i]; };
  float min = x[0], max = x[0];
  float sum_w = wt(0);
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = wt(i);
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (legacy_clamp ? (max == min) : (max <= min)) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    const int l = nearest_int(iscale * (x[i] - min));
    L[i] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    float diff = scale * L[i] + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += wt(i) * diff;
  }
  if (nstep < 1) {
    *the_min = -min;
    return scale;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    if (legacy_clamp) {
      for (int i = 0; i < n; ++i)
        Laux[i] = static_cast<uint8_t>(std::max(0, std::min(nmax, nearest_int(iscale * (x[i] - min)))));
    } else {
      for (int i = 0; i < n; ++i) {
        const float v = iscale * (x[i] - min);
        Laux[i] = static_cast<uint8_t>(v > 0 ? nearest_int(std::min(v, static_cast<float>(nmax))) : 0);
      }
    }
    for (int i = 0; i < n; ++i) {
      const int l = Laux[i];
      const float w = wt(i);
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float err = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        err += wt(i) * diff;
      }
      if (err < best_error) {
        for (int i = 0; i < n; ++i) L[i] = Laux[i];
        best_error = err;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// Non-negative search for super-block scales (make_qp_quants): codes 0..nmax of x >= 0,
// weighted by QW; a few grid stretches, then coordinate-wise refinement.
float search_positive(int n, int nmax, const float* x, uint8_t* L, const float* qw) {
  float max = 0;
  for (int i = 0; i < n; ++i) max = std::max(max, x[i]);
  if (max < kGroupMaxEps) {
    for (int i = 0; i < n; ++i) L[i] = 0;
    return 0.f;
  }
  float iscale = nmax / max;
  for (int i = 0; i < n; ++i) L[i] = static_cast<uint8_t>(nearest_int(iscale * x[i]));
  const float scale = 1 / iscale;
  float best_mse = 0;
  for (int i = 0; i < n; ++i) {
    const float diff = x[i] - scale * L[i];
    best_mse += qw[i] * diff * diff;
  }
  for (int is = -4; is <= 4; ++is) {
    if (is == 0) continue;
    const float iscale_is = (0.1f * is + nmax) / max;
    const float scale_is = 1 / iscale_is;
    float mse = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::min(nmax, nearest_int(iscale_is * x[i]));
      const float diff = x[i] - scale_is * l;
      mse += qw[i] * diff * diff;
    }
    if (mse < best_mse) {
      best_mse = mse;
      iscale = iscale_is;
    }
  }
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::min(nmax, nearest_int(iscale * x[i]));
    L[i] = static_cast<uint8_t>(l);
    const float w = qw[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = qw[i];
      float slx = sumlx - w * x[i] * L[i];
      float sl2 = suml2 - w * L[i] * L[i];
      if (slx > 0 && sl2 > 0) {
        const int nl = std::min(nmax, nearest_int(x[i] * sl2 / slx));
        if (nl != L[i]) {
          slx += w * x[i] * nl;
          sl2 += w * nl * nl;
          if (slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<uint8_t>(nl);
            sumlx = slx;
            suml2 = sl2;
            ++changed;
          }
        }
      }
    }
    if (!changed) break;
  }
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// ---- 32-element quantizers -------------------------------------------------------------
void pack_nibbles(const uint8_t* L, uint8_t* qs) {  // L[32] in 0..15
  for (int j = 0; j < 16; ++j) qs[j] = static_cast<uint8_t>(L[j] | (L[j + 16] << 4));
}
void pack_5bit(const uint8_t* L, uint8_t* qh_out, uint8_t* qs) {  // L[32] in 0..31
  uint32_t qh = 0;
  for (int j = 0; j < 16; ++j) {
    qs[j] = static_cast<uint8_t>((L[j] & 0x0F) | ((L[j + 16] & 0x0F) << 4));
    qh |= ((L[j] & 0x10u) >> 4) << j;
    qh |= ((L[j + 16] & 0x10u) >> 4) << (j + 16);
  }
  std::memcpy(qh_out, &qh, 4);
}
// Largest-magnitude element (signed), as ggml's symmetric 32-element quantizers find it.
float signed_absmax(const float* x, int n) {
  float amax = 0, max = 0;
  for (int j = 0; j < n; ++j)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  return max;
}

void q_q4_0(const float* x, uint8_t* b) {
  const float d = signed_absmax(x, kQK) / -8;
  const float id = d ? 1.0f / d : 0.0f;
  wr_half(b, d);
  uint8_t L[kQK];
  for (int j = 0; j < kQK; ++j) L[j] = static_cast<uint8_t>(std::min(15, static_cast<int>(x[j] * id + 8.5f)));
  pack_nibbles(L, b + 2);
}
void min_max(const float* x, int n, float& mn, float& mx) {
  mn = 3.402823466e+38f;
  mx = -3.402823466e+38f;
  for (int j = 0; j < n; ++j) {
    if (x[j] < mn) mn = x[j];
    if (x[j] > mx) mx = x[j];
  }
}
void q_q4_1(const float* x, uint8_t* b) {
  float mn, mx;
  min_max(x, kQK, mn, mx);
  const float d = (mx - mn) / 15;
  const float id = d ? 1.0f / d : 0.0f;
  wr_half(b, d);
  wr_half(b + 2, mn);
  uint8_t L[kQK];
  for (int j = 0; j < kQK; ++j)
    L[j] = static_cast<uint8_t>(std::min(15, static_cast<int>((x[j] - mn) * id + 0.5f)));
  pack_nibbles(L, b + 4);
}
void q_q5_0(const float* x, uint8_t* b) {
  const float d = signed_absmax(x, kQK) / -16;
  const float id = d ? 1.0f / d : 0.0f;
  wr_half(b, d);
  uint8_t L[kQK];
  for (int j = 0; j < kQK; ++j) L[j] = static_cast<uint8_t>(std::min(31, static_cast<int>(x[j] * id + 16.5f)));
  pack_5bit(L, b + 2, b + 6);
}
void q_q5_1(const float* x, uint8_t* b) {
  float mn, mx;
  min_max(x, kQK, mn, mx);
  const float d = (mx - mn) / 31;
  const float id = d ? 1.0f / d : 0.0f;
  wr_half(b, d);
  wr_half(b + 2, mn);
  uint8_t L[kQK];
  for (int j = 0; j < kQK; ++j) L[j] = static_cast<uint8_t>(static_cast<int>((x[j] - mn) * id + 0.5f));
  pack_5bit(L, b + 4, b + 8);
}
void q_q8_0(const float* x, uint8_t* b) {
  float amax = 0;
  for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127;
  const float id = d ? 1.0f / d : 0.0f;
  wr_half(b, d);
  for (int j = 0; j < kQK; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[j] * id)));
}

// Importance-weighted 32-element versions (quantize_row_q4_0_impl etc.): the weights are
// imatrix * sqrt(sigma2 + x^2) with SIGMA2 the row's mean square.
void qw_weights(const float* x, const float* qw, float sigma2, float* w, int n) {
  for (int j = 0; j < n; ++j) w[j] = qw[j] * std::sqrt(sigma2 + x[j] * x[j]);
}
void qi_q4_0(const float* x, uint8_t* b, const float* qw, float sigma2) {
  float w[kQK];
  int8_t L[kQK];
  qw_weights(x, qw, sigma2, w, kQK);
  wr_half(b, search_signed(kQK, 8, x, L, 1, w));
  pack_nibbles(reinterpret_cast<const uint8_t*>(L), b + 2);
}
void qi_q5_0(const float* x, uint8_t* b, const float* qw, float sigma2) {
  float w[kQK];
  int8_t L[kQK];
  qw_weights(x, qw, sigma2, w, kQK);
  wr_half(b, search_signed(kQK, 16, x, L, 1, w));
  pack_5bit(reinterpret_cast<const uint8_t*>(L), b + 2, b + 6);
}
void qi_q4_1(const float* x, uint8_t* b, const float* qw, float sigma2) {
  float w[kQK], mn;
  uint8_t L[kQK], Laux[kQK];
  qw_weights(x, qw, sigma2, w, kQK);
  const float d = search_scale_min(kQK, 15, x, w, L, &mn, Laux, -0.9f, 0.05f, 36, false, false);
  wr_half(b, d);
  wr_half(b + 2, -mn);
  pack_nibbles(L, b + 4);
}
void qi_q5_1(const float* x, uint8_t* b, const float* qw, float sigma2) {
  float w[kQK], mn;
  uint8_t L[kQK], Laux[kQK];
  qw_weights(x, qw, sigma2, w, kQK);
  const float d = search_scale_min(kQK, 31, x, w, L, &mn, Laux, -0.9f, 0.05f, 36, false, false);
  wr_half(b, d);
  wr_half(b + 2, -mn);
  pack_5bit(L, b + 4, b + 8);
}

// ---- k-quant quantizers (one super-block; QW = the block's 256 imatrix entries or null) --
void pack_2bit(const uint8_t* L, uint8_t* qs) {  // 256 codes 0..3 -> 64 bytes
  for (int j = 0; j < kQKK; j += 128)
    for (int l = 0; l < 32; ++l)
      qs[j / 4 + l] =
          static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
}
float sum_sq(const float* x, int n) {
  float s = 0;
  for (int j = 0; j < n; ++j) s += x[j] * x[j];
  return s;  // callers divide afterwards, in ggml's order
}

void q_q2_k(const float* x, uint8_t* b, const float* qw) {
  uint8_t* sc = b;
  uint8_t* qs = b + 16;
  uint8_t L[kQKK], Laux[16];
  float scales[16], mins[16], w[16];
  if (!qw) {
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; ++j) {
      for (int l = 0; l < 16; ++l) w[l] = std::fabs(x[16 * j + l]);
      scales[j] = search_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.5f, 0.1f, 15, true, true);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    if (max_scale > 0) {
      const float iscale = 15.f / max_scale;
      for (int j = 0; j < 16; ++j) sc[j] = static_cast<uint8_t>(nearest_int(iscale * scales[j]));
      wr_half(b + 80, max_scale / 15.f);
    } else {
      std::memset(sc, 0, 16);
      wr_half(b + 80, 0.f);
    }
    if (max_min > 0) {
      const float iscale = 15.f / max_min;
      for (int j = 0; j < 16; ++j) sc[j] = static_cast<uint8_t>(sc[j] | (nearest_int(iscale * mins[j]) << 4));
      wr_half(b + 82, max_min / 15.f);
    } else {
      wr_half(b + 82, 0.f);
    }
  } else {
    const float sigma2 = sum_sq(x, kQKK) / kQKK;
    float sw[16];
    uint8_t Ls[16], Lm[16];
    for (int j = 0; j < 16; ++j) {
      qw_weights(x + 16 * j, qw + 16 * j, sigma2, w, 16);
      sw[j] = 0;
      for (int l = 0; l < 16; ++l) sw[j] += w[l];
      scales[j] = search_scale_min(16, 3, x + 16 * j, w, L + 16 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false, false);
    }
    const float dm = search_positive(16, 15, scales, Ls, sw);
    const float mm = search_positive(16, 15, mins, Lm, sw);
    wr_half(b + 80, dm);
    wr_half(b + 82, mm);
    for (int j = 0; j < 16; ++j) sc[j] = static_cast<uint8_t>(Ls[j] | (Lm[j] << 4));
  }
  const float d = rd_half(b + 80), dmin = rd_half(b + 82);
  for (int j = 0; j < 16; ++j) {
    const float dl = d * (sc[j] & 0xF);
    if (!dl) continue;
    const float ml = dmin * (sc[j] >> 4);
    for (int i = 0; i < 16; ++i)
      L[16 * j + i] = static_cast<uint8_t>(std::max(0, std::min(3, nearest_int((x[16 * j + i] + ml) / dl))));
  }
  pack_2bit(L, qs);
}

void q_q3_k(const float* x, uint8_t* b, const float* qw) {
  uint8_t* hm = b;
  uint8_t* qs = b + 32;
  uint8_t* sc = b + 96;
  int8_t L[kQKK];
  float scales[16];
  if (!qw) {
    float max_scale = 0, amax = 0;
    for (int j = 0; j < 16; ++j) {
      scales[j] = search_q3(16, 4, x + 16 * j, L + 16 * j);
      const float a = std::fabs(scales[j]);
      if (a > amax) {
        amax = a;
        max_scale = scales[j];
      }
    }
    std::memset(sc, 0, 12);
    if (max_scale) {
      const float iscale = -32.f / max_scale;
      int l6[16];
      for (int j = 0; j < 16; ++j) {
        const int8_t l = static_cast<int8_t>(nearest_int(iscale * scales[j]));
        l6[j] = std::max(-32, std::min(31, static_cast<int>(l))) + 32;
      }
      k3_pack(l6, sc);
      wr_half(b + 108, 1 / iscale);
    } else {
      wr_half(b + 108, 0.f);
    }
  } else {
    const float sigma2 = 2 * sum_sq(x, kQKK) / kQKK;
    float w[16], sw[16];
    for (int j = 0; j < 16; ++j) {
      qw_weights(x + 16 * j, qw + 16 * j, sigma2, w, 16);
      float s = 0;
      for (int l = 0; l < 16; ++l) s += w[l];
      sw[j] = s;
      scales[j] = search_signed(16, 4, x + 16 * j, L + 16 * j, 1, w);
    }
    int8_t Ls[16];
    const float d_block = search_signed(16, 32, scales, Ls, 1, sw);
    int l6[16];
    for (int j = 0; j < 16; ++j) l6[j] = Ls[j];
    k3_pack(l6, sc);
    wr_half(b + 108, d_block);
  }
  const float dall = rd_half(b + 108);
  for (int j = 0; j < 16; ++j) {
    const float d = dall * k3_scale(j, sc);
    if (!d) continue;
    for (int i = 0; i < 16; ++i)
      L[16 * j + i] = static_cast<int8_t>(std::max(-4, std::min(3, nearest_int(x[16 * j + i] / d))) + 4);
  }
  // The third bit of element j goes to hmask[j % 32], bit j / 32.
  std::memset(hm, 0, 32);
  uint8_t low[kQKK];
  for (int j = 0; j < kQKK; ++j) {
    int l = L[j];
    if (l > 3) {
      hm[j % 32] = static_cast<uint8_t>(hm[j % 32] | (1 << (j / 32)));
      l -= 4;
    }
    low[j] = static_cast<uint8_t>(l);
  }
  pack_2bit(low, qs);
}

// Shared tail of Q4_K and Q5_K: scales/mins packed, d/dmin stored, codes recomputed from
// the stored (fp16) values.
void k4_codes(const float* x, const uint8_t* b, int nmax, uint8_t* L) {
  const float d0 = rd_half(b), m0 = rd_half(b + 2);
  for (int j = 0; j < 8; ++j) {
    uint8_t s, m;
    k4_scale_min(j, b + 4, s, m);
    const float d = d0 * s;
    if (!d) continue;
    const float dm = m0 * m;
    for (int i = 0; i < 32; ++i)
      L[32 * j + i] = static_cast<uint8_t>(std::max(0, std::min(nmax, nearest_int((x[32 * j + i] + dm) / d))));
  }
}
// The scale/min search of Q4_K / Q5_K (NMAX 15 / 31); fills b[0..16) and L.
void k4_search(const float* x, uint8_t* b, const float* qw, int nmax, uint8_t* L) {
  float scales[8], mins[8], w[32];
  uint8_t Laux[32], ls[8], lm[8];
  if (!qw) {
    const float rmin = nmax == 15 ? -1.f : -0.5f;
    const int nstep = nmax == 15 ? 20 : 15;
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
      const float av_x = std::sqrt(sum_sq(x + 32 * j, 32) / 32);
      for (int l = 0; l < 32; ++l) w[l] = av_x + std::fabs(x[32 * j + l]);
      scales[j] = search_scale_min(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, rmin, 0.1f, nstep, false, true);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; ++j) {
      ls[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_scale * scales[j])));
      lm[j] = std::min<uint8_t>(63, static_cast<uint8_t>(nearest_int(inv_min * mins[j])));
    }
    k4_pack(ls, lm, b + 4);
    wr_half(b, max_scale / 63.f);
    wr_half(b + 2, max_min / 63.f);
  } else {
    const float sigma2 = 2 * sum_sq(x, kQKK) / kQKK;
    float sw[8];
    for (int j = 0; j < 8; ++j) {
      qw_weights(x + 32 * j, qw + 32 * j, sigma2, w, 32);
      float s = 0;
      for (int l = 0; l < 32; ++l) s += w[l];
      sw[j] = s;
      scales[j] = search_scale_min(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j], Laux, -0.9f, 0.05f, 36, false, false);
    }
    const float d_block = search_positive(8, 63, scales, ls, sw);
    const float m_block = search_positive(8, 63, mins, lm, sw);
    for (int j = 0; j < 8; ++j) {
      ls[j] = std::min<uint8_t>(63, ls[j]);
      lm[j] = std::min<uint8_t>(63, lm[j]);
    }
    k4_pack(ls, lm, b + 4);
    wr_half(b, d_block);
    wr_half(b + 2, m_block);
  }
  k4_codes(x, b, nmax, L);
}

void q_q4_k(const float* x, uint8_t* b, const float* qw) {
  uint8_t L[kQKK];
  k4_search(x, b, qw, 15, L);
  uint8_t* q = b + 16;
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) q[32 * c + l] = static_cast<uint8_t>(L[64 * c + l] | (L[64 * c + l + 32] << 4));
}

void q_q5_k(const float* x, uint8_t* b, const float* qw) {
  uint8_t L[kQKK];
  k4_search(x, b, qw, 31, L);
  uint8_t* qh = b + 16;
  uint8_t* ql = b + 48;
  std::memset(qh, 0, 32);
  for (int c = 0; c < 4; ++c)
    for (int j = 0; j < 32; ++j) {
      int l1 = L[64 * c + j], l2 = L[64 * c + j + 32];
      if (l1 > 15) {
        l1 -= 16;
        qh[j] = static_cast<uint8_t>(qh[j] | (1 << (2 * c)));
      }
      if (l2 > 15) {
        l2 -= 16;
        qh[j] = static_cast<uint8_t>(qh[j] | (2 << (2 * c)));
      }
      ql[32 * c + j] = static_cast<uint8_t>(l1 | (l2 << 4));
    }
}

void q_q6_k(const float* x, uint8_t* b, const float* qw) {
  int8_t L[kQKK];
  float scales[16];
  float max_scale = 0, max_abs = 0;
  for (int ib = 0; ib < 16; ++ib) {
    scales[ib] = search_signed(16, 32, x + 16 * ib, L + 16 * ib, 1, qw ? qw + 16 * ib : nullptr);
    const float a = std::fabs(scales[ib]);
    if (a > max_abs) {
      max_abs = a;
      max_scale = scales[ib];
    }
  }
  if (max_abs < kGroupMaxEps) {
    std::memset(b, 0, 210);
    return;
  }
  int8_t* sc = reinterpret_cast<int8_t*>(b + 192);
  const float iscale = -128.f / max_scale;
  wr_half(b + 208, 1 / iscale);
  for (int ib = 0; ib < 16; ++ib) sc[ib] = static_cast<int8_t>(std::min(127, nearest_int(iscale * scales[ib])));
  const float d0 = rd_half(b + 208);
  for (int j = 0; j < 16; ++j) {
    const float d = d0 * sc[j];
    if (!d) continue;
    for (int i = 0; i < 16; ++i)
      L[16 * j + i] = static_cast<int8_t>(std::max(-32, std::min(31, nearest_int(x[16 * j + i] / d))) + 32);
  }
  uint8_t* ql = b;
  uint8_t* qh = b + 128;
  for (int c = 0; c < 2; ++c) {
    const int8_t* Lc = L + 128 * c;
    for (int l = 0; l < 32; ++l) {
      const int a0 = Lc[l], a1 = Lc[l + 32], a2 = Lc[l + 64], a3 = Lc[l + 96];
      ql[64 * c + l] = static_cast<uint8_t>((a0 & 0xF) | ((a2 & 0xF) << 4));
      ql[64 * c + l + 32] = static_cast<uint8_t>((a1 & 0xF) | ((a3 & 0xF) << 4));
      qh[32 * c + l] = static_cast<uint8_t>((a0 >> 4) | ((a1 >> 4) << 2) | ((a2 >> 4) << 4) | ((a3 >> 4) << 6));
    }
  }
}

void q_q8_k(const float* x, uint8_t* b) {
  float max = 0, amax = 0;
  for (int j = 0; j < kQKK; ++j) {
    const float ax = std::fabs(x[j]);
    if (ax > amax) {
      amax = ax;
      max = x[j];
    }
  }
  std::memset(b, 0, 292);
  if (!amax) return;  // d = 0, quants and sums zero
  int8_t* qs = reinterpret_cast<int8_t*>(b + 4);
  const float iscale = -127.f / max;
  for (int j = 0; j < kQKK; ++j) qs[j] = static_cast<int8_t>(std::min(127, nearest_int(iscale * x[j])));
  for (int j = 0; j < 16; ++j) {
    int sum = 0;
    for (int i = 0; i < 16; ++i) sum += qs[16 * j + i];
    const int16_t s16 = static_cast<int16_t>(sum);
    std::memcpy(b + 4 + kQKK + 2 * j, &s16, 2);
  }
  const float d = 1 / iscale;
  std::memcpy(b, &d, 4);
}

const GgmlTypeInfo& checked(GgmlType t, int64_t n, const char* what) {
  const GgmlTypeInfo& info = ggml_type_info(t);
  SQ_CHECK(n >= 0 && n % info.block == 0, what << " " << n << " elements of ggml type " << info.name
                                                << ": not a multiple of its block of " << info.block);
  return info;
}

}  // namespace

// ---- type table ------------------------------------------------------------------------
const GgmlTypeInfo* ggml_type_info(uint32_t t) {
  for (const GgmlTypeInfo& i : kTypes)
    if (static_cast<uint32_t>(i.type) == t) return &i;
  return nullptr;
}

const GgmlTypeInfo& ggml_type_info(GgmlType t) {
  const GgmlTypeInfo* i = ggml_type_info(static_cast<uint32_t>(t));
  SQ_CHECK(i, "unknown ggml type id " << static_cast<uint32_t>(t));
  return *i;
}

std::string ggml_type_name(uint32_t t) {
  const GgmlTypeInfo* i = ggml_type_info(t);
  return i ? std::string(i->name) : "type " + std::to_string(t);
}

GgmlType ggml_type_from_name(const std::string& name) {
  std::string low = name;
  for (char& c : low) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const GgmlTypeInfo& i : kTypes) {
    std::string n = i.name;
    for (char& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (i.writable && n == low) return i.type;
  }
  throw UsageError("unknown or unwritable ggml type '" + name + "' (writable: " +
                   names_where(&GgmlTypeInfo::writable) + ")");
}

uint64_t ggml_nbytes(GgmlType t, int64_t n) {
  const GgmlTypeInfo& info = checked(t, n, "size of");
  return static_cast<uint64_t>(n / info.block) * static_cast<uint64_t>(info.block_bytes);
}

// ---- fp16 / bf16 -----------------------------------------------------------------------
uint16_t ggml_fp32_to_fp16(float f) {
  const uint32_t x = f2u(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000);
  const uint32_t ax = x & 0x7fffffff;
  if (ax > 0x7f800000) return sign | 0x7e00;    // NaN -> quiet NaN
  if (ax >= 0x477ff000) return sign | 0x7c00;   // >= 65520 rounds to infinity
  if (ax >= 0x38800000) {                       // normal half (>= 2^-14)
    const uint32_t r = ax - (112u << 23);       // rebias the exponent (127 -> 15)
    return static_cast<uint16_t>(sign | ((r + 0xfff + ((r >> 13) & 1)) >> 13));
  }
  if (ax < 0x33000000) return sign;             // <= 2^-25 rounds (to even) to zero
  // Subnormal half: the value in units of 2^-24, rounded half to even.
  const uint32_t e = ax >> 23, m = (ax & 0x7fffff) | 0x800000;
  const uint32_t shift = 126 - e;               // 14..24
  uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (q & 1))) ++q;
  return static_cast<uint16_t>(sign | q);
}

float ggml_fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e == 0x1f) return u2f(sign | 0x7f800000 | (m << 13));  // inf / NaN
  if (e == 0) {
    if (m == 0) return u2f(sign);
    const float v = static_cast<float>(m) * 5.9604644775390625e-8f;  // m * 2^-24, exact
    return sign ? -v : v;
  }
  return u2f(sign | ((e + 112) << 23) | (m << 13));
}

uint16_t ggml_fp32_to_bf16(float f) {
  const uint32_t u = f2u(f);
  if ((u & 0x7fffffff) > 0x7f800000) return static_cast<uint16_t>((u >> 16) | 64);  // quiet NaN
  return static_cast<uint16_t>((u + (0x7fff + ((u >> 16) & 1))) >> 16);
}

float ggml_bf16_to_fp32(uint16_t h) { return u2f(static_cast<uint32_t>(h) << 16); }

// ---- dequantize ------------------------------------------------------------------------
void ggml_dequantize(GgmlType t, const uint8_t* src, float* dst, int64_t n) {
  const GgmlTypeInfo& info = checked(t, n, "dequantizing");
  SQ_CHECK(info.readable, "ggml type " << info.name << " is not supported for reading (readable: "
                                       << names_where(&GgmlTypeInfo::readable) << ")");
  const int64_t nb = n / info.block, bb = info.block_bytes, be = info.block;
  void (*block_fn)(const uint8_t*, float*) = nullptr;
  switch (t) {
    case GgmlType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case GgmlType::F16:
      for_blocks(n, 1 << 16, [&](int64_t a, int64_t e) {
        for (int64_t i = a; i < e; ++i) {
          uint16_t h;
          std::memcpy(&h, src + 2 * i, 2);
          dst[i] = ggml_fp16_to_fp32(h);
        }
      });
      return;
    case GgmlType::BF16:
      for_blocks(n, 1 << 16, [&](int64_t a, int64_t e) {
        for (int64_t i = a; i < e; ++i) {
          uint16_t h;
          std::memcpy(&h, src + 2 * i, 2);
          dst[i] = ggml_bf16_to_fp32(h);
        }
      });
      return;
    case GgmlType::F64:
      for (int64_t i = 0; i < n; ++i) {
        double v;
        std::memcpy(&v, src + 8 * i, 8);
        dst[i] = static_cast<float>(v);
      }
      return;
    case GgmlType::I8:
      for (int64_t i = 0; i < n; ++i) dst[i] = static_cast<int8_t>(src[i]);
      return;
    case GgmlType::I16:
      for (int64_t i = 0; i < n; ++i) {
        int16_t v;
        std::memcpy(&v, src + 2 * i, 2);
        dst[i] = v;
      }
      return;
    case GgmlType::I32:
      for (int64_t i = 0; i < n; ++i) {
        int32_t v;
        std::memcpy(&v, src + 4 * i, 4);
        dst[i] = static_cast<float>(v);
      }
      return;
    case GgmlType::I64:
      for (int64_t i = 0; i < n; ++i) {
        int64_t v;
        std::memcpy(&v, src + 8 * i, 8);
        dst[i] = static_cast<float>(v);
      }
      return;
    case GgmlType::Q4_0: block_fn = dq_q4_0; break;
    case GgmlType::Q4_1: block_fn = dq_q4_1; break;
    case GgmlType::Q5_0: block_fn = dq_q5_0; break;
    case GgmlType::Q5_1: block_fn = dq_q5_1; break;
    case GgmlType::Q8_0: block_fn = dq_q8_0; break;
    case GgmlType::Q8_1: block_fn = dq_q8_1; break;
    case GgmlType::Q2_K: block_fn = dq_q2_k; break;
    case GgmlType::Q3_K: block_fn = dq_q3_k; break;
    case GgmlType::Q4_K: block_fn = dq_q4_k; break;
    case GgmlType::Q5_K: block_fn = dq_q5_k; break;
    case GgmlType::Q6_K: block_fn = dq_q6_k; break;
    case GgmlType::Q8_K: block_fn = dq_q8_k; break;
    default: break;
  }
  SQ_CHECK(block_fn, "ggml type " << info.name << " has no decoder");
  for_blocks(nb, be == kQK ? 2048 : 256, [&](int64_t a, int64_t e) {
    for (int64_t i = a; i < e; ++i) block_fn(src + i * bb, dst + i * be);
  });
}

// ---- quantize --------------------------------------------------------------------------
void ggml_quantize(GgmlType t, const float* src, uint8_t* dst, int64_t n, const float* imatrix) {
  const GgmlTypeInfo& info = checked(t, n, "quantizing");
  SQ_CHECK(info.writable, "ggml type " << info.name << " is not supported for writing (writable: "
                                       << names_where(&GgmlTypeInfo::writable) << ")");
  const int64_t nb = n / info.block, bb = info.block_bytes, be = info.block;
  switch (t) {
    case GgmlType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case GgmlType::F16:
    case GgmlType::BF16: {
      const bool half = t == GgmlType::F16;
      for_blocks(n, 1 << 16, [&](int64_t a, int64_t e) {
        for (int64_t i = a; i < e; ++i) {
          const uint16_t h = half ? ggml_fp32_to_fp16(src[i]) : ggml_fp32_to_bf16(src[i]);
          std::memcpy(dst + 2 * i, &h, 2);
        }
      });
      return;
    }
    default: break;
  }
  std::function<void(const float*, uint8_t*, const float*)> fn;
  switch (t) {
    case GgmlType::Q2_K: fn = q_q2_k; break;
    case GgmlType::Q3_K: fn = q_q3_k; break;
    case GgmlType::Q4_K: fn = q_q4_k; break;
    case GgmlType::Q5_K: fn = q_q5_k; break;
    case GgmlType::Q6_K: fn = q_q6_k; break;
    case GgmlType::Q8_K: fn = [](const float* x, uint8_t* b, const float*) { q_q8_k(x, b); }; break;
    case GgmlType::Q8_0: fn = [](const float* x, uint8_t* b, const float*) { q_q8_0(x, b); }; break;
    default: {
      // Q4_0 / Q4_1 / Q5_0 / Q5_1: round-to-nearest, or ggml's weighted search with an
      // imatrix (sigma2 = mean square of the whole row of N elements).
      void (*rtn)(const float*, uint8_t*) = nullptr;
      void (*wtd)(const float*, uint8_t*, const float*, float) = nullptr;
      if (t == GgmlType::Q4_0) rtn = q_q4_0, wtd = qi_q4_0;
      if (t == GgmlType::Q4_1) rtn = q_q4_1, wtd = qi_q4_1;
      if (t == GgmlType::Q5_0) rtn = q_q5_0, wtd = qi_q5_0;
      if (t == GgmlType::Q5_1) rtn = q_q5_1, wtd = qi_q5_1;
      SQ_CHECK(rtn, "ggml type " << info.name << " has no quantizer");
      if (!imatrix) {
        fn = [rtn](const float* x, uint8_t* b, const float*) { rtn(x, b); };
      } else {
        float s = 0;
        for (int64_t j = 0; j < n; ++j) s += src[j] * src[j];
        const float sigma2 = n ? s / n : 0.f;
        fn = [wtd, sigma2](const float* x, uint8_t* b, const float* qw) { wtd(x, b, qw, sigma2); };
      }
    }
  }
  for_blocks(nb, be == kQK ? 1024 : 32, [&](int64_t a, int64_t e) {
    for (int64_t i = a; i < e; ++i) fn(src + i * be, dst + i * bb, imatrix ? imatrix + i * be : nullptr);
  });
}

// ---- encoders from chosen codes --------------------------------------------------------
double ggml_encode_codes(GgmlType t, const uint8_t* codes, const float* scale, const float* zero, int64_t n,
                         uint8_t* dst) {
  const GgmlTypeInfo& info = checked(t, n, "encoding");
  int bits = 0;
  bool symmetric = false;
  switch (t) {
    case GgmlType::Q4_0: bits = 4, symmetric = true; break;
    case GgmlType::Q5_0: bits = 5, symmetric = true; break;
    case GgmlType::Q8_0: bits = 8, symmetric = true; break;
    case GgmlType::Q4_1: bits = 4; break;
    case GgmlType::Q5_1: bits = 5; break;
    default: SQ_FAIL("ggml_encode_codes: ggml type " << info.name << " is not one of q4_0, q4_1, q5_0, q5_1, q8_0");
  }
  const int qmax = (1 << bits) - 1, zsym = 1 << (bits - 1);
  const int64_t ng = n / kQK;
  double worst = 0;
  float y[kQK];
  for (int64_t g = 0; g < ng; ++g) {
    const float s = scale[g], z = zero[g];
    const uint8_t* c = codes + g * kQK;
    uint8_t* b = dst + g * info.block_bytes;
    SQ_CHECK(std::isfinite(s) && as_half(s) == s,
             "ggml_encode_codes (" << info.name << "): scale " << s << " of group " << g << " is not an fp16 value");
    SQ_CHECK(std::isfinite(z), "ggml_encode_codes (" << info.name << "): zero of group " << g << " is not finite");
    if (symmetric)
      SQ_CHECK(z == static_cast<float>(zsym), "ggml_encode_codes (" << info.name << "): group " << g << " has zero "
                                                                    << z << ", the type's zero is " << zsym);
    for (int j = 0; j < kQK; ++j)
      SQ_CHECK(c[j] <= qmax, "ggml_encode_codes (" << info.name << "): code " << int(c[j]) << " at " << g * kQK + j
                                                   << " exceeds " << qmax);
    wr_half(b, s);
    switch (t) {
      case GgmlType::Q4_0: pack_nibbles(c, b + 2); break;
      case GgmlType::Q5_0: pack_5bit(c, b + 2, b + 6); break;
      case GgmlType::Q8_0:
        for (int j = 0; j < kQK; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(c[j] - 128));
        break;
      case GgmlType::Q4_1: {
        const float m = -s * z;
        SQ_CHECK(std::fabs(m) < 65504.f, "ggml_encode_codes (" << info.name << "): min " << m << " of group " << g
                                                               << " overflows fp16");
        wr_half(b + 2, m);
        pack_nibbles(c, b + 4);
        break;
      }
      case GgmlType::Q5_1: {
        const float m = -s * z;
        SQ_CHECK(std::fabs(m) < 65504.f, "ggml_encode_codes (" << info.name << "): min " << m << " of group " << g
                                                               << " overflows fp16");
        wr_half(b + 2, m);
        pack_5bit(c, b + 4, b + 8);
        break;
      }
      default: break;
    }
    ggml_dequantize(t, b, y, kQK);
    for (int j = 0; j < kQK; ++j) {
      const double want = static_cast<double>(s) * (static_cast<double>(c[j]) - static_cast<double>(z));
      worst = std::max(worst, std::fabs(static_cast<double>(y[j]) - want));
    }
  }
  return worst;
}

// ---- block fields both ways -------------------------------------------------------------
int64_t ggml_sub_block(GgmlType t) {
  return t == GgmlType::Q2_K || t == GgmlType::Q3_K || t == GgmlType::Q6_K ? 16 : 32;
}

namespace {

// Element e of a 2-bit plane layout (Q2_K qs, Q3_K low bits): byte 32*(e/128) + e%32, shift 2*((e%128)/32).
inline int plane2(const uint8_t* qs, int e) { return (qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3; }

void fields_check(bool ok, GgmlType t, int64_t blk, const char* what) {
  SQ_CHECK(ok, "ggml_encode_fields (" << ggml_type_info(t).name << "): block " << blk << ": " << what);
}

}  // namespace

void ggml_decode_fields(GgmlType t, const uint8_t* src, int64_t n, uint8_t* codes, float* d, float* dmin, int8_t* sc,
                        int8_t* mn) {
  const GgmlTypeInfo& info = checked(t, n, "decoding fields of");
  const int64_t nb = n / info.block, bb = info.block_bytes;
  for (int64_t i = 0; i < nb; ++i) {
    const uint8_t* b = src + i * bb;
    uint8_t* c = codes + i * info.block;
    switch (t) {
      case GgmlType::Q4_0:
      case GgmlType::Q4_1: {
        const int off = t == GgmlType::Q4_0 ? 2 : 4;
        d[i] = rd_half(b);
        if (t == GgmlType::Q4_1) dmin[i] = rd_half(b + 2);
        for (int j = 0; j < 16; ++j) c[j] = b[off + j] & 0xF, c[j + 16] = b[off + j] >> 4;
        break;
      }
      case GgmlType::Q5_0:
      case GgmlType::Q5_1: {
        const int off = t == GgmlType::Q5_0 ? 2 : 4;
        d[i] = rd_half(b);
        if (t == GgmlType::Q5_1) dmin[i] = rd_half(b + 2);
        uint32_t qh;
        std::memcpy(&qh, b + off, 4);
        const uint8_t* qs = b + off + 4;
        for (int j = 0; j < 16; ++j) {
          c[j] = static_cast<uint8_t>((qs[j] & 0xF) | (((qh >> j) << 4) & 0x10));
          c[j + 16] = static_cast<uint8_t>((qs[j] >> 4) | ((qh >> (j + 12)) & 0x10));
        }
        break;
      }
      case GgmlType::Q8_0:
        d[i] = rd_half(b);
        for (int j = 0; j < 32; ++j) c[j] = static_cast<uint8_t>(static_cast<int8_t>(b[2 + j]) + 128);
        break;
      case GgmlType::Q2_K:
        d[i] = rd_half(b + 80);
        dmin[i] = rd_half(b + 82);
        for (int j = 0; j < 16; ++j) sc[16 * i + j] = b[j] & 0xF, mn[16 * i + j] = b[j] >> 4;
        for (int e = 0; e < kQKK; ++e) c[e] = static_cast<uint8_t>(plane2(b + 16, e));
        break;
      case GgmlType::Q3_K:
        d[i] = rd_half(b + 108);
        for (int j = 0; j < 16; ++j) sc[16 * i + j] = static_cast<int8_t>(k3_scale(j, b + 96));
        for (int e = 0; e < kQKK; ++e)
          c[e] = static_cast<uint8_t>(plane2(b + 32, e) | (((b[e % 32] >> (e / 32)) & 1) << 2));
        break;
      case GgmlType::Q4_K:
      case GgmlType::Q5_K: {
        d[i] = rd_half(b);
        dmin[i] = rd_half(b + 2);
        for (int j = 0; j < 8; ++j) {
          uint8_t s6, m6;
          k4_scale_min(j, b + 4, s6, m6);
          sc[8 * i + j] = static_cast<int8_t>(s6);
          mn[8 * i + j] = static_cast<int8_t>(m6);
        }
        const bool five = t == GgmlType::Q5_K;
        const uint8_t* qs = b + (five ? 48 : 16);
        for (int e = 0; e < kQKK; ++e) {
          const int cc = e / 64, hi = (e % 64) / 32, l = e % 32;
          int q = hi ? qs[32 * cc + l] >> 4 : qs[32 * cc + l] & 0xF;
          if (five && ((b[16 + l] >> (2 * cc + hi)) & 1)) q += 16;
          c[e] = static_cast<uint8_t>(q);
        }
        break;
      }
      case GgmlType::Q6_K: {
        d[i] = rd_half(b + 208);
        for (int j = 0; j < 16; ++j) sc[16 * i + j] = static_cast<int8_t>(b[192 + j]);
        for (int e = 0; e < kQKK; ++e) {
          const int cc = e / 128, k = (e % 128) / 32, l = e % 32;
          const uint8_t lo = b[64 * cc + l + (k & 1) * 32];
          const int low = k < 2 ? lo & 0xF : lo >> 4;
          c[e] = static_cast<uint8_t>(low | (((b[128 + 32 * cc + l] >> (2 * k)) & 3) << 4));
        }
        break;
      }
      default: SQ_FAIL("ggml_decode_fields: ggml type " << info.name << " has no code fields here");
    }
  }
}

void ggml_encode_fields(GgmlType t, const uint8_t* codes, const float* d, const float* dmin, const int8_t* sc,
                        const int8_t* mn, int64_t n, uint8_t* dst) {
  const GgmlTypeInfo& info = checked(t, n, "encoding fields of");
  const int64_t nb = n / info.block, bb = info.block_bytes;
  auto half_ok = [&](float v) { return std::isfinite(v) && as_half(v) == v; };
  for (int64_t i = 0; i < nb; ++i) {
    uint8_t* b = dst + i * bb;
    const uint8_t* c = codes + i * info.block;
    std::memset(b, 0, static_cast<size_t>(bb));
    int qmax = 0;
    switch (t) {
      case GgmlType::Q4_0: case GgmlType::Q4_1: case GgmlType::Q4_K: qmax = 15; break;
      case GgmlType::Q5_0: case GgmlType::Q5_1: case GgmlType::Q5_K: qmax = 31; break;
      case GgmlType::Q8_0: qmax = 255; break;
      case GgmlType::Q2_K: qmax = 3; break;
      case GgmlType::Q3_K: qmax = 7; break;
      case GgmlType::Q6_K: qmax = 63; break;
      default: SQ_FAIL("ggml_encode_fields: ggml type " << info.name << " has no code fields here");
    }
    for (int64_t e = 0; e < info.block; ++e) fields_check(c[e] <= qmax, t, i, "a code exceeds the type's range");
    fields_check(half_ok(d[i]), t, i, "d is not an fp16 value");
    const bool has_min = t == GgmlType::Q4_1 || t == GgmlType::Q5_1 || t == GgmlType::Q2_K || t == GgmlType::Q4_K ||
                         t == GgmlType::Q5_K;
    if (has_min) fields_check(half_ok(dmin[i]), t, i, "dmin (or m) is not an fp16 value");
    switch (t) {
      case GgmlType::Q4_0: wr_half(b, d[i]); pack_nibbles(c, b + 2); break;
      case GgmlType::Q4_1: wr_half(b, d[i]); wr_half(b + 2, dmin[i]); pack_nibbles(c, b + 4); break;
      case GgmlType::Q5_0: wr_half(b, d[i]); pack_5bit(c, b + 2, b + 6); break;
      case GgmlType::Q5_1: wr_half(b, d[i]); wr_half(b + 2, dmin[i]); pack_5bit(c, b + 4, b + 8); break;
      case GgmlType::Q8_0:
        wr_half(b, d[i]);
        for (int j = 0; j < 32; ++j) b[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(c[j] - 128));
        break;
      case GgmlType::Q2_K:
        for (int j = 0; j < 16; ++j) {
          const int s = sc[16 * i + j], m = mn[16 * i + j];
          fields_check(s >= 0 && s <= 15 && m >= 0 && m <= 15, t, i, "a sub-block scale or min is not 0..15");
          b[j] = static_cast<uint8_t>(s | (m << 4));
        }
        pack_2bit(c, b + 16);
        wr_half(b + 80, d[i]);
        wr_half(b + 82, dmin[i]);
        break;
      case GgmlType::Q3_K: {
        int l6[16];
        for (int j = 0; j < 16; ++j) {
          const int s = sc[16 * i + j];
          fields_check(s >= -32 && s <= 31, t, i, "a sub-block scale is not -32..31");
          l6[j] = s + 32;
        }
        k3_pack(l6, b + 96);
        uint8_t low[kQKK];
        for (int e = 0; e < kQKK; ++e) {
          if (c[e] > 3) b[e % 32] = static_cast<uint8_t>(b[e % 32] | (1 << (e / 32)));
          low[e] = c[e] & 3;
        }
        pack_2bit(low, b + 32);
        wr_half(b + 108, d[i]);
        break;
      }
      case GgmlType::Q4_K:
      case GgmlType::Q5_K: {
        uint8_t ls[8], lm[8];
        for (int j = 0; j < 8; ++j) {
          const int s = sc[8 * i + j], m = mn[8 * i + j];
          fields_check(s >= 0 && s <= 63 && m >= 0 && m <= 63, t, i, "a sub-block scale or min is not 0..63");
          ls[j] = static_cast<uint8_t>(s);
          lm[j] = static_cast<uint8_t>(m);
        }
        wr_half(b, d[i]);
        wr_half(b + 2, dmin[i]);
        k4_pack(ls, lm, b + 4);
        const bool five = t == GgmlType::Q5_K;
        uint8_t* qs = b + (five ? 48 : 16);
        for (int e = 0; e < kQKK; ++e) {
          const int cc = e / 64, hi = (e % 64) / 32, l = e % 32;
          qs[32 * cc + l] = static_cast<uint8_t>(qs[32 * cc + l] | ((c[e] & 0xF) << (4 * hi)));
          if (five && c[e] > 15) b[16 + l] = static_cast<uint8_t>(b[16 + l] | (1 << (2 * cc + hi)));
        }
        break;
      }
      case GgmlType::Q6_K:
        for (int j = 0; j < 16; ++j) b[192 + j] = static_cast<uint8_t>(sc[16 * i + j]);
        for (int e = 0; e < kQKK; ++e) {
          const int cc = e / 128, k = (e % 128) / 32, l = e % 32;
          uint8_t& lo = b[64 * cc + l + (k & 1) * 32];
          lo = static_cast<uint8_t>(lo | ((c[e] & 0xF) << (k < 2 ? 0 : 4)));
          b[128 + 32 * cc + l] = static_cast<uint8_t>(b[128 + 32 * cc + l] | ((c[e] >> 4) << (2 * k)));
        }
        wr_half(b + 208, d[i]);
        break;
      default: break;
    }
  }
}

}  // namespace sq
