// formats/format_common: helpers shared by the format rows (see format_common.h).
#include "format_common.h"

#include <ATen/ATen.h>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <system_error>

#include "sliderquant/core/error.h"
#include "sliderquant/core/fs.h"
#include "sliderquant/core/util.h"
#include "sliderquant/data/gguf_tokenizer.h"
#include "sliderquant/io/gguf.h"
#include "sliderquant/model/arch.h"

namespace sq::formats {
void check_output(const std::string& out, bool force) {
  if (path_exists(out) && !force) throw UsageError(out + " already exists (use --force to replace it)");
  if (!path_exists(out)) check_writable_file(out, "output");  // an existing OUT is replaced (--force)
}

void write_dir_atomic(const std::string& out, const std::function<void(const std::string& tmp)>& fill) {
  remove_stale_temps(out);
  const std::string tmp = temp_sibling(out);
  remove_path(tmp);
  SQ_CHECK(::mkdir(tmp.c_str(), 0755) == 0, "cannot create " << tmp);
  try {
    fill(tmp);
  } catch (...) {
    remove_path(tmp);
    throw;
  }
  try {
    replace_path(tmp, out);  // a complete OUT at every instant, also under --force
  } catch (...) {
    remove_path(tmp);
    throw;
  }
}

void copy_source_files(const Model& m, const std::string& dir) {
  if (is_gguf_file(m.dir)) {
    // A model read from a GGUF file: its configuration and tokenizer in HF form.
    write_file_atomic(path_join(dir, "config.json"), model_config_json(m.config));
    nlohmann::json gen = nlohmann::json::object();
    if (m.config.bos_token_id >= 0) gen["bos_token_id"] = m.config.bos_token_id;
    if (!m.config.eos_token_ids.empty()) gen["eos_token_id"] = m.config.eos_token_ids[0];
    write_file_atomic(path_join(dir, "generation_config.json"), gen.dump(2) + "\n");
    write_hf_tokenizer_files(*GgufFile::open(m.dir), dir);
    return;
  }
  nlohmann::json cfg = nlohmann::json::parse(read_file(path_join(m.dir, "config.json")));
  cfg["tie_word_embeddings"] = m.config.tie_word_embeddings;
  write_file_atomic(path_join(dir, "config.json"), cfg.dump(2) + "\n");
  for (const char* f : {"generation_config.json", "tokenizer.model", "tokenizer.json", "tokenizer.json.xz",
                        "tokenizer_config.json", "special_tokens_map.json", "encoder.json", "vocab.bpe"}) {
    std::string src = path_join(m.dir, f);
    if (path_exists(src)) write_file_atomic(path_join(dir, f), read_file(src));
  }
}

void check_storable(const ModelFormat& f, const std::map<std::string, QTensor>& quantized,
                    const std::map<std::string, MixedQTensor>& mixed) {
  for (const auto& [name, q] : quantized) {
    SQ_CHECK(!mixed.count(name), name << " is both a quantized and a mixed-precision linear");
    const std::string why = f.cannot_store(q);
    SQ_CHECK(why.empty(), f.name << " cannot store " << name << " (" << q.format.name() << "): " << why);
  }
  for (const auto& [name, q] : mixed) {
    const std::string why = f.cannot_store_mixed(q);
    SQ_CHECK(why.empty(), f.name << " cannot store " << name << " (" << q.hi.format.name() << "+"
                                 << q.lo.format.name() << "): " << why);
  }
}

bool has_safetensors(const std::string& dir) {
  if (path_exists(path_join(dir, "model.safetensors")) || path_exists(path_join(dir, "model.safetensors.index.json")))
    return true;
  DIR* d = ::opendir(dir.c_str());
  if (!d) return false;
  bool found = false;
  const std::string ext = ".safetensors";
  while (dirent* e = ::readdir(d)) {
    const std::string n = e->d_name;
    if (n.size() > ext.size() && n.compare(n.size() - ext.size(), ext.size(), ext) == 0) {
      found = true;
      break;
    }
  }
  ::closedir(d);
  return found;
}

void check_plain_state(const Model& m, const char* format, bool allow_activations, const std::string& why_not) {
  SQ_CHECK(allow_activations || !m.act.on(),
           format << " cannot store activation quantization (" << why_not << ")");
  SQ_CHECK(!m.final_norm_bias.defined(), format << " cannot store model.norm.bias (" << why_not << ")");
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    const Block& b = m.blocks[i];
    const std::string blk = "model.layers." + std::to_string(i);
    SQ_CHECK(!b.act_clip.defined(),
             format << " cannot store " << blk << ".activation_clip (learned activation clipping; " << why_not << ")");
    SQ_CHECK(!b.mlp_norm_bias.defined(),
             format << " cannot store " << blk << ".post_attention_layernorm.bias (" << why_not << ")");
    for (int k = 0; k < kOnlinePoints; ++k)
      SQ_CHECK(!b.online[k].defined(), format << " cannot store the online transform " << blk << "."
                                              << online_point_name(OnlinePoint(k)) << " (" << why_not << ")");
  }
}

