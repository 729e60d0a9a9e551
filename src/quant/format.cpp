// quant/format: format names ("w4g128", "w4", "w3g64s"), shape checks, THE dequantize of a
// QTensor and bits-per-weight accounting. The meaning of codes is stated in format.h
// (METHODS.md section 0); every other file that turns codes into weights calls
// QTensor::dequantize. Ragged groups (IN not a multiple of the group size) are not
// supported: check() rejects them with the tensor's name.
#include "sliderquant/quant/format.h"

#include <ATen/ATen.h>

#include <cctype>

#include "sliderquant/core/error.h"

namespace sq {

int64_t QFormat::groups(int64_t in_features) const {
  if (group_size < 0) return 1;
  SQ_CHECK(group_size > 0 && in_features % group_size == 0,
           "format " << name() << ": " << in_features << " input columns are not a multiple of group size "
                     << group_size << " (ragged groups are not supported)");
  return in_features / group_size;
}

int64_t QFormat::group_width(int64_t in_features) const {
  return group_size < 0 ? in_features : group_size;
}

void QFormat::check(int64_t out_features, int64_t in_features, const std::string& tensor) const {
  SQ_CHECK(bits >= 2 && bits <= 8, "tensor " << tensor << ": format has " << bits << " bits (supported: 2..8)");
  SQ_CHECK(out_features > 0 && in_features > 0,
           "tensor " << tensor << ": cannot quantize an empty weight [" << out_features << ", " << in_features << "]");
  SQ_CHECK(group_size == -1 || group_size > 0,
           "tensor " << tensor << ": group size " << group_size << " (use -1 for per-channel or a positive size)");
  SQ_CHECK(group_size < 0 || in_features % group_size == 0,
           "tensor " << tensor << ": in-features " << in_features << " is not a multiple of group size "
                     << group_size << " (format " << name()
                     << "); ragged groups are not supported, choose a group size dividing " << in_features
                     << " or per-channel");
}

std::string QFormat::name() const {
  std::string s = "w" + std::to_string(bits);
  if (group_size > 0) s += "g" + std::to_string(group_size);
  if (symmetric) s += "s";
  return s;
}

namespace {

// Reads up to 9 decimal digits at s[pos]; -1 when there are none (or too many).
int64_t read_number(const std::string& s, size_t& pos) {
  size_t start = pos;
  while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) ++pos;
  if (pos == start || pos - start > 9) return -1;
  return std::stoll(s.substr(start, pos - start));
}

}  // namespace

QFormat QFormat::parse(const std::string& text) {
  std::string s;
  for (char c : text) s += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  auto bad = [&](const std::string& why) {
    throw UsageError("bad quantization format '" + text + "': " + why +
                     " (use e.g. w4g128, w4 for per-channel, w3g64s for symmetric; bits 2..8)");
  };
  QFormat f;
  size_t pos = 0;
  if (s.empty() || s[0] != 'w') bad("must start with 'w'");
  ++pos;
  int64_t bits = read_number(s, pos);
  if (bits < 2 || bits > 8) bad("bits must be 2..8");
  f.bits = static_cast<int>(bits);
  if (pos < s.size() && s[pos] == 'g') {
    ++pos;
    int64_t g = read_number(s, pos);
    if (g < 1) bad("group size must be a positive integer");
    f.group_size = g;
  }
  if (pos < s.size() && s[pos] == 's') {
    f.symmetric = true;
    ++pos;
  }
  if (pos != s.size()) bad("unexpected '" + s.substr(pos) + "'");
  return f;
}

at::Tensor QTensor::dequantize() const {
  SQ_CHECK(codes.defined() && codes.dim() == 2, "QTensor: codes must be a defined [out, in] tensor");
  const int64_t out = codes.size(0), in = codes.size(1);
  const int64_t G = g_idx.defined() ? scales.size(1) : format.groups(in);
  SQ_CHECK(scales.dim() == 2 && scales.size(0) == out && scales.size(1) == G && zeros.sizes() == scales.sizes(),
           "QTensor " << format.name() << ": scales " << scales.sizes() << " / zeros " << zeros.sizes()
                      << " do not match codes [" << out << ", " << in << "] with " << G << " groups");
  at::Tensor s = scales.to(at::kFloat);  // [out, G]
  at::Tensor z = zeros.to(at::kFloat);   // [out, G]
  at::Tensor c = codes.to(at::kFloat);   // [out, in]
  if (g_idx.defined()) {
    SQ_CHECK(g_idx.dim() == 1 && g_idx.size(0) == in,
             "QTensor " << format.name() << ": g_idx has shape " << g_idx.sizes() << ", expected [" << in << "]");
    at::Tensor idx = g_idx.to(codes.device(), at::kLong);
    return s.index_select(1, idx).mul(c.sub(z.index_select(1, idx)));
  }
  const int64_t width = format.group_width(in);
  // [out, G, width] views: one (scale, zero) per group broadcast over its columns.
  at::Tensor c3 = c.view({out, G, width});
  return s.unsqueeze(2).mul(c3.sub(z.unsqueeze(2))).view({out, in});
}

double bits_per_weight(const QFormat& f, int64_t out_features, int64_t in_features, bool with_g_idx) {
  const double groups = static_cast<double>(f.groups(in_features));
  const double per_group = 16.0 + (f.symmetric ? 0.0 : f.bits);  // fp16 scale + packed zero
  double bpw = f.bits + groups * per_group / static_cast<double>(in_features);
  if (with_g_idx) bpw += 32.0 / static_cast<double>(out_features);
  return bpw;
}

}  // namespace sq
