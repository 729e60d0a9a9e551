// tools/cmd_recipe: `sliderquant recipe check|explain R.json [--model DIR]`: validate a
// recipe; print per linear the format, the rule that chose it and the bits per weight (and,
// when --model is a quantized output, what was written: e.g. the ratio pass's per-linear
// high-precision channel counts and bits).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/formats/model_format.h"
#include "sliderquant/model/arch.h"
#include "sliderquant/pipeline/pass.h"
#include "sliderquant/pipeline/recipe.h"

namespace sq::cli {

std::string default_model_dir() {
  if (const char* h = std::getenv("SQ_HOME"); h && *h) return path_join(h, "tests/fixtures/stories260K/hf");
  return std::string(SQ_SOURCE_DIR) + "/tests/fixtures/stories260K/hf";
}

std::string resolve_recipe_path(const std::string& arg) {
  if (path_exists(arg)) return arg;
  std::string base = (std::getenv("SQ_HOME") && *std::getenv("SQ_HOME")) ? path_join(std::getenv("SQ_HOME"), "configs")
                                                                          : std::string(SQ_SOURCE_DIR) + "/configs";
  for (const std::string& cand : {path_join(base, arg), path_join(base, arg + ".json"),
                                  path_join(base, "test/" + arg + ".json")})
    if (path_exists(cand) && !is_directory(cand)) return cand;
  throw UsageError("recipe " + arg + " not found (neither a file nor a recipe in " + base + ")");
}

int cmd_recipe(const RecipeArgs& a, const CommonArgs& common) {
  apply_common(common);
  Recipe r = load_recipe(resolve_recipe_path(a.recipe));
  if (a.action == "check") {
    std::vector<LinearPlan> plan;
    int unmatched = 0;
    if (!a.model.empty()) {
      plan = plan_linears(r, load_any_config(a.model));  // fails before "ok"
      unmatched = warn_unmatched_overrides(r, plan);
    }
    const std::vector<std::string> warnings = check_recipe_passes(r, plan);  // so do the passes' checks
    std::printf("%s: ok\n", r.path.c_str());
    std::printf("  name         %s\n", r.name.c_str());
    std::printf("  format       %s (overrides: %zu)\n", r.format.name().c_str(), r.overrides.size());
    for (const PassSpec& p : r.passes) std::printf("  pass         %s %s\n", p.name.c_str(), p.options_json.c_str());
    if (r.needs_calibration())
      std::printf("  calibration  %s, %lld x %lld tokens, seed %llu\n", r.calibration.dataset.c_str(),
                  (long long)r.calibration.samples, (long long)r.calibration.seqlen,
                  (unsigned long long)r.calibration.seed);
    std::printf("  note         a group size that does not divide a linear's input features leaves a short last\n"
                "               group (as GPTQ's g_idx = i // group_size); per-channel formats (\"w4\") fit every shape\n");
    if (!a.model.empty()) {
      std::printf("  model        %s: %zu linears fit, %.3f bits per weight\n", a.model.c_str(), plan.size(),
                  planned_bits_per_weight(plan));
      if (unmatched > 0) std::printf("  warning      %d override(s) match no linear of this model\n", unmatched);
    }
    for (const std::string& w : warnings) std::printf("  warning      %s\n", w.c_str());
    return 0;
  }
  if (a.model.empty()) throw UsageError("recipe explain needs --model DIR");
  for (const PassSpec& p : r.passes) {  // each pass's options: value, default, range, help
    const nlohmann::json o = nlohmann::json::parse(p.options_json);
    std::printf("pass %s:\n%s\n", p.name.c_str(), format_option_table(find_pass(p.name), &o).c_str());
  }
  const ModelConfig cfg = load_any_config(a.model);
  auto plan = plan_linears(r, cfg);
  int nw = 24;  // the name column: as wide as the longest name (MoE expert linears are long)
  for (const LinearPlan& p : plan) nw = std::max(nw, int(p.name.size()));
  std::printf("%-*s %-14s %-10s %8s  %s\n", nw, "linear", "shape", "format", "bits/w", "chosen by");
  for (const LinearPlan& p : plan) {
    std::string shape = std::to_string(p.out) + "x" + std::to_string(p.in);
    double bpw = p.format ? bits_per_weight(*p.format, p.out, p.in, false) : 16.0;
    std::printf("%-*s %-14s %-10s %8.3f  %s\n", nw, p.name.c_str(), shape.c_str(),
                p.format ? p.format->name().c_str() : "fp16", bpw, p.rule.c_str());
  }
  std::printf("total: %zu linears, %.3f bits per weight over the block linears (scales and zeros counted)\n",
              plan.size(), planned_bits_per_weight(plan));
  const ModelFormat* format = try_detect_format(a.model);
  if (format && format->stores_quantized) {
    const nlohmann::json described = format->describe(a.model);
    // What the quantized output holds (mixed-precision linears: hi+lo formats, k/in channels).
    const nlohmann::json& linears = described["linears"];
    std::printf("\nas written in %s:\n%-*s %-14s %-10s %8s  %s\n", a.model.c_str(), nw, "linear", "format",
                "channels", "bits/w", "k/in");
    for (const LinearPlan& p : plan) {
      std::string hf = hf_tensor_name(p.name, cfg.family);  // NAME.weight
      hf = hf.substr(0, hf.size() - 7);
      if (!linears.contains(hf)) {
        std::printf("%-*s %-14s\n", nw, p.name.c_str(), "fp16");
        continue;
      }
      const nlohmann::json& e = linears[hf];
      if (e.contains("hi")) {
        const int64_t k = e.value("k", int64_t(0));
        std::printf("%-*s %-14s %-10s %8.3f  %.4f\n", nw, p.name.c_str(), e.value("format", std::string("?")).c_str(),
                    (std::to_string(k) + "/" + std::to_string(p.in)).c_str(), e.value("bits_per_weight", 0.0),
                    double(k) / double(p.in));
      } else {
        std::printf("%-*s %-14s %-10s %8.3f\n", nw, p.name.c_str(), e.value("format", std::string("?")).c_str(), "-",
                    e.value("bits_per_weight", 0.0));
      }
    }
    std::printf("total: %.4f bits per weight over the quantized linears as written\n",
                described.value("bits_per_weight_quantized_linears", 0.0));
  }
  return 0;
}

}  // namespace sq::cli
