// formats/registry: the one table of model formats, in detection order (the more specific
// format first: a native output is also a config.json + safetensors directory). Adding a
// format = one file in src/formats/ + one row here.
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "format_common.h"
#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/io/gguf.h"
#include "sliderquant/model/arch.h"

namespace sq {

namespace {

// The rows as their files define them, in detection order.
constexpr ModelFormat (*kRowFactories[])() = {
    formats::native_format, formats::gptq_format, formats::compressed_tensors_format,
    formats::hf_format,     formats::gguf_format,
};
constexpr size_t kRows = sizeof(kRowFactories) / sizeof(kRowFactories[0]);
const std::vector<ModelFormat>& raw_rows() {
  static const std::vector<ModelFormat> table = [] {
    std::vector<ModelFormat> t;
    for (auto make : kRowFactories) t.push_back(make());
    return t;
  }();
  return table;
}

// A JSON value of the wrong type, or a missing key, in a model's metadata files (config.json,
// quantization_config.json, quantize_config.json, an index) surfaces from nlohmann as its own
// exception type; at the registry's edge it becomes the project's one-line Error naming the
// model, whatever row read it (found by fuzz/fuzz_formats.cpp: a native tensor entry without
// "format"). The rows still name the file and key where they check explicitly.
[[noreturn]] void json_error(const std::string& dir, const char* row, const nlohmann::json::exception& e) {
  SQ_FAIL(dir << ": the " << row << " model's metadata holds a value of the wrong type or lacks a key ("
              << e.what() << ")");
}
// CALL(row I), under the JSON guard above.
template <class Call>
auto guarded(size_t i, const std::string& dir, Call&& call) -> decltype(call(raw_rows()[i])) {
  try {
    return call(raw_rows()[i]);
  } catch (const nlohmann::json::exception& e) {
    json_error(dir, raw_rows()[i].name, e);
  }
}
template <size_t I>
bool guarded_detect(const std::string& d) { return guarded(I, d, [&](const ModelFormat& f) { return f.detect(d); }); }
template <size_t I>
Model guarded_read(const std::string& d) { return guarded(I, d, [&](const ModelFormat& f) { return f.read(d); }); }
template <size_t I>
nlohmann::json guarded_describe(const std::string& d) {
  return guarded(I, d, [&](const ModelFormat& f) { return f.describe(d); });
}
template <size_t I>
ModelFormat guarded_row() {
  ModelFormat f = raw_rows()[I];
  f.detect = &guarded_detect<I>;
  f.read = &guarded_read<I>;
  f.describe = &guarded_describe<I>;
  return f;
}
template <size_t... I>
std::vector<ModelFormat> guarded_rows(std::index_sequence<I...>) {
  return {guarded_row<I>()...};
}

}  // namespace

const std::vector<ModelFormat>& format_registry() {
  static const std::vector<ModelFormat> table = guarded_rows(std::make_index_sequence<kRows>{});
  return table;
}

const ModelFormat& find_format(const std::string& name) {
  std::string known;
  for (const ModelFormat& f : format_registry()) {
    if (name == f.name) return f;
    known += (known.empty() ? "" : ", ") + std::string(f.name);
  }
  throw UsageError("unknown model format '" + name + "' (known: " + known + ")");
}

const ModelFormat* try_detect_format(const std::string& dir) {
  for (const ModelFormat& f : format_registry())
    if (f.detect(dir)) return &f;
  return nullptr;
}

namespace {
// A path that is neither a model directory nor a GGUF file: say which it is.
void check_model_path(const std::string& path) {
  SQ_CHECK(path_exists(path), "model " << path << " does not exist");
  if (!is_directory(path))
    SQ_FAIL(path << " is a file but not a GGUF file (no GGUF magic); a model is a directory or a .gguf file");
}
}  // namespace

const ModelFormat& detect_format(const std::string& dir) {
  if (const ModelFormat* f = try_detect_format(dir)) return *f;
  check_model_path(dir);
  std::ostringstream rules;
  for (const ModelFormat& f : format_registry())
    rules << (rules.tellp() > 0 ? "; " : "") << f.name << ": " << f.looks_for;
  SQ_FAIL("no known model format in " << dir << " (" << rules.str() << ")");
}

Model load_any_model(const std::string& dir) { return detect_format(dir).read(dir); }

ModelConfig load_any_config(const std::string& path) {
  if (is_gguf_file(path)) return formats::gguf_config(path);
  check_model_path(path);
  return load_model_config(path);
}

}  // namespace sq
