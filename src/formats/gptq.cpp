// formats/gptq: the `gptq` row of the format registry: the checkpoint layout GPTQModel and
// AutoRound write and transformers (through GPTQModel), vLLM, SGLang and TGI load.
//
// Per quantized linear PREFIX (the HF module name, e.g. model.layers.0.self_attn.q_proj):
//   PREFIX.qweight  int32 [in * bits / 32, out]   codes, one little-endian bit stream per
//                                                 output column along the input dim
//                                                 (3-bit: 32 codes fill 3 words)
//   PREFIX.qzeros   int32 [G, out * bits / 32]    zeros, one bit stream per group along out
//   PREFIX.scales   float16 [G, out]
//   PREFIX.g_idx    int32 [in]                    group of each input column
//   PREFIX.bias     [out]                         when the architecture has one (Qwen2 q/k/v)
// with W[n, i] = scales[g_idx[i], n] * (q[i, n] - Z[g_idx[i], n]), which is sliderquant's own
// convention (quant/format.h) with codes, scales and zeros transposed. checkpoint_format
// "gptq" (v1) stores Z - 1 in each field, "gptq_v2" stores Z. config.json carries
// quantization_config (quant_method "gptq", bits, group_size, desc_act, sym,
// checkpoint_format, pack_dtype, ...); linears whose format differs from the most common
// one get a `dynamic` override, linears left in full precision a "-:" rule.
// Layout facts: docs/EXPORTS.md; GPTQModel's gptqmodel/nn_modules/qlinear and
// utils/model.py (convert_gptq_v1_to_v2_format) were read for the v1 zero offset.
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

constexpr const char* kName = "gptq";
constexpr const char* kWhy = "a GPTQ checkpoint is a plain model with weight-only quantized linears";

// The scheme of one linear as quantization_config says it.
struct Scheme {
  int bits = 4;
  int64_t group_size = 128;  // -1 = per-channel
  bool sym = true;
  bool desc_act = false;
  bool operator==(const Scheme& o) const {
    return bits == o.bits && group_size == o.group_size && sym == o.sym && desc_act == o.desc_act;
  }
  bool operator<(const Scheme& o) const {
    return std::tie(bits, group_size, sym, desc_act) < std::tie(o.bits, o.group_size, o.sym, o.desc_act);
  }
  nlohmann::json json() const {
    return {{"bits", bits}, {"group_size", group_size}, {"sym", sym}, {"desc_act", desc_act}};
  }
};

Scheme scheme_of(const QTensor& q) {
  return {q.format.bits, q.format.group_size, q.format.symmetric, !contiguous_groups(q)};
}

// Why Q has no exact GPTQ form ("" when it has one).
std::string cannot_store(const QTensor& grid_or_uniform) {
  const QTensor q = uniform_view(grid_or_uniform);
  const QFormat& f = q.format;
  if (!q.codes.defined() || q.codes.dim() != 2) return "it has no [out, in] codes";
  if (f.dsq) return "DSQ's dual scales have no GPTQ form (GPTQ stores one scale and zero per group)";
  if (f.ggml()) return "a ggml block grid (" + f.name() + ") has no GPTQ form; use --format gguf";
  if (f.bits != 2 && f.bits != 3 && f.bits != 4 && f.bits != 8)
    return std::to_string(f.bits) +
           "-bit codes: the GPTQ loaders share 2, 3, 4 and 8 bits (5..7 are GPTQModel-only planar layouts)";
  const int64_t out = q.out_features(), in = q.in_features();
  const int64_t unit = f.bits == 3 ? 32 : 32 / f.bits;  // values per whole number of words
  if (in % unit != 0)
    return "in_features " + std::to_string(in) + " is not a multiple of " + std::to_string(unit) + " (" +
           std::to_string(f.bits) + "-bit qweight words)";
  if (out % unit != 0)
    return "out_features " + std::to_string(out) + " is not a multiple of " + std::to_string(unit) + " (" +
           std::to_string(f.bits) + "-bit qzeros words)";
  // A group size that does not divide in_features is stored as GPTQ itself stores it: ceil(in / group_size)
  // rows of scales / qzeros and g_idx = j // group_size (GPTQModel's torch kernel pads to whole groups).
  return scale_problem(q);
}

