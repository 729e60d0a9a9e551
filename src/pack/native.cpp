// pack/native: the native packed layout (format versions 1 and 2) of a QTensor: bit-packing of
// codes and zeros into int32 words, fp16 scales, optional g_idx (DSQ formats, D²Quant arXiv
// 2602.02546: fp16 row-level scales dsq_r and optional fp16 col_scale instead of scales and
// zeros); and the validating inverse.
// Layout only: it never re-decides codes or scales, and refuses (Error naming the tensor)
// anything it cannot store exactly. The bit order is specified in pack/native.h and
// docs/FORMAT.md. Bit loops are plain scalar code over rows (at::parallel_for): one pass,
// no temporaries larger than the output.
#include "sliderquant/pack/native.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdint>
#include <sstream>

#include "sliderquant/core/error.h"
#include "sliderquant/core/shape.h"

namespace sq {
namespace {

int64_t words_for(int64_t n, int bits) { return (n * bits + 31) / 32; }

void check_bits(int bits, const std::string& what) {
  SQ_CHECK(bits >= 1 && bits <= 8, what << ": bits must be in 1..8, got " << bits);
}

// Groups per row for an [OUT, IN] weight in format F, after QFormat::check (errors name the
// linear: bits outside 2..8, DSQ with 's' or more than 3 bits, ragged groups).
int64_t groups_of(const QFormat& f, int64_t out, int64_t in, const std::string& name) {
  f.check(out, in, name);
  return f.groups(in);
}

// codes: [rows, n] uint8; WHAT names the tensor in errors.
at::Tensor pack_bits_named(const at::Tensor& codes, int bits, const std::string& what) {
  check_bits(bits, what);
  SQ_CHECK(codes.defined(), what << " is undefined");
  SQ_CHECK(codes.dim() == 2, what << " must be 2-D [rows, n], got shape " << shape_str(codes.sizes()));
  SQ_CHECK(codes.scalar_type() == at::kByte,
           what << " must be uint8, got " << c10::toString(codes.scalar_type()));
  at::Tensor c = codes.cpu().contiguous();  // [rows, n]
  const int64_t rows = c.size(0), n = c.size(1), nw = words_for(n, bits);
  if (c.numel() > 0) {
    const int64_t maxv = c.max().item<int64_t>();
    if (maxv >= (int64_t(1) << bits)) {
      at::Tensor pos = (c == maxv).nonzero()[0];
      SQ_FAIL(what << " has value " << maxv << " at [" << pos[0].item<int64_t>() << ", "
                   << pos[1].item<int64_t>() << "], which does not fit in " << bits << " bits (max "
                   << ((int64_t(1) << bits) - 1) << ")");
    }
  }
  at::Tensor out = at::zeros({rows, nw}, at::kInt);  // [rows, ceil(n*bits/32)]
  const uint8_t* src = c.data_ptr<uint8_t>();
  // int32 and uint32 may alias; unsigned arithmetic keeps the bit pattern exact.
  uint32_t* dst = reinterpret_cast<uint32_t*>(out.data_ptr<int32_t>());
  at::parallel_for(0, rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* row = src + r * n;
      uint32_t* w = dst + r * nw;
      uint64_t acc = 0;  // pending stream bits, least significant first
      int fill = 0;      // how many of them
      for (int64_t j = 0; j < n; ++j) {
        acc |= uint64_t(row[j]) << fill;
        fill += bits;
        if (fill >= 32) {
          *w++ = uint32_t(acc);
          acc >>= 32;
          fill -= 32;
        }
      }
      if (fill > 0) *w = uint32_t(acc);  // high bits past the last code stay zero
    }
  });
  return out;
}

