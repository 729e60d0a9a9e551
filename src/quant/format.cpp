// quant/format: format names ("w4g128", "w4", "w3g64s", "w2g128d"), shape checks, THE
// dequantize of a QTensor (uniform affine, docs/METHODS.md section 0; DSQ levels, D²Quant arXiv
// 2602.02546 section 2.2 step 5) and bits-per-weight accounting. The meaning of codes is
// stated in format.h; every other file that turns codes into weights calls
// QTensor::dequantize. Ragged groups (IN not a multiple of the group size) are not
// supported: check() rejects them with the tensor's name.
#include "sliderquant/quant/format.h"

#include <ATen/ATen.h>

#include <cctype>

#include "sliderquant/core/error.h"
#include "sliderquant/io/ggml_types.h"

namespace sq {

namespace {

struct GridRow {
  GgmlGrid grid;
  const char* name;
  GgmlType type;
  int bits;
  int64_t group;
  bool symmetric;
};
// name, ggml type, sub-block codes: bits, width, zero form (symmetric) or min form.
constexpr GridRow kGrids[] = {
    {GgmlGrid::Q4_0, "q4_0", GgmlType::Q4_0, 4, 32, true},  {GgmlGrid::Q5_0, "q5_0", GgmlType::Q5_0, 5, 32, true},
    {GgmlGrid::Q8_0, "q8_0", GgmlType::Q8_0, 8, 32, true},  {GgmlGrid::Q4_1, "q4_1", GgmlType::Q4_1, 4, 32, false},
    {GgmlGrid::Q5_1, "q5_1", GgmlType::Q5_1, 5, 32, false}, {GgmlGrid::Q2_K, "q2_k", GgmlType::Q2_K, 2, 16, false},
    {GgmlGrid::Q3_K, "q3_k", GgmlType::Q3_K, 3, 16, true},  {GgmlGrid::Q4_K, "q4_k", GgmlType::Q4_K, 4, 32, false},
    {GgmlGrid::Q5_K, "q5_k", GgmlType::Q5_K, 5, 32, false}, {GgmlGrid::Q6_K, "q6_k", GgmlType::Q6_K, 6, 16, true},
};

const GridRow& grid_row(GgmlGrid g) {
  for (const GridRow& r : kGrids)
    if (r.grid == g) return r;
  SQ_FAIL("format: not a ggml grid");
}

}  // namespace

uint32_t ggml_grid_type_id(GgmlGrid g) { return static_cast<uint32_t>(grid_row(g).type); }
const char* ggml_grid_name(GgmlGrid g) { return g == GgmlGrid::None ? "" : grid_row(g).name; }

QFormat QFormat::of_grid(GgmlGrid g) {
  const GridRow& r = grid_row(g);
  QFormat f;
  f.bits = r.bits;
  f.group_size = r.group;
  f.symmetric = r.symmetric;
  f.grid = g;
  return f;
}

bool QFormat::kquant() const {
  return grid == GgmlGrid::Q2_K || grid == GgmlGrid::Q3_K || grid == GgmlGrid::Q4_K || grid == GgmlGrid::Q5_K ||
         grid == GgmlGrid::Q6_K;
}
bool QFormat::min_form() const { return ggml() && !symmetric; }
int64_t QFormat::super_block() const { return kquant() ? 256 : ggml() ? 32 : group_size; }

int64_t QFormat::groups(int64_t in_features) const {
  if (group_size < 0) return 1;
  SQ_CHECK(group_size > 0, "format " << name() << ": group size " << group_size);
  SQ_CHECK(!ragged(in_features) || (!dsq && !ggml()),
           "format " << name() << ": " << in_features << " input columns are not a multiple of group size "
                     << group_size << " (ragged groups need a uniform format, not DSQ or a ggml grid)");
  return (in_features + group_size - 1) / group_size;
}

at::Tensor group_index(int64_t in_features, int64_t width, c10::Device device) {
  return at::arange(in_features, at::TensorOptions().dtype(at::kLong).device(device)).div(width, "floor");
}

at::Tensor pad_groups(const at::Tensor& W, const QFormat& f) {
  const int64_t in = W.size(1), G = f.groups(in), width = f.group_width(in);
  if (G * width == in) return W;
  at::Tensor last = W.narrow(1, in - 1, 1);  // [out, 1]
  return at::cat({W, last.expand({W.size(0), G * width - in})}, 1);
}

int64_t QFormat::group_width(int64_t in_features) const {
  return group_size < 0 ? in_features : group_size;
}

void QFormat::check(int64_t out_features, int64_t in_features, const std::string& tensor) const {
  SQ_CHECK(supported_bits(bits), "tensor " << tensor << ": format has " << bits << " bits (supported: 2..8)");
  SQ_CHECK(!dsq || (bits <= 3 && !symmetric),
           "tensor " << tensor << ": DSQ format " << name() << " needs 2 or 3 bits and no 's' (e.g. w2g128d)");
  SQ_CHECK(out_features > 0 && in_features > 0,
           "tensor " << tensor << ": cannot quantize an empty weight [" << out_features << ", " << in_features << "]");
  SQ_CHECK(group_size == -1 || group_size > 0,
           "tensor " << tensor << ": group size " << group_size << " (use -1 for per-channel or a positive size)");
  SQ_CHECK(!ragged(in_features) || (!dsq && !ggml()),
           "tensor " << tensor << ": in-features " << in_features << " is not a multiple of group size "
                     << group_size << " (format " << name()
                     << "); a short last group needs a uniform format, not DSQ or a ggml grid: choose a group "
                        "size dividing "
                     << in_features << " or per-channel");
  if (ggml()) {
    const char* fb = grid == GgmlGrid::Q4_K   ? "q5_0"
                     : grid == GgmlGrid::Q5_K ? "q5_1"
                     : grid == GgmlGrid::Q6_K ? "q8_0"
                                              : "q4_0";
    SQ_CHECK(in_features % super_block() == 0,
             "tensor " << tensor << ": in-features " << in_features << " is not a multiple of the " << name()
                       << " block of " << super_block()
                       << (kquant() ? std::string(" (plan_linears falls back to ") + fb + " for such rows)" : ""));
  }
}

std::string QFormat::name() const {
  if (ggml()) return grid_row(grid).name;
  std::string s = "w" + std::to_string(bits);
  if (group_size > 0) s += "g" + std::to_string(group_size);
  if (symmetric) s += "s";
  if (dsq) s += "d";
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
                     " (use e.g. w4g128, w4 for per-channel, w3g64s for symmetric, w2g128d for DSQ; bits 2..8)");
  };
  for (const GridRow& r : kGrids)
    if (s == r.name) return of_grid(r.grid);
  QFormat f;
  size_t pos = 0;
  if (s.empty() || s[0] != 'w') bad("must start with 'w' or be a ggml type (q4_0, q5_0, q8_0, q4_1, q5_1, q2_k..q6_k)");
  ++pos;
  int64_t bits = read_number(s, pos);
  if (!supported_bits(bits)) bad("bits must be 2..8");
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
  if (pos < s.size() && s[pos] == 'd') {
    if (f.symmetric) bad("DSQ formats are not symmetric (drop the 's')");
    if (f.bits > 3) bad("DSQ formats have 2 or 3 bits");
    f.dsq = true;
    ++pos;
  }
  if (pos != s.size()) bad("unexpected '" + s.substr(pos) + "'");
  return f;
}

