// formats/gguf: llama.cpp's GGUF file, read and written.
//
// Read: the family's hyper-parameters from `{arch}.*` metadata become a ModelConfig (through
// the family's own config parser, as a config.json would), every tensor is dequantized to
// float32 under its Hugging Face name, and the q/k rows that llama.cpp's converter permutes
// for the `llama` architecture (interleaved RoPE halves) are put back in HF order. The
// tokenizer comes from the same file (data/gguf_tokenizer.h).
//
// Write: one file, `general.*` and the family keys llama.cpp reads, the tokenizer metadata,
// and the tensors in ggml order. A linear quantized onto a grid GGUF has (groups of 32:
// symmetric 4/5/8-bit -> Q4_0 / Q5_0 / Q8_0, asymmetric 4/5-bit -> Q4_1 / Q5_1, and every
// ggml grid format q4_0..q6_k as its own type, bit for bit) is encoded from its own codes; anything else is refused unless a re-quantization type is given
// (FormatWriteOptions::requant_type, `--gguf-type`), in which case its dequantized weight is
// quantized onto that type with ggml's reference quantizer and the added error reported.
#include <ATen/ops/arange.h>
#include <ATen/ops/cat.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "format_common.h"
#include "sliderquant/core/error.h"
#include "sliderquant/core/log.h"
#include "sliderquant/core/progress.h"
#include "sliderquant/core/shape.h"
#include "sliderquant/core/util.h"
#include "sliderquant/data/gguf_tokenizer.h"
#include "sliderquant/io/gguf.h"
#include "sliderquant/io/safetensors.h"
#include "sliderquant/model/arch.h"
#include "sliderquant/model/quantized_weight.h"
#include "sliderquant/quant/ggml_grid.h"