std::string cannot_store_mixed(const MixedQTensor&) {
  return "two bit widths inside one tensor have no GPTQ form (one scheme per linear)";
}

// quantization_config of DIR's config.json, or of quantize_config.json; null when neither
// says quant_method "gptq".
nlohmann::json gptq_config(const std::string& dir) {
  if (!is_directory(dir) || !path_exists(path_join(dir, "config.json"))) return nullptr;
  nlohmann::json qc = try_quantization_config(dir);
  if (!qc.is_object() && path_exists(path_join(dir, "quantize_config.json"))) {
    try {
      qc = nlohmann::json::parse(read_file(path_join(dir, "quantize_config.json")));
    } catch (const std::exception&) {
      return nullptr;
    }
  }
  if (!qc.is_object()) return nullptr;
  std::string method = qc.value("quant_method", qc.value("method", std::string()));
  std::transform(method.begin(), method.end(), method.begin(), ::tolower);
  return method == "gptq" ? qc : nlohmann::json();
}

bool detect(const std::string& dir) { return !gptq_config(dir).is_null(); }

// The packed tensors of one linear. V1 stores zero - 1 (field by field: the writer refuses a
// zero of 0 there, so no field borrows from its neighbour).
NamedTensors pack(const std::string& prefix, const QTensor& q, bool v1) {
  const int bits = q.format.bits;
  const int64_t in = q.in_features();
  at::Tensor codes = q.codes.cpu().to(at::kByte).contiguous();
  at::Tensor qweight = pack_bits(codes, bits).t().contiguous();  // [in * bits / 32, out]
  at::Tensor z = q.zeros.cpu().to(at::kFloat).t().contiguous();  // [G, out]
  if (v1) z = z - 1;
  at::Tensor qzeros = pack_bits(z.round().to(at::kByte).contiguous(), bits);  // [G, out * bits / 32]
  at::Tensor scales = q.scales.cpu().to(at::kHalf).t().contiguous();         // [G, out]
  const int64_t width = q.format.group_width(in);
  at::Tensor g_idx =
      q.g_idx.defined() ? q.g_idx.cpu().to(at::kInt).contiguous() : at::arange(in, at::kInt).div(width, "floor").to(at::kInt);
  return {{prefix + ".qweight", qweight}, {prefix + ".qzeros", qzeros}, {prefix + ".scales", scales},
          {prefix + ".g_idx", g_idx}};
}