at::Tensor dsq_levels(const at::Tensor& r) {
  const int64_t bits = r.size(-1), n = int64_t(1) << bits;
  // signs[code, k] = 2 * bit_k(code) - 1: [2^bits, bits]
  at::Tensor code = at::arange(n, r.options().dtype(at::kLong)).unsqueeze(1);
  at::Tensor pow2 = at::pow(2, at::arange(bits, r.options().dtype(at::kLong))).unsqueeze(0);
  at::Tensor signs = code.div(pow2, "floor").remainder_(2).mul_(2).sub_(1).to(r.scalar_type());
  return at::matmul(r, signs.t());
}

namespace {

// DSQ: w = col_scale[j] * levels[r, g(j), codes[r, j]].
at::Tensor dequantize_dsq(const QTensor& q) {
  const int64_t out = q.codes.size(0), in = q.codes.size(1);
  const int64_t G = q.format.groups(in), width = q.format.group_width(in);
  SQ_CHECK(!q.g_idx.defined(), "QTensor " << q.format.name() << ": DSQ formats take no g_idx");
  SQ_CHECK(q.levels_r.defined() && q.levels_r.dim() == 3 && q.levels_r.size(0) == out &&
               q.levels_r.size(1) == G && q.levels_r.size(2) == q.format.bits,
           "QTensor " << q.format.name() << ": levels_r " << (q.levels_r.defined() ? q.levels_r.sizes() : at::IntArrayRef{})
                      << " does not match codes [" << out << ", " << in << "] with " << G << " groups, expected ["
                      << out << ", " << G << ", " << q.format.bits << "]");
  at::Tensor L = dsq_levels(q.levels_r.to(q.codes.device(), at::kFloat));  // [out, G, 2^bits]
  at::Tensor idx = q.codes.to(at::kLong).view({out, G, width});           // [out, G, width]
  at::Tensor w = at::gather(L, 2, idx).view({out, in});                   // [out, in]
  if (q.col_scale.defined()) {
    SQ_CHECK(q.col_scale.dim() == 1 && q.col_scale.size(0) == in,
             "QTensor " << q.format.name() << ": col_scale has shape " << q.col_scale.sizes() << ", expected [" << in
                        << "]");
    w.mul_(q.col_scale.to(q.codes.device(), at::kFloat).unsqueeze(0));
  }
  return w;
}

}  // namespace

