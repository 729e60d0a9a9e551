// io/ggml_types: the type table, fp16/bf16, decoders and quantizers against the references
// in tests/fixtures/ggml (written by tests/gguf/make_ggml_fixture.py from gguf-py and ggml's
// C library; see its manifest.json), round-trip error bounds, and the code encoders.
//
// Tolerance: every comparison with a reference is exact (bytes equal, floats bit-equal).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "sliderquant/core/error.h"
#include "sliderquant/io/ggml_types.h"

using namespace sq;

namespace {

const std::string kDir = std::string(SQ_FIXTURES_DIR) + "/ggml/";

bool exists(const std::string& name) { return std::ifstream(kDir + name).good(); }

std::vector<uint8_t> read_bytes(const std::string& name) {
  std::ifstream f(kDir + name, std::ios::binary);
  EXPECT_TRUE(f.good()) << "missing fixture " << name;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}
std::vector<float> read_f32(const std::string& name) {
  auto b = read_bytes(name);
  std::vector<float> v(b.size() / 4);
  if (!v.empty()) std::memcpy(v.data(), b.data(), v.size() * 4);
  return v;
}
uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

struct Fixture {
  nlohmann::json manifest;
  int rows = 0, n = 0;
  std::vector<float> x, imatrix;
  Fixture() {
    std::ifstream f(kDir + "manifest.json");
    manifest = nlohmann::json::parse(f);
    rows = manifest["rows"];
    n = manifest["n"];
    x = read_f32("rows.f32");
    imatrix = read_f32("imatrix.f32");
  }
};
const Fixture& fixture() {
  static Fixture f;
  return f;
}

// First differing block of two byte strings of TYPE, or -1.
int64_t first_bad_block(const std::vector<uint8_t>& a, const std::vector<uint8_t>& b, GgmlType t) {
  const int64_t bb = ggml_type_info(t).block_bytes;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    if (a[i] != b[i]) return static_cast<int64_t>(i) / bb;
  return a.size() == b.size() ? -1 : static_cast<int64_t>(std::min(a.size(), b.size())) / bb;
}

std::vector<float> gaussian(int64_t n, uint32_t seed, float std = 1.f) {
  std::mt19937 g(seed);
  std::normal_distribution<float> d(0.f, std);
  std::vector<float> v(n);
  for (auto& e : v) e = d(g);
  return v;
}

}  // namespace

// ---- type table ------------------------------------------------------------------------
TEST(GgmlTypes, TableMatchesGgml) {
  struct Row {
    uint32_t id;
    const char* name;
    int64_t block, bytes;
  };
  const Row want[] = {{0, "f32", 1, 4},        {1, "f16", 1, 2},         {2, "q4_0", 32, 18},
                      {3, "q4_1", 32, 20},     {6, "q5_0", 32, 22},      {7, "q5_1", 32, 24},
                      {8, "q8_0", 32, 34},     {9, "q8_1", 32, 36},      {10, "q2_K", 256, 84},
                      {11, "q3_K", 256, 110},  {12, "q4_K", 256, 144},   {13, "q5_K", 256, 176},
                      {14, "q6_K", 256, 210},  {15, "q8_K", 256, 292},   {16, "iq2_xxs", 256, 66},
                      {17, "iq2_xs", 256, 74}, {18, "iq3_xxs", 256, 98}, {19, "iq1_s", 256, 50},
                      {20, "iq4_nl", 32, 18},  {21, "iq3_s", 256, 110},  {22, "iq2_s", 256, 82},
                      {23, "iq4_xs", 256, 136}, {24, "i8", 1, 1},        {25, "i16", 1, 2},
                      {26, "i32", 1, 4},       {27, "i64", 1, 8},        {28, "f64", 1, 8},
                      {29, "iq1_m", 256, 56},  {30, "bf16", 1, 2},       {34, "tq1_0", 256, 54},
                      {35, "tq2_0", 256, 66},  {39, "mxfp4", 32, 17}};
  for (const Row& r : want) {
    const GgmlTypeInfo* i = ggml_type_info(r.id);
    ASSERT_NE(i, nullptr) << r.name;
    EXPECT_EQ(static_cast<uint32_t>(i->type), r.id);
    EXPECT_STREQ(i->name, r.name);
    EXPECT_EQ(i->block, r.block) << r.name;
    EXPECT_EQ(i->block_bytes, r.bytes) << r.name;
    EXPECT_EQ(ggml_type_name(r.id), r.name);
  }
  EXPECT_EQ(ggml_type_info(4u), nullptr);  // removed ids (q4_2, q4_3)
  EXPECT_EQ(ggml_type_info(77u), nullptr);
  EXPECT_EQ(ggml_type_name(77), "type 77");
  EXPECT_THROW(ggml_type_info(static_cast<GgmlType>(77)), Error);
  EXPECT_FALSE(ggml_type_info(GgmlType::IQ2_XXS).readable);
  EXPECT_TRUE(ggml_type_info(GgmlType::Q6_K).readable);
  EXPECT_TRUE(ggml_type_info(GgmlType::Q4_K).writable);
}