namespace sq::formats {
namespace {

constexpr const char* kName = "gguf";

// Family <-> GGUF architecture. Mistral is written as `llama` (llama.cpp runs it as one and
// ignores the sliding window) and therefore reads back as Llama; Mixtral is `llama` with
// experts (expert_count > 0) and reads back as Mixtral.
struct GgufArch {
  const char* gguf;          // general.architecture
  const char* hf;            // architectures[0] it reads as
  bool permute_qk;           // llama.cpp's converter interleaves q/k rows for RoPE
  bool norm_w;               // MoE: llama.cpp renormalises the top-k routing weights
};
constexpr GgufArch kArches[] = {
    {"llama", "LlamaForCausalLM", true, true},
    {"qwen2", "Qwen2ForCausalLM", false, false},
    {"qwen3", "Qwen3ForCausalLM", false, false},
    {"qwen2moe", "Qwen2MoeForCausalLM", false, false},
    {"qwen3moe", "Qwen3MoeForCausalLM", false, true},
};
const GgufArch* arch_by_gguf(const std::string& a) {
  for (const GgufArch& x : kArches)
    if (a == x.gguf) return &x;
  return nullptr;
}
const GgufArch& arch_for_family(const std::string& family) {
  if (family == "llama" || family == "mistral" || family == "mixtral") return kArches[0];
  if (family == "qwen2") return kArches[1];
  if (family == "qwen3") return kArches[2];
  if (family == "qwen2_moe") return kArches[3];
  if (family == "qwen3_moe") return kArches[4];
  SQ_FAIL(kName << " cannot store the family " << family
                << " (supported: llama, mistral, qwen2, qwen3, qwen2_moe, qwen3_moe, mixtral)");
}

// The block's linears by role, as llama.cpp names them ("blk.N." + name + ".weight"); a
// routed expert's are stacked into one "_exps" tensor per role, the shared expert's end "_shexp".
const char* gguf_linear_name(Role r) {
  switch (r) {
    case Role::Q: return "attn_q";
    case Role::K: return "attn_k";
    case Role::V: return "attn_v";
    case Role::O: return "attn_output";
    case Role::Gate: return "ffn_gate";
    case Role::Up: return "ffn_up";
    case Role::Down: return "ffn_down";
    case Role::Router: return "ffn_gate_inp";
    case Role::SharedGate: return "ffn_gate_inp_shexp";
  }
  return "?";
}
std::string gguf_slot_name(const LinearSlot& s) {
  return std::string(gguf_linear_name(s.role)) + (s.expert >= 0 ? "_exps" : s.shared ? "_shexp" : "");
}

// GGUF tensor name -> HF tensor name for family SPEC ("" when unknown). A stacked expert
// tensor ("_exps") maps to its per-expert HF name with "{e}" in place of the expert index.
std::string hf_name_of(const std::string& g, const ArchSpec& spec) {
  if (g == "token_embd.weight") return "model.embed_tokens.weight";
  if (g == "output_norm.weight") return "model.norm.weight";
  if (g == "output.weight") return "lm_head.weight";
  if (g.rfind("blk.", 0) != 0) return "";
  const size_t dot = g.find('.', 4);
  if (dot == std::string::npos) return "";
  const std::string idx = g.substr(4, dot - 4);
  if (idx.empty() || idx.find_first_not_of("0123456789") != std::string::npos) return "";
  std::string rest = g.substr(dot + 1);
  std::string suffix;
  for (const char* s : {".weight", ".bias"})
    if (rest.size() > std::strlen(s) && rest.compare(rest.size() - std::strlen(s), std::strlen(s), s) == 0) {
      suffix = s;
      rest = rest.substr(0, rest.size() - suffix.size());
    }
  if (suffix.empty()) return "";
  const std::string p = "model.layers." + idx + ".";
  if (rest == "attn_norm" && suffix == ".weight") return p + "input_layernorm.weight";
  if (rest == "ffn_norm" && suffix == ".weight") return p + "post_attention_layernorm.weight";
  if (rest == "attn_q_norm" && suffix == ".weight") return p + "self_attn.q_norm.weight";
  if (rest == "attn_k_norm" && suffix == ".weight") return p + "self_attn.k_norm.weight";
  if (spec.moe && suffix == ".weight") {
    const MoeNames& n = *spec.moe;
    const std::pair<const char*, const std::string*> moe[] = {
        {"ffn_gate_inp", &n.router},        {"ffn_gate_exps", &n.expert_gate},  {"ffn_up_exps", &n.expert_up},
        {"ffn_down_exps", &n.expert_down},  {"ffn_gate_inp_shexp", &n.shared_expert_gate},
        {"ffn_gate_shexp", &n.shared_gate}, {"ffn_up_shexp", &n.shared_up},     {"ffn_down_shexp", &n.shared_down}};
    for (const auto& [gname, hf] : moe)
      if (rest == gname && !hf->empty()) return p + *hf + suffix;
  }
  for (const LinearSlot& s : spec.layout->slots)
    if (rest == gguf_linear_name(s.role)) return p + s.hf + suffix;
  return "";
}

// llama.cpp's converter stores q (n_head heads) and k (n_head_kv heads) with the two RoPE
// halves of each head interleaved: rows [h, 2, d/2] become [h, d/2, 2]. These undo / redo it
// (the permutation moves whole rows, so it commutes with any row-wise quantization).
at::Tensor unpermute_rows(const at::Tensor& w, int64_t heads) {
  std::vector<int64_t> shape = w.sizes().vec();
  std::vector<int64_t> v = {heads, shape[0] / heads / 2, 2};
  v.insert(v.end(), shape.begin() + 1, shape.end());
  return w.reshape(v).transpose(1, 2).reshape(shape).contiguous();
}
at::Tensor permute_rows(const at::Tensor& w, int64_t heads) {
  std::vector<int64_t> shape = w.sizes().vec();
  std::vector<int64_t> v = {heads, 2, shape[0] / heads / 2};
  v.insert(v.end(), shape.begin() + 1, shape.end());
  return w.reshape(v).transpose(1, 2).reshape(shape).contiguous();
}

// Llama 3.1's RoPE rescaling as the per-frequency factors llama.cpp keeps in rope_freqs.
std::vector<float> llama3_rope_factors(const ModelConfig& c) {
  const RopeScaling& r = *c.rope_scaling;
  const int64_t half = c.head_dim / 2;
  const double lo_wl = double(r.original_max_position_embeddings) / r.low_freq_factor;
  const double hi_wl = double(r.original_max_position_embeddings) / r.high_freq_factor;
  std::vector<float> f(static_cast<size_t>(half));
  for (int64_t i = 0; i < half; ++i) {
    const double freq = 1.0 / std::pow(c.rope_theta, double(2 * i) / double(c.head_dim));
    const double wl = 2 * M_PI / freq;
    double factor;
    if (wl < hi_wl) factor = 1.0;
    else if (wl > lo_wl) factor = r.factor;
    else {
      const double smooth = (double(r.original_max_position_embeddings) / wl - r.low_freq_factor) /
                            (r.high_freq_factor - r.low_freq_factor);
      factor = 1.0 / ((1 - smooth) / r.factor + smooth);
    }
    f[size_t(i)] = float(factor);
  }
  return f;
}

// ---- reading -------------------------------------------------------------------------

ModelConfig config_of(const GgufFile& f, const GgufArch& A) {
  const std::string a = A.gguf;
  auto key = [&](const char* k) { return a + "." + k; };
  ModelConfig c;
  c.architecture = A.hf;
  c.family = find_arch(A.hf).family;
  c.hidden_size = f.get_int(key("embedding_length"));
  c.intermediate_size = f.get_int(key("feed_forward_length"));
  c.num_layers = f.get_int(key("block_count"));
  c.num_heads = f.get_int(key("attention.head_count"));
  c.num_kv_heads = f.get_int(key("attention.head_count_kv"), c.num_heads);
  SQ_CHECK(c.hidden_size > 0 && c.intermediate_size > 0 && c.num_layers > 0 && c.num_heads > 0 && c.num_kv_heads > 0,
           f.path() << ": " << a << ".* sizes must be positive");
  c.head_dim = f.get_int(key("attention.key_length"), c.hidden_size / c.num_heads);
  SQ_CHECK(f.get_int(key("attention.value_length"), c.head_dim) == c.head_dim,
           f.path() << ": key " << key("attention.value_length") << " differs from the key length (not supported)");
  const int64_t rope_dims = f.get_int(key("rope.dimension_count"), c.head_dim);
  SQ_CHECK(rope_dims == c.head_dim, f.path() << ": key " << key("rope.dimension_count") << " is " << rope_dims
                                             << "; partial rotary embeddings are not supported (head size "
                                             << c.head_dim << ")");
  c.max_position_embeddings = f.get_int(key("context_length"), 2048);
  c.rms_norm_eps = f.get_float(key("attention.layer_norm_rms_epsilon"));
  c.rope_theta = f.get_float(key("rope.freq_base"), 10000.0);
  SQ_CHECK(c.rope_theta > 0 && std::isfinite(c.rope_theta), f.path() << ": key " << key("rope.freq_base") << " must be positive");
  const std::string scaling = f.get_str(key("rope.scaling.type"), "none");
  if (scaling == "linear") {
    RopeScaling s;
    s.type = "linear";
    s.factor = f.get_float(key("rope.scaling.factor"));
    c.rope_scaling = s;
  } else {
    SQ_CHECK(scaling == "none", f.path() << ": key " << key("rope.scaling.type") << " is " << scaling
                                         << " (supported: none, linear)");
  }
  const GgufTensorInfo* emb = f.find_tensor("token_embd.weight");
  SQ_CHECK(emb, f.path() << ": tensor token_embd.weight is missing");
  c.vocab_size = f.get_int(key("vocab_size"), emb->ne.size() == 2 ? emb->ne[1] : 0);
  c.tie_word_embeddings = !f.find_tensor("output.weight");
  c.bos_token_id = f.get_int("tokenizer.ggml.bos_token_id", -1);
  if (f.has("tokenizer.ggml.eos_token_id")) c.eos_token_ids = {f.get_int("tokenizer.ggml.eos_token_id")};
  c.torch_dtype = "float32";
  if (f.get_int(key("expert_count"), 0) > 0) {  // MoE: Qwen's own architectures, or llama = Mixtral
    if (c.family == "llama") {
      c.architecture = "MixtralForCausalLM";
      c.family = "mixtral";
    }
    c.num_experts = f.get_int(key("expert_count"));
    c.experts_per_token = f.get_int(key("expert_used_count"));
    c.moe_intermediate_size = f.get_int(key("expert_feed_forward_length"), c.intermediate_size);
    c.shared_expert_intermediate_size = f.get_int(key("expert_shared_feed_forward_length"), 0);
    c.norm_topk_prob = A.norm_w;
  }
  SQ_CHECK(c.num_experts > 0 || (c.family != "qwen2_moe" && c.family != "qwen3_moe"),
           f.path() << ": key " << key("expert_count") << " is missing (a " << a << " model has experts)");
  if (c.family == "qwen2" || c.family == "qwen2_moe") c.qkv_bias = true;
  if (c.family == "qwen3" || c.family == "qwen3_moe") c.qk_norm = true;
  // Optional biases llama.cpp's llama architecture also reads.
  if (c.family == "llama") {
    c.qkv_bias = f.find_tensor("blk.0.attn_q.bias") != nullptr;
    c.o_bias = f.find_tensor("blk.0.attn_output.bias") != nullptr;
    c.mlp_bias = f.find_tensor("blk.0.ffn_up.bias") != nullptr;
  }
  // Round trip through the family's own parser: the same checks as a config.json gets.
  return parse_model_config(model_config_json(c), f.path());
}

// Llama 3.1+: rope_freqs holds the rescaling factors; find the llama3 parameters that give them.
void read_rope_freqs(const GgufFile& f, ModelConfig& c) {
  const GgufTensorInfo* t = f.find_tensor("rope_freqs.weight");
  if (!t) return;
  at::Tensor got = f.dequantize("rope_freqs.weight");
  SQ_CHECK(got.numel() == c.head_dim / 2, f.path() << ": tensor rope_freqs.weight has " << got.numel()
                                                   << " factors, expected " << c.head_dim / 2);
  const float* g = got.data_ptr<float>();
  // The published Llama 3.1 (factor 8) and 3.2 (factor 32) settings; the original context
  // is 8192 for both.
  for (double factor : {8.0, 32.0, 16.0, 4.0, 2.0}) {
    ModelConfig probe = c;
    probe.rope_scaling = RopeScaling{"llama3", factor, 1.0, 4.0, 8192};
    const std::vector<float> want = llama3_rope_factors(probe);
    bool same = true;
    for (size_t i = 0; i < want.size() && same; ++i) same = std::fabs(want[i] - g[i]) <= 1e-4f * std::fabs(want[i]);
    if (same) {
      c.rope_scaling = probe.rope_scaling;
      return;
    }
  }
  SQ_FAIL(f.path() << ": tensor rope_freqs.weight holds RoPE factors that match no Llama 3 rope_scaling setting");
}

// The file's architecture row and its whole configuration (Llama 3.1's rope_freqs included).
struct GgufModelInfo {
  const GgufArch* arch;
  ModelConfig config;
};
GgufModelInfo model_info(const GgufFile& f) {
  const std::string a = f.get_str("general.architecture");
  const GgufArch* A = arch_by_gguf(a);
  SQ_CHECK(A, f.path() << ": key general.architecture is " << a
                       << ", which is not supported (supported: llama, qwen2, qwen3, qwen2moe, qwen3moe)");
  ModelConfig c = config_of(f, *A);
  read_rope_freqs(f, c);
  return {A, std::move(c)};
}

Model read(const std::string& path) {
  auto f = GgufFile::open(path);
  auto [A, c] = model_info(*f);
  const std::string a = A->gguf;
  const ArchSpec& spec = find_arch(c.architecture);
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  Progress progress("reading " + path, int64_t(f->tensors().size()));
  int64_t done = 0;
  for (const GgufTensorInfo& t : f->tensors()) {
    progress.update(done++);
    if (t.name == "rope_freqs.weight") continue;  // read into rope_scaling above
    const std::string hf = hf_name_of(t.name, spec);
    SQ_CHECK(!hf.empty(), path << ": tensor " << t.name << " is not part of a " << a << " model this version reads");
    at::Tensor w = f->dequantize(t.name);
    if (hf.find("{e}") != std::string::npos) {  // stacked experts [E, rows, cols]
      SQ_CHECK(w.dim() == 3 && w.size(0) == c.num_experts,
               path << ": tensor " << t.name << " has shape " << shape_str(w.sizes()) << ", expected "
                    << c.num_experts << " stacked experts (" << a << ".expert_count)");
      for (int64_t e = 0; e < c.num_experts; ++e)
        tensors.emplace_back(expert_path(hf, std::to_string(e)), w[e].contiguous());
      continue;
    }
    if (w.dim() == 1 && hf.find("shared_expert_gate") != std::string::npos) w = w.reshape({1, w.size(0)});
    if (A->permute_qk) {
      const bool q = hf.find("self_attn.q_proj.") != std::string::npos;
      const bool k = hf.find("self_attn.k_proj.") != std::string::npos;
      if (q || k) {
        const int64_t heads = q ? c.num_heads : c.num_kv_heads;
        SQ_CHECK(w.size(0) == heads * c.head_dim, path << ": tensor " << t.name << " has " << w.size(0)
                                                       << " rows, expected " << heads * c.head_dim);
        w = unpermute_rows(w, heads);
      }
    }
    tensors.emplace_back(hf, std::move(w));
  }
  progress.finish();
  auto ck = std::make_shared<Checkpoint>(Checkpoint::from_memory(path, std::move(tensors)));
  return load_model_from(path, std::move(c), std::move(ck));
}

bool detect(const std::string& path) { return is_gguf_file(path); }

// ---- what fits exactly ---------------------------------------------------------------

// The GGUF type that holds Q's grid exactly, or nullopt-like false.
bool exact_type(const QTensor& q, GgmlType& t, std::string& why) {
  if (q.format.ggml()) {  // a ggml grid format: its own type, whatever the fields
    if (q.g_idx.defined()) {
      why = "a ggml grid with a group index";
      return false;
    }
    if (q.in_features() % q.format.super_block() != 0) {
      why = "rows of " + std::to_string(q.in_features()) + " are not whole " + q.format.name() + " blocks";
      return false;
    }
    t = static_cast<GgmlType>(ggml_grid_type_id(q.format.grid));
    return true;
  }
  if (q.format.dsq) {
    why = "dual-scale (DSQ) codes have no GGUF type";
    return false;
  }
  if (q.format.group_size != 32) {
    why = "GGUF's 4/5/8-bit block types hold groups of 32 only (use --gguf-type to re-quantize)";
    return false;
  }
  if (q.g_idx.defined()) {
    at::Tensor expect = at::arange(q.in_features(), q.g_idx.options()).div(32, "floor");
    if (!q.g_idx.cpu().equal(expect.cpu())) {
      why = "a group index that reorders columns has no GGUF form (use --gguf-type to re-quantize)";
      return false;
    }
  }
  const int b = q.format.bits;
  const bool s = q.format.symmetric;
  if (b == 4 && s) t = GgmlType::Q4_0;
  else if (b == 4) t = GgmlType::Q4_1;
  else if (b == 5 && s) t = GgmlType::Q5_0;
  else if (b == 5) t = GgmlType::Q5_1;
  else if (b == 8 && s) t = GgmlType::Q8_0;
  else {
    why = std::string("no GGUF block type holds ") + (s ? "symmetric " : "asymmetric ") + std::to_string(b) +
          "-bit groups of 32 (use --gguf-type to re-quantize)";
    return false;
  }
  return true;
}

std::string cannot_store(const QTensor& q) {
  GgmlType t;
  std::string why;
  return exact_type(q, t, why) ? "" : why;
}

std::string cannot_store_mixed(const MixedQTensor& q) {
  return "a linear mixing two bit widths has no GGUF type (use --gguf-type to re-quantize)";
}


// ---- writing -------------------------------------------------------------------------

GgmlType float_type(c10::ScalarType t) {
  if (t == at::kHalf) return GgmlType::F16;
  if (t == at::kBFloat16) return GgmlType::BF16;
  return GgmlType::F32;
}

// llama.cpp's fallback when a row is not a multiple of a k-quant's 256-element super-block
// (llama-quantize does the same; the IQ4_NL it picks for 2/3-bit has no writer here, so
// Q4_0, its nearest 4.5-bit relative, stands in and the report says so). Rows that fit no
// 32-element block at all (stories260K's 172) become F16, as llama-quantize's last resort.
GgmlType fallback_type(GgmlType t, int64_t row) {
  const GgmlTypeInfo& ti = ggml_type_info(t);
  if (row % ti.block == 0) return t;
  if (row % 32 != 0) return GgmlType::F16;
  switch (t) {
    case GgmlType::Q2_K: case GgmlType::Q3_K: return GgmlType::Q4_0;
    case GgmlType::Q4_K: return GgmlType::Q5_0;
    case GgmlType::Q5_K: return GgmlType::Q5_1;
    case GgmlType::Q6_K: return GgmlType::Q8_0;
    default: SQ_FAIL(kName << ": rows of " << row << " elements do not fit the " << ti.name << " block of " << ti.block);
  }
}

// llama.cpp's file type (general.file_type) for the type most linears use.
int64_t file_type_of(GgmlType t) {
  switch (t) {
    case GgmlType::F32: return 0;
    case GgmlType::F16: return 1;
    case GgmlType::Q4_0: return 2;
    case GgmlType::Q4_1: return 3;
    case GgmlType::Q8_0: return 7;
    case GgmlType::Q5_0: return 8;
    case GgmlType::Q5_1: return 9;
    case GgmlType::Q2_K: return 10;
    case GgmlType::Q3_K: return 12;
    case GgmlType::Q4_K: return 15;
    case GgmlType::Q5_K: return 17;
    case GgmlType::Q6_K: return 18;
    case GgmlType::BF16: return 32;
    default: return 0;
  }
}

// The parts of a model's state GGUF (as llama.cpp runs it) cannot express.
void check_plain(const Model& m) {
  SQ_CHECK(!m.act.on(), kName << " cannot store activation or KV-cache quantization (llama.cpp runs the weights "
                              "with its own activation handling)");
  SQ_CHECK(!m.final_norm_bias.defined(), kName << " cannot store model.norm.bias (llama.cpp's " << "output_norm has no bias)");
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    const Block& b = m.blocks[i];
    const std::string blk = "model.layers." + std::to_string(i);
    SQ_CHECK(!b.act_clip.defined(), kName << " cannot store " << blk << ".activation_clip (learned activation clipping)");
    SQ_CHECK(!b.mlp_norm_bias.defined(), kName << " cannot store " << blk
                                               << ".post_attention_layernorm.bias (the mean-shift correction; "
                                                  "llama.cpp's ffn_norm has no bias)");
    for (int k = 0; k < kOnlinePoints; ++k)
      SQ_CHECK(!b.online[k].defined(), kName << " cannot store the online transform " << blk << "."
                                             << online_point_name(OnlinePoint(k))
                                             << " (llama.cpp has no online transforms; fuse it offline)");
  }
}

QTensor permute_qtensor(const QTensor& q, int64_t heads) {
  QTensor r = q;
  r.codes = permute_rows(q.codes, heads);
  r.scales = permute_rows(q.scales, heads);
  auto rows = [&](const at::Tensor& x) { return x.defined() ? permute_rows(x, heads) : x; };
  r.zeros = rows(q.zeros);
  r.mins = rows(q.mins);
  r.sub_scales = rows(q.sub_scales);
  r.sub_mins = rows(q.sub_mins);
  r.super_d = rows(q.super_d);
  r.super_dmin = rows(q.super_dmin);
  return r;
}

// One tensor to write: what it is, how its bytes come about, what the report says.
struct Item {
  std::string name;       // GGUF name
  std::string source;     // canonical / HF name for the report
  std::vector<int64_t> ne;
  GgmlType type;
  std::string how;        // "exact", "float", "requantized", "requantized (fallback from q4_K)"
  std::function<at::Tensor()> reference;  // [rows, cols] float32: what the bytes should decode to
  std::function<void(std::vector<uint8_t>&)> encode;
};

void quantize_rows(GgmlType t, const at::Tensor& w32, std::vector<uint8_t>& out) {
  const int64_t rows = w32.size(0), cols = w32.numel() / std::max<int64_t>(rows, 1);
  const uint64_t rb = ggml_nbytes(t, cols);
  out.resize(size_t(rb * uint64_t(rows)));
  const float* src = w32.data_ptr<float>();
  for (int64_t r = 0; r < rows; ++r) ggml_quantize(t, src + r * cols, out.data() + size_t(rb) * size_t(r), cols);
}

void encode_float(GgmlType t, const at::Tensor& w, std::vector<uint8_t>& out) {
  at::Tensor x = w.contiguous();
  if (t == GgmlType::F32 && x.scalar_type() == at::kFloat) {
    out.assign(reinterpret_cast<const uint8_t*>(x.data_ptr()),
               reinterpret_cast<const uint8_t*>(x.data_ptr()) + x.numel() * 4);
    return;
  }
  if ((t == GgmlType::F16 && x.scalar_type() == at::kHalf) || (t == GgmlType::BF16 && x.scalar_type() == at::kBFloat16)) {
    out.assign(reinterpret_cast<const uint8_t*>(x.data_ptr()),
               reinterpret_cast<const uint8_t*>(x.data_ptr()) + x.numel() * 2);
    return;
  }
  at::Tensor w32 = x.to(at::kFloat).contiguous();
  if (w32.dim() == 1) w32 = w32.reshape({1, w32.numel()});
  quantize_rows(t, w32.reshape({w32.size(0), -1}), out);
}

std::vector<int64_t> ggml_ne(const at::Tensor& t) {
  std::vector<int64_t> s = t.sizes().vec();
  return std::vector<int64_t>(s.rbegin(), s.rend());
}

void add_tokenizer_metadata(const Model& m, GgufWriter& w) {
  if (is_gguf_file(m.dir)) {
    auto src = GgufFile::open(m.dir);
    for (const auto& [k, v] : src->kv())
      if (k.rfind("tokenizer.", 0) == 0) w.set(k, v);
    return;
  }
  for (auto& [k, v] : gguf_tokenizer_metadata(m.dir)) w.set(k, std::move(v));
}

void write(const Model& m, const std::map<std::string, QTensor>& quantized,
           const std::map<std::string, MixedQTensor>& mixed, const std::string& out, const FormatWriteOptions& opts) {
  check_output(out, opts.force);
  check_plain(m);
  const ModelConfig& c = m.config;
  const GgufArch& A = arch_for_family(c.family);
  if (c.num_experts > 0) {  // what llama.cpp's MoE graphs can run as we do
    for (int64_t i = 0; i < c.num_layers; ++i)
      SQ_CHECK(c.moe_layer(i), kName << ": layer " << i << " of this " << c.architecture
                                     << " has a dense MLP (mlp_only_layers / decoder_sparse_step); llama.cpp's "
                                     << A.gguf << " routes every layer");
    SQ_CHECK(c.norm_topk_prob == A.norm_w,
             kName << ": llama.cpp's " << A.gguf << " " << (A.norm_w ? "renormalises" : "does not renormalise")
                   << " the top-k routing weights, but this model has norm_topk_prob=" << (c.norm_topk_prob ? "true" : "false"));
  }
  const bool requant = !opts.requant_type.empty();
  const GgmlType rq = requant ? ggml_type_from_name(opts.requant_type) : GgmlType::F32;
  if (requant)
    SQ_CHECK(ggml_type_info(rq).writable, kName << ": --gguf-type " << opts.requant_type << " cannot be written");
  if (!requant) check_storable(gguf_format(), quantized, mixed);  // names the first refusal, before any work
  for (const auto& [name, q] : quantized) SQ_CHECK(!mixed.count(name), name << " is both a quantized and a mixed-precision linear");
  if (c.family == "mistral" && c.sliding_window > 0 && c.sliding_window < c.max_position_embeddings)
    SQ_INFO("warning: llama.cpp runs Mistral as llama without its sliding window of " << c.sliding_window
                                                                                      << " tokens (same results up to that context)");

  std::vector<Item> items;
  auto add_float = [&](const std::string& gname, const std::string& source, const at::Tensor& t, bool force_f32) {
    Item it;
    it.name = gname;
    it.source = source;
    it.ne = ggml_ne(t);
    it.type = force_f32 ? GgmlType::F32 : float_type(t.scalar_type());
    it.how = "float";
    it.reference = [t] { return t.to(at::kFloat).reshape({t.dim() == 1 ? 1 : t.size(0), -1}); };
    const GgmlType ty = it.type;
    it.encode = [t, ty](std::vector<uint8_t>& b) { encode_float(ty, t, b); };
    items.push_back(std::move(it));
  };
  std::set<std::string> used;
  // A linear: exact from its codes, else re-quantized, else (full precision) as stored.
  auto add_linear = [&](const std::string& gname, const Linear& l, int64_t permute_heads) {
    Item it;
    it.name = gname;
    it.source = l.name;
    auto qi = quantized.find(l.name);
    auto mi = mixed.find(l.name);
    const bool is_q = qi != quantized.end(), is_m = mi != mixed.end();
    if (is_q || is_m) used.insert(l.name);
    GgmlType et;
    std::string why = is_m ? cannot_store_mixed(mi->second) : "";
    if (is_q && exact_type(qi->second, et, why)) {
      QTensor q = permute_heads ? permute_qtensor(qi->second, permute_heads) : qi->second;
      it.ne = {q.in_features(), q.out_features()};
      it.type = et;
      it.how = "exact";
      it.reference = [q] { return q.dequantize(); };
      if (q.format.ggml()) {
        const std::string what = l.name;
        it.encode = [q, what](std::vector<uint8_t>& b) { b = ggml_grid_encode(q, what); };
        items.push_back(std::move(it));
        return;
      }
      it.encode = [q, et](std::vector<uint8_t>& b) {
        const int64_t rows = q.out_features(), cols = q.in_features();
        at::Tensor codes = q.codes.cpu().contiguous();
        at::Tensor sc = q.scales.cpu().to(at::kFloat).contiguous();
        at::Tensor zr = q.format.symmetric ? at::Tensor() : q.zeros.cpu().to(at::kFloat).contiguous();
        std::vector<float> zsym(size_t(cols / 32), float(int64_t(1) << (q.format.bits - 1)));
        const uint64_t rb = ggml_nbytes(et, cols);
        b.resize(size_t(rb * uint64_t(rows)));
        const int64_t g = cols / 32;
        for (int64_t r = 0; r < rows; ++r)
          ggml_encode_codes(et, codes.data_ptr<uint8_t>() + r * cols, sc.data_ptr<float>() + r * g,
                            zr.defined() ? zr.data_ptr<float>() + r * g : zsym.data(), cols,
                            b.data() + size_t(rb) * size_t(r));
      };
      items.push_back(std::move(it));
      return;
    }
    if ((is_q || is_m) && !requant)
      SQ_FAIL(kName << " cannot store " << l.name << " (" << (is_q ? qi->second.format.name() : "mixed") << "): " << why);
    // Full precision, or a quantized linear re-quantized onto --gguf-type.
    at::Tensor w = is_q ? qi->second.dequantize() : is_m ? mi->second.dequantize() : l.effective_weight();
    SQ_CHECK(w.defined(), kName << " cannot store " << l.name << ": it has no weight");
    if (permute_heads) w = permute_rows(w, permute_heads);
    if (!requant) {
      add_float(gname, l.name, w, false);
      return;
    }
    const GgmlType t = fallback_type(rq, w.size(1));
    it.ne = ggml_ne(w);
    it.type = t;
    it.how = t == rq ? "requantized" : std::string("requantized (") + ggml_type_info(rq).name + " fallback: rows of " +
                                           std::to_string(w.size(1)) + ")";
    it.reference = [w] { return w.to(at::kFloat); };
    it.encode = [w, t](std::vector<uint8_t>& b) { quantize_rows(t, w.to(at::kFloat).contiguous(), b); };
    items.push_back(std::move(it));
  };

  add_float("token_embd.weight", "embed", m.embed, false);
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    const Block& b = m.blocks[i];
    const std::string p = "blk." + std::to_string(i) + ".";
    const std::string cp = "blocks." + std::to_string(i) + ".";
    add_float(p + "attn_norm.weight", cp + "attn_norm", b.attn_norm, true);
    const BlockLayout& lay = *b.layout;
    for (int j = 0; j < lay.size(); ++j) {
      const LinearSlot& sl = lay.slots[size_t(j)];
      const Linear& l = b.slots[size_t(j)];
      if (sl.expert >= 0) continue;  // stacked below
      if (sl.role == Role::Router || sl.role == Role::SharedGate) {  // llama.cpp routes with what it is given: F32
        SQ_CHECK(!quantized.count(l.name) && !mixed.count(l.name),
                 kName << " stores " << l.name << " in float32 (llama.cpp's router input); it cannot be quantized");
        const at::Tensor w = l.effective_weight();
        add_float(p + gguf_slot_name(sl) + ".weight", l.name, sl.role == Role::SharedGate ? w.reshape({w.size(1)}) : w,
                  true);
        continue;
      }
      const int64_t heads = !A.permute_qk ? 0 : sl.role == Role::Q ? c.num_heads : sl.role == Role::K ? c.num_kv_heads : 0;
      add_linear(p + gguf_slot_name(sl) + ".weight", l, heads);
      if (l.bias.defined())
        add_float(p + gguf_linear_name(sl.role) + ".bias", l.name + ".bias", heads ? permute_rows(l.bias, heads) : l.bias,
                  true);
      if (sl.role == Role::K && b.q_norm.defined()) {
        add_float(p + "attn_q_norm.weight", cp + "attn.q_norm", b.q_norm, true);
        add_float(p + "attn_k_norm.weight", cp + "attn.k_norm", b.k_norm, true);
      }
    }
    add_float(p + "ffn_norm.weight", cp + "mlp_norm", b.mlp_norm, true);
    // Routed experts: one [E, rows, cols] tensor per role, each expert encoded as it would be alone.
    for (Role r : {Role::Gate, Role::Up, Role::Down}) {
      if (!lay.moe()) break;
      const size_t first = items.size();
      for (int e = 0; e < lay.experts; ++e) add_linear("", b.slots[size_t(lay.expert_index(e, r))], 0);
      std::vector<Item> parts(std::make_move_iterator(items.begin() + long(first)), std::make_move_iterator(items.end()));
      items.resize(first);
      Item st;
      st.name = p + gguf_linear_name(r) + "_exps.weight";
      st.source = cp + "mlp.experts.*." + (r == Role::Gate ? "gate" : r == Role::Up ? "up" : "down");
      st.type = parts[0].type;
      st.how = parts[0].how;
      st.ne = parts[0].ne;
      for (const Item& it : parts)
        SQ_CHECK(it.type == st.type && it.ne == st.ne && it.how == st.how,
                 kName << ": the experts of " << st.source << " are stored differently (" << parts[0].source << " as "
                       << ggml_type_info(st.type).name << ", " << it.source << " as " << ggml_type_info(it.type).name
                       << "); llama.cpp stacks them into one tensor of one type");
      st.ne.push_back(int64_t(parts.size()));
      auto shared_parts = std::make_shared<std::vector<Item>>(std::move(parts));
      st.reference = [shared_parts] {
        std::vector<at::Tensor> refs;
        for (const Item& it : *shared_parts) refs.push_back(it.reference());
        return at::cat(refs, 0);
      };
      st.encode = [shared_parts](std::vector<uint8_t>& b) {
        b.clear();
        std::vector<uint8_t> one;
        for (const Item& it : *shared_parts) {
          it.encode(one);
          b.insert(b.end(), one.begin(), one.end());
        }
      };
      items.push_back(std::move(st));
    }
  }
  add_float("output_norm.weight", "final_norm", m.final_norm, true);
  if (!c.tie_word_embeddings) {
    Linear head = m.lm_head;
    add_linear("output.weight", head, 0);
  }
  for (const auto& [name, q] : quantized)
    SQ_CHECK(used.count(name), kName << ": quantized linear " << name << " is not part of the model");
  for (const auto& [name, q] : mixed)
    SQ_CHECK(used.count(name), kName << ": mixed-precision linear " << name << " is not part of the model");