at::Tensor QTensor::dequantize() const {
  SQ_CHECK(codes.defined() && codes.dim() == 2, "QTensor: codes must be a defined [out, in] tensor");
  if (format.dsq) return dequantize_dsq(*this);
  const int64_t out = codes.size(0), in = codes.size(1);
  const int64_t G = g_idx.defined() ? scales.size(1) : format.groups(in);
  if (format.min_form()) {
    SQ_CHECK(!g_idx.defined(), "QTensor " << format.name() << ": ggml grids take no g_idx");
    SQ_CHECK(scales.defined() && mins.defined() && scales.dim() == 2 && scales.size(0) == out && scales.size(1) == G &&
                 mins.sizes() == scales.sizes(),
             "QTensor " << format.name() << ": scales / mins do not match codes [" << out << ", " << in << "] with "
                        << G << " groups");
    const int64_t width = format.group_width(in);
    at::Tensor c3 = codes.to(at::kFloat).view({out, G, width});
    // ggml: y = d1 * q - m1, two float32 roundings (no fused multiply-add).
    return scales.to(at::kFloat).unsqueeze(2).mul(c3).sub(mins.to(at::kFloat).unsqueeze(2)).view({out, in});
  }
  SQ_CHECK(scales.dim() == 2 && scales.size(0) == out && scales.size(1) == G && zeros.sizes() == scales.sizes(),
           "QTensor " << format.name() << ": scales " << scales.sizes() << " / zeros " << zeros.sizes()
                      << " do not match codes [" << out << ", " << in << "] with " << G << " groups");
  at::Tensor s = scales.to(at::kFloat);  // [out, G]
  at::Tensor z = zeros.to(at::kFloat);   // [out, G]
  at::Tensor c = codes.to(at::kFloat);   // [out, in]
  if (g_idx.defined() || format.ragged(in)) {
    SQ_CHECK(!g_idx.defined() || (g_idx.dim() == 1 && g_idx.size(0) == in),
             "QTensor " << format.name() << ": g_idx has shape " << g_idx.sizes() << ", expected [" << in << "]");
    at::Tensor idx = g_idx.defined() ? g_idx.to(codes.device(), at::kLong)
                                     : group_index(in, format.group_width(in), codes.device());
    return s.index_select(1, idx).mul(c.sub(z.index_select(1, idx)));
  }
  const int64_t width = format.group_width(in);
  // [out, G, width] views: one (scale, zero) per group broadcast over its columns.
  at::Tensor c3 = c.view({out, G, width});
  return s.unsqueeze(2).mul(c3.sub(z.unsqueeze(2))).view({out, in});
}

