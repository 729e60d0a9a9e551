// tools/cmd_quantize: `sliderquant quantize [MODEL] --recipe R --out OUT`: resolves the
// recipe and plan, builds the calibration set, runs the passes (block by block, resumable
// from the work directory), writes the packed model, and optionally evaluates it.
#include <ATen/ATen.h>

#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "commands.h"
#include "sliderquant/core/error.h"
#include "sliderquant/core/fs.h"
#include "sliderquant/core/interrupt.h"
#include "sliderquant/core/log.h"
#include "sliderquant/core/progress.h"
#include "sliderquant/core/torch_compat.h"
#include "sliderquant/core/util.h"
#include "sliderquant/data/dataset.h"
#include "sliderquant/data/tokenizer.h"
#include "sliderquant/eval/perplexity.h"
#include "sliderquant/formats/model_format.h"
#include "sliderquant/pipeline/pass.h"
#include "sliderquant/pipeline/session.h"

namespace sq::cli {

namespace {

// The report's MoE section: routed calibration tokens per expert of each MoE block (the router's
// count on the quantized stream) and the experts that fell below min_expert_tokens.
nlohmann::json moe_report(const Session& s, const ModelConfig& cfg) {
  nlohmann::json tokens = nlohmann::json::object(), starved = nlohmann::json::array();
  for (int64_t i = 0; i < cfg.num_layers; ++i) {
    const std::string b = "blocks." + std::to_string(i);
    std::set<int64_t> st;
    for (const char* in : {".gate_up", ".down"}) {
      if (auto t = s.metrics.find("expert_tokens." + b + in); t != s.metrics.end() && !tokens.contains(b)) {
        nlohmann::json counts = nlohmann::json::array();
        for (double v : t->second) counts.push_back(int64_t(v));
        tokens[b] = counts;
      }
      if (auto t = s.metrics.find("starved_experts." + b + in); t != s.metrics.end())
        for (double e : t->second) st.insert(int64_t(e));
    }
    for (int64_t e : st) starved.push_back(b + ".mlp.experts." + std::to_string(e));
  }
  return {{"experts", cfg.num_experts}, {"experts_per_token", cfg.experts_per_token},
          {"expert_tokens", tokens}, {"starved_experts", starved}};
}

// Writes the calibration windows' token ids (JSON: a list of windows) for another tool to use.
void save_calibration_ids(const std::string& path, const CalibrationSet& calib) {
  nlohmann::json windows = nlohmann::json::array();
  for (int64_t i = 0; i < calib.samples; ++i)
    windows.push_back(std::vector<int64_t>(calib.ids.begin() + i * calib.seqlen, calib.ids.begin() + (i + 1) * calib.seqlen));
  write_file_atomic(path, windows.dump() + "\n");
  SQ_INFO("wrote the calibration token ids (" << calib.samples << " x " << calib.seqlen << ") to " << path);
}

CalibrationSet calibration_set(const Recipe& recipe, const Tokenizer& tok, const std::string& data_dir,
                               TextDataset* text_out) {
  TextDataset text = load_calibration_text(recipe.calibration.dataset, data_dir);
  if (text.note.find("WARNING") != std::string::npos) SQ_INFO(text.note);
  CalibrationSet calib = make_calibration_set(tok.encode_for_model(text.text), recipe.calibration.samples,
                                              recipe.calibration.seqlen, recipe.calibration.seed);
  calib.source = text.name;
  calib.text_sha256 = text.sha256;
  SQ_INFO("calibration: " << text.name << ", " << calib.note << ", sha256 " << calib.sha256.substr(0, 16) << "...");
  if (text_out) *text_out = std::move(text);
  return calib;
}

}  // namespace

int cmd_quantize(const QuantizeArgs& a, const CommonArgs& common) {
  apply_common(common);
  const auto t_start = std::chrono::steady_clock::now();
  const std::string model_dir = a.model.empty() ? default_model_dir() : a.model;
  Recipe recipe = load_recipe(resolve_recipe_path(a.recipe));
  if (!a.calib.empty()) recipe.calibration.dataset = a.calib;
  if (a.samples > 0) recipe.calibration.samples = a.samples;
  if (a.seqlen > 0) recipe.calibration.seqlen = a.seqlen;
  if (a.seed >= 0) recipe.calibration.seed = uint64_t(a.seed);

  const std::string work_dir = a.work.empty() ? a.out + ".work" : a.work;
  check_apart_from_source(a.out, "--out", model_dir);
  check_apart_from_source(work_dir, "the work directory", model_dir);
  if (!a.json.empty()) check_apart_from_source(a.json, "--json", model_dir);
  if (!a.dry_run && path_exists(a.out) && !a.force)
    throw UsageError("output " + a.out + " already exists (use --force to replace it)");
  if (!path_exists(a.out)) check_writable_file(a.out, "output");  // an existing OUT needs --force (above)
  if (!a.json.empty()) check_writable_file(a.json, "--json");
  const ModelFormat& out_format = find_format(a.format);
  SQ_CHECK(a.gguf_type.empty() || std::string(out_format.name) == "gguf", "--gguf-type applies to --format gguf only");
  SQ_CHECK(a.gptq_format.empty() || std::string(out_format.name) == "gptq", "--gptq-format applies to --format gptq only");
  const ModelFormat* source_format = try_detect_format(model_dir);
  SQ_CHECK(!source_format || !source_format->describe(model_dir).value("quantized", false),
           model_dir << " is already quantized; quantize the full-precision model");
  ModelConfig cfg = load_any_config(model_dir);
  recipe.calibration.seqlen = std::min(recipe.calibration.seqlen, cfg.max_position_embeddings);
  std::vector<LinearPlan> plan = plan_linears(recipe, cfg);  // formats must fit before any work
  warn_unmatched_overrides(recipe, plan);
  for (const std::string& w : check_recipe_passes(recipe, plan)) SQ_INFO("warning: " << w);  // errors throw here
  if (std::string(out_format.name) == "gptq") {
    std::map<std::string, int> why_not;  // formats vLLM's Marlin kernel cannot serve
    for (const LinearPlan& p : plan)
      if (p.format)
        if (std::string why = gptq_marlin_problem(*p.format); !why.empty()) ++why_not[p.format->name() + ": " + why];
    for (const auto& [why, n] : why_not)
      SQ_INFO("warning: recipe " << recipe.name << " gives " << n << " linear(s) " << why
                                 << "; vLLM's Marlin kernel cannot serve them (it needs symmetric 4/8-bit, groups "
                                    "-1/32/64/128)");
  }

  c10::Device dev = resolve_device(a.device);
  c10::ScalarType dtype = a.dtype == "auto" ? (dev.is_cuda() ? c10::kBFloat16 : c10::kFloat) : parse_dtype(a.dtype);
  SQ_INFO("recipe " << recipe.path << " (" << recipe.name << "): " << plan.size() << " linears, "
                    << planned_bits_per_weight(plan) << " bits per weight; model " << model_dir);
  if (a.dry_run) {
    for (const LinearPlan& p : plan)
      std::printf("%-24s %6lldx%-6lld %-8s %s\n", p.name.c_str(), (long long)p.out, (long long)p.in,
                  p.format ? p.format->name().c_str() : "fp16", p.rule.c_str());
    std::printf("resolved recipe:\n%s\n", recipe.resolved_json().c_str());
    if (!a.save_calibration.empty()) {  // the calibration tokens without a run, for another tool
      SQ_CHECK(recipe.needs_calibration(),
               "--save-calibration: recipe " << recipe.name << " uses no calibration; there are no tokens to write");
      save_calibration_ids(a.save_calibration, calibration_set(recipe, *load_tokenizer(model_dir), a.data_dir, nullptr));
    }
    return 0;
  }

  // From here on SIGTERM / SIGUSR1 (a scheduler's warning) stop the run at the next checkpoint
  // with exit code 75, so the same command resumes it.
  install_stop_signals();
  // One run per output at a time: an advisory lock in the work directory, held to the end.
  remove_stale_temps(a.out);
  if (!is_directory(work_dir))
    SQ_CHECK(::mkdir(work_dir.c_str(), 0755) == 0 || errno == EEXIST,
             "cannot create the work directory " << work_dir << ": " << std::strerror(errno));
  bool output_written = false;
  FileLock lock = FileLock::acquire(path_join(work_dir, "lock"), "output " + a.out);
  // A failed run keeps its work directory only when it holds checkpoints to resume from.
  auto keep_or_remove_work = [&] {
    std::error_code ec;
    bool resumable = false;
    for (const auto& e : std::filesystem::directory_iterator(work_dir, ec))
      if (e.path().filename() != "lock") resumable = true;
    if (!resumable && !a.keep_work) remove_path(work_dir);
    else if (resumable) SQ_INFO("kept " << work_dir << " for a resume: run the same command again");
  };
  try {
    std::vector<TextDataset> eval_sets;  // resolved before the long work so a typo fails at once
    for (const std::string& name : split_dataset_list(a.eval)) eval_sets.push_back(load_text_dataset(name, a.data_dir));
    Model model = load_any_model(model_dir);
    auto tok = load_tokenizer(model_dir);

    nlohmann::json report;
    std::unique_ptr<CalibrationSet> calib;
    if (!recipe.needs_calibration() && (!a.calib.empty() || a.samples > 0 || a.seqlen > 0 || a.seed >= 0))
      SQ_INFO("warning: recipe " << recipe.name << " uses no calibration; --calib, --samples, --seqlen and --seed "
                                 "do nothing");
    if (recipe.needs_calibration()) {
      TextDataset text;
      calib = std::make_unique<CalibrationSet>(calibration_set(recipe, *tok, a.data_dir, &text));
      if (!a.save_calibration.empty()) save_calibration_ids(a.save_calibration, *calib);
      report["calibration"] = {{"dataset", text.name},     {"source", text.source},         {"text_sha256", text.sha256},
                               {"sha256", calib->sha256},  {"seed", calib->seed},           {"samples", calib->samples},
                               {"seqlen", calib->seqlen},  {"note", text.note + "; " + calib->note}};
    }

    Session s(model, recipe);
    s.calib = calib.get();
    s.runner.device = dev;
    s.runner.dtype = dtype;
    s.train_autocast = a.autocast == "on" || (a.autocast == "auto" && dev.is_cuda());
    s.store_dtype = a.store_dtype == "auto" ? (s.train_autocast ? c10::kFloat : dtype) : parse_dtype(a.store_dtype);
    s.batch_size = a.batch_size;
    s.work_dir = work_dir;
    s.resume_strict = a.resume_strict;
    s.input_fingerprints = nlohmann::json{{"model", content_fingerprint(model_dir)}}.dump();
    cuda_reset_peak();
    run_passes(s);

    report["model"] = model_dir;
    report["architecture"] = cfg.architecture;
    report["recipe"] = nlohmann::json::parse(recipe.resolved_json());
    report["device"] = dev.str();
    report["blas"] = blas_kernels();
    report["calibration_dtype"] = dtype_name(dtype);
    report["stream_dtype"] = dtype_name(s.store_dtype);
    report["train_autocast"] = s.train_autocast ? "float32 weights and parameters, bfloat16 autocast forwards"
                                                : "off (learned passes compute in " + dtype_name(s.train_dtype()) + ")";
    report["timings_seconds"] = s.seconds;
    if (!s.metrics.empty()) report["metrics"] = s.metrics;
    if (cfg.num_experts > 0) report["moe"] = moe_report(s, cfg);
    report["bits_per_weight_planned"] = planned_bits_per_weight(plan);
    FormatWriteOptions wo;
    wo.force = a.force;
    wo.extra_json = report.dump();
    wo.requant_type = a.gguf_type;
    wo.checkpoint_format = a.gptq_format;
    nlohmann::json format_report = nlohmann::json::object();
    wo.report = &format_report;
    out_format.write(model, s.quantized, s.mixed, a.out, wo);
    if (!format_report.empty()) report["export"] = format_report;
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
    SQ_INFO("wrote " << a.out << " (" << s.quantized.size() + s.mixed.size() << " quantized linears) in " << format_duration(seconds));
    if (!a.keep_work && is_directory(s.work_dir)) {
      std::error_code ec;  // a leftover work directory is reported, not fatal: the output is complete
      std::filesystem::remove_all(s.work_dir, ec);
      if (ec) SQ_INFO("warning: cannot remove the work directory " << s.work_dir << ": " << ec.message());
    }
    output_written = true;

    report["output"] = a.out;
    report["seconds_total"] = seconds;
    report["peak_rss_bytes"] = peak_rss_bytes();
    report["peak_gpu_bytes"] = cuda_peak_bytes();
    report["perplexity"] = nlohmann::json::array();
    if (!eval_sets.empty()) {
      RunnerOptions ro;
      ro.device = dev;
      ro.dtype = dev.is_cuda() ? c10::kBFloat16 : c10::kFloat;
      Runner runner(model, ro);
      std::printf("%-12s %7s %8s %12s\n", "dataset", "seqlen", "windows", "ppl");
      for (const TextDataset& ds : eval_sets) {
        PplOptions po;
        po.seqlen = std::min<int64_t>(2048, cfg.max_position_embeddings);
        po.max_windows = ds.max_windows;
        po.progress = !common.quiet;
        po.label = ds.name;
        PplResult r = perplexity(runner, tok->encode_for_model(ds.text), po);
        const std::string shown = short_name(ds.name);
        std::printf("%-12s %7lld %8lld %12.4f\n", shown.c_str(), (long long)r.seqlen, (long long)r.windows, r.ppl);
        report["perplexity"].push_back({{"dataset", ds.name}, {"sha256", ds.sha256}, {"seqlen", r.seqlen},
                                        {"windows", r.windows}, {"ppl", r.ppl}, {"protocol", r.protocol}});
      }
    }
    if (!a.json.empty()) write_file_atomic(a.json, report.dump(2) + "\n");
  } catch (...) {
    if (!output_written) keep_or_remove_work();
    throw;
  }
  return 0;
}

}  // namespace sq::cli
