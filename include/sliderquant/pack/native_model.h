// pack/native_model: a quantized model directory in the native format (version 1):
// the source's config.json, generation_config.json and tokenizer files; weights where each
// quantized linear is stored packed (pack/native.h) and every other tensor as in the
// source; and quantization_config.json (format version, each tensor's format, the resolved
// recipe, calibration hash and seed, tool version). See docs/FORMAT.md.
#pragma once
#include <map>
#include <string>

#include "sliderquant/model/model.h"
#include "sliderquant/quant/format.h"
#include "sliderquant/quant/mixed.h"

namespace sq {

struct NativeWriteOptions {
  bool force = false;                             // replace an existing OUT
  uint64_t max_shard_bytes = uint64_t(4) << 30;   // shard the weights above this size
  std::string extra_json = "{}";                  // merged into quantization_config.json
};

// Writes into OUT.tmp.<pid> and renames it to OUT when complete: a failed run leaves no OUT.
// `quantized` maps canonical linear names to their QTensors, `mixed` to their two-width
// MixedQTensors (docs/FORMAT.md "Mixed-precision linears"; per-tensor format entry
// {"hi": HI, "lo": LO, "k": K, ...}). A name may be in only one of the two.
void write_native_model(const Model& m, const std::map<std::string, QTensor>& quantized, const std::string& out,
                        const NativeWriteOptions& opts, const std::map<std::string, MixedQTensor>& mixed = {});

bool is_native_quantized(const std::string& dir);
// Loads a plain HF directory or a native quantized one (quantized linears become
// QTensor overrides, mixed-precision ones MixedQTensor overrides; their master weight
// stays undefined).
Model load_any_model(const std::string& dir);

}  // namespace sq