void write(const Model& m, const std::map<std::string, QTensor>& as_given,
           const std::map<std::string, MixedQTensor>& mixed, const std::string& out, const FormatWriteOptions& opts) {
  check_output(out, opts.force);
  // GPTQModel.load takes Qwen3-MoE and Qwen2-MoE checkpoints with per-expert linears
  // (tests/hfquant/test_hf_interop.py case moe); Mixtral's w1/w2/w3 names it does not map.
  refuse_moe_export(m, kName, {"qwen3_moe", "qwen2_moe"}, "GPTQModel.load");
  check_storable(gptq_format(), as_given, mixed);
  const std::map<std::string, QTensor> quantized = uniform_view(as_given);
  check_plain_state(m, kName, /*allow_activations=*/false, kWhy);
  SQ_CHECK(!quantized.empty(), kName << " needs quantized linears (" << m.dir
                                     << " has none; quantize it first or use --format hf)");
  SQ_CHECK(!quantized.count("lm_head"), kName << " export of a quantized lm_head is not supported");
  const std::string cf = opts.checkpoint_format.empty() ? "auto" : opts.checkpoint_format;
  SQ_CHECK(cf == "auto" || cf == "gptq" || cf == "gptq_v2",
           "unknown GPTQ checkpoint format '" << cf << "' (gptq = v1, zero - 1 stored; gptq_v2 = true zeros)");
  // v1 cannot hold a zero of 0 (it would store -1 and borrow from the next field).
  std::string zero0;
  for (const auto& [name, q] : quantized)
    if (zero0.empty() && q.zeros.defined() && (q.zeros < 0.5).any().item<bool>()) zero0 = name;
  // GPTQModel.load, the loader of MoE checkpoints here, refuses an asymmetric v1 checkpoint that
  // GPTQModel did not write itself, so `auto` writes asymmetric MoE models as gptq_v2.
  std::string asym_moe;
  if (m.config.num_experts > 0)
    for (const auto& [name, q] : quantized)
      if (asym_moe.empty() && !q.format.symmetric) asym_moe = name;
  bool v1 = cf == "gptq" || (cf == "auto" && zero0.empty() && asym_moe.empty());
  SQ_CHECK(!(cf == "gptq" && !zero0.empty()),
           kName << " cannot store " << hf_module_name(zero0, m.config.family)
                 << " as checkpoint_format gptq (v1 stores zero - 1 and this linear has a zero of 0); use "
                    "--gptq-format gptq_v2");
  if (cf == "auto" && !v1 && zero0.empty())
    SQ_INFO("gptq: " << hf_module_name(asym_moe, m.config.family)
                     << " is asymmetric in a mixture-of-experts model, whose loader (GPTQModel.load) takes "
                        "asymmetric checkpoints as gptq_v2 only: writing checkpoint_format gptq_v2");
  else if (cf == "auto" && !v1)
    SQ_INFO("gptq: " << hf_module_name(zero0, m.config.family) << " has a zero of 0, which v1 cannot store: writing checkpoint_format gptq_v2");

  // The most common scheme is the config's; the others become dynamic overrides.
  std::map<Scheme, int> count;
  for (const auto& [name, q] : quantized) ++count[scheme_of(q)];
  Scheme base = count.begin()->first;
  for (const auto& [s, n] : count)
    if (n > count[base]) base = s;
  nlohmann::json dynamic = nlohmann::json::object();
  for (const std::string& name : linear_names(m)) {
    if (name == "lm_head") continue;
    const std::string module = hf_module_name(name, m.config.family);
    auto it = quantized.find(name);
    if (it == quantized.end()) dynamic["-:" + exact_regex(module)] = nlohmann::json::object();
    else if (!(scheme_of(it->second) == base)) dynamic["+:" + exact_regex(module)] = scheme_of(it->second).json();
  }
  bool any_desc = false;
  for (const auto& [s, n] : count) any_desc = any_desc || s.desc_act;
  std::map<std::string, int> not_marlin;  // reason -> linears
  for (const auto& [name, q] : quantized)
    if (std::string why = gptq_marlin_problem(q.format); !why.empty()) ++not_marlin[q.format.name() + ": " + why];
  for (const auto& [why, n] : not_marlin)
    SQ_INFO("warning: " << n << " linear(s) " << why
                        << " cannot be served by vLLM's Marlin kernel; vLLM falls back to its CUDA-only gptq kernel");

  write_dir_atomic(out, [&](const std::string& tmp) {
    NamedTensors ts;
    for (const auto& [canonical, t] : canonical_tensors(m)) {
      auto it = quantized.find(canonical);
      if (it == quantized.end()) {
        SQ_CHECK(t.defined(), "linear " << canonical << " has neither a weight nor a quantized form");
        ts.emplace_back(hf_tensor_name(canonical, m.config.family), t.contiguous().cpu());
        continue;
      }
      for (auto& kv : pack(hf_module_name(canonical, m.config.family), it->second, v1)) ts.push_back(std::move(kv));
    }
    write_checkpoint(tmp, ts, {{"format", "pt"}}, opts.max_shard_bytes);
    copy_source_files(m, tmp);
    nlohmann::json extra = nlohmann::json::parse(opts.extra_json);
    nlohmann::json qc = base.json();
    qc["quant_method"] = "gptq";
    qc["checkpoint_format"] = v1 ? "gptq" : "gptq_v2";
    qc["pack_dtype"] = "int32";
    qc["lm_head"] = false;
    qc["static_groups"] = false;
    qc["true_sequential"] = true;
    qc["damp_percent"] = 0.01;
    if (extra.contains("recipe") && extra["recipe"].is_object()) {
      // The damping of the recipe's GPTQ pass, when it has one.
      for (const auto& p : extra["recipe"].value("pipeline", nlohmann::json::array()))
        if (p.is_object() && p.contains("options") && p["options"].is_object() && p["options"].contains("damp"))
          qc["damp_percent"] = p["options"]["damp"];
    }
    if (!dynamic.empty()) qc["dynamic"] = dynamic;
    qc["meta"] = {{"quantizer", {std::string("sliderquant:") + SQ_VERSION}},
                  {"uri", "https://github.com/sliderquant/sliderquant"},
                  {"damp_percent", qc["damp_percent"]},
                  {"static_groups", false},
                  {"true_sequential", true},
                  {"desc_act_any_linear", any_desc}};
    if (extra.contains("recipe") && extra["recipe"].is_object())
      qc["meta"]["recipe"] = extra["recipe"].value("name", std::string("?"));
    nlohmann::json cfg = read_config_json(tmp);
    cfg["quantization_config"] = qc;
    write_file_atomic(path_join(tmp, "config.json"), cfg.dump(2) + "\n");
    write_file_atomic(path_join(tmp, "quantize_config.json"), qc.dump(2) + "\n");
    if (opts.report) {
      (*opts.report)["checkpoint_format"] = qc["checkpoint_format"];
      (*opts.report)["base_scheme"] = base.json();
      (*opts.report)["dynamic_overrides"] = dynamic.size();
      (*opts.report)["marlin_servable"] = not_marlin.empty();
    }
  });
}

