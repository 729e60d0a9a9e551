// Tests of pack/native: the bit order pinned on hand-computed words, pack o unpack = id
// over the whole format table (against a slow bit-by-bit reference packer), and the
// errors that name the tensor. Needs nothing from quant/format.cpp (no dequantize).
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cstring>
#include <functional>
#include <map>
#include <memory>

#include "sliderquant/core/error.h"
#include "sliderquant/pack/native.h"
#include "test_util.h"

using namespace sq;

namespace {
using sq::testing::error_of;

using Named = std::vector<std::pair<std::string, at::Tensor>>;

std::function<at::Tensor(const std::string&)> getter_of(const Named& ts) {
  auto m = std::make_shared<std::map<std::string, at::Tensor>>(ts.begin(), ts.end());
  return [m](const std::string& n) {
    auto it = m->find(n);
    return it == m->end() ? at::Tensor() : it->second;
  };
}

std::string label(const QFormat& f) {
  return "w" + std::to_string(f.bits) + (f.group_size > 0 ? "g" + std::to_string(f.group_size) : "") +
         (f.symmetric ? "s" : "");
}

// Slow obvious reference: bit b of code j of a row goes to stream bit j*bits + b, which is
// bit (k % 32) of word k / 32. codes [rows, n] uint8 -> [rows, ceil(n*bits/32)] int32.
at::Tensor pack_ref(const at::Tensor& codes, int bits) {
  const int64_t rows = codes.size(0), n = codes.size(1), nw = (n * bits + 31) / 32;
  std::vector<uint32_t> w(size_t(rows * nw), 0);
  auto a = codes.accessor<uint8_t, 2>();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = 0; j < n; ++j)
      for (int b = 0; b < bits; ++b)
        if ((a[r][j] >> b) & 1) {
          const int64_t k = j * bits + b;
          w[size_t(r * nw + k / 32)] |= uint32_t(1) << (k % 32);
        }
  at::Tensor out = at::empty({rows, nw}, at::kInt);
  if (!w.empty()) std::memcpy(out.data_ptr<int32_t>(), w.data(), w.size() * sizeof(uint32_t));
  return out;
}

uint32_t word(const at::Tensor& words, int64_t r, int64_t i) {
  return uint32_t(words[r][i].item<int32_t>());
}


QTensor random_qtensor(const QFormat& f, int64_t out, int64_t in, bool with_g_idx) {
  const int64_t groups = f.group_size < 0 ? 1 : in / f.group_size;
  QTensor q;
  q.format = f;
  q.codes = at::randint(0, f.maxq() + 1, {out, in}, at::kByte);  // [out, in]
  q.codes[0][in - 1] = f.maxq();  // the all-ones code in the last (often straddling) slot
  q.scales = (at::rand({out, groups}) + 0.01).to(at::kHalf).to(at::kFloat);  // [out, groups]
  q.zeros = f.symmetric ? at::full({out, groups}, double(int64_t(1) << (f.bits - 1)), at::kFloat)
                        : at::randint(0, f.maxq() + 1, {out, groups}, at::kFloat);
  if (with_g_idx) {  // act-order style: a permutation of the columns, grouped
    at::Tensor perm = at::randperm(in, at::kLong);
    q.g_idx = at::zeros({in}, at::kInt);  // [in]
    for (int64_t j = 0; j < in; ++j)
      q.g_idx[j] = f.group_size < 0 ? 0 : perm[j].item<int64_t>() / f.group_size;
  }
  return q;
}

}  // namespace

