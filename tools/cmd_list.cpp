// tools/cmd_list: `sliderquant list families|formats|recipes|exports [--test]`: the registries as
// markdown tables. Families come from arch_registry() (src/arch/registry.cpp), formats from
// format_registry() (src/formats/registry.cpp); recipes are the
// configs/*.json files (configs/test/ too with --test, named test/NAME), each loaded and
// validated. README.md (families, formats) and configs/README.md (recipes) show these tables
// verbatim between `<!-- sliderquant list X -->` markers; tests/test_readme.cpp checks them.
#include <ATen/ATen.h>

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
#include "sliderquant/quant/dsq.h"
#include "sliderquant/quant/mixed.h"
#include "sliderquant/quant/rtn.h"

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

// What each format that stores quantized linears does with the output of each quantizer
// format: its own cannot_store / cannot_store_mixed on a [256, 256] linear quantized by RTN
// (so the table is what the writers enforce), plus whether vLLM's Marlin kernel serves the
// GPTQ export.
void list_exports() {
  struct Row {
    std::string label;
    QTensor q;
    MixedQTensor mixed;
    bool is_mixed = false;
  };
  at::manual_seed(0);
  const at::Tensor W = at::randn({256, 256}, at::kFloat);
  std::vector<Row> rows;
  for (const char* n : {"w2g128", "w3g128", "w4g128", "w4g128s", "w4g32s", "w4s", "w4", "w5g128", "w6g64", "w8g128s",
                        "w8"})
    rows.push_back({code(n), rtn_quantize(W, QFormat::parse(n)), {}});
  {
    QTensor q = rtn_quantize(W, QFormat::parse("w4g128s"));
    q.g_idx = at::arange(256, at::kLong).mul(7).remainder(256).div(128, "floor").to(at::kInt);
    rows.push_back({code("w4g128s") + " + act-order g_idx", q, {}});
  }
  rows.push_back({code("w2g128d") + " (DSQ)", dsq_rtn_quantize(W, QFormat::parse("w2g128d"), 4), {}});
  for (const char* n : {"q4_0", "q8_0", "q4_k", "q6_k"})
    rows.push_back({code(n) + " (ggml grid)", rtn_quantize(W, QFormat::parse(n)), {}});
  {
    Row r{code("w3+w2") + " (mixed widths in one linear)", {}, {}, true};
    r.mixed = MixedQTensor::rtn(W, at::arange(0, 32, at::kInt), QFormat::parse("w3"), QFormat::parse("w2"));
    rows.push_back(r);
  }
  std::vector<const ModelFormat*> targets;
  for (const ModelFormat& f : format_registry())
    if (f.stores_quantized) targets.push_back(&f);
  std::printf("| quantizer format |");
  for (const ModelFormat* f : targets) std::printf(" %s |", code(f->name).c_str());
  std::printf(" vLLM Marlin (gptq) |\n|---|");
  for (size_t i = 0; i <= targets.size(); ++i) std::printf("---|");
  std::printf("\n");
  for (const Row& r : rows) {
    std::printf("| %s |", r.label.c_str());
    for (const ModelFormat* f : targets) {
      const std::string why = r.is_mixed ? f->cannot_store_mixed(r.mixed) : f->cannot_store(r.q);
      std::string cell = "exact";
      if (!why.empty())
        cell = std::string(f->name) == "gguf" ? "lossy (`--gguf-type` re-quantizes): " + why : "refused: " + why;
      std::printf(" %s |", cell.c_str());
    }
    const std::string marlin = r.is_mixed ? std::string("no GPTQ form") : gptq_marlin_problem(r.q.format);
    std::printf(" %s |\n", marlin.empty() ? "yes" : ("no: " + marlin).c_str());
  }
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
  else if (a.what == "exports") list_exports();
  else throw UsageError("list: unknown table '" + a.what + "' (known: families, formats, recipes, exports)");
  return 0;
}

}  // namespace sq::cli
