// formats/hf: a plain Hugging Face model directory (config.json + safetensors weights, full
// precision). Read = the model loader; write = the model's current full-precision tensors
// under their HF names (transformed weights included), with the source's config and
// tokenizer files. It has no place for quantized linears, activation quantization, online
// transforms, learned clipping or norm biases, and refuses them by name.
#include <nlohmann/json.hpp>

#include "format_common.h"
#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/io/safetensors.h"
#include "sliderquant/model/arch.h"

namespace sq::formats {
namespace {

constexpr const char* kName = "hf";

bool detect(const std::string& dir) {
  return is_directory(dir) && path_exists(path_join(dir, "config.json")) &&
         !path_exists(path_join(dir, "quantization_config.json")) && has_safetensors(dir);
}

// A quantized checkpoint of a kind no row reads (gptq and compressed-tensors are detected
// before this row) would otherwise fail on its first missing .weight, or look full precision.
void refuse_other_quantization(const std::string& dir) {
  const nlohmann::json cfg = read_config_json(dir);
  if (cfg.contains("quantization_config") && cfg["quantization_config"].is_object()) {
    const nlohmann::json& qc = cfg["quantization_config"];
    const std::string method = qc.value("quant_method", std::string("?"));
    SQ_FAIL(path_join(dir, "config.json") << ": quantization_config.quant_method '" << method
                                          << "' is not supported (sliderquant reads gptq and compressed-tensors "
                                             "checkpoints)");
  }
}

Model read(const std::string& dir) {
  refuse_other_quantization(dir);
  return load_model(dir);
}

std::string cannot_store(const QTensor& q) {
  return "plain HF safetensors hold full-precision weights only (no codes, scales or zeros)";
}

std::string cannot_store_mixed(const MixedQTensor& q) {
  return "plain HF safetensors hold full-precision weights only (no mixed-precision linears)";
}

void write(const Model& m, const std::map<std::string, QTensor>& quantized,
           const std::map<std::string, MixedQTensor>& mixed, const std::string& out, const FormatWriteOptions& opts) {
  check_output(out, opts.force);
  check_storable(hf_format(), quantized, mixed);
  check_plain_state(m, kName, /*allow_activations=*/false, "not part of a plain HF model");
  NamedTensors ts;
  for (const auto& [canonical, t] : canonical_tensors(m)) {
    SQ_CHECK(t.defined(), kName << " cannot store " << canonical
                                << ": it has no full-precision weight (it was loaded quantized)");
    ts.emplace_back(hf_tensor_name(canonical, m.config.family), t.contiguous().cpu());
  }
  write_dir_atomic(out, [&](const std::string& tmp) {
    write_checkpoint(tmp, ts, {{"format", "pt"}}, opts.max_shard_bytes);
    copy_source_files(m, tmp);
  });
}

nlohmann::json describe(const std::string& dir) {
  refuse_other_quantization(dir);
  return describe_common(hf_format(), dir);
}

}  // namespace

ModelFormat hf_format() {
  return {kName,
          "plain Hugging Face safetensors, full precision (read with the model loader; write stores no quantization)",
          "config.json and safetensors weights, no quantization_config.json",
          /*stores_quantized=*/false,
          detect,
          read,
          write,
          describe,
          cannot_store,
          cannot_store_mixed};
}

}  // namespace sq::formats
