// quant/mixed: two-width quantization by input channel (arXiv 2511.17801 section "mixed
// precision within a layer"; docs/METHODS.md section 3.1 step 2): the hi channels and the rest
// each form a QTensor over their own columns, so the one dequantize of quant/format
// defines both parts and this file only splits and scatters columns.
#include "sliderquant/quant/mixed.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "sliderquant/core/error.h"
#include "sliderquant/quant/importance.h"

namespace sq {
namespace {

// Stored bits of one part [out, width] (codes, scales, zeros, g_idx).
double part_bits(const QFormat& f, int64_t out, int64_t width, bool with_g_idx) {
  return bits_per_weight(f, out, width, with_g_idx) * static_cast<double>(out) * static_cast<double>(width);
}

double mixed_bpw(const QFormat& hi, const QFormat& lo, int64_t out, int64_t in, int64_t k, bool hi_g_idx,
                 bool lo_g_idx) {
  const double bits = part_bits(hi, out, k, hi_g_idx) + part_bits(lo, out, in - k, lo_g_idx) + 32.0 * double(k);
  return bits / (static_cast<double>(out) * static_cast<double>(in));
}

bool divides(const QFormat& f, int64_t width) { return f.group_size < 0 || width % f.group_size == 0; }

}  // namespace

at::Tensor checked_hi_cols(const at::Tensor& hi_cols, int64_t in, const std::string& what) {
  SQ_CHECK(hi_cols.defined() && hi_cols.dim() == 1,
           what << " must be a 1-D channel list, got " << (hi_cols.defined() ? hi_cols.sizes() : at::IntArrayRef{}));
  SQ_CHECK(c10::isIntegralType(hi_cols.scalar_type(), /*includeBool=*/false),
           what << " must be an integer tensor, got " << c10::toString(hi_cols.scalar_type()));
  const int64_t k = hi_cols.size(0);
  SQ_CHECK(k > 0 && k < in, what << " has " << k << " channels of " << in
                                 << "; a mixed weight needs 0 < k < in (else use a plain format)");
  at::Tensor c = hi_cols.to(at::kCPU, at::kLong).contiguous();
  const int64_t* v = c.data_ptr<int64_t>();
  for (int64_t i = 0; i < k; ++i) {
    SQ_CHECK(v[i] >= 0 && v[i] < in, what << "[" << i << "] = " << v[i] << " is outside [0, " << in << ")");
    SQ_CHECK(i == 0 || v[i] > v[i - 1],
             what << " must be strictly increasing: [" << i - 1 << "] = " << v[i - 1] << ", [" << i << "] = " << v[i]);
  }
  return c.to(at::kInt);
}

void check_mixed_formats(const QFormat& hi, const QFormat& lo, int64_t out, int64_t in, int64_t k,
                         const std::string& what) {
  auto check_part = [&](const QFormat& f, const char* part, int64_t width) {
    SQ_CHECK(!f.dsq, what << ": the " << part << " part's format " << f.name()
                          << " is DSQ; mixed weights take uniform formats only");
    SQ_CHECK(!f.ggml(), what << ": the " << part << " part's format " << f.name()
                             << " is a ggml grid; mixed weights take uniform formats only");
    SQ_CHECK(divides(f, width), what << ": the " << part << " part has " << width << " of " << in
                                     << " columns, not a multiple of its group size " << f.group_size << " ("
                                     << f.name() << "); choose the hi channel count with mixed_hi_count (hi "
                                     << hi.name() << ", lo " << lo.name() << ") or per-channel formats");
    f.check(out, width, what + "." + part);
  };
  check_part(hi, "hi", k);
  check_part(lo, "lo", in - k);
}

int64_t mixed_hi_count(double ratio, int64_t in, const QFormat& hi, const QFormat& lo) {
  const int64_t k0 = std::max<int64_t>(1, channel_count(ratio, in));
  for (int64_t k = k0; k < in; ++k)
    if (divides(hi, k) && divides(lo, in - k)) return k;
  SQ_FAIL("mixed_hi_count: no count of hi channels in ["
          << k0 << ", " << in << ") suits " << in << " input columns with hi " << hi.name() << " and lo " << lo.name()
          << " (ratio " << ratio << ")");
}

at::Tensor MixedQTensor::lo_cols() const {
  at::Tensor keep = at::ones({in}, at::kBool);
  keep.index_fill_(0, hi_cols.to(at::kCPU, at::kLong), false);
  return keep.nonzero().view({-1});  // [in - k] int64, increasing
}

at::Tensor MixedQTensor::dequantize() const {
  const int64_t k = hi_cols.size(0);
  SQ_CHECK(hi.in_features() == k && lo.in_features() == in - k && hi.out_features() == lo.out_features(),
           "MixedQTensor: parts [" << hi.out_features() << ", " << hi.in_features() << "] and [" << lo.out_features()
                                   << ", " << lo.in_features() << "] do not match " << k << " of " << in
                                   << " channels");
  const c10::Device dev = hi.codes.device();
  at::Tensor W = at::empty({out_features(), in}, at::TensorOptions().dtype(at::kFloat).device(dev));  // [out, in]
  W.index_copy_(1, hi_cols.to(dev, at::kLong), hi.dequantize());
  W.index_copy_(1, lo_cols().to(dev), lo.dequantize().to(dev));
  return W;
}

double MixedQTensor::bits_per_weight() const {
  return mixed_bpw(hi.format, lo.format, out_features(), in, hi_cols.size(0), hi.g_idx.defined(), lo.g_idx.defined());
}

double mixed_bits_per_weight(const QFormat& hi, const QFormat& lo, int64_t out, int64_t in, int64_t k) {
  check_mixed_formats(hi, lo, out, in, k, "mixed_bits_per_weight");
  return mixed_bpw(hi, lo, out, in, k, false, false);
}

MixedQTensor MixedQTensor::rtn(const at::Tensor& W, const at::Tensor& hi_cols, const QFormat& hi, const QFormat& lo,
                               const ClipSearch& clip) {
  SQ_CHECK(W.defined() && W.dim() == 2,
           "MixedQTensor::rtn: expected a weight [out, in], got " << (W.defined() ? W.sizes() : at::IntArrayRef{}));
  const int64_t out = W.size(0), in = W.size(1);
  MixedQTensor q;
  q.in = in;
  q.hi_cols = checked_hi_cols(hi_cols, in, "MixedQTensor::rtn hi_cols");
  check_mixed_formats(hi, lo, out, in, q.hi_cols.size(0), "MixedQTensor::rtn weight");
  q.hi = rtn_quantize(W.index_select(1, q.hi_cols.to(W.device(), at::kLong)), hi, clip);
  q.lo = rtn_quantize(W.index_select(1, q.lo_cols().to(W.device())), lo, clip);
  return q;
}

}  // namespace sq
