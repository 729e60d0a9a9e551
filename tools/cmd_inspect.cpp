// tools/cmd_inspect: `sliderquant inspect MODEL`: architecture, hyper-parameters, quirks,
// parameter count, tensors (dtype, shape, bytes) and bits per weight as stored; for a
// quantized model, what its format describes (formats/model_format.h describe()).
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "sliderquant/core/util.h"
#include "sliderquant/formats/model_format.h"
#include "sliderquant/data/tokenizer.h"
#include "sliderquant/io/gguf.h"
#include "sliderquant/io/safetensors.h"
#include "sliderquant/model/arch.h"

namespace sq::cli {

int cmd_inspect(const InspectArgs& a, const CommonArgs& common) {
  apply_common(common);
  if (!a.json.empty()) check_writable_file(a.json, "--json");
  ModelConfig c = load_any_config(a.model);
  const ArchSpec& spec = find_arch(c.architecture);
  uint64_t bytes = 0;
  int64_t stored_params = 0;
  size_t n_files = 1;
  std::map<std::string, int64_t> by_dtype;
  nlohmann::json tensors = nlohmann::json::array();
  if (is_gguf_file(a.model)) {
    // A GGUF file: its tensors under their GGUF names, types as ggml names them.
    auto f = GgufFile::open(a.model);
    for (const GgufTensorInfo& t : f->tensors()) {
      const std::string type = ggml_type_name(uint32_t(t.type));
      bytes += t.nbytes;
      stored_params += t.numel();
      by_dtype[type] += t.numel();
      tensors.push_back({{"name", t.name}, {"dtype", type}, {"shape", t.torch_shape()}, {"bytes", t.nbytes}});
    }
  } else {
    Checkpoint ck = Checkpoint::open(a.model);
    n_files = ck.files().size();
    for (const std::string& n : ck.names()) {
      const TensorInfo& t = ck.info(n);
      bytes += t.nbytes();
      stored_params += t.numel();
      by_dtype[st_dtype_name(t.dtype)] += t.numel();
      tensors.push_back({{"name", n}, {"dtype", st_dtype_name(t.dtype)}, {"shape", t.shape}, {"bytes", t.nbytes()}});
    }
  }
  // Bits per weight over the model's logical parameters (packed codes are int32 words, so
  // counting stored elements would be meaningless for quantized outputs).
  const double bpw = c.param_count() > 0 ? 8.0 * double(bytes) / double(c.param_count()) : 0.0;
  // What the model's format records about it (quantized formats: per-linear formats, bits,
  // recipe and calibration).
  const ModelFormat& format = detect_format(a.model);
  const nlohmann::json described = format.describe(a.model);
  const bool quantized = described.value("quantized", false);

  std::printf("model          %s\n", a.model.c_str());
  std::printf("architecture   %s (family %s)\n", c.architecture.c_str(), c.family.c_str());
  std::printf("layers         %lld, hidden %lld, intermediate %lld\n", (long long)c.num_layers,
              (long long)c.hidden_size, (long long)c.intermediate_size);
  std::printf("attention      %lld heads, %lld KV heads, head_dim %lld%s%s\n", (long long)c.num_heads,
              (long long)c.num_kv_heads, (long long)c.head_dim, c.qkv_bias ? ", qkv bias" : "",
              c.qk_norm ? ", q/k norm" : "");
  std::printf("vocab          %lld, context %lld, rope theta %g%s%s\n", (long long)c.vocab_size,
              (long long)c.max_position_embeddings, c.rope_theta,
              c.rope_scaling ? (", rope_scaling " + c.rope_scaling->type).c_str() : "",
              c.tie_word_embeddings ? ", tied embeddings" : "");
  if (c.sliding_window > 0) std::printf("sliding window %lld\n", (long long)c.sliding_window);
  for (const Quirk& q : spec.quirks) std::printf("family quirk   %s: %s\n", q.name.c_str(), q.reason.c_str());
  std::printf("parameters     %lld (config), %lld stored in %zu file(s)\n", (long long)c.param_count(),
              (long long)stored_params, n_files);
  for (const auto& [dt, n] : by_dtype) std::printf("  %-12s %lld parameters\n", dt.c_str(), (long long)n);
  std::printf("size           %s, %.2f bits per parameter (all tensors, embeddings included)\n",
              human_bytes(double(bytes)).c_str(), bpw);
  if (quantized) {
    if (described.contains("format_version"))
      std::printf("quantized      %s version %d, %.3f bits per weight over the quantized linears\n",
                  described.value("format_label", std::string("?")).c_str(), described.value("format_version", 0),
                  described.value("bits_per_weight_quantized_linears", 0.0));
    else
      std::printf("quantized      %s, %.3f bits per weight over the quantized linears\n",
                  described.value("format_label", std::string("?")).c_str(),
                  described.value("bits_per_weight_quantized_linears", 0.0));
    for (const auto& [f, n] : described["formats"].items())
      std::printf("  %-12s %lld linears\n", f.c_str(), (long long)n.get<int64_t>());
    if (described.contains("recipe")) std::printf("recipe         %s\n", described["recipe"].get<std::string>().c_str());
    if (described.contains("calibration")) {
      const nlohmann::json& cal = described["calibration"];
      std::printf("calibration    %s, sha256 %s, seed %llu\n", cal["dataset"].get<std::string>().c_str(),
                  cal["sha256"].get<std::string>().c_str(), (unsigned long long)cal["seed"].get<uint64_t>());
    }
  }
  if (a.tensors) {
    std::printf("\n%-56s %-5s %-18s %12s\n", "tensor", "dtype", "shape", "bytes");
    for (const auto& t : tensors) {
      std::string shape = "[";
      for (size_t i = 0; i < t["shape"].size(); ++i) shape += (i ? ", " : "") + std::to_string(t["shape"][i].get<int64_t>());
      shape += "]";
      std::printf("%-56s %-5s %-18s %12llu\n", t["name"].get<std::string>().c_str(),
                  t["dtype"].get<std::string>().c_str(), shape.c_str(), (unsigned long long)t["bytes"].get<uint64_t>());
    }
  }
  std::string check = "not run (--check)";
  if (a.check) {
    // What eval refuses, inspect --check refuses: every tensor loaded (present, shaped, typed,
    // finite; none left over) and the tokenizer loaded.
    Model m = load_any_model(a.model);
    auto tok = load_tokenizer(a.model);
    check = "ok: every tensor present, of the right shape and dtype and finite; the tokenizer loads (" +
            std::to_string(tok->vocab_size()) + " tokens)";
    std::printf("check          %s\n", check.c_str());
  }
  if (!a.json.empty()) {
    nlohmann::json j = nlohmann::json::parse(model_config_json(c));
    nlohmann::json out{{"model", a.model},
                       {"architecture", c.architecture},
                       {"family", c.family},
                       {"config", j},
                       {"parameters", c.param_count()},
                       {"stored_parameters", stored_params},
                       {"bytes", bytes},
                       {"bits_per_weight", bpw},
                       {"model_format", format.name},
                       {"quantization", described.contains("metadata") ? described["metadata"]
                                                                        : described.value("quantization_config",
                                                                                          nlohmann::json())},
                       {"linears", described.value("linears", nlohmann::json::object())},
                       {"files", n_files},
                       {"check", check},
                       {"tensors", tensors}};
    write_file_atomic(a.json, out.dump(2) + "\n");
  }
  return 0;
}

}  // namespace sq::cli