TEST(GgmlTypes, NamesAndSizes) {
  EXPECT_EQ(ggml_type_from_name("q4_k"), GgmlType::Q4_K);
  EXPECT_EQ(ggml_type_from_name("Q4_K"), GgmlType::Q4_K);
  EXPECT_EQ(ggml_type_from_name("q8_0"), GgmlType::Q8_0);
  EXPECT_EQ(ggml_type_from_name("BF16"), GgmlType::BF16);
  EXPECT_EQ(ggml_type_from_name("f32"), GgmlType::F32);
  try {
    ggml_type_from_name("iq2_xxs");
    FAIL() << "iq2_xxs accepted";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("q6_K"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ggml_type_from_name("q4"), UsageError);
  EXPECT_EQ(ggml_nbytes(GgmlType::Q4_K, 512), 288u);
  EXPECT_EQ(ggml_nbytes(GgmlType::Q8_0, 64), 68u);
  EXPECT_EQ(ggml_nbytes(GgmlType::BF16, 3), 6u);
  EXPECT_THROW(ggml_nbytes(GgmlType::Q4_K, 128), Error);
  EXPECT_THROW(ggml_nbytes(GgmlType::Q4_0, 33), Error);
}

// ---- fp16 / bf16 -----------------------------------------------------------------------
TEST(GgmlFp16, RoundTripAndTies) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = ggml_fp16_to_fp32(static_cast<uint16_t>(h));
    if (std::isnan(f)) {
      EXPECT_EQ(ggml_fp32_to_fp16(f) & 0x7e00, 0x7e00) << h;  // stays a (quiet) NaN
      continue;
    }
    ASSERT_EQ(ggml_fp32_to_fp16(f), h) << std::hex << h;
    // The midpoint to the next half up (in magnitude) rounds to the even one of the two.
    if ((h & 0x7fff) < 0x7bff) {
      const float g = ggml_fp16_to_fp32(static_cast<uint16_t>(h + 1));
      const float mid = static_cast<float>((static_cast<double>(f) + g) / 2);
      const uint16_t even = (h & 1) ? static_cast<uint16_t>(h + 1) : static_cast<uint16_t>(h);
      ASSERT_EQ(ggml_fp32_to_fp16(mid), even) << std::hex << h;
      ASSERT_EQ(ggml_fp32_to_fp16(std::nextafter(mid, g)), h + 1) << std::hex << h;
      ASSERT_EQ(ggml_fp32_to_fp16(std::nextafter(mid, f)), h) << std::hex << h;
    }
  }
  EXPECT_EQ(ggml_fp32_to_fp16(65519.f), 0x7bff);
  EXPECT_EQ(ggml_fp32_to_fp16(65520.f), 0x7c00);
  EXPECT_EQ(ggml_fp32_to_fp16(-1e10f), 0xfc00);
  EXPECT_EQ(ggml_fp32_to_fp16(std::ldexp(1.f, -25)), 0);           // tie to even: zero
  EXPECT_EQ(ggml_fp32_to_fp16(std::ldexp(1.5f, -25)), 1);          // above the tie
  EXPECT_EQ(ggml_fp32_to_fp16(std::ldexp(3.f, -25)), 2);           // 1.5 ulp: tie -> 2
}