// words: [rows, ceil(n*bits/32)] int32 -> [rows, n] uint8.
at::Tensor unpack_bits_named(const at::Tensor& words, int bits, int64_t n, const std::string& what) {
  check_bits(bits, what);
  SQ_CHECK(n >= 0, what << ": negative code count " << n);
  SQ_CHECK(words.defined(), what << " is undefined");
  SQ_CHECK(words.scalar_type() == at::kInt,
           what << " must be int32, got " << c10::toString(words.scalar_type()));
  const int64_t nw = words_for(n, bits);
  SQ_CHECK(words.dim() == 2 && words.size(1) == nw,
           what << " has shape " << shape_str(words.sizes()) << ", expected [rows, " << nw << "] for "
                << n << " codes of " << bits << " bits");
  at::Tensor w = words.cpu().contiguous();
  const int64_t rows = w.size(0);
  at::Tensor out = at::empty({rows, n}, at::kByte);  // [rows, n]
  const uint32_t* src = reinterpret_cast<const uint32_t*>(w.data_ptr<int32_t>());
  uint8_t* dst = out.data_ptr<uint8_t>();
  const uint32_t mask = (uint32_t(1) << bits) - 1;
  const int tail = int((n * bits) % 32);  // used bits of the last word (0 = all 32)
  const uint32_t tail_mask = tail == 0 ? 0 : ~((uint32_t(1) << tail) - 1);
  int64_t bad_row = -1;
  for (int64_t r = 0; r < rows && nw > 0; ++r) {
    if (src[r * nw + nw - 1] & tail_mask) {
      bad_row = r;
      break;
    }
  }
  SQ_CHECK(bad_row < 0, what << " row " << bad_row << " has nonzero bits past its last code (the "
                             << "layout requires them zero: written with another bit order or width?)");
  at::parallel_for(0, rows, 64, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const uint32_t* row = src + r * nw;
      uint8_t* o = dst + r * n;
      for (int64_t j = 0; j < n; ++j) {
        const int64_t k = j * bits, wi = k / 32;
        const int s = int(k % 32);
        uint64_t v = row[wi];
        if (s + bits > 32) v |= uint64_t(row[wi + 1]) << 32;  // code straddles two words
        o[j] = uint8_t((v >> s) & mask);
      }
    }
  });
  return out;
}

// Fetches NAME.SUFFIX, checks presence, dtype and shape; returns it on the CPU, contiguous.
at::Tensor fetch(const std::function<at::Tensor(const std::string&)>& get, const std::string& full,
                 at::ScalarType dtype, std::vector<int64_t> shape, const std::string& context) {
  at::Tensor t = get(full);
  SQ_CHECK(t.defined(), full << " is missing, expected " << c10::toString(dtype) << " "
                             << shape_str(shape) << " for " << context);
  SQ_CHECK(t.scalar_type() == dtype, full << " has dtype " << c10::toString(t.scalar_type())
                                          << ", expected " << c10::toString(dtype) << " for " << context);
  SQ_CHECK(t.sizes() == at::IntArrayRef(shape), full << " has shape " << shape_str(t.sizes())
                                                     << ", expected " << shape_str(shape) << " for "
                                                     << context);
  return t.cpu().contiguous();
}

// T (floating, SHAPE) as float16, refusing values that float16 does not hold exactly.
at::Tensor exact_fp16(const at::Tensor& t, const std::string& tname, const std::vector<int64_t>& shape,
                      const std::string& context, const char* hint) {
  SQ_CHECK(t.defined(), tname << ": the QTensor has none");
  SQ_CHECK(t.sizes() == at::IntArrayRef(shape),
           tname << " has shape " << shape_str(t.sizes()) << ", expected " << shape_str(shape) << " for " << context);
  SQ_CHECK(c10::isFloatingType(t.scalar_type()),
           tname << " must be floating point, got " << c10::toString(t.scalar_type()));
  at::Tensor s32 = t.cpu().to(at::kFloat).contiguous();
  at::Tensor s16 = s32.to(at::kHalf);
  at::Tensor exact = s16.to(at::kFloat) == s32;
  if (!exact.all().item<bool>()) {
    at::Tensor pos = exact.logical_not().nonzero()[0];
    std::ostringstream at_pos;
    for (int64_t d = 0; d < pos.size(0); ++d) at_pos << (d ? ", " : "") << pos[d].item<int64_t>();
    SQ_FAIL(tname << " value " << s32.masked_select(exact.logical_not())[0].item<float>()
                  << " at [" << at_pos.str() << "] is not representable in float16; " << hint);
  }
  return s16.contiguous();
}

// g_idx [in] int32 with values in [0, groups).
void check_g_idx(const at::Tensor& g, int64_t in, int64_t groups, const std::string& what) {
  SQ_CHECK(g.dim() == 1 && g.size(0) == in,
           what << " has shape " << shape_str(g.sizes()) << ", expected [" << in << "]");
  if (in == 0) return;
  const int64_t lo = g.min().item<int64_t>(), hi = g.max().item<int64_t>();
  SQ_CHECK(lo >= 0 && hi < groups,
           what << " has values in [" << lo << ", " << hi << "], expected [0, " << groups - 1 << "]");
}

}  // namespace

at::Tensor pack_bits(const at::Tensor& codes, int bits) { return pack_bits_named(codes, bits, "codes"); }

at::Tensor unpack_bits(const at::Tensor& words, int bits, int64_t n) {
  return unpack_bits_named(words, bits, n, "packed words");
}

