// quant/ggml_grid: ggml block grids as quantizer formats (see the header). The searches
// themselves are io/ggml_types' reference quantizers; this file moves their fields between
// GGUF bytes and QTensors.
#include "sliderquant/quant/ggml_grid.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "sliderquant/core/error.h"
#include "sliderquant/io/ggml_types.h"

namespace sq {

namespace {

GgmlType type_of(const QFormat& f) { return static_cast<GgmlType>(ggml_grid_type_id(f.grid)); }

}  // namespace

QTensor ggml_grid_quantize(const at::Tensor& W_in, const QFormat& f, const at::Tensor& imatrix) {
  SQ_CHECK(f.ggml(), "ggml_grid_quantize: format " << f.name() << " is not a ggml grid");
  SQ_CHECK(W_in.dim() == 2, "ggml_grid_quantize: expected a weight [out, in], got " << W_in.sizes());
  const int64_t out = W_in.size(0), in = W_in.size(1);
  f.check(out, in, "ggml_grid_quantize weight");
  const GgmlType t = type_of(f);
  const int64_t nblk = in / f.super_block(), G = f.groups(in);
  at::Tensor W = W_in.to(at::kCPU, at::kFloat).contiguous();
  at::Tensor im;
  if (imatrix.defined()) {
    SQ_CHECK(imatrix.numel() == in, "ggml_grid_quantize: imatrix has " << imatrix.numel() << " entries, expected " << in);
    im = imatrix.to(at::kCPU, at::kFloat).contiguous();
  }
  at::Tensor codes = at::empty({out, in}, at::kByte);
  at::Tensor d = at::zeros({out, nblk}, at::kFloat), dmin = at::zeros({out, nblk}, at::kFloat);
  at::Tensor sc = at::zeros({out, G}, at::kChar), mn = at::zeros({out, G}, at::kChar);
  const uint64_t rb = ggml_nbytes(t, in);
  const float* w = W.data_ptr<float>();
  at::parallel_for(0, out, 16, [&](int64_t r0, int64_t r1) {
    std::vector<uint8_t> buf(static_cast<size_t>(rb));
    for (int64_t r = r0; r < r1; ++r) {
      ggml_quantize(t, w + r * in, buf.data(), in, im.defined() ? im.data_ptr<float>() : nullptr);
      ggml_decode_fields(t, buf.data(), in, codes.data_ptr<uint8_t>() + r * in, d.data_ptr<float>() + r * nblk,
                         dmin.data_ptr<float>() + r * nblk, sc.data_ptr<int8_t>() + r * G,
                         mn.data_ptr<int8_t>() + r * G);
    }
  });
  QTensor q;
  q.format = f;
  q.codes = codes;
  if (f.kquant()) {
    q.sub_scales = sc;
    q.super_d = d;
    if (f.min_form()) {
      q.sub_mins = mn;
      q.super_dmin = dmin;
    }
    ggml_grid_fill(q);
  } else {
    q.scales = d;  // one block per group
    if (f.min_form())
      q.mins = dmin.neg();  // w = d*q + m = scales*codes - (-m)
    else
      q.zeros = at::full({out, G}, static_cast<double>(int64_t(1) << (f.bits - 1)), at::kFloat);
  }
  return q.to(W_in.device());
}

std::vector<uint8_t> ggml_grid_encode(const QTensor& q, const std::string& what) {
  const QFormat& f = q.format;
  SQ_CHECK(f.ggml(), what << ": format " << f.name() << " is not a ggml grid");
  SQ_CHECK(q.codes.defined() && q.codes.dim() == 2, what << ": codes must be a 2-D [out, in] tensor");
  SQ_CHECK(!q.g_idx.defined(), what << ": a ggml grid takes no g_idx");
  const int64_t out = q.out_features(), in = q.in_features();
  f.check(out, in, what);
  const GgmlType t = type_of(f);
  const int64_t nblk = in / f.super_block(), G = f.groups(in);
  at::Tensor codes = q.codes.cpu().to(at::kByte).contiguous();
  at::Tensor d, dmin, sc, mn;
  auto shaped = [&](const at::Tensor& x, const char* name, int64_t cols, at::ScalarType dt) {
    SQ_CHECK(x.defined() && x.dim() == 2 && x.size(0) == out && x.size(1) == cols,
             what << ": " << name << " missing or not [" << out << ", " << cols << "] for " << f.name());
    return x.cpu().to(dt).contiguous();
  };
  if (f.kquant()) {
    d = shaped(q.super_d, "super_d", nblk, at::kFloat);
    sc = shaped(q.sub_scales, "sub_scales", G, at::kChar);
    if (f.min_form()) {
      dmin = shaped(q.super_dmin, "super_dmin", nblk, at::kFloat);
      mn = shaped(q.sub_mins, "sub_mins", G, at::kChar);
    }
  } else {
    d = shaped(q.scales, "scales", G, at::kFloat);
    if (f.min_form()) {
      dmin = shaped(q.mins, "mins", G, at::kFloat).neg();
    } else {
      at::Tensor z = shaped(q.zeros, "zeros", G, at::kFloat);
      SQ_CHECK((z == static_cast<double>(int64_t(1) << (f.bits - 1))).all().item<bool>(),
               what << ": " << f.name() << " zeros must all be " << (int64_t(1) << (f.bits - 1)));
    }
  }
  const uint64_t rb = ggml_nbytes(t, in);
  std::vector<uint8_t> bytes(static_cast<size_t>(rb * static_cast<uint64_t>(out)));
  try {
    for (int64_t r = 0; r < out; ++r)
      ggml_encode_fields(t, codes.data_ptr<uint8_t>() + r * in, d.data_ptr<float>() + r * nblk,
                         dmin.defined() ? dmin.data_ptr<float>() + r * nblk : nullptr,
                         sc.defined() ? sc.data_ptr<int8_t>() + r * G : nullptr,
                         mn.defined() ? mn.data_ptr<int8_t>() + r * G : nullptr, in,
                         bytes.data() + static_cast<size_t>(rb) * static_cast<size_t>(r));
  } catch (const Error& e) {
    SQ_FAIL(what << ": " << e.what());
  }
  return bytes;
}

void ggml_grid_nearest(const QFormat& f, const at::Tensor& X, const at::Tensor& scale, const at::Tensor& zero_or_min,
                       at::Tensor& codes, at::Tensor& dq) {
  const double maxq = static_cast<double>(f.maxq());
  at::Tensor x = X.to(at::kFloat);
  at::Tensor safe = at::where(scale.eq(0), at::ones_like(scale), scale);  // a zero scale: every code gives the same value
  if (f.min_form()) {
    codes = at::round(x.add(zero_or_min).div(safe)).clamp_(0, maxq);
    codes.masked_fill_(scale.eq(0).expand_as(codes), 0);
    dq = scale.mul(codes).sub(zero_or_min);
  } else {
    codes = at::round(x.div(safe)).add_(zero_or_min).clamp_(0, maxq);
    codes.masked_fill_(scale.eq(0).expand_as(codes), 0);
    dq = scale.mul(codes.sub(zero_or_min));
  }
}

QFormat ggml_grid_fallback(const QFormat& f, int64_t in, std::string* why) {
  if (!f.kquant() || in % 256 == 0) return f;
  GgmlGrid g = GgmlGrid::Q4_0;
  std::string note;
  switch (f.grid) {
    case GgmlGrid::Q4_K: g = GgmlGrid::Q5_0; break;
    case GgmlGrid::Q5_K: g = GgmlGrid::Q5_1; break;
    case GgmlGrid::Q6_K: g = GgmlGrid::Q8_0; break;
    default: note = "; llama-quantize would use iq4_nl, which this project cannot write"; break;
  }
  if (why)
    *why = std::to_string(in) + " columns are not a multiple of the " + f.name() + " super-block of 256: " +
           ggml_grid_name(g) + " as llama-quantize falls back" + note;
  return QFormat::of_grid(g);
}

}  // namespace sq