// Reader ----------------------------------------------------------------------------------

struct Config {
  std::string where;  // the file the config came from
  Scheme base;
  bool v1 = true;
  bool lm_head = false;
  std::vector<std::pair<std::string, nlohmann::json>> dynamic;  // in file order
};

int64_t int_key(const nlohmann::json& o, const char* key, const std::string& where, int64_t def, bool required) {
  if (!o.contains(key)) {
    SQ_CHECK(!required, where << ": quantization_config has no '" << key << "'");
    return def;
  }
  SQ_CHECK(o[key].is_number_integer(), where << ": quantization_config." << key << " must be an integer, got "
                                             << o[key].dump());
  return o[key].get<int64_t>();
}

bool bool_key(const nlohmann::json& o, const char* key, const std::string& where, bool def) {
  if (!o.contains(key) || o[key].is_null()) return def;
  SQ_CHECK(o[key].is_boolean(), where << ": quantization_config." << key << " must be true or false, got "
                                      << o[key].dump());
  return o[key].get<bool>();
}

void check_scheme(const Scheme& s, const std::string& where, const std::string& what) {
  SQ_CHECK(s.bits == 2 || s.bits == 3 || s.bits == 4 || s.bits == 8,
           where << ": " << what << "bits " << s.bits << " is not supported (GPTQ: 2, 3, 4 or 8)");
  SQ_CHECK(s.group_size == -1 || s.group_size > 0,
           where << ": " << what << "group_size " << s.group_size << " (-1 or a positive size)");
}