TEST(GgmlFp16, Bf16) {
  EXPECT_EQ(ggml_fp32_to_bf16(1.f), 0x3f80);
  EXPECT_EQ(ggml_bf16_to_fp32(0x3f80), 1.f);
  uint32_t u = 0x3f808000;  // exactly halfway, lower is even
  float f;
  std::memcpy(&f, &u, 4);
  EXPECT_EQ(ggml_fp32_to_bf16(f), 0x3f80);
  u = 0x3f818000;  // halfway, lower is odd -> up
  std::memcpy(&f, &u, 4);
  EXPECT_EQ(ggml_fp32_to_bf16(f), 0x3f82);
  u = 0x7f800001;  // signalling NaN -> quiet
  std::memcpy(&f, &u, 4);
  EXPECT_EQ(ggml_fp32_to_bf16(f), 0x7fc0);
}

// ---- against the fixture ---------------------------------------------------------------
TEST(GgmlFixture, QuantizeMatchesReference) {
  const Fixture& fx = fixture();
  int checked = 0;
  for (auto& [name, entry] : fx.manifest["types"].items()) {
    if (!entry.contains("quant")) continue;
    const GgmlType t = ggml_type_from_name(name);
    const auto want = read_bytes(name + ".q");
    const uint64_t row_bytes = ggml_nbytes(t, fx.n);
    ASSERT_EQ(want.size(), row_bytes * fx.rows) << name;
    std::vector<uint8_t> got(want.size());
    for (int r = 0; r < fx.rows; ++r) ggml_quantize(t, fx.x.data() + r * fx.n, got.data() + r * row_bytes, fx.n);
    EXPECT_EQ(first_bad_block(got, want, t), -1) << name << " (reference: " << entry["quant"] << ")";
    // Whole-buffer call (parallel over blocks) gives the same bytes.
    std::vector<uint8_t> all(want.size());
    ggml_quantize(t, fx.x.data(), all.data(), int64_t(fx.rows) * fx.n);
    EXPECT_EQ(all, got) << name;
    ++checked;
  }
  EXPECT_GE(checked, 7);  // at least gguf-py's types
}

TEST(GgmlFixture, ImatrixMatchesGgml) {
  const Fixture& fx = fixture();
  int checked = 0;
  for (auto& [name, entry] : fx.manifest["types"].items()) {
    if (!entry.contains("imatrix")) continue;
    const GgmlType t = ggml_type_from_name(name);
    const auto want = read_bytes(name + ".imat.q");
    const uint64_t row_bytes = ggml_nbytes(t, fx.n);
    ASSERT_EQ(want.size(), row_bytes * fx.rows) << name;
    std::vector<uint8_t> got(want.size());
    for (int r = 0; r < fx.rows; ++r)
      ggml_quantize(t, fx.x.data() + r * fx.n, got.data() + r * row_bytes, fx.n, fx.imatrix.data());
    EXPECT_EQ(first_bad_block(got, want, t), -1) << name << " with imatrix";
    // The importance matrix does change the result (the test would otherwise be vacuous).
    std::vector<uint8_t> plain(want.size());
    for (int r = 0; r < fx.rows; ++r) ggml_quantize(t, fx.x.data() + r * fx.n, plain.data() + r * row_bytes, fx.n);
    EXPECT_NE(plain, got) << name;
    ++checked;
    // More super-blocks (rows of 256 with the first 256 imatrix entries).
    const auto more = read_f32("imat_rows.f32");
    const auto want_x = read_bytes(name + ".imatx.q");
    const int64_t nx = 256, rx = static_cast<int64_t>(more.size()) / nx;
    const uint64_t rbx = ggml_nbytes(t, nx);
    ASSERT_EQ(want_x.size(), rbx * rx) << name;
    std::vector<uint8_t> got_x(want_x.size());
    for (int64_t r = 0; r < rx; ++r)
      ggml_quantize(t, more.data() + r * nx, got_x.data() + r * rbx, nx, fx.imatrix.data());
    EXPECT_EQ(first_bad_block(got_x, want_x, t), -1) << name << " with imatrix, imat_rows";
  }
  ASSERT_GT(checked, 0) << "the committed fixture lacks the ggml C references (tests/gguf/make_ggml_fixture.py with SQ_LIBGGML)";
}

