// tools/cmd_list: `sliderquant list families|formats|recipes [--test]`: the registries as
// markdown tables. Families come from arch_registry() (src/arch/registry.cpp), formats from
// format_registry() (src/formats/registry.cpp); recipes are the
// configs/*.json files (configs/test/ too with --test, named test/NAME), each loaded and
// validated. README.md (families, formats) and configs/README.md (recipes) show these tables
// verbatim between `<!-- sliderquant list X -->` markers; tests/test_readme.cpp checks them.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "commands.h"
#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/formats/model_format.h"
#include "sliderquant/model/arch.h"
#include "sliderquant/pipeline/recipe.h"

namespace sq::cli {

namespace {

std::string code(const std::string& s) { return "`" + s + "`"; }

void list_families() {
  std::printf("| family | HF architectures | quirks handled |\n|---|---|---|\n");
  for (const ArchSpec* a : arch_registry()) {
    std::string archs, quirks;
    for (const std::string& n : a->architectures) archs += (archs.empty() ? "" : ", ") + code(n);
    for (const Quirk& q : a->quirks) quirks += (quirks.empty() ? "" : "; ") + code(q.name) + ": " + q.reason;
    std::printf("| %s | %s | %s |\n", code(a->family).c_str(), archs.c_str(), quirks.empty() ? "-" : quirks.c_str());
  }
}

void list_formats() {
  std::printf("| format | quantized linears | detected by | what |\n|---|---|---|---|\n");
  for (const ModelFormat& f : format_registry())
    std::printf("| %s | %s | %s | %s |\n", code(f.name).c_str(), f.stores_quantized ? "packed" : "no (full precision)",
                f.looks_for, f.summary);
}

// The recipe files of DIR (*.json, sorted by name), as (shown name, path).
std::vector<std::pair<std::string, std::string>> recipe_files(const std::string& dir, const std::string& prefix) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (!e.is_regular_file() || e.path().extension() != ".json") continue;
    out.emplace_back(prefix + e.path().stem().string(), e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void list_recipes(bool with_test) {
  const std::string base = configs_dir();
  SQ_CHECK(is_directory(base), "recipe folder " << base << " does not exist (set SQ_HOME to the source tree)");
  auto files = recipe_files(base, "");
  if (with_test && is_directory(path_join(base, "test"))) {
    auto t = recipe_files(path_join(base, "test"), "test/");
    files.insert(files.end(), t.begin(), t.end());
  }
  std::printf("| recipe | passes | formats | calibration |\n|---|---|---|---|\n");
  for (const auto& [name, path] : files) {
    const Recipe r = load_recipe(path);
    std::string passes, formats = r.format.name();
    for (const PassSpec& p : r.passes) passes += (passes.empty() ? "" : " + ") + p.name;
    for (const FormatRule& o : r.overrides)
      formats += "; " + code(o.match) + " " + (o.format ? o.format->name() : std::string("fp16"));
    std::string calib = "none";
    if (r.needs_calibration())
      calib = r.calibration.dataset + ", " + std::to_string(r.calibration.samples) + " x " +
              std::to_string(r.calibration.seqlen) + ", seed " + std::to_string(r.calibration.seed);
    std::printf("| %s | %s | %s | %s |\n", code(name).c_str(), passes.c_str(), formats.c_str(), calib.c_str());
  }
}

}  // namespace

std::string configs_dir() {
  const char* home = std::getenv("SQ_HOME");
  return (home && *home) ? path_join(home, "configs") : std::string(SQ_SOURCE_DIR) + "/configs";
}

int cmd_list(const ListArgs& a, const CommonArgs& common) {
  apply_common(common);
  if (a.what == "families") list_families();
  else if (a.what == "formats") list_formats();
  else if (a.what == "recipes") list_recipes(a.test);
  else throw UsageError("list: unknown table '" + a.what + "' (known: families, formats, recipes)");
  return 0;
}

}  // namespace sq::cli