std::vector<std::pair<std::string, at::Tensor>> pack_qtensor(const std::string& name, const QTensor& q) {
  const QFormat& f = q.format;
  SQ_CHECK(q.codes.defined() && q.codes.dim() == 2, name << ": codes must be a 2-D [out, in] tensor");
  const int64_t out = q.codes.size(0), in = q.codes.size(1);
  const int64_t groups = groups_of(f, out, in, name);
  const std::string context = f.name() + " " + shape_str({out, in});
  std::vector<std::pair<std::string, at::Tensor>> res;

  res.emplace_back(name + ".qweight", pack_bits_named(q.codes, f.bits, name + ".qweight (codes)"));

  if (f.dsq) {
    SQ_CHECK(!q.g_idx.defined(), name << ": DSQ format " << f.name() << " stores no g_idx");
    res.emplace_back(name + ".dsq_r", exact_fp16(q.levels_r, name + ".dsq_r", {out, groups, f.bits}, context,
                                                 "round DSQ row scales to float16 before choosing codes"));
    if (q.col_scale.defined())
      res.emplace_back(name + ".col_scale", exact_fp16(q.col_scale, name + ".col_scale", {in}, context,
                                                       "round DSQ column scales to float16 before choosing codes"));
    return res;
  }

  if (f.ggml()) {
    SQ_CHECK(!q.g_idx.defined(), name << ": ggml grid " << f.name() << " stores no g_idx");
    if (f.kquant()) {
      auto ints = [&](const at::Tensor& t, const std::string& tname) {
        SQ_CHECK(t.defined() && t.sizes() == at::IntArrayRef({out, groups}),
                 tname << ": missing or not " << shape_str({out, groups}) << " for " << context);
        return t.cpu().to(at::kChar).contiguous();
      };
      const int64_t nsb = in / f.super_block();
      res.emplace_back(name + ".sub_scales", ints(q.sub_scales, name + ".sub_scales"));
      res.emplace_back(name + ".super_d", exact_fp16(q.super_d, name + ".super_d", {out, nsb}, context,
                                                     "super-block scales of a ggml grid are fp16 values"));
      if (f.min_form()) {
        res.emplace_back(name + ".sub_mins", ints(q.sub_mins, name + ".sub_mins"));
        res.emplace_back(name + ".super_dmin", exact_fp16(q.super_dmin, name + ".super_dmin", {out, nsb}, context,
                                                          "super-block mins of a ggml grid are fp16 values"));
      }
      return res;
    }
    if (f.min_form()) {  // q4_1 / q5_1: fp16 d and min per group of 32
      res.emplace_back(name + ".scales", exact_fp16(q.scales, name + ".scales", {out, groups}, context,
                                                    "ggml q4_1/q5_1 scales are fp16 values"));
      res.emplace_back(name + ".mins", exact_fp16(q.mins, name + ".mins", {out, groups}, context,
                                                  "ggml q4_1/q5_1 mins are fp16 values"));
      return res;
    }
    // q4_0 / q5_0 / q8_0: exactly the symmetric layout below.
  }

  const std::string sname = name + ".scales";
  SQ_CHECK(q.scales.defined(), sname << ": the QTensor has no scales");
  SQ_CHECK(q.scales.sizes() == at::IntArrayRef({out, groups}),
           sname << " has shape " << shape_str(q.scales.sizes()) << ", expected "
                 << shape_str({out, groups}) << " for " << context);
  SQ_CHECK(c10::isFloatingType(q.scales.scalar_type()),
           sname << " must be floating point, got " << c10::toString(q.scales.scalar_type()));
  at::Tensor s32 = q.scales.cpu().to(at::kFloat).contiguous();  // [out, groups]
  at::Tensor s16 = s32.to(at::kHalf);
  at::Tensor exact = s16.to(at::kFloat) == s32;
  if (!exact.all().item<bool>()) {
    at::Tensor pos = exact.logical_not().nonzero()[0];
    const int64_t r = pos[0].item<int64_t>(), g = pos[1].item<int64_t>();
    SQ_FAIL(sname << " value " << s32[r][g].item<float>() << " at [" << r << ", " << g
                  << "] is not representable in float16; round scales to float16 before choosing codes");
  }
  res.emplace_back(sname, s16.contiguous());

  const std::string zname = name + ".qzeros";
  const int64_t mid = int64_t(1) << (f.bits - 1);
  if (f.symmetric) {
    // The zero is implied (2^(bits-1)); dropping anything else would change the weights.
    if (q.zeros.defined()) {
      SQ_CHECK(q.zeros.numel() == 0 || (q.zeros.cpu().to(at::kDouble) == double(mid)).all().item<bool>(),
               name << ": symmetric format " << f.name() << " stores no zeros, but the QTensor's "
                    << "zeros are not all " << mid);
    }
  } else {
    SQ_CHECK(q.zeros.defined(), zname << ": asymmetric format " << f.name() << " needs zeros");
    SQ_CHECK(q.zeros.sizes() == at::IntArrayRef({out, groups}),
             zname << ": zeros have shape " << shape_str(q.zeros.sizes()) << ", expected "
                   << shape_str({out, groups}) << " for " << context);
    at::Tensor z = q.zeros.cpu().to(at::kDouble);
    SQ_CHECK(z.numel() == 0 || ((z == z.round()).all().item<bool>() && z.min().item<double>() >= 0 &&
                                z.max().item<double>() <= double(f.maxq())),
             zname << ": zeros must be integers in [0, " << f.maxq() << "] for " << f.name());
    res.emplace_back(zname, pack_bits_named(z.to(at::kByte), f.bits, zname));
  }

  if (q.g_idx.defined()) {
    SQ_CHECK(c10::isIntegralType(q.g_idx.scalar_type(), /*includeBool=*/false),
             name << ".g_idx must be an integer tensor, got " << c10::toString(q.g_idx.scalar_type()));
    at::Tensor g = q.g_idx.cpu().to(at::kInt).contiguous();  // [in]
    check_g_idx(g, in, groups, name + ".g_idx");
    res.emplace_back(name + ".g_idx", g);
  }
  return res;
}