Config read_config(const std::string& dir) {
  Config c;
  const nlohmann::json qc = gptq_config(dir);
  SQ_CHECK(qc.is_object(), dir << ": no GPTQ quantization_config (config.json or quantize_config.json)");
  c.where = path_join(dir, "config.json");
  c.base.bits = int(int_key(qc, "bits", c.where, 4, true));
  c.base.group_size = int_key(qc, "group_size", c.where, -1, true);
  c.base.sym = bool_key(qc, "sym", c.where, true);
  c.base.desc_act = bool_key(qc, "desc_act", c.where, false);
  check_scheme(c.base, c.where, "");
  std::string cf = qc.value("checkpoint_format", std::string());
  if (cf.empty() && qc.contains("format") && qc["format"].is_string()) cf = qc["format"].get<std::string>();
  if (cf.empty()) cf = "gptq";
  SQ_CHECK(cf == "gptq" || cf == "gptq_v2", c.where << ": quantization_config.checkpoint_format '" << cf
                                                    << "' is not supported (gptq, gptq_v2)");
  c.v1 = cf == "gptq";
  const std::string pd = qc.value("pack_dtype", std::string("int32"));
  SQ_CHECK(pd == "int32", c.where << ": quantization_config.pack_dtype '" << pd << "' is not supported (int32)");
  c.lm_head = bool_key(qc, "lm_head", c.where, false);
  if (qc.contains("dynamic") && !qc["dynamic"].is_null()) {
    SQ_CHECK(qc["dynamic"].is_object(), c.where << ": quantization_config.dynamic must be an object");
    for (const auto& [k, v] : qc["dynamic"].items()) {
      SQ_CHECK(v.is_object(), c.where << ": quantization_config.dynamic['" << k << "'] must be an object");
      c.dynamic.emplace_back(k, v);
    }
  }
  return c;
}

