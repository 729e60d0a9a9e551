// eval/report: one table (and perplexity-vs-bits plots) of many runs, read from a folder of
// `quantize --json` / `eval --json` reports and the sweep wrapper's result.json files
// (`sliderquant report`). Only JSON and strings: no tensors, no models.
//
// A run is a folder holding one or more of these reports: the sweep layout
// RESULTS/<model>__<recipe>__s<seed>/{quantize,eval,result}.json (recipe '/' written '+'),
// or any folder of hand-made reports with any file names, told apart by their keys:
//   result:   "sliderquant_sweep_result"
//   quantize: "bits_per_weight_planned" or ("recipe" and "timings_seconds")
//   eval:     "tool" == "sliderquant" with "perplexity", or "zeroshot" / "kld" / "architecture"
// Other JSON files are warnings (skipped); a file that cannot be read or parsed makes its
// run's status "unreadable: <file>: <reason>".
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace sq::report {

struct Run {
  std::string dir;     // the folder, relative to the results folder ("." for the folder itself)
  std::string model;   // "" = unknown
  std::string recipe;  // "" = unknown
  std::optional<int64_t> seed;
  std::optional<double> bits;              // bits_per_weight_planned
  std::map<std::string, double> ppl;       // dataset (short name) -> perplexity (eval's, else quantize's)
  std::optional<double> zeroshot_mean;     // zeroshot_summary.score (0..100)
  std::map<std::string, double> zeroshot;  // task -> score (0..100)
  std::map<std::string, double> kl;        // dataset -> mean KL(base || model)
  std::optional<double> quantize_seconds;  // quantize's seconds_total
  std::optional<double> wall_seconds;      // result.json seconds
  std::optional<double> peak_rss;          // bytes, the larger of quantize's and eval's
  std::optional<double> peak_gpu;          // bytes, same; absent when 0
  std::string status;  // result.json's status, else "done"; "unreadable: FILE: REASON"
  std::string error;   // one line ("" = none)
  std::optional<int64_t> exit_code, attempts;
  std::vector<std::string> files;  // the report files read (names within dir)
};

struct Collection {
  std::string root;                       // the results folder as given
  std::vector<Run> runs;                  // sorted: model, bits (unknown last), recipe, seed, dir
  std::vector<std::string> warnings;      // skipped files, one line each
  std::vector<std::string> ppl_datasets;  // every dataset with a perplexity in some run
  std::vector<std::string> kl_datasets;
  std::vector<std::string> tasks;         // every zero-shot task seen
  int count(const std::string& status) const;
};

// Walks ROOT recursively. Throws sq::Error when ROOT is missing or not a readable folder, or
// when it holds no report at all.
Collection collect_runs(const std::string& root);

// The kind of one parsed JSON document: "quantize", "eval", "result" or "" (none of these).
std::string report_kind(const nlohmann::json& doc);

// A recipe name without its bit-width / format tokens: "gptq-w4g128" -> "gptq",
// "d2quant-w2g128-no-dac" -> "d2quant-no-dac", "test/stories-rtn-q4_0" -> "test/stories-rtn".
std::string method_of(const std::string& recipe);

struct RenderOptions {
  std::string series = "recipe";  // plot series: "recipe" or "method" (method_of)
  std::string title;              // "" = "sliderquant report"
};

std::string render_markdown(const Collection& c, const RenderOptions& o = {});
std::string render_csv(const Collection& c, const RenderOptions& o = {});
std::string render_html(const Collection& c, const RenderOptions& o = {});

std::string html_escape(const std::string& s);

}  // namespace sq::report
