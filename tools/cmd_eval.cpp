// tools/cmd_eval: `sliderquant eval MODEL [--ppl ...] [--tasks ...] [--kld-base DIR]`: loads
// the model and its tokenizer, scores perplexity (GPTQ protocol), zero-shot tasks (lm-eval
// 0-shot) and KL divergence from a base model, prints tables and writes a JSON report.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "sliderquant/core/error.h"
#include "sliderquant/core/log.h"
#include "sliderquant/core/torch_compat.h"
#include "sliderquant/core/util.h"
#include "sliderquant/data/dataset.h"
#include "sliderquant/data/tokenizer.h"
#include "sliderquant/eval/kld.h"
#include "sliderquant/eval/perplexity.h"
#include "sliderquant/eval/zeroshot.h"
#include "sliderquant/formats/model_format.h"
#include "sliderquant/model/model.h"

namespace sq::cli {
namespace {

// A float32 tensor as a NumPy .npy file (format version 1.0, C order).
void write_npy_f32(const std::string& path, const at::Tensor& t) {
  std::string shape = "(";
  for (int64_t d : t.sizes()) shape += std::to_string(d) + ",";
  if (t.dim() > 1) shape.pop_back();
  shape += ")";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': " + shape + ", }";
  header.append(63 - (10 + header.size()) % 64, ' ');
  header += '\n';
  std::string out = std::string("\x93NUMPY\x01\x00", 8);
  out += char(header.size() & 0xff);
  out += char(header.size() >> 8);
  out += header;
  out.append(static_cast<const char*>(t.data_ptr()), size_t(t.numel()) * 4);
  write_file_atomic(path, out);
}

}  // namespace
namespace {

c10::ScalarType choose_dtype(const std::string& name, c10::Device dev) {
  if (name == "auto") return dev.is_cuda() ? c10::kBFloat16 : c10::kFloat;
  c10::ScalarType t = parse_dtype(name);
  if (t == c10::kHalf && dev.is_cpu()) {
    try {
      at::ones({2, 2}, at::kHalf).matmul(at::ones({2, 2}, at::kHalf));
    } catch (const std::exception&) {
      throw UsageError("float16 matrix multiplication is not available on CPU in libtorch " +
                       torch_version_string() + "; use --dtype bfloat16 or float32");
    }
  }
  return t;
}

// KL(base || model) on each dataset's windows; the base runs in the same dtype on the same device.
void run_kld(const EvalArgs& a, const std::vector<TextDataset>& sets, const Model& model, Runner& runner,
             const Tokenizer& tok, int64_t seqlen, bool quiet, nlohmann::json& report) {
  Model base = load_any_model(a.kld_base);
  SQ_CHECK(base.config.vocab_size == model.config.vocab_size,
           "--kld-base " << a.kld_base << " has " << base.config.vocab_size << " tokens but the model "
                         << model.config.vocab_size << "; KL divergence needs one vocabulary");
  Runner base_runner(base, runner.options());
  nlohmann::json rows = nlohmann::json::array();
  std::printf("\n%-12s %8s %10s %11s %11s %11s %8s %9s\n", "kld-dataset", "windows", "tokens", "mean_kl", "median_kl",
              "p99_kl", "top1", "seconds");
  for (const TextDataset& ds : sets) {
    std::vector<int64_t> ids = tok.encode_for_model(ds.text);
    KldOptions ko;
    ko.seqlen = seqlen;
    ko.batch_size = a.batch_size;
    ko.max_windows = a.max_windows;
    if (ds.max_windows > 0) ko.max_windows = ko.max_windows > 0 ? std::min(ko.max_windows, ds.max_windows) : ds.max_windows;
    ko.progress = !quiet;
    ko.label = "kld " + ds.name;
    KldResult r = kl_divergence(runner, base_runner, ids, ko);
    const std::string shown = short_name(ds.name);
    std::printf("%-12s %8lld %10lld %11.6f %11.6f %11.6f %8.4f %9.2f\n", shown.c_str(), (long long)r.windows,
                (long long)r.tokens, r.mean_kl, r.median_kl, r.p99_kl, r.top1_agreement, r.seconds);
    std::fflush(stdout);
    rows.push_back({{"dataset", ds.name},
                    {"sha256", ds.sha256},
                    {"protocol", r.protocol},
                    {"direction", "KL(P_base || P_model)"},
                    {"seqlen", r.seqlen},
                    {"windows", r.windows},
                    {"tokens", r.tokens},
                    {"mean_kl", r.mean_kl},
                    {"median_kl", r.median_kl},
                    {"p99_kl", r.p99_kl},
                    {"max_kl", r.max_kl},
                    {"top1_agreement", r.top1_agreement},
                    {"base_ppl", std::exp(r.base_nll)},
                    {"model_ppl", std::exp(r.model_nll)},
                    {"seconds", r.seconds}});
  }
  report["kld"] = {{"base", a.kld_base}, {"results", rows}};
}

nlohmann::json json_or_null(bool has, double v) { return has ? nlohmann::json(v) : nlohmann::json(nullptr); }

// Zero-shot: one console row and one JSON entry per task, then the summary line.
void run_zeroshot(const EvalArgs& a, const std::vector<TaskData>& tasks, Runner& runner, const Tokenizer& tok,
                  bool quiet, nlohmann::json& report) {
  ModelScorerOptions so;
  so.batch_size = a.zs_batch_size;
  ModelScorer scorer(runner, so);
  ZeroshotOptions zo;
  zo.add_bos = a.zs_bos == "auto" ? tok.add_bos : a.zs_bos == "yes";
  zo.progress = !quiet;
  std::vector<TaskResult> results;
  nlohmann::json zs = nlohmann::json::object();
  std::printf("\n%-15s %6s %8s %9s %8s %10s %9s\n", "task", "n", "acc", "acc_norm", "stderr", "ppl", "items/s");
  for (const TaskData& t : tasks) {
    TaskResult r = evaluate_task(t, scorer, tok, zo);
    char norm[16] = "-", ppl[16] = "-";
    if (r.has_acc_norm) std::snprintf(norm, sizeof norm, "%.4f", r.acc_norm);
    if (r.has_ppl) std::snprintf(ppl, sizeof ppl, "%.3f", r.ppl);
    std::printf("%-15s %6lld %8.4f %9s %8.4f %10s %9.1f\n", r.task.c_str(), (long long)r.n, r.acc, norm,
                r.has_acc_norm ? r.acc_norm_stderr : r.acc_stderr, ppl, r.items_per_second);
    std::fflush(stdout);
    nlohmann::json e = {{"acc", r.acc},
                        {"acc_stderr", r.acc_stderr},
                        {"acc_norm", json_or_null(r.has_acc_norm, r.acc_norm)},
                        {"acc_norm_stderr", json_or_null(r.has_acc_norm, r.acc_norm_stderr)},
                        {"n", r.n},
                        {"limit", a.limit},
                        {"score", r.score},
                        {"metric", r.has_acc_norm ? "acc_norm" : "acc"},
                        {"data_file", t.source},
                        {"data_sha256", t.sha256},
                        {"prompt_format", t.spec.prompt_format},
                        {"prompt_format_version", t.spec.prompt_format_version},
                        {"bos", zo.add_bos && tok.bos_id >= 0},
                        {"requests", r.requests},
                        {"seconds", r.seconds},
                        {"items_per_second", r.items_per_second}};
    if (r.has_ppl) e["ppl"] = r.ppl;
    zs[r.task] = e;
    results.push_back(std::move(r));
  }
  const double summary = zeroshot_summary(results);
  std::printf("zero-shot summary: %.2f (mean over %zu tasks of acc_norm where reported, else acc, x100)\n", summary,
              results.size());
  report["zeroshot"] = zs;
  report["zeroshot_summary"] = {{"score", summary},
                                {"tasks", results.size()},
                                {"rule", "mean over tasks of 100 * (acc_norm if the task reports it else acc)"}};
  const ScorerStats& st = scorer.stats();
  report["zeroshot_scorer"] = {{"requests", st.requests},   {"sequences", st.sequences}, {"forwards", st.forwards},
                               {"tokens", st.tokens},       {"padded_tokens", st.padded_tokens},
                               {"batch_size", a.zs_batch_size}};
}

}  // namespace

int cmd_eval(const EvalArgs& a, const CommonArgs& common) {
  apply_common(common);
  std::vector<std::string> sets = split_dataset_list(a.ppl);
  std::vector<std::string> task_names;
  if (!a.tasks.empty()) task_names = parse_task_list(a.tasks);
  if (sets.empty() && task_names.empty() && a.kld_base.empty())
    throw UsageError("nothing to evaluate: give --ppl DATASETS, --tasks TASKS and/or --kld-base DIR");
  // KL divergence runs on the --ppl datasets' text, or on wikitext2 when none is given.
  std::vector<std::string> kld_sets = a.kld_base.empty() ? std::vector<std::string>{}
                                      : sets.empty()     ? std::vector<std::string>{"wikitext2"}
                                                         : sets;
  if (!a.json.empty()) check_writable_file(a.json, "--json");
  c10::Device dev = resolve_device(a.device);
  c10::ScalarType dtype = choose_dtype(a.dtype, dev);

  load_any_config(a.model);  // a wrong model path or config fails first, and at once
  // Resolve every dataset before the (long) model work so a typo fails at once.
  if (!a.kld_base.empty()) load_any_config(a.kld_base);
  std::vector<TextDataset> datasets, kld_datasets;
  for (const std::string& name : sets) datasets.push_back(load_text_dataset(name, a.data_dir));
  for (const std::string& name : kld_sets) kld_datasets.push_back(load_text_dataset(name, a.data_dir));
  std::vector<TaskData> tasks;
  for (const std::string& t : task_names) tasks.push_back(load_task(t, a.data_dir, a.limit));

  Model model = load_any_model(a.model);
  auto tok = load_tokenizer(a.model);
  SQ_CHECK(tok->vocab_size() <= model.config.vocab_size,
           "the tokenizer in " << a.model << " has " << tok->vocab_size() << " tokens but the model only "
                               << model.config.vocab_size);
  int64_t seqlen = a.seqlen;
  if (seqlen > model.config.max_position_embeddings) {
    SQ_INFO("seqlen " << seqlen << " capped to the model's context of " << model.config.max_position_embeddings);
    seqlen = model.config.max_position_embeddings;
  }
  cuda_reset_peak();
  RunnerOptions ro;
  ro.dtype = dtype;
  ro.device = dev;
  Runner runner(model, ro);
  SQ_INFO("model " << a.model << ": " << model.config.architecture << ", "
                   << model.config.param_count() << " parameters, " << dtype_name(dtype) << " on " << dev.str()
                   << (runner.resident() ? " (all weights on the device)" : " (weights streamed block by block)"));

  if (!a.save_logits.empty()) {
    SQ_CHECK(!datasets.empty(), "--save-logits needs a --ppl dataset");
    std::vector<int64_t> ids = tok->encode_for_model(datasets[0].text);
    if (int64_t(ids.size()) > seqlen) ids.resize(size_t(seqlen));
    at::Tensor t = at::tensor(ids, at::kLong).unsqueeze(0);
    at::Tensor lg = runner.logits(t).squeeze(0).to(at::kFloat).cpu().contiguous();
    write_npy_f32(a.save_logits, lg);
    write_file_atomic(a.save_logits + ".ids.json", nlohmann::json(ids).dump() + "\n");
    SQ_INFO("wrote the logits of " << ids.size() << " tokens to " << a.save_logits);
  }

  nlohmann::json report;
  report["tool"] = "sliderquant";
  report["version"] = SQ_VERSION;
  report["torch"] = torch_version_string();
  report["model"] = a.model;
  report["architecture"] = model.config.architecture;
  report["parameters"] = model.config.param_count();
  report["dtype"] = dtype_name(dtype);
  report["device"] = dev.str();
  report["threads"] = at::get_num_threads();
  report["blas"] = blas_kernels();
  report["resident"] = runner.resident();
  report["tokenizer"] = {{"kind", tok->kind()}, {"bos", tok->add_bos ? tok->bos_id : -1}};
  report["perplexity"] = nlohmann::json::array();

  if (!datasets.empty())
    std::printf("%-12s %-9s %7s %8s %10s %12s %10s %9s\n", "dataset", "protocol", "seqlen", "windows", "tokens",
              "ppl", "tok/s", "seconds");
  for (const TextDataset& ds : datasets) {
    std::vector<int64_t> ids = tok->encode_for_model(ds.text);
    PplOptions po;
    po.seqlen = seqlen;
    po.batch_size = a.batch_size;
    po.max_windows = a.max_windows;
    if (ds.max_windows > 0) po.max_windows = po.max_windows > 0 ? std::min(po.max_windows, ds.max_windows) : ds.max_windows;
    po.progress = !common.quiet;
    po.label = ds.name;
    PplResult r = perplexity(runner, ids, po);
    const std::string shown = short_name(ds.name);
    std::printf("%-12s %-9s %7lld %8lld %10lld %12.4f %10.1f %9.2f\n", shown.c_str(), r.protocol.c_str(),
                (long long)r.seqlen, (long long)r.windows, (long long)r.tokens_total, r.ppl, r.tokens_per_second,
                r.seconds);
    std::fflush(stdout);
    report["perplexity"].push_back({{"dataset", ds.name},
                                    {"source", ds.source},
                                    {"sha256", ds.sha256},
                                    {"note", ds.note},
                                    {"protocol", r.protocol},
                                    {"bos", tok->add_bos && tok->bos_id >= 0},
                                    {"seqlen", r.seqlen},
                                    {"stride", r.seqlen},
                                    {"windows", r.windows},
                                    {"tokens_total", r.tokens_total},
                                    {"tokens_scored", r.tokens_scored},
                                    {"nll", r.nll},
                                    {"ppl", r.ppl},
                                    {"seconds", r.seconds},
                                    {"tokens_per_second", r.tokens_per_second},
                                    {"streamed", r.streamed}});
  }
  if (!kld_datasets.empty()) run_kld(a, kld_datasets, model, runner, *tok, seqlen, common.quiet, report);
  if (!tasks.empty()) run_zeroshot(a, tasks, runner, *tok, common.quiet, report);
  report["peak_rss_bytes"] = peak_rss_bytes();
  report["peak_gpu_bytes"] = cuda_peak_bytes();
  SQ_INFO("peak host memory " << human_bytes(double(peak_rss_bytes()))
                              << (dev.is_cuda() ? ", peak GPU memory " + human_bytes(double(cuda_peak_bytes())) : ""));
  if (!a.json.empty()) write_file_atomic(a.json, report.dump(2) + "\n");
  return 0;
}

}  // namespace sq::cli