TEST(Pack, BitOrderHandExamples) {
  // bits = 3, one row of 11 codes 1,2,3,4,5,6,7,0,1,2,3 = 33 stream bits -> 2 words.
  // Code j sits at stream bits [3j, 3j+3), LSB first, so reading each code as one octal
  // digit, word 0 is the codes from code 10 (top) down to code 0 (bottom):
  //   3 2 1 0 7 6 5 4 3 2 1 (octal) = 0o32107654321 = 0xD11F58D1.
  // Code 10 = 0b011 straddles: its bits 0,1 (1,1) are word-0 bits 30,31, its bit 2 (0) is
  // word-1 bit 0; the other 31 bits of word 1 are unused and zero -> word 1 = 0.
  at::Tensor c3 = at::tensor({1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 3}, at::kByte).reshape({1, 11});
  at::Tensor w3 = pack_bits(c3, 3);
  ASSERT_EQ(w3.sizes(), at::IntArrayRef({1, 2}));
  EXPECT_EQ(w3.scalar_type(), at::kInt);
  EXPECT_EQ(word(w3, 0, 0), 0xD11F58D1u);
  EXPECT_EQ(word(w3, 0, 1), 0u);
  EXPECT_TRUE(at::equal(unpack_bits(w3, 3, 11), c3));

  // A straddling code with its top bit set: code 10 = 5 = 0b101 -> word-0 bit 30 = 1,
  // bit 31 = 0, word-1 bit 0 = 1.
  at::Tensor s3 = at::zeros({1, 11}, at::kByte);
  s3[0][10] = 5;
  at::Tensor ws = pack_bits(s3, 3);
  EXPECT_EQ(word(ws, 0, 0), 0x40000000u);
  EXPECT_EQ(word(ws, 0, 1), 1u);
  EXPECT_TRUE(at::equal(unpack_bits(ws, 3, 11), s3));

  // bits = 4: nibble j of the word is code j; each row is its own stream.
  at::Tensor c4 = at::tensor({1, 2, 3, 4, 5, 6, 7, 8, 8, 7, 6, 5, 4, 3, 2, 1}, at::kByte).reshape({2, 8});
  at::Tensor w4 = pack_bits(c4, 4);
  ASSERT_EQ(w4.sizes(), at::IntArrayRef({2, 1}));
  EXPECT_EQ(word(w4, 0, 0), 0x87654321u);
  EXPECT_EQ(word(w4, 1, 0), 0x12345678u);
  EXPECT_TRUE(at::equal(unpack_bits(w4, 4, 8), c4));
}

// The format table: every bits x group size x symmetry, on shapes that include in = 96
// per-channel, in*bits not a multiple of 32 (in = 40, 7, 1000) and qzeros rows that end
// mid-word (1 or 3 groups). pack o unpack must be the identity, and the packed words must
// equal the slow reference packer's.
TEST(Pack, RoundTripEveryFormat) {
  at::manual_seed(20240611);
  const std::vector<std::pair<int64_t, int64_t>> shapes = {{3, 128}, {2, 96}, {4, 40},
                                                           {5, 384}, {1, 7},  {6, 1000}};
  const std::string name = "model.layers.0.mlp.up_proj";
  int cases = 0, unaligned = 0;
  for (int bits = 2; bits <= 8; ++bits)
    for (int64_t gs : {int64_t(-1), int64_t(32), int64_t(64), int64_t(128)})
      for (bool sym : {true, false}) {
        QFormat f;
        f.bits = bits;
        f.group_size = gs;
        f.symmetric = sym;
        int format_cases = 0;
        for (auto [out, in] : shapes) {
          if (gs > 0 && in % gs != 0) continue;
          SCOPED_TRACE(label(f) + " [" + std::to_string(out) + ", " + std::to_string(in) + "]");
          const bool with_g_idx = cases % 2 == 1;
          QTensor q = random_qtensor(f, out, in, with_g_idx);
          const int64_t groups = q.scales.size(1);
          Named packed = pack_qtensor(name, q);

          // Names, dtypes and shapes as native.h specifies; contiguous CPU tensors.
          std::vector<std::string> names = {name + ".qweight", name + ".scales"};
          if (!sym) names.push_back(name + ".qzeros");
          if (with_g_idx) names.push_back(name + ".g_idx");
          ASSERT_EQ(packed.size(), names.size());
          for (size_t i = 0; i < packed.size(); ++i) {
            EXPECT_EQ(packed[i].first, names[i]);
            EXPECT_TRUE(packed[i].second.is_contiguous());
            EXPECT_TRUE(packed[i].second.device().is_cpu());
          }
          const at::Tensor& qweight = packed[0].second;
          EXPECT_EQ(qweight.scalar_type(), at::kInt);
          EXPECT_EQ(qweight.sizes(), at::IntArrayRef({out, (in * bits + 31) / 32}));
          EXPECT_TRUE(at::equal(qweight, pack_ref(q.codes, bits)));
          EXPECT_EQ(packed[1].second.scalar_type(), at::kHalf);
          EXPECT_EQ(packed[1].second.sizes(), at::IntArrayRef({out, groups}));
          if (!sym) {
            const at::Tensor& qzeros = packed[2].second;
            EXPECT_EQ(qzeros.sizes(), at::IntArrayRef({out, (groups * bits + 31) / 32}));
            EXPECT_TRUE(at::equal(qzeros, pack_ref(q.zeros.to(at::kByte), bits)));
          }
          if ((in * bits) % 32 != 0 || (!sym && (groups * bits) % 32 != 0)) ++unaligned;

          QTensor u = unpack_qtensor(name, f, out, in, getter_of(packed));
          EXPECT_TRUE(u.format == f);
          EXPECT_TRUE(at::equal(u.codes, q.codes));
          EXPECT_TRUE(at::equal(u.scales, q.scales));
          EXPECT_TRUE(at::equal(u.zeros, q.zeros));
          ASSERT_EQ(u.g_idx.defined(), with_g_idx);
          if (with_g_idx) {
            EXPECT_TRUE(at::equal(u.g_idx, q.g_idx));
          }
          ++cases;
          ++format_cases;
        }
        EXPECT_GE(format_cases, 2) << label(f) << " was tested on too few shapes";
      }
  EXPECT_EQ(cases, 7 * 2 * (6 + 3 + 2 + 2));  // shapes per group size: -1: 6, 32: 3, 64/128: 2
  EXPECT_GT(unaligned, cases / 2);
}

