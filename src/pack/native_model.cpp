// pack/native_model: writer and reader of native quantized model directories (see header).
#include "sliderquant/pack/native_model.h"

#include <ATen/ATen.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "sliderquant/core/error.h"
#include "sliderquant/core/log.h"
#include "sliderquant/core/util.h"
#include "sliderquant/io/safetensors.h"
#include "sliderquant/pack/native.h"
#include "sliderquant/pack/native_mixed.h"
#include "sliderquant/pipeline/session.h"

namespace sq {
namespace {

constexpr const char* kQConfig = "quantization_config.json";

void remove_tree(const std::string& dir) { std::system(("rm -rf '" + dir + "'").c_str()); }

}  // namespace

bool is_native_quantized(const std::string& dir) { return path_exists(path_join(dir, kQConfig)); }

void write_native_model(const Model& m, const std::map<std::string, QTensor>& quantized, const std::string& out,
                        const NativeWriteOptions& opts, const std::map<std::string, MixedQTensor>& mixed) {
  if (path_exists(out) && !opts.force) throw UsageError(out + " already exists (use --force to replace it)");
  if (!path_exists(out)) check_writable_file(out, "output");  // an existing OUT is replaced (--force)
  const std::string tmp = out + ".tmp." + std::to_string(::getpid());
  remove_tree(tmp);
  SQ_CHECK(::mkdir(tmp.c_str(), 0755) == 0, "cannot create " << tmp);
  try {
    // Weights: the model's current tensors (transforms and corrections included), each
    // quantized linear replaced by its packed tensors.
    NamedTensors ts;
    nlohmann::json tensors = nlohmann::json::object();
    double qbits = 0, qweights = 0;
    for (const auto& [canonical, t] : canonical_tensors(m)) {
      const std::string hf = hf_tensor_name(canonical);
      auto it = quantized.find(canonical);
      if (auto mt = mixed.find(canonical); mt != mixed.end()) {
        SQ_CHECK(it == quantized.end(), canonical << " is both a quantized and a mixed-precision linear");
        const MixedQTensor& q = mt->second;
        std::string prefix = hf.substr(0, hf.size() - std::string(".weight").size());
        for (auto& kv : pack_mixed(prefix, q)) ts.push_back(std::move(kv));
        const int64_t o = q.out_features(), i = q.in_features(), k = q.hi_cols.size(0);
        tensors[prefix] = {{"hi", q.hi.format.name()}, {"lo", q.lo.format.name()}, {"k", k},
                           {"bits_per_weight", q.bits_per_weight()}, {"shape", {o, i}}};
        qbits += q.bits_per_weight() * double(o) * double(i);
        qweights += double(o) * double(i);
        continue;
      }
      if (it == quantized.end()) {
        SQ_CHECK(t.defined(), "linear " << canonical << " has neither a weight nor a quantized form");
        ts.emplace_back(hf, t.contiguous().cpu());
        continue;
      }
      const QTensor& q = it->second;
      std::string prefix = hf.substr(0, hf.size() - std::string(".weight").size());
      for (auto& kv : pack_qtensor(prefix, q)) ts.push_back(std::move(kv));
      const int64_t o = q.out_features(), i = q.in_features();
      tensors[prefix] = {{"format", q.format.name()},
                         {"bits", q.format.bits},
                         {"group_size", q.format.group_size},
                         {"symmetric", q.format.symmetric},
                         {"g_idx", q.g_idx.defined()},
                         {"dsq", q.format.dsq},
                         {"col_scale", q.col_scale.defined()},
                         {"shape", {o, i}}};
      qbits += bits_per_weight(q.format, o, i, q.g_idx.defined(), q.col_scale.defined()) * double(o) * double(i);
      qweights += double(o) * double(i);
    }
    SQ_CHECK(tensors.size() == quantized.size() + mixed.size(), "some quantized linears are not part of the model");
    write_checkpoint(tmp, ts, {{"format", "pt"}, {"quantization", "sliderquant-native-v1"}}, opts.max_shard_bytes);
    // Config, tokenizer and generation files as in the source.
    // config.json as in the source, with the fields a transform may change patched in.
    nlohmann::json cfg = nlohmann::json::parse(read_file(path_join(m.dir, "config.json")));
    cfg["tie_word_embeddings"] = m.config.tie_word_embeddings;
    write_file_atomic(path_join(tmp, "config.json"), cfg.dump(2) + "\n");
    for (const char* f : {"generation_config.json", "tokenizer.model", "tokenizer.json", "tokenizer.json.xz",
                          "tokenizer_config.json", "special_tokens_map.json", "encoder.json", "vocab.bpe"}) {
      std::string src = path_join(m.dir, f);
      if (path_exists(src)) write_file_atomic(path_join(tmp, f), read_file(src));
    }
    nlohmann::json qc = nlohmann::json::parse(opts.extra_json);
    qc["format"] = "sliderquant-native";
    qc["format_version"] = kNativePackVersion;
    qc["tool"] = "sliderquant";
    qc["tool_version"] = SQ_VERSION;
    qc["source_model"] = m.dir;
    qc["tensors"] = tensors;
    qc["bits_per_weight_quantized_linears"] = qweights > 0 ? qbits / qweights : 0.0;
    if (m.act.on()) {
      SQ_CHECK(m.act.rate == 1.0, "activation quantization of a deployed model must cover every channel");
      qc["activations"] = {{"method", "per-token-asymmetric-dynamic"},
                           {"bits", m.act.bits},
                           {"attn_qkv_bits", m.act.attn_bits}};
      bool clipped = false;
      for (const Block& b : m.blocks) clipped = clipped || b.act_clip.defined();
      if (clipped) {  // learned clipping: every block carries its factors
        for (size_t i = 0; i < m.blocks.size(); ++i)
          SQ_CHECK(m.blocks[i].act_clip.defined(), "block " << i << " has no activation clipping while others do");
        qc["activations"]["clip"] = {{"tensor", "model.layers.N.activation_clip"},
                                     {"rows", {"qkv_in", "o_in", "gate_up_in", "down_in", "k_cache", "v_cache"}},
                                     {"columns", {"max_factor", "min_factor"}}};
      }
      if (m.act.k_bits < 16 || m.act.v_bits < 16)
        qc["kv_cache"] = {{"method", "per-token-group-asymmetric-dynamic"},
                          {"k_bits", m.act.k_bits},
                          {"v_bits", m.act.v_bits},
                          {"group_size", m.act.kv_group > 0 ? m.act.kv_group : m.config.head_dim},
                          {"k_after_rope", true}};
    }
    // Online transforms: which points of which blocks carry one (tensors under
    // model.layers.N.online_transform.POINT.{scale,p1,p2}).
    nlohmann::json online = nlohmann::json::object();
    for (size_t i = 0; i < m.blocks.size(); ++i)
      for (int k = 0; k < kOnlinePoints; ++k) {
        const OnlineTransform& t = m.blocks[i].online[k];
        if (!t.defined()) continue;
        online[std::to_string(i)][online_point_name(OnlinePoint(k))] = {
            {"scale", t.scale.defined()},
            {"p1", t.p1.defined() ? t.p1.size(0) : int64_t(0)},
            {"p2", t.p2.defined() ? t.p2.size(0) : int64_t(0)},
            {"kind", m.blocks[i].online_kind[k]}};
      }
    if (!online.empty()) qc["online_transforms"] = {{"applied", "x -> (x * scale) (p1 kron p2), before activation quantization"},
                                                   {"blocks", online}};
    write_file_atomic(path_join(tmp, kQConfig), qc.dump(2) + "\n");
  } catch (...) {
    remove_tree(tmp);
    throw;
  }
  if (path_exists(out)) remove_tree(out);
  SQ_CHECK(std::rename(tmp.c_str(), out.c_str()) == 0, "cannot rename " << tmp << " to " << out);
}

Model load_any_model(const std::string& dir) {
  if (!is_native_quantized(dir)) return load_model(dir);
  const std::string qpath = path_join(dir, kQConfig);
  nlohmann::json qc;
  try {
    qc = nlohmann::json::parse(read_file(qpath));
  } catch (const nlohmann::json::exception& e) {
    SQ_FAIL(qpath << ": invalid JSON (" << e.what() << ")");
  }
  SQ_CHECK(qc.value("format", "") == "sliderquant-native", qpath << ": not a sliderquant-native model");
  SQ_CHECK(qc.value("format_version", 0) == kNativePackVersion,
           qpath << ": format_version " << qc.value("format_version", 0) << " is not supported (this build reads "
                 << kNativePackVersion << ")");
  const nlohmann::json tensors = qc.value("tensors", nlohmann::json::object());
  LinearResolver resolver = [&](const std::string&, const std::string& prefix, int64_t out, int64_t in,
                                const Checkpoint& ck, Linear& l, std::set<std::string>& used) {
    if (!tensors.contains(prefix)) return false;
    auto get = [&](const std::string& name) -> at::Tensor {
      if (!ck.has(name)) return {};
      used.insert(name);
      return ck.get(name);
    };
    const nlohmann::json& e = tensors[prefix];
    if (e.contains("hi") || e.contains("lo")) {  // mixed precision
      QFormat hi, lo;
      try {
        hi = QFormat::parse(e.at("hi").get<std::string>());
        lo = QFormat::parse(e.at("lo").get<std::string>());
      } catch (const nlohmann::json::exception&) {
        SQ_FAIL(qpath << ": tensors." << prefix << " needs string formats 'hi' and 'lo'");
      }
      MixedQTensor q = unpack_mixed(prefix, hi, lo, out, in, get);
      if (e.contains("k"))
        SQ_CHECK(e["k"].get<int64_t>() == q.hi_cols.size(0),
                 qpath << ": tensors." << prefix << ".k is " << e["k"] << " but " << prefix << ".hi_cols holds "
                       << q.hi_cols.size(0) << " channels");
      l.override_ = std::make_shared<MixedQTensorWeight>(std::move(q));
      return true;
    }
    QFormat f = QFormat::parse(e.at("format").get<std::string>());
    QTensor q = unpack_qtensor(prefix, f, out, in, get);
    l.override_ = std::make_shared<QTensorWeight>(std::move(q));
    return true;
  };
  Model m = load_model(dir, resolver);
  if (qc.contains("activations")) {
    const nlohmann::json& a = qc["activations"];
    SQ_CHECK(a.value("method", "") == "per-token-asymmetric-dynamic",
             qpath << ": activations.method '" << a.value("method", "") << "' is not supported");
    try {
      m.act.bits = a.at("bits").get<int>();
      m.act.attn_bits = a.at("attn_qkv_bits").get<int>();
    } catch (const nlohmann::json::exception&) {
      SQ_FAIL(qpath << ": activations needs integer 'bits' and 'attn_qkv_bits'");
    }
    if (qc.contains("kv_cache")) {
      const nlohmann::json& kv = qc["kv_cache"];
      SQ_CHECK(kv.value("method", "") == "per-token-group-asymmetric-dynamic" && kv.value("k_after_rope", false),
               qpath << ": kv_cache.method '" << kv.value("method", "") << "' is not supported");
      try {
        m.act.k_bits = kv.at("k_bits").get<int>();
        m.act.v_bits = kv.at("v_bits").get<int>();
        m.act.kv_group = kv.at("group_size").get<int64_t>();
      } catch (const nlohmann::json::exception&) {
        SQ_FAIL(qpath << ": kv_cache needs integer 'k_bits', 'v_bits' and 'group_size'");
      }
      SQ_CHECK(m.act.kv_group >= 1 && m.config.head_dim % m.act.kv_group == 0,
               qpath << ": kv_cache.group_size " << m.act.kv_group << " must divide head_dim " << m.config.head_dim);
    }
    if (a.contains("clip"))
      for (size_t i = 0; i < m.blocks.size(); ++i)
        SQ_CHECK(m.blocks[i].act_clip.defined(),
                 qpath << ": activations.clip is set but model.layers." << i << ".activation_clip is missing");
    for (int b : {m.act.bits, m.act.attn_bits, m.act.k_bits, m.act.v_bits})
      SQ_CHECK((b >= 2 && b <= 8) || b == 16, qpath << ": activation bits " << b << " (supported: 2..8 or 16)");
  }
  // Online transforms are loaded with the weights (load_model); a model whose config names
  // one that the checkpoint lacks is refused.
  const nlohmann::json online =
      qc.contains("online_transforms") ? qc["online_transforms"].value("blocks", nlohmann::json::object())
                                       : nlohmann::json::object();
  for (const auto& [blk, points] : online.items()) {
    const int64_t i = std::stoll(blk);
    SQ_CHECK(i >= 0 && i < int64_t(m.blocks.size()), qpath << ": online transform of unknown block " << blk);
    for (const auto& [pt, info] : points.items()) {
      int k = 0;
      while (k < kOnlinePoints && pt != online_point_name(OnlinePoint(k))) ++k;
      SQ_CHECK(k < kOnlinePoints, qpath << ": unknown online transform point '" << pt << "'");
      SQ_CHECK(m.blocks[size_t(i)].online[k].defined(),
               qpath << ": block " << blk << " " << pt << " transform is missing from the checkpoint");
      m.blocks[size_t(i)].online_kind[k] = info.value("kind", "");
    }
  }
  return m;
}

}  // namespace sq
