// transform/selector: weight kurtosis (two passes in float64, in chunks so large weights
// are never copied whole), robust z-scores and the threshold rule choosing a rotation or an
// affine transform per transform point (Pham et al., arXiv 2511.17809).
#include "sliderquant/transform/selector.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>

#include "sliderquant/core/error.h"

namespace sq {

namespace {

constexpr int64_t kChunk = int64_t(1) << 22;  // entries converted to float64 at a time

// Calls fn with consecutive float64 chunks of every entry of `parts`.
template <class Fn>
void for_each_chunk(const std::vector<at::Tensor>& parts, Fn fn) {
  for (const at::Tensor& t : parts) {
    at::Tensor flat = t.reshape({-1});
    for (int64_t i = 0; i < flat.numel(); i += kChunk) {
      fn(flat.narrow(0, i, std::min(kChunk, flat.numel() - i)).to(at::kDouble));
    }
  }
}

double median_of(std::vector<double> v) {
  const size_t n = v.size(), h = n / 2;
  std::nth_element(v.begin(), v.begin() + h, v.end());
  const double hi = v[h];
  if (n % 2 == 1) return hi;
  return 0.5 * (hi + *std::max_element(v.begin(), v.begin() + h));
}

}  // namespace

double kurtosis(const at::Tensor& w) { return kurtosis(std::vector<at::Tensor>{w}); }

double kurtosis(const std::vector<at::Tensor>& parts) {
  int64_t n = 0;
  double sum = 0;
  for (const at::Tensor& t : parts) SQ_CHECK(t.defined(), "kurtosis: undefined tensor");
  for_each_chunk(parts, [&](const at::Tensor& c) {
    n += c.numel();
    sum += c.sum().item<double>();
  });
  SQ_CHECK(n > 0, "kurtosis: no entries");
  const double mu = sum / double(n);
  double m2 = 0, m4 = 0;
  for_each_chunk(parts, [&](const at::Tensor& c) {
    at::Tensor d2 = (c - mu).square_();
    m2 += d2.sum().item<double>();
    m4 += d2.square_().sum().item<double>();
  });
  m2 /= double(n);
  m4 /= double(n);
  SQ_CHECK(std::isfinite(m4), "kurtosis: the entries are not all finite");
  SQ_CHECK(m2 > 0, "kurtosis: all " << n << " entries are equal (variance 0)");
  return m4 / (m2 * m2);
}

std::vector<double> robust_z(const std::vector<double>& v) {
  for (double x : v) SQ_CHECK(std::isfinite(x), "robust_z: value " << x << " is not finite");
  if (v.empty()) return {};
  const double med = median_of(v);
  std::vector<double> dev(v.size());
  for (size_t i = 0; i < v.size(); ++i) dev[i] = std::abs(v[i] - med);
  const double mad = median_of(dev);
  std::vector<double> z(v.size(), 0.0);
  if (mad == 0) return z;
  for (size_t i = 0; i < v.size(); ++i) z[i] = 0.6745 * (v[i] - med) / mad;
  return z;
}

const char* transform_kind_name(TransformKind k) { return k == TransformKind::Rotation ? "rotation" : "affine"; }
const char* layer_kind_name(LayerKind k) { return k == LayerKind::Attention ? "attention" : "mlp"; }

Selection select_transforms(const std::vector<double>& kurt, const std::vector<LayerKind>& layers,
                            double beta_attn, double beta_ffn, const SelectorOptions& opts) {
  SQ_CHECK(kurt.size() == layers.size(),
           "select_transforms: " << kurt.size() << " kurtosis values but " << layers.size() << " layer kinds");
  Selection s;
  if (opts.scope == ZScope::Pooled) {
    s.z = robust_z(kurt);
  } else {
    s.z.assign(kurt.size(), 0.0);
    for (LayerKind kind : {LayerKind::Attention, LayerKind::Mlp}) {
      std::vector<size_t> idx;
      std::vector<double> vals;
      for (size_t i = 0; i < layers.size(); ++i) {
        if (layers[i] == kind) idx.push_back(i), vals.push_back(kurt[i]);
      }
      std::vector<double> z = robust_z(vals);
      for (size_t j = 0; j < idx.size(); ++j) s.z[idx[j]] = z[j];
    }
  }
  const TransformKind heavy = opts.heavy_tail == HeavyTail::ToRotation ? TransformKind::Rotation : TransformKind::Affine;
  const TransformKind light = heavy == TransformKind::Rotation ? TransformKind::Affine : TransformKind::Rotation;
  for (size_t i = 0; i < layers.size(); ++i) {
    const double beta = layers[i] == LayerKind::Attention ? beta_attn : beta_ffn;
    s.kinds.push_back(s.z[i] > beta ? heavy : light);
  }
  return s;
}

LayerKind layer_kind(TapPoint p) {
  return p == TapPoint::QkvIn || p == TapPoint::OIn ? LayerKind::Attention : LayerKind::Mlp;
}

std::vector<TransformChoice> model_kurtosis(const Model& m) {
  std::vector<TransformChoice> out;
  for (size_t b = 0; b < m.blocks.size(); ++b) {
    for (int p = 0; p < kTapPoints; ++p) {
      std::vector<at::Tensor> parts;
      for (const Linear* l : m.blocks[b].group(TapPoint(p))) {
        SQ_CHECK(l->weight.defined(), "model_kurtosis: " << l->name << " has no master weight (a model loaded "
                                                         << "packed has none); load the full-precision model");
        parts.push_back(l->weight);
      }
      TransformChoice c;
      c.block = int64_t(b);
      c.point = TapPoint(p);
      c.kurtosis = kurtosis(parts);
      out.push_back(c);
    }
  }
  return out;
}

std::vector<TransformChoice> select_model_transforms(const Model& m, double beta_attn, double beta_ffn,
                                                     const SelectorOptions& opts) {
  std::vector<TransformChoice> out = model_kurtosis(m);
  std::vector<double> k;
  std::vector<LayerKind> layers;
  for (const TransformChoice& c : out) k.push_back(c.kurtosis), layers.push_back(layer_kind(c.point));
  Selection s = select_transforms(k, layers, beta_attn, beta_ffn, opts);
  for (size_t i = 0; i < out.size(); ++i) out[i].z = s.z[i], out[i].kind = s.kinds[i];
  return out;
}

}  // namespace sq
