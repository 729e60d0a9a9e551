// model/quantized_weight: the two WeightOverrides that put a quantized tensor in place of a
// Linear's weight: a QTensor (quant/format) or a two-width MixedQTensor (quant/mixed). The
// forward pass asks them for the dequantized weight. Set by the pipeline when a pass
// quantizes a linear, and by the model-format readers (formats/) when a stored linear is
// loaded packed; neither needs the other.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <utility>

#include "sliderquant/model/model.h"
#include "sliderquant/quant/format.h"
#include "sliderquant/quant/mixed.h"

namespace sq {

// A QTensor in place of a Linear's weight (dequantized when the forward pass asks).
class QTensorWeight : public WeightOverride {
 public:
  explicit QTensorWeight(QTensor q) : q_(std::move(q)) {}
  at::Tensor weight() const override { return q_.dequantize(); }
  std::string describe() const override { return q_.format.name(); }
  const QTensor& qtensor() const { return q_; }

 private:
  QTensor q_;
};

// A two-width MixedQTensor in place of a Linear's weight (quant/mixed.h).
class MixedQTensorWeight : public WeightOverride {
 public:
  explicit MixedQTensorWeight(MixedQTensor q) : q_(std::move(q)) {}
  at::Tensor weight() const override { return q_.dequantize(); }
  std::string describe() const override { return q_.hi.format.name() + "+" + q_.lo.format.name(); }
  const MixedQTensor& mixed() const { return q_; }

 private:
  MixedQTensor q_;
};

}  // namespace sq
