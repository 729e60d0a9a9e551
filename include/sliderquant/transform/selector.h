// transform/selector: the statistics behind the cheap per-layer choice between a rotation
// and an affine transform in "Adaptive Layer-Wise Transformations for PTQ of LLMs" (Pham
// et al., arXiv 2511.17809; docs/METHODS.md sec. 4): each linear group's weight kurtosis, made
// comparable across layers with a robust z-score, against thresholds β_attn and β_ffn.
// What the paper leaves open is a parameter here (which side maps to rotation, whether
// z is taken over all layers or per layer kind); the thresholds have no known values.
// The selector is a pure function on numbers; model_kurtosis reads a Model's weights.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

#include "sliderquant/model/forward.h"
#include "sliderquant/model/model.h"

namespace sq {

// Pearson kurtosis E[(x - μ)^4] / σ^4 of all entries (population moments: μ, σ² and the
// fourth moment divide by the number of entries), computed in float64 whatever the dtype.
// A Gaussian gives about 3, a Laplace 6, a uniform 1.8: this is NOT the excess kurtosis
// (which subtracts 3). Throws sq::Error for an empty or constant tensor.
double kurtosis(const at::Tensor& w);
// The same over the entries of all parts together (as if concatenated, without copying).
double kurtosis(const std::vector<at::Tensor>& parts);

// Robust (modified) z-scores, Iglewicz & Hoaglin (1993): z_i = 0.6745 (x_i - median) / MAD
// with MAD = median_i |x_i - median|; the median of an even count is the mean of the two
// middle values. 0.6745 ≈ Φ⁻¹(0.75) makes MAD/0.6745 estimate σ for Gaussian data, so z is
// on the scale of an ordinary z-score. When MAD == 0 (more than half the values equal)
// every z is 0. Empty in, empty out; non-finite values throw sq::Error.
std::vector<double> robust_z(const std::vector<double>& v);

enum class TransformKind { Rotation, Affine };
enum class LayerKind { Attention, Mlp };
const char* transform_kind_name(TransformKind k);  // "rotation", "affine"
const char* layer_kind_name(LayerKind k);          // "attention", "mlp"

// Which transform a heavy-tailed layer (z > β) gets; the others get the other kind. The
// paper does not say. Default: rotation, because an orthogonal mixing spreads a few large
// weights/outlier channels over all coordinates (what QuaRot relies on), while a learnt
// affine transform suits the light-tailed rest.
enum class HeavyTail { ToRotation, ToAffine };
// Over which values the robust z is taken: all entries together (Pooled, the literal
// reading "normalise across layers") or separately within attention and within MLP entries.
enum class ZScope { Pooled, PerKind };

struct SelectorOptions {
  HeavyTail heavy_tail = HeavyTail::ToRotation;
  ZScope scope = ZScope::Pooled;
};

struct Selection {
  std::vector<TransformKind> kinds;  // one per entry
  std::vector<double> z;             // the robust z-score each was compared with
};

// Entry i is heavy-tailed when z_i > β of its kind (beta_attn for Attention, beta_ffn for
// Mlp, strict); heavy entries get opts.heavy_tail's kind. kurt (kurtosis per entry) and
// layers must have the same length.
Selection select_transforms(const std::vector<double>& kurt, const std::vector<LayerKind>& layers,
                            double beta_attn, double beta_ffn, const SelectorOptions& opts = {});

// ---- on a model ------------------------------------------------------------------------------

// Attention for the q/k/v and o inputs, Mlp for the gate/up and down inputs.
LayerKind layer_kind(TapPoint p);

// One transform point of one block (the input of a linear group, as in FlatQuant).
struct TransformChoice {
  int64_t block = 0;
  TapPoint point = TapPoint::QkvIn;
  double kurtosis = 0;  // of the group's master weights: q+k+v, o, gate+up or down
  double z = 0;         // filled by select_model_transforms
  TransformKind kind = TransformKind::Affine;  // filled by select_model_transforms
};

// Kurtosis of every block's four groups (QkvIn = q, k, v weights together; OIn = o;
// GateUpIn = gate and up together; DownIn = down), blocks in order, points in forward order.
// Uses the master weights (a quantized linear's override is ignored); throws sq::Error
// naming the linear when a master weight is missing (a model loaded packed).
std::vector<TransformChoice> model_kurtosis(const Model& m);

// model_kurtosis followed by select_transforms.
std::vector<TransformChoice> select_model_transforms(const Model& m, double beta_attn, double beta_ffn,
                                                     const SelectorOptions& opts = {});

}  // namespace sq