TEST(GgmlFixture, DequantizeMatchesReference) {
  const Fixture& fx = fixture();
  int checked = 0;
  for (auto& [name, entry] : fx.manifest["types"].items()) {
    const GgmlType t = ggml_type_from_name(name);
    for (std::string kind : {"", ".rand"}) {
      if (!exists(name + kind + ".q") || !exists(name + kind + ".deq.f32")) continue;
      const auto q = read_bytes(name + kind + ".q");
      const auto want = read_f32(name + kind + ".deq.f32");
      const int64_t bb = ggml_type_info(t).block_bytes, be = ggml_type_info(t).block;
      ASSERT_EQ(static_cast<int64_t>(want.size()), static_cast<int64_t>(q.size()) / bb * be) << name << kind;
      std::vector<float> got(want.size());
      ggml_dequantize(t, q.data(), got.data(), static_cast<int64_t>(got.size()));
      int bad = 0;
      for (size_t i = 0; i < got.size(); ++i)
        if (bits(got[i]) != bits(want[i]) && bad++ < 3)
          ADD_FAILURE() << name << kind << " element " << i << ": " << got[i] << " vs " << want[i];
      EXPECT_EQ(bad, 0) << name << kind;
      ++checked;
    }
  }
  EXPECT_GE(checked, 12);
}

// ---- round trips -----------------------------------------------------------------------
// RMSE of quantize -> dequantize relative to the data's RMS on N(0, 1) data, 256
// super-blocks. Measured with this implementation (bit-exact with ggml's reference
// quantizers on the fixture): q2_K 0.297, q3_K 0.152, q4_K 0.0717, q5_K 0.0364, q6_K 0.0178,
// q8_K 0.0071, q4_0 0.0868, q4_1 0.0785, q5_0 0.0430, q5_1 0.0380, q8_0 0.0054, f16 0.0002,
// bf16 0.0017. The bounds are about 10 % above.
TEST(GgmlRoundTrip, ErrorBounds) {
  const int64_t n = 256 * 256;
  const auto x = gaussian(n, 7);
  struct Case {
    GgmlType t;
    double bound;
  };
  const Case cases[] = {{GgmlType::Q2_K, 0.33},   {GgmlType::Q3_K, 0.167},  {GgmlType::Q4_K, 0.079},
                        {GgmlType::Q5_K, 0.040},  {GgmlType::Q6_K, 0.0196}, {GgmlType::Q8_K, 0.0078},
                        {GgmlType::Q4_0, 0.096},  {GgmlType::Q4_1, 0.087},  {GgmlType::Q5_0, 0.048},
                        {GgmlType::Q5_1, 0.042},  {GgmlType::Q8_0, 0.006},  {GgmlType::F16, 2.5e-4},
                        {GgmlType::BF16, 1.9e-3}};
  double prev_k = 1.0;
  for (const Case& c : cases) {
    std::vector<uint8_t> q(ggml_nbytes(c.t, n));
    ggml_quantize(c.t, x.data(), q.data(), n);
    std::vector<float> y(n);
    ggml_dequantize(c.t, q.data(), y.data(), n);
    double se = 0, ss = 0;
    for (int64_t i = 0; i < n; ++i) {
      se += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
      ss += double(x[i]) * x[i];
    }
    const double rel = std::sqrt(se / ss);
    const char* name = ggml_type_info(c.t).name;
    EXPECT_LT(rel, c.bound) << name;
    EXPECT_GT(rel, c.bound / 4) << name << ": suspiciously exact";
    std::printf("  %-5s rmse/std %.4f\n", name, rel);
    if (c.t >= GgmlType::Q2_K && c.t <= GgmlType::Q6_K) {  // more bits, less error
      EXPECT_LT(rel, prev_k) << name;
      prev_k = rel;
    }
  }
}