QTensor unpack_qtensor(const std::string& name, const QFormat& f, int64_t out, int64_t in,
                       const std::function<at::Tensor(const std::string&)>& get) {
  SQ_CHECK(out >= 0 && in >= 0, name << ": negative shape [" << out << ", " << in << "]");
  const int64_t groups = groups_of(f, out, in, name);
  const std::string context = f.name() + " " + shape_str({out, in});
  QTensor q;
  q.format = f;

  at::Tensor qw = fetch(get, name + ".qweight", at::kInt, {out, words_for(in, f.bits)}, context);
  q.codes = unpack_bits_named(qw, f.bits, in, name + ".qweight");  // [out, in] uint8

  if (f.dsq) {
    for (const char* s : {".scales", ".qzeros", ".g_idx"})
      SQ_CHECK(!get(name + s).defined(), name << s << " is present, but " << context
                                              << " is a DSQ format and stores none (wrong format?)");
    q.levels_r = fetch(get, name + ".dsq_r", at::kHalf, {out, groups, f.bits}, context).to(at::kFloat);
    if (get(name + ".col_scale").defined())
      q.col_scale = fetch(get, name + ".col_scale", at::kHalf, {in}, context).to(at::kFloat);
    return q;
  }
  for (const char* s : {".dsq_r", ".col_scale"})
    SQ_CHECK(!get(name + s).defined(), name << s << " is present, but " << context
                                            << " is not a DSQ format (wrong format?)");
  if (f.kquant()) {
    const int64_t nsb = in / f.super_block();
    for (const char* s : {".scales", ".qzeros", ".g_idx", ".mins"})
      SQ_CHECK(!get(name + s).defined(), name << s << " is present, but " << context
                                              << " stores integer sub-block scales (wrong format?)");
    q.sub_scales = fetch(get, name + ".sub_scales", at::kChar, {out, groups}, context);
    q.super_d = fetch(get, name + ".super_d", at::kHalf, {out, nsb}, context).to(at::kFloat);
    if (f.min_form()) {
      q.sub_mins = fetch(get, name + ".sub_mins", at::kChar, {out, groups}, context);
      q.super_dmin = fetch(get, name + ".super_dmin", at::kHalf, {out, nsb}, context).to(at::kFloat);
    }
    ggml_grid_fill(q);
    return q;
  }
  if (f.ggml() && f.min_form()) {
    for (const char* s : {".qzeros", ".g_idx"})
      SQ_CHECK(!get(name + s).defined(), name << s << " is present, but " << context << " stores mins (wrong format?)");
    q.scales = fetch(get, name + ".scales", at::kHalf, {out, groups}, context).to(at::kFloat);
    q.mins = fetch(get, name + ".mins", at::kHalf, {out, groups}, context).to(at::kFloat);
    return q;
  }

  q.scales = fetch(get, name + ".scales", at::kHalf, {out, groups}, context).to(at::kFloat);

  const std::string zname = name + ".qzeros";
  if (f.symmetric) {
    SQ_CHECK(!get(zname).defined(), zname << " is present, but " << context
                                          << " is symmetric and stores no zeros (wrong format?)");
    q.zeros = at::full({out, groups}, double(int64_t(1) << (f.bits - 1)), at::kFloat);
  } else {
    at::Tensor qz = fetch(get, zname, at::kInt, {out, words_for(groups, f.bits)}, context);
    q.zeros = unpack_bits_named(qz, f.bits, groups, zname).to(at::kFloat);  // [out, groups]
  }

  at::Tensor g = get(name + ".g_idx");
  if (g.defined()) {
    q.g_idx = fetch(get, name + ".g_idx", at::kInt, {in}, context);
    check_g_idx(q.g_idx, in, groups, name + ".g_idx");
  }
  return q;
}

}  // namespace sq
