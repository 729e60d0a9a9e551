// tools/commands: the CLI's subcommands as plain functions on option structs, so that only
// tools/main.cpp pays for CLI11. Each returns the process exit code (0 ok); errors are thrown
// as sq::Error (exit 1) or sq::UsageError (exit 2) and printed by main.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sq {
struct Recipe;
struct LinearPlan;
}  // namespace sq

namespace sq::cli {

struct CommonArgs {
  bool quiet = false;
  bool verbose = false;
  int threads = 0;  // 0 = libtorch's default
};

struct EvalArgs {
  std::string model;
  std::string ppl;        // comma-separated dataset names or text file paths
  std::string data_dir;
  std::string json;       // report path ("" = none)
  std::string dtype = "auto";
  std::string device = "auto";
  int64_t seqlen = 2048;
  int64_t batch_size = 1;
  int64_t max_windows = 0;
  std::string tasks;      // zero-shot tasks, comma-separated, or "all"
  int64_t limit = 0;      // first N documents per task (0 = all)
  int64_t zs_batch_size = 32;
  std::string zs_bos = "auto";  // BOS before zero-shot requests: auto (the tokenizer's add_bos, as lm-eval), yes, no
  std::string kld_base;   // base model directory for KL(base || model)
  std::string save_logits;  // .npy: logits [T, V] float32 of the first window of the first --ppl dataset
};
int cmd_eval(const EvalArgs& a, const CommonArgs& c);

struct InspectArgs {
  std::string model;
  bool tensors = false;
  bool check = false;  // also load every tensor and the tokenizer as eval would
  std::string json;
};
int cmd_inspect(const InspectArgs& a, const CommonArgs& c);

struct SynthArgs {
  std::string out;
  std::string family;
  std::string preset = "tiny";
  int64_t layers = 0;  // 0: the preset's
  uint64_t seed = 0;
  std::string dtype = "bfloat16";
  int64_t shard_size_mb = 2048;
  std::string tokenizer;
  bool force = false;
};
int cmd_synth(const SynthArgs& a, const CommonArgs& c);

struct TokenizeArgs {
  std::string path;
  std::string text;
  bool has_text = false;
  bool json = false;
  bool no_special = false;
};
int cmd_tokenize(const TokenizeArgs& a, const CommonArgs& c);

struct QuantizeArgs {
  std::string model;       // "" = the bundled model
  std::string recipe;      // path, or the name of a recipe in configs/
  std::string out;
  std::string device = "auto";
  std::string dtype = "auto";  // dtype of calibration forwards
  std::string store_dtype = "auto";  // dtype of the activation streams in host memory
  std::string autocast = "auto";     // learned passes: float32 + bfloat16 autocast (auto: on CUDA), on, off
  std::string calib;       // overrides recipe calibration.dataset
  int64_t samples = 0;     // 0 = recipe's
  int64_t seqlen = 0;
  int64_t seed = -1;       // -1 = recipe's
  int64_t batch_size = 1;
  std::string work;        // "" = OUT.work
  std::string data_dir;
  std::string eval;        // datasets to evaluate after quantizing ("" = none)
  std::string json;        // report
  std::string save_calibration;  // write the calibration windows' token ids (JSON) here ("" = no)
  bool dry_run = false;
  bool force = false;
  bool keep_work = false;
  bool resume_strict = false;
  std::string format = "native";  // output model format (formats/model_format.h)
  std::string gguf_type;          // --format gguf: re-quantize what GGUF cannot hold exactly
  std::string gptq_format;        // --format gptq: gptq (v1) or gptq_v2 ("" = automatic)
};
int cmd_quantize(const QuantizeArgs& a, const CommonArgs& c);

struct ConvertArgs {
  std::string in;   // a model readable by some format (a .gguf file, ...)
  std::string out;  // HF directory
  std::string dtype = "float32";
  bool force = false;
};
int cmd_convert(const ConvertArgs& a, const CommonArgs& c);

struct ExportArgs {
  std::string model;
  std::string format;
  std::string out;
  std::string gguf_type;  // re-quantize what GGUF cannot hold exactly ("" = refuse)
  std::string gptq_format;  // --format gptq: gptq (v1) or gptq_v2 ("" = automatic)
  std::string json;
  bool force = false;
};
int cmd_export(const ExportArgs& a, const CommonArgs& c);

struct RecipeArgs {
  std::string action;  // "check" | "explain"
  std::string recipe;
  std::string model;
};
int cmd_recipe(const RecipeArgs& a, const CommonArgs& c);

struct ListArgs {
  std::string what;   // "families" | "recipes"
  bool test = false;  // recipes: also configs/test/ (named test/NAME)
};
int cmd_list(const ListArgs& a, const CommonArgs& c);

struct ReportArgs {
  std::string results;  // the results folder (walked recursively)
  std::string out;      // .html, .md or .csv ("-" = stdout)
  std::string format;   // html | md | csv ("" = from --out's extension)
  std::string series = "recipe";  // plot series: recipe | method
  std::string title;
};
int cmd_report(const ReportArgs& a, const CommonArgs& c);

// A recipe argument: an existing path, or NAME / NAME.json under the bundled configs/.
std::string resolve_recipe_path(const std::string& arg);
std::string default_model_dir();
// The bundled recipe folder: $SQ_HOME/configs, else the source tree's configs/.
std::string configs_dir();

// "a,b,,c" -> {"a", "b", "c"} (empty items dropped).
std::vector<std::string> split_commas(const std::string& s);
// A comma-separated list of dataset names and text files, where a file whose name holds commas
// is taken whole when it exists ("wikitext2,/d/a,b.txt" with /d/a,b.txt present: 2 items).
std::vector<std::string> split_dataset_list(const std::string& s);
// A dataset name or path as shown in tables: the file name of a path.
std::string short_name(const std::string& name_or_path);

// Applies --quiet, --verbose and --threads.
void apply_common(const CommonArgs& c);
// The CPU kernels of the BLAS libtorch calls, for reports: OpenBLAS's core name ("SkylakeX",
// "Haswell", ..., chosen by tools/blas_kernels.cpp, which defines this) or "" for another BLAS.
std::string blas_kernels();
// UsageError when the output PATH (named WHAT, e.g. "--out") is the source model SRC, lies
// inside it, or contains it: writing there would replace or remove the source.
// Logs a warning for each of RECIPE's overrides whose glob matches no linear of PLAN (a typo
// there silently leaves the default format); returns how many.
int warn_unmatched_overrides(const Recipe& recipe, const std::vector<LinearPlan>& plan);
void check_apart_from_source(const std::string& path, const std::string& what, const std::string& src);

}  // namespace sq::cli
