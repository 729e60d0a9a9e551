// pipeline/recipe: parsing and validation of recipe files, their canonical resolved form,
// and the per-linear plan (which format each linear gets and which rule chose it).
#include "sliderquant/pipeline/recipe.h"

#include <fnmatch.h>

#include <nlohmann/json.hpp>

#include "sliderquant/core/error.h"
#include "sliderquant/core/json.h"
#include "sliderquant/core/util.h"
#include "sliderquant/pipeline/pass.h"
#include "sliderquant/quant/ggml_grid.h"

namespace sq {
namespace {

using nlohmann::json;

std::optional<QFormat> parse_format_value(const json& v, const std::string& where, const std::string& what) {
  if (v.is_null()) return std::nullopt;
  SQ_CHECK(v.is_string(), where << ": " << what << " must be a format string like \"w4g128\" or null");
  try {
    return QFormat::parse(v.get<std::string>());
  } catch (const Error& e) {
    SQ_FAIL(where << ": " << what << ": " << e.what());
  }
}

json format_json(const std::optional<QFormat>& f) { return f ? json(f->name()) : json(nullptr); }

}  // namespace

Recipe parse_recipe(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    SQ_FAIL(where << ": invalid JSON (" << e.what() << ")");
  }
  check_keys(j, {"name", "description", "calibration", "format", "overrides", "pipeline"}, where, "the recipe");
  Recipe r;
  r.path = where;
  r.name = opt_str(j, "name", "", where);
  r.description = opt_str(j, "description", "", where);
  SQ_CHECK(j.contains("format"), where << ": missing required key 'format' (e.g. \"w4g128\")");
  auto f = parse_format_value(j["format"], where, "'format'");
  SQ_CHECK(f.has_value(), where << ": 'format' must not be null");
  r.format = *f;
  if (j.contains("calibration")) {
    const json& c = j["calibration"];
    check_keys(c, {"dataset", "samples", "seqlen", "seed"}, where, "'calibration'");
    const std::string cw = where + " calibration";
    r.calibration.dataset = opt_str(c, "dataset", r.calibration.dataset, cw);
    r.calibration.samples = opt_int(c, "samples", r.calibration.samples, cw);
    r.calibration.seqlen = opt_int(c, "seqlen", r.calibration.seqlen, cw);
    const int64_t seed = opt_int(c, "seed", int64_t(r.calibration.seed), cw);
    SQ_CHECK(seed >= 0, cw << ": key 'seed' must be a non-negative integer");
    r.calibration.seed = uint64_t(seed);
    SQ_CHECK(r.calibration.samples > 0, where << ": calibration.samples must be positive");
    SQ_CHECK(r.calibration.seqlen > 1, where << ": calibration.seqlen must be at least 2");
  }
  if (j.contains("overrides")) {
    SQ_CHECK(j["overrides"].is_array(), where << ": 'overrides' must be a list");
    int i = 0;
    for (const json& o : j["overrides"]) {
      std::string what = "overrides[" + std::to_string(i++) + "]";
      check_keys(o, {"match", "format"}, where, what);
      SQ_CHECK(o.contains("match") && o["match"].is_string(), where << ": " << what << " needs a 'match' glob");
      SQ_CHECK(o.contains("format"), where << ": " << what << " needs a 'format' (a format string or null)");
      r.overrides.push_back({o["match"].get<std::string>(), parse_format_value(o["format"], where, what + ".format")});
    }
  }
  SQ_CHECK(j.contains("pipeline") && j["pipeline"].is_array() && !j["pipeline"].empty(),
           where << ": missing 'pipeline' (a non-empty list of passes, e.g. [{\"pass\": \"rtn\"}])");
  int i = 0;
  for (const json& p : j["pipeline"]) {
    std::string what = "pipeline[" + std::to_string(i++) + "]";
    check_keys(p, {"pass", "options"}, where, what);
    SQ_CHECK(p.contains("pass") && p["pass"].is_string(), where << ": " << what << " needs a 'pass' name");
    const PassInfo& info = find_pass(p["pass"].get<std::string>());
    json opts = p.contains("options") ? p["options"] : json::object();
    SQ_CHECK(opts.is_object(), where << ": " << what << ".options must be an object");
    r.passes.push_back({info.name, resolve_options(info, opts, where + " " + what + ".options").dump()});
  }
  return r;
}

Recipe load_recipe(const std::string& path) {
  SQ_CHECK(path_exists(path), "recipe " << path << " not found");
  return parse_recipe(read_file(path), path);
}

std::string Recipe::resolved_json() const {
  json j;
  j["name"] = name;
  j["description"] = description;
  j["calibration"] = {{"dataset", calibration.dataset},
                      {"samples", calibration.samples},
                      {"seqlen", calibration.seqlen},
                      {"seed", calibration.seed}};
  j["format"] = format.name();
  j["overrides"] = json::array();
  for (const FormatRule& o : overrides) j["overrides"].push_back({{"match", o.match}, {"format", format_json(o.format)}});
  j["pipeline"] = json::array();
  for (const PassSpec& p : passes) j["pipeline"].push_back({{"pass", p.name}, {"options", json::parse(p.options_json)}});
  return j.dump(2);
}

std::string Recipe::sha256() const { return sha256_hex(resolved_json()); }

bool Recipe::needs_calibration() const {
  for (const PassSpec& p : passes)
    if (find_pass(p.name).needs_calibration) return true;
  return false;
}

std::vector<LinearPlan> plan_linears(const Recipe& r, const ModelConfig& c) {
  const ArchSpec& spec = find_family(c.family);
  std::vector<LinearPlan> plan;
  for (int64_t b = 0; b < c.num_layers; ++b) {
    const BlockLayout& lay = block_layout(spec, c, b);
    for (int j = 0; j < lay.size(); ++j) {
      LinearPlan p;
      p.name = slot_tensor_name(lay, b, j);
      p.out = lay.out_features(j, c);
      p.in = lay.in_features(j, c);
      if (lay.slots[size_t(j)].quantize) p.format = r.format;  // routers and the like stay unquantized
      p.rule = lay.slots[size_t(j)].quantize ? "default" : "default: never quantized (a router or gate)";
      for (size_t i = 0; i < r.overrides.size(); ++i) {
        if (fnmatch(r.overrides[i].match.c_str(), p.name.c_str(), 0) == 0) {
          p.format = r.overrides[i].format;
          p.rule = "overrides[" + std::to_string(i) + "] (" + r.overrides[i].match + ")";
        }
      }
      if (p.format && p.format->kquant() && p.in % p.format->super_block() != 0) {
        // llama-quantize's per-tensor fallback for rows that are not whole super-blocks.
        std::string why;
        p.format = ggml_grid_fallback(*p.format, p.in, &why);
        p.rule += "; fallback: " + why;
      }
      if (p.format) {
        try {
          p.format->check(p.out, p.in, p.name);
        } catch (const Error& e) {
          SQ_FAIL((r.path.empty() ? "recipe" : r.path) << ": " << e.what() << " (format chosen by " << p.rule
                                                       << ")");
        }
      }
      plan.push_back(p);
    }
  }
  return plan;
}

double planned_bits_per_weight(const std::vector<LinearPlan>& plan) {
  double bits = 0, n = 0;
  for (const LinearPlan& p : plan) {
    double w = double(p.out) * double(p.in);
    bits += w * (p.format ? bits_per_weight(*p.format, p.out, p.in, false) : 16.0);
    n += w;
  }
  return n > 0 ? bits / n : 0;
}

}  // namespace sq
