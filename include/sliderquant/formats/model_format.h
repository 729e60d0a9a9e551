// formats/model_format: the registry of model-directory formats. One row per on-disk format
// (src/formats/<name>.cpp), listed in one explicit table (src/formats/registry.cpp; no
// static self-registration). A row answers five questions about its format: is DIR in it
// (detect), load it (read), store a model with its quantized linears (write, atomic),
// what does DIR hold (describe: what `inspect` and `recipe explain` print), and can a given
// quantized tensor be stored exactly (cannot_store: "" = yes, else the reason).
//
// Rows today: `native` (sliderquant's packed layout + quantization_config.json,
// docs/FORMAT.md), `hf` (plain Hugging Face safetensors, full precision) and `gguf`
// (llama.cpp's single file; DIR is then the file's path). detect_format
// tries them in table order, so the more specific format comes first.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "sliderquant/model/model.h"
#include "sliderquant/quant/format.h"
#include "sliderquant/quant/mixed.h"

namespace sq {

struct FormatWriteOptions {
  bool force = false;                            // replace an existing OUT
  uint64_t max_shard_bytes = uint64_t(4) << 30;  // shard the weights above this size
  std::string extra_json = "{}";                 // the run's report (recipe, calibration, timings...):
                                                 // native merges it into quantization_config.json;
                                                 // hf and gguf have no place for it and ignore it
  // Re-quantize the linears the format cannot store exactly onto this type (lossy, reported)
  // instead of refusing them; "" = refuse. GGUF: a ggml type name ("q4_k", "q8_0", ...).
  std::string requant_type;
  // gptq: "gptq" (v1: zero - 1 stored), "gptq_v2" (true zeros) or "" (v1 unless a zero is 0).
  std::string checkpoint_format;
  // When set, the format adds what it wrote (gguf: every tensor's type and added error).
  nlohmann::json* report = nullptr;
};

struct ModelFormat {
  const char* name;         // "native", "hf": what --format and find_format take
  const char* summary;      // one line for listings
  const char* looks_for;    // what detect checks, for the "no format matches" error
  bool stores_quantized;    // true when the format keeps quantized linears packed
  bool (*detect)(const std::string& dir);
  // Loads DIR (quantized linears become QTensorWeight / MixedQTensorWeight overrides
  // without a master weight; model/quantized_weight.h).
  Model (*read)(const std::string& dir);
  // Writes M into OUT: every tensor of its current state (canonical_tensors), each linear
  // named in `quantized` or `mixed` (canonical names; a name may be in only one) stored in
  // its quantized form. Writes into OUT.tmp.<pid> and renames it to OUT when complete, so a
  // failed write leaves no OUT. Refuses, naming the tensor and the reason, any linear that
  // cannot_store turns down, before anything is written.
  void (*write)(const Model& m, const std::map<std::string, QTensor>& quantized,
                const std::map<std::string, MixedQTensor>& mixed, const std::string& out,
                const FormatWriteOptions& opts);
  // What DIR holds, as JSON. Every row gives: "format" (the row's name), "dir",
  // "architecture", "family", "quantized" (bool), "linears" (per stored quantized linear,
  // keyed by its HF name without ".weight": "format" — "w4g128", or "HI+LO" for a mixed
  // linear with "hi", "lo", "k" — "shape" [out, in] and "bits_per_weight"), "formats"
  // (format -> number of linears). A quantized format adds what its metadata records
  // (native: "format_label", "format_version", "features", "bits_per_weight_quantized_linears",
  // "recipe" (its name), "calibration" {dataset, sha256, seed}, "metadata" (the raw file)).
  nlohmann::json (*describe)(const std::string& dir);
  // "" when this format stores Q exactly (write then read gives back the same codes,
  // scales and zeros); otherwise why not, in a few words (no tensor name: the caller adds it).
  std::string (*cannot_store)(const QTensor& q);
  std::string (*cannot_store_mixed)(const MixedQTensor& q);
};

// The table, in detection order (native, hf).
const std::vector<ModelFormat>& format_registry();
// The row named NAME; UsageError listing the known names otherwise.
const ModelFormat& find_format(const std::string& name);
// The first row whose detect holds for DIR, or nullptr.
const ModelFormat* try_detect_format(const std::string& dir);
// As try_detect_format; Error naming DIR (and what each format looks for) when none holds.
const ModelFormat& detect_format(const std::string& dir);
// detect_format(dir).read(dir): a plain HF directory or a native quantized one.
Model load_any_model(const std::string& dir);
// The hyper-parameters of PATH without loading weights: config.json of a model directory, or
// the metadata of a GGUF file.
ModelConfig load_any_config(const std::string& path);

// Why vLLM's Marlin kernel (its GPTQ path on GPUs and CPUs) cannot serve a GPTQ linear of
// format F ("" when it can: symmetric 4 or 8 bits, per-channel or groups of 32, 64, 128).
std::string gptq_marlin_problem(const QFormat& f);

}  // namespace sq