  GgufWriter w;
  const std::string a = A.gguf;
  auto key = [&](const char* k) { return a + "." + k; };
  std::map<GgmlType, int64_t> linear_types;
  for (const Item& it : items)
    if (it.how != "float" || it.name.find("attn_") != std::string::npos || it.name.find("ffn_") != std::string::npos)
      if (it.ne.size() >= 2 && it.name != "token_embd.weight") ++linear_types[it.type];
  GgmlType main_type = GgmlType::F32;
  int64_t most = -1;
  for (const auto& [t, n] : linear_types)
    if (n > most) most = n, main_type = t;
  std::string base = m.dir;
  while (!base.empty() && base.back() == '/') base.pop_back();
  base = base.substr(base.find_last_of('/') == std::string::npos ? 0 : base.find_last_of('/') + 1);
  w.set("general.architecture", GgufValue::str(a));
  w.set("general.type", GgufValue::str("model"));
  w.set("general.name", GgufValue::str(base));
  w.set("general.file_type", GgufValue::u32(uint32_t(file_type_of(main_type))));
  w.set("general.quantization_version", GgufValue::u32(2));
  w.set(key("context_length"), GgufValue::u32(uint32_t(c.max_position_embeddings)));
  w.set(key("embedding_length"), GgufValue::u32(uint32_t(c.hidden_size)));
  w.set(key("block_count"), GgufValue::u32(uint32_t(c.num_layers)));
  w.set(key("feed_forward_length"), GgufValue::u32(uint32_t(c.intermediate_size)));
  w.set(key("attention.head_count"), GgufValue::u32(uint32_t(c.num_heads)));
  w.set(key("attention.head_count_kv"), GgufValue::u32(uint32_t(c.num_kv_heads)));
  w.set(key("attention.layer_norm_rms_epsilon"), GgufValue::f32(float(c.rms_norm_eps)));
  w.set(key("rope.freq_base"), GgufValue::f32(float(c.rope_theta)));
  w.set(key("rope.dimension_count"), GgufValue::u32(uint32_t(c.head_dim)));
  w.set(key("vocab_size"), GgufValue::u32(uint32_t(c.vocab_size)));
  if (c.num_experts > 0) {
    w.set(key("expert_count"), GgufValue::u32(uint32_t(c.num_experts)));
    w.set(key("expert_used_count"), GgufValue::u32(uint32_t(c.experts_per_token)));
    if (c.family != "mixtral") w.set(key("expert_feed_forward_length"), GgufValue::u32(uint32_t(c.moe_intermediate_size)));
    if (c.shared_expert_intermediate_size > 0)
      w.set(key("expert_shared_feed_forward_length"), GgufValue::u32(uint32_t(c.shared_expert_intermediate_size)));
  }
  if (c.head_dim * c.num_heads != c.hidden_size || c.qk_norm) {
    w.set(key("attention.key_length"), GgufValue::u32(uint32_t(c.head_dim)));
    w.set(key("attention.value_length"), GgufValue::u32(uint32_t(c.head_dim)));
  }
  if (c.rope_scaling && c.rope_scaling->type == "linear") {
    w.set(key("rope.scaling.type"), GgufValue::str("linear"));
    w.set(key("rope.scaling.factor"), GgufValue::f32(float(c.rope_scaling->factor)));
  }
  add_tokenizer_metadata(m, w);
  if (c.rope_scaling && c.rope_scaling->type == "llama3") {
    SQ_CHECK(A.permute_qk, kName << ": llama3 RoPE scaling is written for the llama architecture only");
    std::vector<float> f = llama3_rope_factors(c);
    at::Tensor t = at::empty({int64_t(f.size())}, at::kFloat);
    std::memcpy(t.data_ptr<float>(), f.data(), f.size() * 4);
    add_float("rope_freqs.weight", "rope_scaling", t, true);
  }

