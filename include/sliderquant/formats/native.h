// formats/native: sliderquant's own quantized model directory (the `native` row of the
// format registry, formats/model_format.h): the source's config.json, generation_config.json
// and tokenizer files; weights where each quantized linear is stored packed (pack/native.h,
// pack/native_mixed.h) and every other tensor as in the source; and quantization_config.json
// (format version and features, each tensor's format, the resolved recipe, calibration hash
// and seed, tool version). See docs/FORMAT.md.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "sliderquant/formats/model_format.h"

namespace sq {

// quantization_config.json "format_version": written as kNativeFormatVersion; readable
// from kNativeOldestFormatVersion up. Version 2 added the "features" list (the packed
// bit layout is the same in both).
constexpr int kNativeFormatVersion = 2;
constexpr int kNativeOldestFormatVersion = 1;

// The features a version-2 file may list, in the order the writer lists them.
const std::vector<std::string>& native_known_features();

using NativeWriteOptions = FormatWriteOptions;

// find_format("native").write with the arguments in their historical order.
void write_native_model(const Model& m, const std::map<std::string, QTensor>& quantized, const std::string& out,
                        const NativeWriteOptions& opts, const std::map<std::string, MixedQTensor>& mixed = {});

// DIR has a quantization_config.json (the native row's detect).
bool is_native_quantized(const std::string& dir);

}  // namespace sq
