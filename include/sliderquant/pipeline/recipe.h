// pipeline/recipe: a quantization recipe (configs/*.json) is data: the calibration set,
// the default weight format, per-linear overrides by glob over canonical names (last match
// wins), and the pipeline of passes with their options. Unknown keys are errors naming
// the key and the file. The resolved recipe (defaults filled in) goes into every output.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "sliderquant/model/model.h"
#include "sliderquant/quant/format.h"

namespace sq {

struct CalibrationSpec {
  std::string dataset = "c4-2k";  // name (c4-2k, ptb, wikitext2) or text file path
  int64_t samples = 128;
  int64_t seqlen = 2048;
  uint64_t seed = 0;
};

struct FormatRule {
  std::string match;                  // glob over canonical names, e.g. "blocks.*.mlp.down"
  std::optional<QFormat> format;      // nullopt = keep this linear in full precision
};

struct PassSpec {
  std::string name;          // a registered pass ("rtn", "gptq", ...)
  std::string options_json;  // the pass's options object (validated by the pass)
};

struct Recipe {
  std::string path;          // where it was read from ("" for built-in)
  std::string name;
  std::string description;
  CalibrationSpec calibration;
  QFormat format;            // default for every linear of every block
  std::vector<FormatRule> overrides;
  std::vector<PassSpec> passes;

  std::string resolved_json() const;  // canonical JSON with every default written out
  std::string sha256() const;         // of resolved_json()
  bool needs_calibration() const;
};

Recipe parse_recipe(const std::string& json_text, const std::string& where);
Recipe load_recipe(const std::string& path);

// The plan for one linear: its format (or none) and which rule chose it.
struct LinearPlan {
  std::string name;      // canonical
  int64_t out = 0, in = 0;
  std::optional<QFormat> format;
  std::string rule;      // "default" or "overrides[i] (glob)"
};

// Every block linear of the model in forward order with its format; throws Error naming the
// linear, its shape and the rule when a format does not fit (group size must divide in).
// A ggml k-quant on rows that are not whole 256-column super-blocks falls back per linear as
// llama-quantize does (quant/ggml_grid.h ggml_grid_fallback); the rule then says so and why.
std::vector<LinearPlan> plan_linears(const Recipe& r, const ModelConfig& c);
// Bits per weight over the planned linears (unquantized ones count 16).
double planned_bits_per_weight(const std::vector<LinearPlan>& plan);

}  // namespace sq