TEST(Pack, ErrorsNameTheTensor) {
  at::manual_seed(5);
  const std::string name = "model.layers.3.self_attn.q_proj";
  QFormat f;
  f.bits = 4;
  f.group_size = 32;
  f.symmetric = false;

  // Codes out of range or of the wrong dtype.
  at::Tensor bad = at::zeros({2, 5}, at::kByte);
  bad[1][3] = 8;
  std::string msg = error_of([&] { pack_bits(bad, 3); });
  EXPECT_NE(msg.find("value 8 at [1, 3]"), std::string::npos) << msg;
  EXPECT_THROW(pack_bits(at::zeros({2, 5}, at::kInt), 3), Error);
  EXPECT_THROW(unpack_bits(at::zeros({2, 3}, at::kInt), 3, 11), Error);  // 11 codes need 2 words
  EXPECT_THROW(unpack_bits(at::full({1, 1}, 1 << 30, at::kInt), 5, 6), Error);  // padding bits set
  QTensor q = random_qtensor(f, 4, 64, false);
  q.codes[2][7] = 16;
  msg = error_of([&] { pack_qtensor(name, q); });
  EXPECT_NE(msg.find(name + ".qweight"), std::string::npos) << msg;

  // A scale that float16 cannot hold exactly (1 + 2^-12 needs 12 mantissa bits).
  q = random_qtensor(f, 4, 64, false);
  q.scales[1][1] = 1.0f + 1.0f / 4096.0f;
  msg = error_of([&] { pack_qtensor(name, q); });
  EXPECT_NE(msg.find(name + ".scales"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[1, 1]"), std::string::npos) << msg;

  // Zeros that are not integers in range; symmetric formats refuse zeros other than 2^(bits-1).
  q = random_qtensor(f, 4, 64, false);
  q.zeros[0][0] = 16;
  EXPECT_NE(error_of([&] { pack_qtensor(name, q); }).find(name + ".qzeros"), std::string::npos);
  QFormat fs = f;
  fs.symmetric = true;
  q = random_qtensor(fs, 4, 64, false);
  q.zeros[0][0] = 3;
  EXPECT_THROW(pack_qtensor(name, q), Error);

  // Reading: wrong qweight shape, missing scales, wrong dtype, zeros for a symmetric format.
  q = random_qtensor(f, 4, 64, true);
  Named good = pack_qtensor(name, q);
  auto with = [&](const std::string& which, const at::Tensor& t) {
    Named v;
    for (auto& [n, x] : good)
      if (n != name + which) v.emplace_back(n, x);
    if (t.defined()) v.emplace_back(name + which, t);
    return getter_of(v);
  };
  msg = error_of([&] { unpack_qtensor(name, f, 4, 64, with(".qweight", at::zeros({4, 9}, at::kInt))); });
  EXPECT_NE(msg.find(name + ".qweight has shape [4, 9], expected [4, 8] for w4g32 [4, 64]"),
            std::string::npos)
      << msg;
  msg = error_of([&] { unpack_qtensor(name, f, 4, 64, with(".scales", at::Tensor())); });
  EXPECT_NE(msg.find(name + ".scales is missing"), std::string::npos) << msg;
  msg = error_of([&] { unpack_qtensor(name, f, 4, 64, with(".scales", at::ones({4, 2}))); });
  EXPECT_NE(msg.find(name + ".scales has dtype"), std::string::npos) << msg;
  msg = error_of([&] { unpack_qtensor(name, f, 4, 64, with(".qzeros", at::Tensor())); });
  EXPECT_NE(msg.find(name + ".qzeros is missing"), std::string::npos) << msg;
  msg = error_of([&] { unpack_qtensor(name, f, 4, 64, with(".g_idx", at::full({64}, 2, at::kInt))); });
  EXPECT_NE(msg.find(name + ".g_idx has values"), std::string::npos) << msg;
  EXPECT_THROW(unpack_qtensor(name, fs, 4, 64, getter_of(good)), Error);  // qzeros present
  EXPECT_THROW(unpack_qtensor(name, f, 4, 96, getter_of(good)), Error);   // wrong [out, in]
  // The same tensors read back under the right format still work.
  EXPECT_TRUE(at::equal(unpack_qtensor(name, f, 4, 64, getter_of(good)).codes, q.codes));
}

// DSQ formats (D²Quant): qweight + fp16 dsq_r [out, groups, bits] + fp16 col_scale [in]
// when not absorbed; no scales, qzeros or g_idx. pack o unpack = id on each shape.
TEST(Pack, RoundTripDsq) {
  at::manual_seed(20260201);
  const std::string name = "model.layers.0.mlp.down_proj";
  int cases = 0;
  for (int bits : {2, 3})
    for (int64_t gs : {int64_t(-1), int64_t(32), int64_t(128)})
      for (auto [out, in] : std::vector<std::pair<int64_t, int64_t>>{{3, 128}, {5, 384}, {2, 96}})
        for (bool with_c : {true, false}) {
          if (gs > 0 && in % gs != 0) continue;
          QFormat f;
          f.bits = bits;
          f.group_size = gs;
          f.dsq = true;
          SCOPED_TRACE(label(f) + "d [" + std::to_string(out) + ", " + std::to_string(in) + "] c " +
                       std::to_string(with_c));
          const int64_t groups = gs < 0 ? 1 : in / gs;
          QTensor q;
          q.format = f;
          q.codes = at::randint(0, 1 << bits, {out, in}, at::kByte);
          q.levels_r = at::rand({out, groups, bits}).to(at::kHalf).to(at::kFloat);
          if (with_c) q.col_scale = (at::rand({in}) + 0.5).to(at::kHalf).to(at::kFloat);
          Named packed = pack_qtensor(name, q);
          ASSERT_EQ(packed.size(), with_c ? 3u : 2u);
          EXPECT_EQ(packed[0].first, name + ".qweight");
          EXPECT_TRUE(at::equal(packed[0].second, pack_ref(q.codes, bits)));
          EXPECT_EQ(packed[1].first, name + ".dsq_r");
          EXPECT_EQ(packed[1].second.scalar_type(), at::kHalf);
          EXPECT_EQ(packed[1].second.sizes(), at::IntArrayRef({out, groups, bits}));
          if (with_c) {
            EXPECT_EQ(packed[2].first, name + ".col_scale");
            EXPECT_EQ(packed[2].second.scalar_type(), at::kHalf);
          }
          QTensor u = unpack_qtensor(name, f, out, in, getter_of(packed));
          EXPECT_TRUE(u.format == f);
          EXPECT_TRUE(at::equal(u.codes, q.codes));
          EXPECT_TRUE(at::equal(u.levels_r, q.levels_r));
          ASSERT_EQ(u.col_scale.defined(), with_c);
          if (with_c) {
            EXPECT_TRUE(at::equal(u.col_scale, q.col_scale));
          }
          EXPECT_FALSE(u.scales.defined() || u.zeros.defined() || u.g_idx.defined());
          ++cases;
        }
  EXPECT_EQ(cases, 2 * 2 * (3 + 3 + 2));  // shapes per group size: -1: 3, 32: 3, 128: 2

  // Errors name the tensor: a non-fp16 r, a uniform tensor under a DSQ format and back.
  QFormat f;
  f.bits = 2;
  f.group_size = 32;
  f.dsq = true;
  QTensor q;
  q.format = f;
  q.codes = at::zeros({2, 64}, at::kByte);
  q.levels_r = at::full({2, 2, 2}, 0.1);
  EXPECT_NE(error_of([&] { pack_qtensor(name, q); }).find(name + ".dsq_r"), std::string::npos);
  q.levels_r = q.levels_r.to(at::kHalf).to(at::kFloat);
  Named packed = pack_qtensor(name, q);
  packed.emplace_back(name + ".scales", at::ones({2, 2}, at::kHalf));
  EXPECT_NE(error_of([&] { unpack_qtensor(name, f, 2, 64, getter_of(packed)); }).find(name + ".scales"),
            std::string::npos);
  QFormat uf = f;
  uf.dsq = false;
  EXPECT_NE(error_of([&] { unpack_qtensor(name, uf, 2, 64, getter_of(pack_qtensor(name, q))); }).find(name),
            std::string::npos);
}