QTensor QTensor::to(const c10::Device& device) const {
  auto mv = [&](const at::Tensor& t) { return t.defined() ? t.to(device) : t; };
  QTensor q;
  q.format = format;
  q.codes = mv(codes);
  q.scales = mv(scales);
  q.zeros = mv(zeros);
  q.g_idx = mv(g_idx);
  q.levels_r = mv(levels_r);
  q.col_scale = mv(col_scale);
  q.mins = mv(mins);
  q.sub_scales = mv(sub_scales);
  q.sub_mins = mv(sub_mins);
  q.super_d = mv(super_d);
  q.super_dmin = mv(super_dmin);
  return q;
}

at::Tensor take_column_scale(QTensor& q) {
  SQ_CHECK(q.format.dsq, "take_column_scale: format " << q.format.name() << " has no column scale (DSQ only)");
  SQ_CHECK(q.col_scale.defined(), "take_column_scale: the column scale was already taken (absorbed)");
  at::Tensor c = q.col_scale;
  q.col_scale = at::Tensor();
  return c;
}

void ggml_grid_fill(QTensor& q) {
  if (!q.format.kquant()) return;
  const int64_t out = q.codes.size(0), in = q.codes.size(1);
  const int64_t G = q.format.groups(in), per = 256 / q.format.group_size;
  SQ_CHECK(q.sub_scales.defined() && q.super_d.defined() && q.sub_scales.sizes() == at::IntArrayRef({out, G}) &&
               q.super_d.sizes() == at::IntArrayRef({out, in / 256}),
           "QTensor " << q.format.name() << ": sub_scales / super_d missing or misshapen for [" << out << ", " << in
                      << "]");
  at::Tensor d = q.super_d.to(at::kFloat).repeat_interleave(per, 1);  // [out, G]
  q.scales = d.mul(q.sub_scales.to(at::kFloat));
  if (q.format.min_form()) {
    SQ_CHECK(q.sub_mins.defined() && q.super_dmin.defined() && q.sub_mins.sizes() == q.sub_scales.sizes() &&
                 q.super_dmin.sizes() == q.super_d.sizes(),
             "QTensor " << q.format.name() << ": sub_mins / super_dmin missing or misshapen");
    q.mins = q.super_dmin.to(at::kFloat).repeat_interleave(per, 1).mul(q.sub_mins.to(at::kFloat));
    q.zeros = at::Tensor();
  } else {
    q.zeros = at::full({out, G}, static_cast<double>(int64_t(1) << (q.format.bits - 1)), at::kFloat);
  }
}

double bits_per_weight(const QFormat& f, int64_t out_features, int64_t in_features, bool with_g_idx,
                       bool with_col_scale) {
  if (f.ggml()) {
    SQ_CHECK(!with_g_idx, "bits_per_weight: ggml grid " << f.name() << " takes no g_idx");
    const GgmlTypeInfo& t = ggml_type_info(static_cast<GgmlType>(ggml_grid_type_id(f.grid)));
    return 8.0 * static_cast<double>(t.block_bytes) / static_cast<double>(t.block);
  }
  const double groups = static_cast<double>(f.groups(in_features));
  if (f.dsq) {
    SQ_CHECK(!with_g_idx, "bits_per_weight: DSQ format " << f.name() << " takes no g_idx");
    double bpw = f.bits + groups * 16.0 * f.bits / static_cast<double>(in_features);
    if (with_col_scale) bpw += 16.0 / static_cast<double>(out_features);
    return bpw;
  }
  const double per_group = 16.0 + (f.symmetric ? 0.0 : f.bits);  // fp16 scale + packed zero
  double bpw = f.bits + groups * per_group / static_cast<double>(in_features);
  if (with_g_idx) bpw += 32.0 / static_cast<double>(out_features);
  return bpw;
}

}  // namespace sq