  nlohmann::json rep_tensors = nlohmann::json::array();
  std::map<std::string, int64_t> type_counts;
  for (const Item& it : items) {
    const Item* ip = &it;
    w.add_tensor(it.name, it.ne, it.type, [ip, &rep_tensors](std::vector<uint8_t>& b) {
      ip->encode(b);
      // The error the export added: decode what was written, compare with what was meant.
      at::Tensor ref = ip->reference().contiguous();
      at::Tensor got = at::empty(ref.sizes(), at::kFloat);
      ggml_dequantize(ip->type, b.data(), got.data_ptr<float>(), got.numel());
      at::Tensor d = got.sub(ref).abs();
      const double max_err = d.numel() ? d.max().item<double>() : 0.0;
      const double ref_rms = std::sqrt(ref.pow(2).mean().item<double>());
      const double rel = ref_rms > 0 ? std::sqrt(d.pow(2).mean().item<double>()) / ref_rms : 0.0;
      rep_tensors.push_back({{"name", ip->name},
                             {"source", ip->source},
                             {"type", ggml_type_info(ip->type).name},
                             {"shape", std::vector<int64_t>(ip->ne.rbegin(), ip->ne.rend())},
                             {"how", ip->how},
                             {"max_abs_error", max_err},
                             {"relative_rms_error", rel}});
    });
    if (it.how.rfind("requantized", 0) == 0) ++type_counts["requantized"];
    ++type_counts[ggml_type_info(it.type).name];
  }
  const int64_t n_requant = type_counts.count("requantized") ? type_counts["requantized"] : 0;
  if (n_requant)
    SQ_INFO("warning: " << n_requant << " linears re-quantized onto " << opts.requant_type
                        << " from their dequantized weights (lossy; the --json report lists each tensor's added error)");
  Progress progress("writing " + out, int64_t(items.size()));
  w.write(out, [&](size_t i, size_t, const std::string&) { progress.update(int64_t(i)); });
  progress.finish();
  if (opts.report) {
    nlohmann::json& r = *opts.report;
    r["format"] = kName;
    r["file"] = out;
    r["architecture"] = a;
    r["tensors"] = rep_tensors;
    nlohmann::json types = nlohmann::json::object();
    for (const auto& [t, n] : type_counts)
      if (t != "requantized") types[t] = n;
    r["types"] = types;
    r["requantized"] = n_requant;
    double max_exact = 0;
    for (const auto& t : rep_tensors)
      if (t["how"] == "exact") max_exact = std::max(max_exact, t["max_abs_error"].get<double>());
    r["max_abs_error_exact"] = max_exact;
  }
}

