// tools/cmd_eval: `sliderquant eval MODEL --ppl ...`: loads the model and its tokenizer,
// scores each dataset under the GPTQ protocol, prints a table and writes a JSON report.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "sliderquant/core/error.h"
#include "sliderquant/core/log.h"
#include "sliderquant/core/torch_compat.h"
#include "sliderquant/core/util.h"
#include "sliderquant/data/dataset.h"
#include "sliderquant/data/tokenizer.h"
#include "sliderquant/eval/perplexity.h"
#include "sliderquant/model/model.h"
#include "sliderquant/pack/native_model.h"

namespace sq::cli {
namespace {

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

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

}  // namespace

int cmd_eval(const EvalArgs& a, const CommonArgs& common) {
  apply_common(common);
  std::vector<std::string> sets = split_commas(a.ppl);
  if (sets.empty()) throw UsageError("--ppl needs at least one dataset name or text file");
  if (!a.json.empty()) check_writable_file(a.json, "--json");
  c10::Device dev = resolve_device(a.device);
  c10::ScalarType dtype = choose_dtype(a.dtype, dev);

  load_model_config(a.model);  // a wrong model path or config fails first, and at once
  // Resolve every dataset before the (long) model work so a typo fails at once.
  std::vector<TextDataset> datasets;
  for (const std::string& name : sets) datasets.push_back(load_text_dataset(name, a.data_dir));

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
  report["resident"] = runner.resident();
  report["tokenizer"] = {{"kind", tok->kind()}, {"bos", tok->add_bos ? tok->bos_id : -1}};
  report["perplexity"] = nlohmann::json::array();

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
    std::string shown = ds.name.substr(ds.name.find_last_of('/') + 1);
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
  report["peak_rss_bytes"] = peak_rss_bytes();
  report["peak_gpu_bytes"] = cuda_peak_bytes();
  SQ_INFO("peak host memory " << human_bytes(double(peak_rss_bytes()))
                              << (dev.is_cuda() ? ", peak GPU memory " + human_bytes(double(cuda_peak_bytes())) : ""));
  if (!a.json.empty()) write_file_atomic(a.json, report.dump(2) + "\n");
  return 0;
}

}  // namespace sq::cli
