// formats/registry: the one table of model formats, in detection order (the more specific
// format first: a native output is also a config.json + safetensors directory). Adding a
// format = one file in src/formats/ + one row here.
#include <sstream>

#include "format_common.h"
#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/io/gguf.h"
#include "sliderquant/model/arch.h"

namespace sq {

const std::vector<ModelFormat>& format_registry() {
  static const std::vector<ModelFormat> table = {
      formats::native_format(),
      formats::gptq_format(),
      formats::compressed_tensors_format(),
      formats::hf_format(),
      formats::gguf_format(),
  };
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