TEST(GgmlRoundTrip, ImatrixHelpsWeightedError) {
  // With an imatrix emphasising some columns, their error drops against the plain search.
  const int64_t n = 4096;
  const auto x = gaussian(n, 11);
  std::vector<float> im(n, 1.f);
  for (int64_t i = 0; i < n; i += 8) im[i] = 100.f;
  for (GgmlType t : {GgmlType::Q2_K, GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K,
                     GgmlType::Q4_0, GgmlType::Q4_1}) {
    double err[2];
    for (int w = 0; w < 2; ++w) {
      std::vector<uint8_t> q(ggml_nbytes(t, n));
      std::vector<float> y(n);
      ggml_quantize(t, x.data(), q.data(), n, w ? im.data() : nullptr);
      ggml_dequantize(t, q.data(), y.data(), n);
      double e = 0;
      for (int64_t i = 0; i < n; ++i) e += im[i] * (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
      err[w] = e;
    }
    EXPECT_LT(err[1], err[0]) << ggml_type_info(t).name;
  }
}

TEST(GgmlRoundTrip, ZerosStayZero) {
  std::vector<float> z(512, 0.f), y(512, 1.f);
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q4_1, GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K,
                     GgmlType::Q3_K, GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K, GgmlType::Q8_K}) {
    std::vector<uint8_t> q(ggml_nbytes(t, 512));
    ggml_quantize(t, z.data(), q.data(), 512);
    ggml_dequantize(t, q.data(), y.data(), 512);
    for (float v : y) ASSERT_EQ(v, 0.f) << ggml_type_info(t).name;
  }
}

// ---- encoders --------------------------------------------------------------------------
TEST(GgmlEncode, SymmetricIsExactAndMatchesQuantizer) {
  // Codes read back from ggml_quantize's own blocks re-encode to the same bytes.
  const int64_t n = 1024;
  const auto x = gaussian(n, 3, 0.05f);
  struct Case {
    GgmlType t;
    int bits;
  };
  for (Case c : {Case{GgmlType::Q4_0, 4}, Case{GgmlType::Q5_0, 5}, Case{GgmlType::Q8_0, 8}}) {
    std::vector<uint8_t> q(ggml_nbytes(c.t, n)), back(q.size());
    ggml_quantize(c.t, x.data(), q.data(), n);
    std::vector<float> y(n), scale(n / 32), zero(n / 32, float(1 << (c.bits - 1)));
    ggml_dequantize(c.t, q.data(), y.data(), n);
    std::vector<uint8_t> codes(n);
    const int64_t bb = ggml_type_info(c.t).block_bytes;
    for (int64_t g = 0; g < n / 32; ++g) {
      uint16_t h;
      std::memcpy(&h, q.data() + g * bb, 2);
      scale[g] = ggml_fp16_to_fp32(h);
      for (int j = 0; j < 32; ++j)
        codes[g * 32 + j] = static_cast<uint8_t>(std::lround(y[g * 32 + j] / scale[g]) + (1 << (c.bits - 1)));
    }
    EXPECT_EQ(ggml_encode_codes(c.t, codes.data(), scale.data(), zero.data(), n, back.data()), 0.0);
    EXPECT_EQ(back, q) << ggml_type_info(c.t).name;
  }
}

TEST(GgmlEncode, AsymmetricReportsMinRounding) {
  const int64_t n = 256;
  std::mt19937 g(5);
  std::vector<uint8_t> codes(n);
  std::vector<float> scale(n / 32), zero(n / 32);
  for (auto& c : codes) c = g() % 16;
  for (int64_t i = 0; i < n / 32; ++i) {
    scale[i] = ggml_fp16_to_fp32(ggml_fp32_to_fp16(0.01f + 0.001f * i));
    zero[i] = 7.3f + 0.1f * i;  // non-integer zero: -scale*zero is rounded to fp16
  }
  for (GgmlType t : {GgmlType::Q4_1, GgmlType::Q5_1}) {
    std::vector<uint8_t> q(ggml_nbytes(t, n));
    const double err = ggml_encode_codes(t, codes.data(), scale.data(), zero.data(), n, q.data());
    std::vector<float> y(n);
    ggml_dequantize(t, q.data(), y.data(), n);
    double worst = 0;
    for (int64_t i = 0; i < n; ++i)
      worst = std::max(worst, std::fabs(double(y[i]) - double(scale[i / 32]) * (codes[i] - double(zero[i / 32]))));
    EXPECT_EQ(err, worst);
    EXPECT_GT(err, 0.0);
    EXPECT_LT(err, 1e-4);  // half an fp16 ulp of |m| <= 0.15 plus float rounding
  }
  // Integer zeros with a power-of-two scale: exact.
  std::vector<float> s2(n / 32, 0.125f), z2(n / 32, 3.f);
  std::vector<uint8_t> q(ggml_nbytes(GgmlType::Q4_1, n));
  EXPECT_EQ(ggml_encode_codes(GgmlType::Q4_1, codes.data(), s2.data(), z2.data(), n, q.data()), 0.0);
}