void refuse_moe_export(const Model& m, const char* format, const std::vector<std::string>& loadable,
                       const char* loader) {
  const ModelConfig& c = m.config;
  if (c.num_experts == 0) return;
  SQ_CHECK(!loadable.empty(),
           format << " export of mixture-of-experts models (" << c.architecture
                  << ") is not supported: transformers 5 loads experts as fused tensors and leaves per-expert "
                     "quantized linears unloaded; write the native, hf or gguf format");
  SQ_CHECK(std::find(loadable.begin(), loadable.end(), c.family) != loadable.end(),
           format << " export of " << c.architecture << " is not supported: " << loader
                  << " does not load its per-expert quantized linears (it does for "
                  << [&] {
                       std::string l;
                       for (const std::string& f : loadable) l += (l.empty() ? "" : ", ") + f;
                       return l;
                     }() << "); write the native, hf or gguf format");
  for (int64_t i = 0; i < c.num_layers; ++i)
    SQ_CHECK(c.moe_layer(i), format << " export of this " << c.architecture << ": layer " << i
                                    << " has a dense MLP (mlp_only_layers / decoder_sparse_step), which " << loader
                                    << " leaves unquantized when it loads the checkpoint; write the native, hf or "
                                       "gguf format");
}

std::string hf_module_name(const std::string& canonical, const std::string& family) {
  const std::string w = hf_tensor_name(canonical, family);
  const std::string suffix = ".weight";
  SQ_CHECK(w.size() > suffix.size() && w.compare(w.size() - suffix.size(), suffix.size(), suffix) == 0,
           "linear " << canonical << " has no .weight tensor name (" << w << ")");
  return w.substr(0, w.size() - suffix.size());
}

std::vector<std::string> linear_names(const Model& m) {
  std::vector<std::string> names;
  for (const Block& b : m.blocks)
    for (const Linear& l : b.slots) names.push_back(l.name);
  names.push_back(m.lm_head.name.empty() ? std::string("lm_head") : m.lm_head.name);
  return names;
}

bool contiguous_groups(const QTensor& q) {
  if (!q.g_idx.defined()) return true;
  const int64_t in = q.in_features();
  return q.g_idx.to(at::kLong).cpu().equal(at::arange(in, at::kLong).div(q.format.group_width(in), "floor"));
}

QTensor uniform_view(const QTensor& q) {
  const GgmlGrid g = q.format.grid;
  if (g != GgmlGrid::Q4_0 && g != GgmlGrid::Q5_0 && g != GgmlGrid::Q8_0) return q;
  QTensor u = q;
  u.format.grid = GgmlGrid::None;  // bits, group 32 and symmetric already describe the grid
  return u;
}

std::map<std::string, QTensor> uniform_view(const std::map<std::string, QTensor>& qs) {
  std::map<std::string, QTensor> out;
  for (const auto& [n, q] : qs) out.emplace(n, uniform_view(q));
  return out;
}

nlohmann::json try_quantization_config(const std::string& dir, const char* alt_key) {
  if (!is_directory(dir) || !path_exists(path_join(dir, "config.json"))) return nullptr;
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(read_file(path_join(dir, "config.json")));
  } catch (const std::exception&) {
    return nullptr;
  }
  if (!cfg.is_object()) return nullptr;
  nlohmann::json qc = cfg.value("quantization_config", nlohmann::json());
  if (!qc.is_object() && alt_key) qc = cfg.value(alt_key, nlohmann::json());
  return qc.is_object() ? qc : nlohmann::json();
}

std::string scale_problem(const QTensor& q) {
  if (!q.scales.defined() || !q.zeros.defined()) return "scales or zeros are missing";
  if (!at::isfinite(q.scales).all().item<bool>()) return "a scale is not finite";
  if (q.scales.abs().max().item<float>() > 65504.f) return "a scale overflows float16";
  return "";
}

std::string exact_regex(const std::string& name) {
  std::string r = "^";
  for (char c : name) {
    if (std::string(".[]{}()*+?^$|\\").find(c) != std::string::npos) r += '\\';
    r += c;
  }
  return r + "$";
}

nlohmann::json read_config_json(const std::string& dir) {
  const std::string p = path_join(dir, "config.json");
  nlohmann::json cfg;
  try {
    cfg = nlohmann::json::parse(read_file(p));
  } catch (const nlohmann::json::exception& e) {
    SQ_FAIL(p << ": invalid JSON (" << e.what() << ")");
  }
  SQ_CHECK(cfg.is_object(), p << ": not a JSON object");
  return cfg;
}

void add_mean_bits(nlohmann::json& d) {
  double bits = 0, weights = 0;
  for (const auto& [name, l] : d["linears"].items()) {
    const double n = double(l["shape"][0].get<int64_t>()) * double(l["shape"][1].get<int64_t>());
    bits += l.value("bits_per_weight", 0.0) * n;
    weights += n;
  }
  d["bits_per_weight_quantized_linears"] = weights > 0 ? bits / weights : 0.0;
}

nlohmann::json describe_common(const ModelFormat& f, const std::string& dir) {
  const ModelConfig c = load_model_config(dir);
  return {{"format", f.name},
          {"summary", f.summary},
          {"dir", dir},
          {"architecture", c.architecture},
          {"family", c.family},
          {"parameters", c.param_count()},
          {"quantized", false},
          {"linears", nlohmann::json::object()},
          {"formats", nlohmann::json::object()}};
}

}  // namespace sq::formats