nlohmann::json describe(const std::string& path) {
  auto f = GgufFile::open(path);
  auto [A, c] = model_info(*f);
  const std::string a = A->gguf;
  const ArchSpec& spec = find_arch(c.architecture);
  nlohmann::json d = {{"format", kName},
                      {"summary", gguf_format().summary},
                      {"dir", path},
                      {"architecture", c.architecture},
                      {"gguf_architecture", a},
                      {"family", c.family},
                      {"parameters", c.param_count()},
                      {"gguf_version", f->version()},
                      {"quantized", false},
                      {"linears", nlohmann::json::object()},
                      {"formats", nlohmann::json::object()}};
  bool quant = false;
  for (const GgufTensorInfo& t : f->tensors()) {
    const GgmlTypeInfo& ti = ggml_type_info(t.type);
    const bool is_float = t.type == GgmlType::F32 || t.type == GgmlType::F16 || t.type == GgmlType::BF16;
    const std::string hf = hf_name_of(t.name, spec);
    if (is_float || t.ne.size() != 2 || hf.empty()) continue;
    quant = true;
    const std::string key = hf.substr(0, hf.size() - std::string(".weight").size());
    d["linears"][key] = {{"format", ti.name},
                         {"gguf_name", t.name},
                         {"shape", t.torch_shape()},
                         {"bits_per_weight", 8.0 * double(ti.block_bytes) / double(ti.block)}};
    d["formats"][ti.name] = d["formats"].value(ti.name, 0) + 1;
  }
  d["quantized"] = quant;
  if (quant) {
    double bits = 0, n = 0;
    int64_t most = 0;
    for (const auto& [k, l] : d["linears"].items()) {
      const double e = double(l["shape"][0].get<int64_t>() * l["shape"][1].get<int64_t>());
      bits += e * l["bits_per_weight"].get<double>();
      n += e;
    }
    for (const auto& [t, cnt] : d["formats"].items())
      if (cnt.get<int64_t>() > most) most = cnt.get<int64_t>(), d["format_label"] = t;
    d["format_version"] = f->version();
    d["bits_per_weight_quantized_linears"] = n > 0 ? bits / n : 0.0;
  }
  nlohmann::json md = nlohmann::json::object();
  for (const auto& [k, v] : f->kv()) {
    if (v.is_array()) md[k] = std::string("[") + std::to_string(v.array_size()) + " " + gguf_value_type_name(v.elem) + "]";
    else if (v.type == GgufValueType::STRING) md[k] = v.s.size() > 200 ? v.s.substr(0, 200) + "..." : v.s;
    else if (v.type == GgufValueType::F32 || v.type == GgufValueType::F64) md[k] = v.f;
    else if (v.type == GgufValueType::BOOL) md[k] = v.i != 0;
    else md[k] = v.i;
  }
  d["metadata"] = md;
  return d;
}

}  // namespace

ModelConfig gguf_config(const std::string& path) { return model_info(*GgufFile::open(path)).config; }

ModelFormat gguf_format() {
  return {kName,
          "llama.cpp's GGUF file (read: any llama/qwen2/qwen3 GGUF and the MoE qwen2moe/qwen3moe/Mixtral ones, dequantized; write: exact Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 "
          "from groups of 32, or --gguf-type to re-quantize)",
          "a file starting with the GGUF magic",
          /*stores_quantized=*/true,
          detect,
          read,
          write,
          describe,
          cannot_store,
          cannot_store_mixed};
}

}  // namespace sq::formats