TEST(GgmlEncode, Errors) {
  std::vector<uint8_t> codes(32, 3), out(64);
  std::vector<float> s{0.5f}, z8{8.f}, z7{7.f}, bad_s{0.1f};
  EXPECT_NO_THROW(ggml_encode_codes(GgmlType::Q4_0, codes.data(), s.data(), z8.data(), 32, out.data()));
  EXPECT_THROW(ggml_encode_codes(GgmlType::Q4_0, codes.data(), s.data(), z7.data(), 32, out.data()), Error);
  EXPECT_THROW(ggml_encode_codes(GgmlType::Q4_0, codes.data(), bad_s.data(), z8.data(), 32, out.data()), Error);
  codes[5] = 16;
  EXPECT_THROW(ggml_encode_codes(GgmlType::Q4_0, codes.data(), s.data(), z8.data(), 32, out.data()), Error);
  EXPECT_THROW(ggml_encode_codes(GgmlType::Q4_K, codes.data(), s.data(), z8.data(), 32, out.data()), Error);
  EXPECT_THROW(ggml_encode_codes(GgmlType::Q4_0, codes.data(), s.data(), z8.data(), 31, out.data()), Error);
}

// ---- unsupported -----------------------------------------------------------------------
TEST(GgmlErrors, UnsupportedTypesAndSizes) {
  std::vector<uint8_t> buf(4096);
  std::vector<float> f(512);
  for (GgmlType t : {GgmlType::IQ2_XXS, GgmlType::IQ4_NL, GgmlType::TQ1_0, GgmlType::MXFP4}) {
    const std::string name = ggml_type_info(t).name;
    try {
      ggml_dequantize(t, buf.data(), f.data(), 256);
      ADD_FAILURE() << name << " decoded";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("ggml type " + name + " is not supported"), std::string::npos) << e.what();
    }
    EXPECT_THROW(ggml_quantize(t, f.data(), buf.data(), 256), Error);
  }
  EXPECT_THROW(ggml_quantize(GgmlType::Q8_1, f.data(), buf.data(), 32), Error);
  EXPECT_THROW(ggml_quantize(GgmlType::Q4_K, f.data(), buf.data(), 128), Error);
  EXPECT_THROW(ggml_dequantize(GgmlType::Q6_K, buf.data(), f.data(), 300), Error);
  EXPECT_THROW(ggml_dequantize(GgmlType::Q4_0, buf.data(), f.data(), 48), Error);
}

// Large calls are split over threads (at::parallel_for): same bytes and floats as calls of
// one super-block each.
TEST(GgmlRoundTrip, LargeCallsMatchBlockwise) {
  const int64_t n = 256 * 1024;
  const auto x = gaussian(n, 13, 0.1f);
  for (GgmlType t : {GgmlType::Q4_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q4_K,
                     GgmlType::Q6_K, GgmlType::Q8_K, GgmlType::F16, GgmlType::BF16}) {
    const uint64_t bytes = ggml_nbytes(t, n), per = ggml_nbytes(t, 256);
    std::vector<uint8_t> whole(bytes), parts(bytes);
    ggml_quantize(t, x.data(), whole.data(), n);
    for (int64_t i = 0; i < n / 256; ++i) ggml_quantize(t, x.data() + i * 256, parts.data() + i * per, 256);
    EXPECT_EQ(first_bad_block(whole, parts, t), -1) << ggml_type_info(t).name;
    std::vector<float> a(n), b(n);
    ggml_dequantize(t, whole.data(), a.data(), n);
    for (int64_t i = 0; i < n / 256; ++i) ggml_dequantize(t, whole.data() + i * per, b.data() + i * 256, 256);
    EXPECT_EQ(std::memcmp(a.data(), b.data(), n * 4), 0) << ggml_type_info(t).name;
  }
}
