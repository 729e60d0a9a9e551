// formats/native: the `native` row of the format registry: writer, reader, describe and the
// storability check of sliderquant's quantized model directories (formats/native.h,
// docs/FORMAT.md). The bit layouts themselves are pack/native and pack/native_mixed.
#include "sliderquant/formats/native.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include "format_common.h"
#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/io/safetensors.h"
#include "sliderquant/model/quantized_weight.h"
#include "sliderquant/pack/native.h"
#include "sliderquant/pack/native_mixed.h"

namespace sq {

const std::vector<std::string>& native_known_features() {
  // dsq: DSQ linears (dsq_r, col_scale); mixed: two-width linears (hi_cols, .hi, .lo);
  // norm_bias: post_attention_layernorm.bias / model.norm.bias tensors; activations,
  // activation_clip, kv_cache, online_transforms: the quantization_config.json sections.
  // ggml_grid: linears on ggml block grids (q4_1/q5_1 mins, k-quant sub-block integers).
  static const std::vector<std::string> known = {"dsq",         "mixed",           "norm_bias",        "activations",
                                                 "activation_clip", "kv_cache", "online_transforms", "ggml_grid"};
  return known;
}

namespace formats {
namespace {

constexpr const char* kName = "native";
constexpr const char* kQConfig = "quantization_config.json";

// Why format F cannot be stored for a part with IN columns ("" when it can).
std::string format_problem(const QFormat& f, int64_t in) {
  if (!supported_bits(f.bits)) return std::to_string(f.bits) + "-bit codes (the layout stores 2..8 bits)";
  if (f.dsq && (f.bits > 3 || f.symmetric)) return "a DSQ format needs 2 or 3 bits and no 's'";
  if (f.group_size == 0 || f.group_size < -1)
    return "group size " + std::to_string(f.group_size) + " (-1 for per-channel or a positive size)";
  if (f.ggml() && in % f.super_block() != 0)
    return "in_features " + std::to_string(in) + " is not a multiple of the " + f.name() + " block of " +
           std::to_string(f.super_block());
  if (f.ragged(in) && f.dsq)
    return "in_features " + std::to_string(in) + " is not a multiple of group size " + std::to_string(f.group_size) +
           " (a DSQ format needs whole groups)";
  return "";
}

std::string cannot_store(const QTensor& q) {
  if (!q.codes.defined() || q.codes.dim() != 2) return "it has no [out, in] codes";
  if (q.format.dsq && q.g_idx.defined()) return "a DSQ format stores no g_idx";
  if (q.format.ggml() && q.g_idx.defined()) return "a ggml grid stores no g_idx";
  return format_problem(q.format, q.in_features());
}

std::string cannot_store_mixed(const MixedQTensor& q) {
  if (!q.hi_cols.defined() || !q.hi.codes.defined() || !q.lo.codes.defined()) return "a part or hi_cols is missing";
  if (q.hi.format.dsq || q.lo.format.dsq) return "a DSQ format in a part (mixed parts take uniform formats)";
  if (q.hi.format.ggml() || q.lo.format.ggml()) return "a ggml grid in a part (mixed parts take uniform formats)";
  if (std::string why = cannot_store(q.hi); !why.empty()) return "hi part: " + why;
  if (std::string why = cannot_store(q.lo); !why.empty()) return "lo part: " + why;
  return "";
}

// quantization_config.json is also the name AutoRound gives its copy of a GPTQ checkpoint's
// quantization_config: a directory is native when the file says so, or when config.json declares
// no quantization of another tool (so a damaged native file still reaches this reader's errors).
bool detect(const std::string& dir) {
  const std::string qpath = path_join(dir, kQConfig);
  if (!path_exists(qpath)) return false;
  try {
    const nlohmann::json qc = nlohmann::json::parse(read_file(qpath));
    if (qc.is_object() && qc.contains("format") && qc["format"] == "sliderquant-native") return true;
    const nlohmann::json cfg = nlohmann::json::parse(read_file(path_join(dir, "config.json")));
    return !(cfg.is_object() && cfg.contains("quantization_config"));
  } catch (const std::exception&) {
    return true;  // unreadable: the native reader names the file and what is wrong
  }
}

// The features a quantization_config.json uses, from its contents (every one except
// norm_bias, which lives in the weights), in native_known_features() order.
std::set<std::string> features_in(const nlohmann::json& qc) {
  std::set<std::string> used;
  const nlohmann::json tensors = qc.value("tensors", nlohmann::json::object());
  for (const auto& [prefix, e] : tensors.items()) {
    if (e.contains("hi") || e.contains("lo")) {
      used.insert("mixed");
    } else if (e.contains("format") && e["format"].is_string()) {
      try {
        const QFormat f = QFormat::parse(e["format"].get<std::string>());
        if (f.dsq) used.insert("dsq");
        if (f.ggml()) used.insert("ggml_grid");
      } catch (const Error&) {
        // a bad format string is reported by the reader, naming the tensor
      }
    }
  }
  if (qc.contains("activations")) {
    used.insert("activations");
    if (qc["activations"].contains("clip")) used.insert("activation_clip");
  }
  if (qc.contains("kv_cache")) used.insert("kv_cache");
  if (qc.contains("online_transforms")) used.insert("online_transforms");
  return used;
}

bool has_norm_bias(const Model& m) {
  if (m.final_norm_bias.defined()) return true;
  for (const Block& b : m.blocks)
    if (b.mlp_norm_bias.defined()) return true;
  return false;
}

nlohmann::json in_known_order(const std::set<std::string>& fs) {
  nlohmann::json out = nlohmann::json::array();
  for (const std::string& f : native_known_features())
    if (fs.count(f)) out.push_back(f);
  return out;
}

nlohmann::json read_qconfig(const std::string& qpath) {
  try {
    return nlohmann::json::parse(read_file(qpath));
  } catch (const nlohmann::json::exception& e) {
    SQ_FAIL(qpath << ": invalid JSON (" << e.what() << ")");
  }
}

struct Readable {
  int64_t version = 0;
  std::set<std::string> features;  // declared (none in version 1)
};

// Checks format, version and features of a quantization_config.json this build reads.
Readable check_readable(const nlohmann::json& qc, const std::string& qpath) {
  SQ_CHECK(qc.is_object() && qc.value("format", "") == "sliderquant-native",
           qpath << ": not a sliderquant-native model");
  const nlohmann::json v = qc.value("format_version", nlohmann::json(0));
  SQ_CHECK(v.is_number_integer(), qpath << ": format_version must be an integer, got " << v.dump());
  const int64_t version = v.get<int64_t>();
  SQ_CHECK(version >= kNativeOldestFormatVersion && version <= kNativeFormatVersion,
           "unsupported format_version " << version << " in " << qpath << " (this build reads "
                                         << kNativeOldestFormatVersion << " to " << kNativeFormatVersion << ")");
  std::set<std::string> declared;
  if (!qc.contains("features")) {
    SQ_CHECK(version < 2, qpath << ": format_version " << version << " needs a 'features' list");
    return {version, declared};
  }
  const nlohmann::json& fs = qc["features"];
  SQ_CHECK(fs.is_array(), qpath << ": 'features' must be a list of names");
  const auto& known = native_known_features();
  std::string known_list;
  for (const std::string& k : known) known_list += (known_list.empty() ? "" : ", ") + k;
  for (const nlohmann::json& f : fs) {
    SQ_CHECK(f.is_string(), qpath << ": 'features' must be a list of names, got " << f.dump());
    const std::string name = f.get<std::string>();
    SQ_CHECK(std::find(known.begin(), known.end(), name) != known.end(),
             "unsupported feature '" << name << "' in " << qpath << " (this build reads: " << known_list << ")");
    declared.insert(name);
  }
  for (const std::string& u : features_in(qc))
    SQ_CHECK(declared.count(u), qpath << ": uses '" << u << "' but its 'features' list does not name it");
  return {version, declared};
}

void write(const Model& m, const std::map<std::string, QTensor>& quantized,
           const std::map<std::string, MixedQTensor>& mixed, const std::string& out, const FormatWriteOptions& opts) {
  check_output(out, opts.force);
  check_storable(native_format(), quantized, mixed);
  write_dir_atomic(out, [&](const std::string& tmp) {
    // Weights: the model's current tensors (transforms and corrections included), each
    // quantized linear replaced by its packed tensors.
    NamedTensors ts;
    nlohmann::json tensors = nlohmann::json::object();
    double qbits = 0, qweights = 0;
    for (const auto& [canonical, t] : canonical_tensors(m)) {
      const std::string hf = hf_tensor_name(canonical, m.config.family);
      auto it = quantized.find(canonical);
      if (auto mt = mixed.find(canonical); mt != mixed.end()) {
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
    // The safetensors tag names the packed layout, which is the same in format versions 1 and 2.
    write_checkpoint(tmp, ts, {{"format", "pt"}, {"quantization", "sliderquant-native-v1"}}, opts.max_shard_bytes);
    copy_source_files(m, tmp);
    nlohmann::json qc = nlohmann::json::parse(opts.extra_json);
    qc["format"] = "sliderquant-native";
    qc["format_version"] = kNativeFormatVersion;
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
    std::set<std::string> features = features_in(qc);
    if (has_norm_bias(m)) features.insert("norm_bias");
    qc["features"] = in_known_order(features);
    write_file_atomic(path_join(tmp, kQConfig), qc.dump(2) + "\n");
  });
}

Model read(const std::string& dir) {
  const std::string qpath = path_join(dir, kQConfig);
  const nlohmann::json qc = read_qconfig(qpath);
  const Readable readable = check_readable(qc, qpath);
  const nlohmann::json tensors = qc.value("tensors", nlohmann::json::object());
  LinearResolver resolver = [&](const std::string&, const std::string& prefix, int64_t out, int64_t in,
                                const Checkpoint& ck, Linear& l, std::set<std::string>& used) {
    if (!tensors.contains(prefix)) return false;
    auto get = [&](const std::string& name) -> at::Tensor {
      if (!ck.has(name)) return {};
      used.insert(name);
      at::Tensor t = ck.get(name);
      // Scales, zeros and every other float a packed linear stores: NaN or Inf there would
      // dequantize into a weight the HF reader's check never sees (found by fuzz_formats).
      if (at::isFloatingType(t.scalar_type())) check_finite(t, name, ck);
      return t;
    };
    const nlohmann::json& e = tensors[prefix];
    SQ_CHECK(e.is_object(), qpath << ": tensors." << prefix << " must be an object, got " << e.type_name());
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
        SQ_CHECK(e["k"].is_number_integer() && e["k"].get<int64_t>() == q.hi_cols.size(0),
                 qpath << ": tensors." << prefix << ".k is " << e["k"] << " but " << prefix << ".hi_cols holds "
                       << q.hi_cols.size(0) << " channels");
      l.override_ = std::make_shared<MixedQTensorWeight>(std::move(q));
      return true;
    }
    SQ_CHECK(e.contains("format") && e["format"].is_string(),
             qpath << ": tensors." << prefix << " needs a string 'format' (e.g. \"w4g128\")");
    QFormat f = QFormat::parse(e["format"].get<std::string>());
    QTensor q = unpack_qtensor(prefix, f, out, in, get);
    l.override_ = std::make_shared<QTensorWeight>(std::move(q));
    return true;
  };
  Model m = load_model(dir, resolver);
  if (readable.version >= 2 && has_norm_bias(m))
    SQ_CHECK(readable.features.count("norm_bias"),
             qpath << ": the weights hold norm biases but its 'features' list does not name 'norm_bias'");
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
      SQ_CHECK(supported_bits(b) || b == 16, qpath << ": activation bits " << b << " (supported: 2..8 or 16)");
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

// One linear's entry as describe() reports it (see model_format.h).
nlohmann::json describe_linear(const nlohmann::json& e) {
  const nlohmann::json shape = e.value("shape", nlohmann::json());
  if (e.contains("hi") || e.contains("lo")) {
    const std::string hi = e.value("hi", std::string("?")), lo = e.value("lo", std::string("?"));
    return {{"format", hi + "+" + lo}, {"hi", hi}, {"lo", lo}, {"k", e.value("k", int64_t(0))}, {"shape", shape},
            {"bits_per_weight", e.value("bits_per_weight", 0.0)}};
  }
  const std::string format = e.value("format", std::string("?"));
  const bool g_idx = e.value("g_idx", false), col_scale = e.value("col_scale", true);
  nlohmann::json d = {{"format", format}, {"g_idx", g_idx}, {"col_scale", col_scale}, {"shape", shape}};
  if (shape.is_array() && shape.size() == 2 && shape[0].is_number_integer() && shape[1].is_number_integer()) {
    try {
      d["bits_per_weight"] =
          bits_per_weight(QFormat::parse(format), shape[0].get<int64_t>(), shape[1].get<int64_t>(), g_idx, col_scale);
    } catch (const Error&) {
      // an unreadable format string: described as written, without a bit count
    }
  }
  return d;
}

nlohmann::json describe(const std::string& dir) {
  nlohmann::json d = describe_common(native_format(), dir);
  const std::string qpath = path_join(dir, kQConfig);
  const nlohmann::json qc = read_qconfig(qpath);
  SQ_CHECK(qc.is_object(), qpath << ": not a JSON object");
  d["quantized"] = true;
  d["format_label"] = qc.value("format", std::string("?"));
  const nlohmann::json v = qc.value("format_version", nlohmann::json(0));
  d["format_version"] = v.is_number_integer() ? v.get<int64_t>() : int64_t(0);
  d["features"] = qc.value("features", nlohmann::json::array());
  d["bits_per_weight_quantized_linears"] = qc.value("bits_per_weight_quantized_linears", 0.0);
  const nlohmann::json tensors = qc.value("tensors", nlohmann::json::object());
  for (const auto& [prefix, e] : tensors.items()) {
    nlohmann::json l = describe_linear(e);
    const std::string f = l["format"].get<std::string>();
    d["formats"][f] = d["formats"].value(f, int64_t(0)) + 1;
    d["linears"][prefix] = std::move(l);
  }
  if (qc.contains("recipe")) d["recipe"] = qc["recipe"].value("name", std::string("?"));
  if (qc.contains("calibration")) {
    const nlohmann::json& c = qc["calibration"];
    d["calibration"] = {{"dataset", c.value("dataset", std::string("?"))},
                        {"sha256", c.value("sha256", std::string("?"))},
                        {"seed", c.value("seed", uint64_t(0))}};
  }
  d["metadata"] = qc;
  return d;
}

}  // namespace

ModelFormat native_format() {
  return {kName,
          "sliderquant's packed layout: bit-packed codes, fp16 scales, quantization_config.json (docs/FORMAT.md)",
          "quantization_config.json",
          /*stores_quantized=*/true,
          detect,
          read,
          write,
          describe,
          cannot_store,
          cannot_store_mixed};
}

}  // namespace formats

void write_native_model(const Model& m, const std::map<std::string, QTensor>& quantized, const std::string& out,
                        const NativeWriteOptions& opts, const std::map<std::string, MixedQTensor>& mixed) {
  find_format("native").write(m, quantized, mixed, out, opts);
}

bool is_native_quantized(const std::string& dir) { return find_format("native").detect(dir); }

}  // namespace sq