// The scheme of MODULE, or nothing when a "-:" rule leaves it in full precision.
std::optional<Scheme> scheme_for(const Config& c, const std::string& module) {
  for (const auto& [key, over] : c.dynamic) {
    const bool negative = key.rfind("-:", 0) == 0;
    const std::string pattern = key.rfind("+:", 0) == 0 || negative ? key.substr(2) : key;
    std::regex re;
    try {
      re = std::regex(pattern, std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      SQ_FAIL(c.where << ": quantization_config.dynamic key '" << key << "' is not a valid regex (" << e.what() << ")");
    }
    // Python's re.match: anchored at the start only.
    if (!std::regex_search(module, re, std::regex_constants::match_continuous)) continue;
    if (negative) return std::nullopt;
    Scheme s = c.base;
    s.bits = int(int_key(over, "bits", c.where, s.bits, false));
    s.group_size = int_key(over, "group_size", c.where, s.group_size, false);
    s.sym = bool_key(over, "sym", c.where, s.sym);
    s.desc_act = bool_key(over, "desc_act", c.where, s.desc_act);
    check_scheme(s, c.where, "dynamic['" + key + "'] ");
    return s;
  }
  if (module == "lm_head" && !c.lm_head) return std::nullopt;
  return c.base;
}

// Unpacks one linear: Error naming file, tensor and key on any inconsistency.
QTensor unpack(const Config& c, const Scheme& s, const std::string& prefix, int64_t out, int64_t in,
               const Checkpoint& ck, std::set<std::string>& used) {
  const std::string root = ck.root();
  auto need = [&](const std::string& suffix, c10::ScalarType dt) {
    const std::string name = prefix + suffix;
    SQ_CHECK(ck.has(name), root << ": tensor " << name << " is missing (" << c.where << " declares " << prefix
                                << " GPTQ-quantized)");
    used.insert(name);
    at::Tensor t = ck.get(name);
    if (dt == at::kInt)
      SQ_CHECK(t.scalar_type() == at::kInt, root << ": tensor " << name << " must be int32, got " << t.scalar_type());
    else
      SQ_CHECK(t.is_floating_point(), root << ": tensor " << name << " must be floating point, got " << t.scalar_type());
    return t;
  };
  const int bits = s.bits;
  SQ_CHECK((in * bits) % 32 == 0 && (out * bits) % 32 == 0 && (bits != 3 || (in % 32 == 0 && out % 32 == 0)),
           root << ": " << prefix << " [" << out << ", " << in << "] does not fill whole " << bits
                << "-bit words (bits " << bits << " from " << c.where << ")");
  const int64_t G = s.group_size > 0 ? (in + s.group_size - 1) / s.group_size : 1;
  at::Tensor qweight = need(".qweight", at::kInt), qzeros = need(".qzeros", at::kInt), scales = need(".scales", at::kFloat);
  auto shape_is = [&](const at::Tensor& t, const std::string& suffix, std::vector<int64_t> want) {
    SQ_CHECK(t.sizes().vec() == want, root << ": tensor " << prefix << suffix << " has shape " << t.sizes()
                                           << ", expected " << at::IntArrayRef(want) << " (bits " << bits
                                           << ", group_size " << s.group_size << " from " << c.where << ")");
  };
  shape_is(qweight, ".qweight", {in * bits / 32, out});
  shape_is(scales, ".scales", {G, out});
  shape_is(qzeros, ".qzeros", {G, out * bits / 32});
  QTensor q;
  q.format.bits = bits;
  q.format.group_size = s.group_size;
  q.codes = unpack_bits(qweight.t().contiguous(), bits, in);  // [out, in]
  at::Tensor zw = qzeros.contiguous();
  at::Tensor z;
  if (c.v1 && bits != 3) {
    // v1 stored zero - 1 with one whole-word subtraction; adding the word back undoes any
    // borrow exactly (as GPTQModel converts v1 to v2).
    const int64_t one = bits == 2 ? int64_t(0x55555555) : bits == 4 ? int64_t(0x11111111) : int64_t(0x01010101);
    const int64_t mask = int64_t(0xFFFFFFFF), top = int64_t(0x80000000), wrap = int64_t(0x100000000);
    zw = zw.to(at::kLong).bitwise_and(mask).add(one).bitwise_and(mask);
    zw = at::where(zw >= top, zw - wrap, zw).to(at::kInt).contiguous();
    z = unpack_bits(zw, bits, out).to(at::kFloat);
  } else {
    z = unpack_bits(zw, bits, out).to(at::kFloat);
    if (c.v1) z = (z + 1).remainder(8);  // 3-bit v1: field by field (GPTQModel does the same)
  }
  q.zeros = z.t().contiguous();                       // [out, G]
  q.scales = scales.to(at::kFloat).t().contiguous();  // [out, G]
  SQ_CHECK(at::isfinite(q.scales).all().item<bool>(), root << ": tensor " << prefix << ".scales holds NaN or Inf");
  const std::string gname = prefix + ".g_idx";
  if (ck.has(gname)) {
    used.insert(gname);
    at::Tensor g = ck.get(gname);
    SQ_CHECK(g.scalar_type() == at::kInt || g.scalar_type() == at::kLong,
             root << ": tensor " << gname << " must be int32, got " << g.scalar_type());
    SQ_CHECK(g.dim() == 1 && g.size(0) == in, root << ": tensor " << gname << " has shape " << g.sizes() << ", expected ["
                                                   << in << "]");
    g = g.to(at::kInt).contiguous();
    const int64_t lo = g.min().item<int64_t>(), hi = g.max().item<int64_t>();
    SQ_CHECK(lo >= 0 && hi < G, root << ": tensor " << gname << " holds group " << (lo < 0 ? lo : hi)
                                     << ", outside 0.." << G - 1);
    const int64_t width = s.group_size > 0 ? s.group_size : in;
    at::Tensor natural = at::arange(in, at::kInt).div(width, "floor").to(at::kInt);
    if (!g.equal(natural)) q.g_idx = g;
  }
  // A symmetric scheme whose zeros are all 2^(bits-1) reads as a symmetric format; any other
  // zeros are kept as they are (the loaders' torch kernel applies them).
  const float mid = float(1 << (bits - 1));
  q.format.symmetric = s.sym && q.zeros.eq(mid).all().item<bool>();
  if (s.sym && !q.format.symmetric)
    SQ_INFO(root << ": " << prefix << " is declared sym but its zeros are not " << int(mid)
                 << "; read as asymmetric (check checkpoint_format v1/v2)");
  return q;
}

Model read(const std::string& dir) {
  const Config c = read_config(dir);
  LinearResolver resolver = [&](const std::string& canonical, const std::string& prefix, int64_t out, int64_t in,
                                const Checkpoint& ck, Linear& l, std::set<std::string>& used) {
    const std::optional<Scheme> s = scheme_for(c, prefix);
    if (!s) return false;
    if (!ck.has(prefix + ".qweight") && ck.has(prefix + ".weight")) return false;  // left in full precision
    QTensor q = unpack(c, *s, prefix, out, in, ck, used);
    l.override_ = std::make_shared<QTensorWeight>(std::move(q));
    return true;
  };
  SQ_CHECK(!c.lm_head, c.where << ": quantization_config.lm_head is true; a quantized lm_head is not read yet");
  return load_model(dir, resolver);
}

nlohmann::json describe(const std::string& dir) {
  nlohmann::json d = describe_common(gptq_format(), dir);
  const Config c = read_config(dir);
  const ModelConfig mc = load_model_config(dir);
  d["quantized"] = true;
  d["checkpoint_format"] = c.v1 ? "gptq" : "gptq_v2";
  d["quantization_config"] = gptq_config(dir);
  const ArchSpec& arch = find_arch(mc.architecture);
  for (int64_t i = 0; i < mc.num_layers; ++i) {
    const BlockLayout& lay = block_layout(arch, mc, i);
    for (int j = 0; j < lay.size(); ++j) {
      const std::string module = "model.layers." + std::to_string(i) + "." + lay.slots[size_t(j)].hf;
      const std::optional<Scheme> s = scheme_for(c, module);
      if (!s) continue;
      QFormat f;
      f.bits = s->bits;
      f.group_size = s->group_size;
      f.symmetric = s->sym;
      const int64_t o = lay.out_features(j, mc), in = lay.in_features(j, mc);
      d["linears"][module] = {{"format", f.name()},
                              {"g_idx", s->desc_act},
                              {"shape", {o, in}},
                              {"bits_per_weight", bits_per_weight(f, o, in, /*with_g_idx=*/true)}};
      d["formats"][f.name()] = d["formats"].value(f.name(), int64_t(0)) + 1;
    }
  }
  d["format_label"] = std::string("gptq (checkpoint_format ") + (c.v1 ? "gptq" : "gptq_v2") + ")";
  add_mean_bits(d);
  return d;
}

}  // namespace

