// formats/compressed_tensors: the `compressed-tensors` row of the format registry: the
// checkpoint layout llm-compressor writes (through the compressed-tensors library) and
// transformers, vLLM and SGLang load.
//
// Per quantized linear PREFIX (HF module name), codes c in [0, 2^b - 1] and zeros z as in
// quant/format.h; compressed-tensors' signed values are q = c - 2^(b-1), zp = z - 2^(b-1),
// and W = scale * (q - zp), so the two conventions are the same numbers:
//   pack-quantized (weight-only, 2/4/8 bits):
//     PREFIX.weight_packed      int32 [out, ceil(in * b / 32)]  c, one dense little-endian
//                                                               bit stream per row
//     PREFIX.weight_scale       float16 [out, G]                (G = 1 per-channel)
//     PREFIX.weight_zero_point  int32 [ceil(out * b / 32), G]   z, packed along out
//                                                               (asymmetric only)
//     PREFIX.weight_g_idx       int32 [in]                      act-order only
//     PREFIX.weight_shape       int64 [2] = [out, in]
//   naive-quantized (weight-only 3/5/6/7 bits, where packings differ between library
//   versions) and int-quantized (with quantized input activations):
//     PREFIX.weight int8 [out, in] = q; weight_scale; weight_zero_point int8 [out, G] = zp
//     (asymmetric only); weight_g_idx.
// config.json: quantization_config {quant_method "compressed-tensors", format,
// quantization_status "compressed", config_groups {group_N: {targets, weights,
// input_activations}}, ignore, kv_cache_scheme, version}. Layout facts: docs/EXPORTS.md and
// compressed-tensors 0.20's compressors (pack_quantized, naive_quantized), read for this.
#include <ATen/ATen.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "format_common.h"
#include "sliderquant/core/error.h"
#include "sliderquant/core/log.h"
#include "sliderquant/core/util.h"
#include "sliderquant/io/safetensors.h"
#include "sliderquant/model/arch.h"
#include "sliderquant/model/quantized_weight.h"
#include "sliderquant/pack/native.h"