ModelFormat gptq_format() {
  return {kName,
          "GPTQ checkpoint as GPTQModel writes it (qweight/qzeros/scales/g_idx; transformers, vLLM, SGLang load it)",
          "config.json whose quantization_config has quant_method \"gptq\"",
          /*stores_quantized=*/true,
          detect,
          read,
          write,
          describe,
          cannot_store,
          cannot_store_mixed};
}

}  // namespace sq::formats

namespace sq {

std::string gptq_marlin_problem(const QFormat& given) {
  QFormat f = given;
  if (f.grid == GgmlGrid::Q4_0 || f.grid == GgmlGrid::Q5_0 || f.grid == GgmlGrid::Q8_0)
    f.grid = GgmlGrid::None;  // w4g32s / w5g32s / w8g32s exactly (formats/format_common.h uniform_view)
  if (f.dsq || f.ggml()) return f.name() + " has no GPTQ form";
  if (f.bits != 4 && f.bits != 8) return std::to_string(f.bits) + "-bit (Marlin: 4 or 8)";
  if (!f.symmetric) return "asymmetric (Marlin: symmetric only)";
  if (f.group_size != -1 && f.group_size != 32 && f.group_size != 64 && f.group_size != 128)
    return "group size " + std::to_string(f.group_size) + " (Marlin: -1, 32, 64, 128)";
  return "";
}

}  // namespace sq