namespace sq::formats {
namespace {

constexpr const char* kName = "compressed-tensors";
constexpr const char* kWhy =
    "a compressed-tensors checkpoint is a plain model with quantized linears and per-token activation schemes";
constexpr const char* kVersion = "0.20.1";  // the compressed-tensors release the layout was checked against

std::string cannot_store(const QTensor& grid_or_uniform) {
  const QTensor q = uniform_view(grid_or_uniform);
  const QFormat& f = q.format;
  if (!q.codes.defined() || q.codes.dim() != 2) return "it has no [out, in] codes";
  if (f.dsq) return "DSQ's dual scales have no compressed-tensors scheme (one scale and zero point per group)";
  if (f.ggml()) return "a ggml block grid (" + f.name() + ") has no compressed-tensors scheme; use --format gguf";
  if (!supported_bits(f.bits)) return std::to_string(f.bits) + "-bit codes";
  if (f.group_size > 0 && q.in_features() % f.group_size != 0)
    return "in_features " + std::to_string(q.in_features()) + " is not a multiple of group size " +
           std::to_string(f.group_size) +
           " (compressed-tensors 0.20 refuses a short last group when it decompresses; export --format gptq "
           "stores it, or use a group size dividing " + std::to_string(q.in_features()) + ")";
  if (!q.scales.defined() || !q.zeros.defined()) return "scales or zeros are missing";
  if (!contiguous_groups(q))
    return "act-order groups (a g_idx): compressed-tensors 0.19 removed actorder 'group' and current loaders refuse "
           "weight_g_idx; quantize with order group_preserving or natural (or export --format gptq)";
  return scale_problem(q);
}

std::string cannot_store_mixed(const MixedQTensor&) {
  return "two bit widths inside one tensor have no compressed-tensors scheme (one scheme per module)";
}

nlohmann::json ct_config(const std::string& dir) {
  const nlohmann::json qc = try_quantization_config(dir, "compression_config");
  if (!qc.is_object() || qc.value("quant_method", std::string()) != "compressed-tensors") return nullptr;
  return qc;
}

bool detect(const std::string& dir) { return !ct_config(dir).is_null(); }

// The weights arguments of a scheme.
struct Weights {
  int bits = 4;
  int64_t group_size = -1;  // -1: channel strategy
  bool sym = true;
  bool actorder = false;  // weight_g_idx present
  bool operator<(const Weights& o) const {
    return std::tie(bits, group_size, sym, actorder) < std::tie(o.bits, o.group_size, o.sym, o.actorder);
  }
};

Weights weights_of(const QTensor& q) {
  return {q.format.bits, q.format.group_size, q.format.symmetric, !contiguous_groups(q)};
}

std::string format_for(const Weights& w, bool activations) {
  if (activations) return "int-quantized";
  return (w.bits == 2 || w.bits == 4 || w.bits == 8) ? "pack-quantized" : "naive-quantized";
}

nlohmann::json weights_json(const Weights& w) {
  return {{"num_bits", w.bits},
          {"type", "int"},
          {"symmetric", w.sym},
          {"strategy", w.group_size > 0 ? "group" : "channel"},
          {"group_size", w.group_size > 0 ? nlohmann::json(w.group_size) : nlohmann::json()},
          {"block_structure", nullptr},
          {"dynamic", false},
          {"actorder", w.actorder ? nlohmann::json("group") : nlohmann::json()},
          {"scale_dtype", nullptr},
          {"zp_dtype", nullptr},
          {"observer", "minmax"},
          {"observer_kwargs", nlohmann::json::object()}};
}

// SCALE_DTYPE: float32 for a float32 model (compressed-tensors dequantizes in the scale's
// dtype, so fp16 scales would round the weights to fp16), else float16 (exact: sliderquant's
// scales are fp16 values).
NamedTensors pack(const std::string& prefix, const QTensor& q, const std::string& format, c10::ScalarType scale_dtype) {
  const int bits = q.format.bits;
  const int64_t out = q.out_features(), in = q.in_features();
  const int64_t mid = int64_t(1) << (bits - 1);
  NamedTensors ts;
  at::Tensor codes = q.codes.cpu().to(at::kByte).contiguous();
  at::Tensor zeros = q.zeros.cpu().to(at::kFloat).round();  // [out, G]
  if (format == "pack-quantized") {
    ts.emplace_back(prefix + ".weight_packed", pack_bits(codes, bits));
  } else {
    ts.emplace_back(prefix + ".weight", (codes.to(at::kShort) - mid).to(at::kChar).contiguous());
  }
  ts.emplace_back(prefix + ".weight_scale", q.scales.cpu().to(scale_dtype).contiguous());
  if (!q.format.symmetric) {
    if (format == "pack-quantized")
      ts.emplace_back(prefix + ".weight_zero_point",
                      pack_bits(zeros.t().contiguous().to(at::kByte), bits).t().contiguous());  // [.., G]
    else
      ts.emplace_back(prefix + ".weight_zero_point", (zeros - double(mid)).to(at::kChar).contiguous());
  }
  if (!contiguous_groups(q)) ts.emplace_back(prefix + ".weight_g_idx", q.g_idx.cpu().to(at::kInt).contiguous());
  if (format == "pack-quantized")
    ts.emplace_back(prefix + ".weight_shape", at::tensor(std::vector<int64_t>{out, in}, at::kLong));
  return ts;
}

// The input_activations scheme of M, or null. Refuses what the schema cannot say.
nlohmann::json activations_scheme(const Model& m) {
  if (!m.act.on()) return nullptr;
  SQ_CHECK(m.act.attn_bits >= 16, kName << " cannot store quantized attention operands (q/k/v at "
                                        << m.act.attn_bits << " bits inside attention): no scheme expresses them");
  SQ_CHECK(m.act.k_bits >= 16 && m.act.v_bits >= 16,
           kName << " cannot store this KV-cache quantization (dynamic per-token groups of " << m.act.kv_group
                 << " channels, K " << m.act.k_bits << " / V " << m.act.v_bits
                 << " bits): kv_cache_scheme holds static per-tensor or per-head scales");
  SQ_CHECK(m.act.rate == 1.0, kName << " cannot store partial activation quantization (rate " << m.act.rate << ")");
  if (m.act.bits >= 16) return nullptr;
  // sliderquant quantizes every linear's input per token, asymmetric, min-max, dynamic.
  return {{"num_bits", m.act.bits}, {"type", "int"},        {"symmetric", false},          {"strategy", "token"},
          {"group_size", nullptr},  {"block_structure", nullptr}, {"dynamic", true}, {"actorder", nullptr},
          {"scale_dtype", nullptr}, {"zp_dtype", nullptr},  {"observer", nullptr},         {"observer_kwargs", nlohmann::json::object()}};
}

void write(const Model& m, const std::map<std::string, QTensor>& as_given,
           const std::map<std::string, MixedQTensor>& mixed, const std::string& out, const FormatWriteOptions& opts) {
  check_output(out, opts.force);
  refuse_moe_export(m, kName);
  check_storable(compressed_tensors_format(), as_given, mixed);
  const std::map<std::string, QTensor> quantized = uniform_view(as_given);
  check_plain_state(m, kName, /*allow_activations=*/true, kWhy);
  SQ_CHECK(!quantized.empty(), kName << " needs quantized linears (" << m.dir
                                     << " has none; quantize it first or use --format hf)");
  SQ_CHECK(!quantized.count("lm_head"), kName << " export of a quantized lm_head is not supported");
  const nlohmann::json acts = activations_scheme(m);
  const bool with_acts = !acts.is_null();
  // Groups of linears with one scheme; modules of every block listed by exact name unless one
  // scheme covers every block linear (then "Linear" with lm_head ignored).
  std::map<Weights, std::vector<std::string>> groups;  // -> module names
  std::vector<std::string> plain;                       // block linears left in full precision
  for (const std::string& name : linear_names(m)) {
    if (name == "lm_head") continue;
    auto it = quantized.find(name);
    if (it == quantized.end()) {
      SQ_CHECK(!with_acts, kName << " cannot store " << hf_module_name(name, m.config.family)
                                 << ": its input is quantized but its weight is not (no scheme says that)");
      plain.push_back(hf_module_name(name, m.config.family));
    } else {
      groups[weights_of(it->second)].push_back(hf_module_name(name, m.config.family));
    }
  }
  const bool one = groups.size() == 1 && plain.empty();
  nlohmann::json config_groups = nlohmann::json::object();
  std::set<std::string> formats;
  std::map<std::string, std::string> module_format;
  int gi = 0;
  for (const auto& [w, modules] : groups) {
    nlohmann::json targets = nlohmann::json::array();
    if (one) targets.push_back("Linear");
    else
      for (const std::string& mod : modules) targets.push_back("re:" + exact_regex(mod));
    const std::string fmt = format_for(w, with_acts);
    formats.insert(fmt);
    for (const std::string& mod : modules) module_format[mod] = fmt;
    config_groups["group_" + std::to_string(gi++)] = {{"targets", targets},
                                                      {"weights", weights_json(w)},
                                                      {"input_activations", acts},
                                                      {"output_activations", nullptr},
                                                      {"format", fmt}};
  }
  nlohmann::json ignore = nlohmann::json::array({"lm_head"});
  for (const std::string& p : plain) ignore.push_back(p);

  const c10::ScalarType scale_dtype = m.embed.scalar_type() == at::kFloat ? at::kFloat : at::kHalf;
  write_dir_atomic(out, [&](const std::string& tmp) {
    NamedTensors ts;
    for (const auto& [canonical, t] : canonical_tensors(m)) {
      auto it = quantized.find(canonical);
      if (it == quantized.end()) {
        SQ_CHECK(t.defined(), "linear " << canonical << " has neither a weight nor a quantized form");
        ts.emplace_back(hf_tensor_name(canonical, m.config.family), t.contiguous().cpu());
        continue;
      }
      const std::string module = hf_module_name(canonical, m.config.family);
      for (auto& kv : pack(module, it->second, module_format.at(module), scale_dtype)) ts.push_back(std::move(kv));
    }
    write_checkpoint(tmp, ts, {{"format", "pt"}}, opts.max_shard_bytes);
    copy_source_files(m, tmp);
    nlohmann::json qc = {{"quant_method", "compressed-tensors"},
                         {"format", formats.size() == 1 ? *formats.begin() : std::string("mixed-precision")},
                         {"quantization_status", "compressed"},
                         {"version", kVersion},
                         {"global_compression_ratio", nullptr},
                         {"ignore", ignore},
                         {"kv_cache_scheme", nullptr},
                         {"sparsity_config", nlohmann::json::object()},
                         {"transform_config", nlohmann::json::object()},
                         {"config_groups", config_groups},
                         {"producer", {{"name", "sliderquant"}, {"version", SQ_VERSION}}}};
    nlohmann::json cfg = read_config_json(tmp);
    cfg["quantization_config"] = qc;
    write_file_atomic(path_join(tmp, "config.json"), cfg.dump(2) + "\n");
    if (opts.report) {
      (*opts.report)["format"] = qc["format"];
      (*opts.report)["config_groups"] = config_groups.size();
    }
  });
}

// Reader ----------------------------------------------------------------------------------

struct Scheme {
  Weights w;
  std::string format;
  nlohmann::json acts;  // input_activations or null
};

struct Config {
  std::string where;
  std::vector<std::pair<std::vector<std::string>, Scheme>> groups;  // targets -> scheme
  std::vector<std::string> ignore;
};

bool matches(const std::string& target, const std::string& module, const std::string& where) {
  if (target == "Linear") return true;
  if (target.rfind("re:", 0) == 0) {
    try {
      return std::regex_search(module, std::regex(target.substr(3)), std::regex_constants::match_continuous);
    } catch (const std::regex_error& e) {
      SQ_FAIL(where << ": target '" << target << "' is not a valid regex (" << e.what() << ")");
    }
  }
  return target == module;
}

Config read_config(const std::string& dir) {
  Config c;
  c.where = path_join(dir, "config.json");
  const nlohmann::json qc = ct_config(dir);
  SQ_CHECK(qc.is_object(), c.where << ": no compressed-tensors quantization_config");
  const std::string status = qc.value("quantization_status", std::string("compressed"));
  SQ_CHECK(status == "compressed", c.where << ": quantization_status '" << status
                                           << "' (only 'compressed' checkpoints hold packed weights)");
  const std::string global = qc.value("format", std::string());
  SQ_CHECK(qc.contains("config_groups") && qc["config_groups"].is_object(),
           c.where << ": quantization_config has no config_groups object");
  const std::set<std::string> known = {"pack-quantized", "naive-quantized", "int-quantized"};
  for (const auto& [gname, g] : qc["config_groups"].items()) {
    const std::string at = c.where + ": config_groups." + gname;
    SQ_CHECK(g.is_object() && g.contains("targets") && g["targets"].is_array(), at << " needs a 'targets' list");
    std::vector<std::string> targets;
    for (const auto& t : g["targets"]) {
      SQ_CHECK(t.is_string(), at << ".targets holds a non-string " << t.dump());
      targets.push_back(t.get<std::string>());
    }
    SQ_CHECK(g.contains("weights") && g["weights"].is_object(), at << " has no 'weights' arguments");
    const nlohmann::json& w = g["weights"];
    Scheme s;
    const std::string type = w.value("type", std::string("int"));
    SQ_CHECK(type == "int", at << ".weights.type '" << type << "' is not supported (int)");
    SQ_CHECK(w.contains("num_bits") && w["num_bits"].is_number_integer(), at << ".weights.num_bits must be an integer");
    s.w.bits = w["num_bits"].get<int>();
    SQ_CHECK(supported_bits(s.w.bits), at << ".weights.num_bits " << s.w.bits << " is not supported (2..8)");
    s.w.sym = w.value("symmetric", true);
    const std::string strategy = w.value("strategy", std::string("tensor"));
    if (strategy == "group") {
      SQ_CHECK(w.contains("group_size") && w["group_size"].is_number_integer() && w["group_size"].get<int64_t>() > 0,
               at << ".weights.group_size must be a positive integer for strategy group");
      s.w.group_size = w["group_size"].get<int64_t>();
    } else {
      SQ_CHECK(strategy == "channel" || strategy == "tensor",
               at << ".weights.strategy '" << strategy << "' is not supported (group, channel, tensor)");
      s.w.group_size = -1;
    }
    s.format = g.contains("format") && g["format"].is_string() ? g["format"].get<std::string>() : global;
    SQ_CHECK(known.count(s.format), at << ": format '" << s.format
                                       << "' is not supported (pack-quantized, naive-quantized, int-quantized)");
    if (g.contains("input_activations") && !g["input_activations"].is_null()) {
      const nlohmann::json& a = g["input_activations"];
      const bool ok = a.value("type", std::string()) == "int" && a.value("strategy", std::string()) == "token" &&
                      a.contains("dynamic") && a["dynamic"] == true && a.value("symmetric", true) == false;
      SQ_CHECK(ok, at << ".input_activations " << a.dump()
                      << " is not what sliderquant computes (int, per-token, dynamic, asymmetric)");
      s.acts = a;
    }
    c.groups.emplace_back(targets, s);
  }
  if (qc.contains("ignore") && qc["ignore"].is_array())
    for (const auto& t : qc["ignore"])
      if (t.is_string()) c.ignore.push_back(t.get<std::string>());
  if (qc.contains("kv_cache_scheme") && !qc["kv_cache_scheme"].is_null())
    SQ_FAIL(c.where << ": kv_cache_scheme " << qc["kv_cache_scheme"].dump()
                    << " is not supported (static KV-cache scales are not simulated)");
  const nlohmann::json sparsity = qc.value("sparsity_config", nlohmann::json());
  SQ_CHECK(sparsity.is_null() || sparsity.empty(), c.where << ": sparsity_config is not supported");
  return c;
}

const Scheme* scheme_for(const Config& c, const std::string& module) {
  for (const std::string& t : c.ignore)
    if (matches(t, module, c.where)) return nullptr;
  for (const auto& [targets, s] : c.groups)
    for (const std::string& t : targets)
      if (matches(t, module, c.where)) return &s;
  return nullptr;
}

// Unpacks a dense bit stream of N values per row: int32 [rows, words] -> uint8 [rows, N].
at::Tensor unpack_dense(const at::Tensor& words, int bits, int64_t n) { return unpack_bits(words, bits, n); }

QTensor unpack(const Config& c, const Scheme& s, const std::string& prefix, int64_t out, int64_t in,
               const Checkpoint& ck, std::set<std::string>& used) {
  const std::string root = ck.root();
  auto need = [&](const std::string& suffix) {
    const std::string name = prefix + suffix;
    SQ_CHECK(ck.has(name), root << ": tensor " << name << " is missing (" << c.where << " declares " << prefix << " "
                                << s.format << ")");
    used.insert(name);
    return ck.get(name);
  };
  auto shape_is = [&](const at::Tensor& t, const std::string& suffix, std::vector<int64_t> want) {
    SQ_CHECK(t.sizes().vec() == want, root << ": tensor " << prefix << suffix << " has shape " << t.sizes()
                                           << ", expected " << at::IntArrayRef(want) << " (num_bits " << s.w.bits
                                           << ", group_size " << s.w.group_size << " from " << c.where << ")");
  };
  const int bits = s.w.bits;
  const int64_t mid = int64_t(1) << (bits - 1);
  SQ_CHECK(s.w.group_size <= 0 || in % s.w.group_size == 0,
           root << ": " << prefix << " has in_features " << in << ", not a multiple of group_size " << s.w.group_size
                << " (ragged groups are not read)");
  const int64_t G = s.w.group_size > 0 ? in / s.w.group_size : 1;
  QTensor q;
  q.format.bits = bits;
  q.format.group_size = s.w.group_size;
  q.format.symmetric = s.w.sym;
  if (s.format == "pack-quantized") {
    at::Tensor packed = need(".weight_packed");
    SQ_CHECK(packed.scalar_type() == at::kInt, root << ": tensor " << prefix << ".weight_packed must be int32");
    if (ck.has(prefix + ".weight_shape")) {
      at::Tensor shp = need(".weight_shape").to(at::kLong);
      SQ_CHECK(shp.numel() == 2 && shp[0].item<int64_t>() == out && shp[1].item<int64_t>() == in,
               root << ": tensor " << prefix << ".weight_shape does not hold [" << out << ", " << in << "]");
    }
    const int64_t dense = (in * bits + 31) / 32, pf = 32 / bits, legacy = (in + pf - 1) / pf;
    SQ_CHECK(packed.dim() == 2 && packed.size(0) == out && (packed.size(1) == dense || packed.size(1) == legacy),
             root << ": tensor " << prefix << ".weight_packed has shape " << packed.sizes() << ", expected [" << out
                  << ", " << dense << "] (num_bits " << bits << " from " << c.where << ")");
    if (packed.size(1) == dense) {
      q.codes = unpack_dense(packed.contiguous(), bits, in);
    } else {  // older libraries: 32 / bits values per word, the spare high bits unused
      at::Tensor w = packed.to(at::kLong).bitwise_and(int64_t(0xFFFFFFFF));
      std::vector<at::Tensor> parts;
      for (int64_t k = 0; k < pf; ++k) parts.push_back(w.bitwise_right_shift(k * bits).bitwise_and(mid * 2 - 1));
      q.codes = at::stack(parts, 2).reshape({out, -1}).narrow(1, 0, in).to(at::kByte).contiguous();
    }
  } else {
    at::Tensor w = need(".weight");
    SQ_CHECK(!w.is_floating_point(), root << ": tensor " << prefix << ".weight is " << w.scalar_type()
                                          << ", but " << s.format << " stores integer values");
    shape_is(w, ".weight", {out, in});
    at::Tensor v = w.to(at::kLong);
    SQ_CHECK(v.min().item<int64_t>() >= -mid && v.max().item<int64_t>() < mid,
             root << ": tensor " << prefix << ".weight holds values outside " << -mid << ".." << mid - 1);
    q.codes = (v + mid).to(at::kByte).contiguous();
  }
  at::Tensor scale = need(".weight_scale");
  SQ_CHECK(scale.is_floating_point(), root << ": tensor " << prefix << ".weight_scale must be floating point");
  if (scale.dim() == 1 && scale.numel() == 1) scale = scale.expand({out, 1});  // tensor strategy
  shape_is(scale, ".weight_scale", {out, G});
  q.scales = scale.to(at::kFloat).contiguous();
  SQ_CHECK(at::isfinite(q.scales).all().item<bool>(), root << ": tensor " << prefix << ".weight_scale holds NaN or Inf");
  if (s.w.sym) {
    q.zeros = at::full({out, G}, double(mid), at::kFloat);
  } else {
    at::Tensor zp = need(".weight_zero_point");
    if (s.format == "pack-quantized") {
      SQ_CHECK(zp.scalar_type() == at::kInt, root << ": tensor " << prefix << ".weight_zero_point must be int32");
      shape_is(zp, ".weight_zero_point", {(out * bits + 31) / 32, G});
      q.zeros = unpack_dense(zp.t().contiguous(), bits, out).t().to(at::kFloat).contiguous();
    } else {
      shape_is(zp, ".weight_zero_point", {out, G});
      q.zeros = (zp.to(at::kFloat).round() + double(mid)).contiguous();
      SQ_CHECK(q.zeros.min().item<float>() >= 0 && q.zeros.max().item<float>() <= float(2 * mid - 1),
               root << ": tensor " << prefix << ".weight_zero_point holds values outside " << -mid << ".." << mid - 1);
    }
  }
  const std::string gname = prefix + ".weight_g_idx";
  if (ck.has(gname)) {
    at::Tensor g = need(".weight_g_idx");
    SQ_CHECK(!g.is_floating_point() && g.dim() == 1 && g.size(0) == in,
             root << ": tensor " << gname << " must be int32 [" << in << "], got " << g.scalar_type() << " " << g.sizes());
    g = g.to(at::kInt).contiguous();
    const int64_t lo = g.min().item<int64_t>(), hi = g.max().item<int64_t>();
    SQ_CHECK(lo >= 0 && hi < G, root << ": tensor " << gname << " holds group " << (lo < 0 ? lo : hi) << ", outside 0.."
                                     << G - 1);
    const int64_t width = s.w.group_size > 0 ? s.w.group_size : in;
    if (!g.equal(at::arange(in, at::kInt).div(width, "floor").to(at::kInt))) q.g_idx = g;
  }
  return q;
}

Model read(const std::string& dir) {
  const Config c = read_config(dir);
  nlohmann::json acts;
  LinearResolver resolver = [&](const std::string&, const std::string& prefix, int64_t out, int64_t in,
                                const Checkpoint& ck, Linear& l, std::set<std::string>& used) {
    const Scheme* s = scheme_for(c, prefix);
    if (!s) return false;
    if (!s->acts.is_null()) {
      SQ_CHECK(acts.is_null() || acts["num_bits"] == s->acts["num_bits"],
               c.where << ": config groups quantize inputs at different bit widths (sliderquant uses one)");
      acts = s->acts;
    }
    QTensor q = unpack(c, *s, prefix, out, in, ck, used);
    l.override_ = std::make_shared<QTensorWeight>(std::move(q));
    return true;
  };
  Model m = load_model(dir, resolver);
  if (!acts.is_null()) m.act.bits = acts["num_bits"].get<int>();
  return m;
}

nlohmann::json describe(const std::string& dir) {
  nlohmann::json d = describe_common(compressed_tensors_format(), dir);
  const Config c = read_config(dir);
  const ModelConfig mc = load_model_config(dir);
  d["quantized"] = true;
  d["quantization_config"] = ct_config(dir);
  const ArchSpec& arch = find_arch(mc.architecture);
  for (int64_t i = 0; i < mc.num_layers; ++i)
    for (int j = 0; j < block_layout(arch, mc, i).size(); ++j) {
      const BlockLayout& lay = block_layout(arch, mc, i);
      const std::string module = "model.layers." + std::to_string(i) + "." + lay.slots[size_t(j)].hf;
      const Scheme* s = scheme_for(c, module);
      if (!s) continue;
      QFormat f;
      f.bits = s->w.bits;
      f.group_size = s->w.group_size;
      f.symmetric = s->w.sym;
      const int64_t o = lay.out_features(j, mc), in = lay.in_features(j, mc);
      d["linears"][module] = {{"format", f.name()},
                              {"storage", s->format},
                              {"shape", {o, in}},
                              {"bits_per_weight", bits_per_weight(f, o, in, /*with_g_idx=*/false)}};
      d["formats"][f.name()] = d["formats"].value(f.name(), int64_t(0)) + 1;
    }
  d["format_label"] = "compressed-tensors (" + ct_config(dir).value("format", std::string("?")) + ")";
  add_mean_bits(d);
  return d;
}

}  // namespace

ModelFormat compressed_tensors_format() {
  return {kName,
          "compressed-tensors checkpoint as llm-compressor writes it (pack-/naive-/int-quantized; transformers, vLLM load it)",
          "config.json whose quantization_config has quant_method \"compressed-tensors\"",
          /*stores_quantized=*/true,
          detect,
          read,
          write,
          describe,
          cannot_store,
          cannot_store_mixed};
}

}  // namespace sq::formats
