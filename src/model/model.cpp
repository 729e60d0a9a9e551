// model/model: loads an HF model directory into canonical Block/Linear views, checking
// each tensor's presence, shape and dtype against config.json.
#include "sliderquant/model/model.h"

#include <ATen/ATen.h>

#include <set>

#include "sliderquant/core/error.h"
#include "sliderquant/core/shape.h"
#include "sliderquant/io/safetensors.h"

namespace sq {

std::vector<Linear*> Block::linears() {
  std::vector<Linear*> r;
  for (Linear& l : slots) r.push_back(&l);
  return r;
}
std::vector<const Linear*> Block::linears() const {
  std::vector<const Linear*> r;
  for (const Linear& l : slots) r.push_back(&l);
  return r;
}
std::vector<Linear*> Block::group(TapPoint g) {
  std::vector<Linear*> r;
  for (int i : layout_or_throw().group(g)) r.push_back(&slots[size_t(i)]);
  return r;
}
std::vector<const Linear*> Block::group(TapPoint g) const {
  std::vector<const Linear*> r;
  for (int i : layout_or_throw().group(g)) r.push_back(&slots[size_t(i)]);
  return r;
}
const BlockLayout& Block::layout_or_throw() const {
  SQ_CHECK(layout != nullptr && slots.size() == size_t(layout->size()),
           "a decoder block without its layout (" << slots.size() << " linears)");
  return *layout;
}

const char* online_point_name(OnlinePoint p) {
  static const char* names[kOnlinePoints] = {"qkv_in", "o_in", "gate_up_in", "down_in", "k_cache"};
  return names[int(p)];
}

void check_finite(const at::Tensor& t, const std::string& name, const Checkpoint& ck) {
  SQ_CHECK(at::isfinite(t).all().item<bool>(), "tensor " << name << " in " << ck.file_of(name)
                                                         << " holds NaN or Inf values");
}

namespace {

int64_t tensor_bytes(const at::Tensor& t) { return t.defined() ? t.numel() * int64_t(t.element_size()) : 0; }

struct Loader {
  const Checkpoint& ck;
  const std::string& dir;
  std::set<std::string> used;
  const LinearResolver* resolver = nullptr;
  std::string family;

  at::Tensor get(const std::string& canonical, std::vector<int64_t> shape, bool required = true) {
    std::string name = hf_tensor_name(canonical, family);
    if (!ck.has(name)) {
      SQ_CHECK(!required, "tensor " << name << " is missing from " << dir << " (config.json implies it)");
      return {};
    }
    used.insert(name);
    at::Tensor t = ck.get(name);
    SQ_CHECK(t.is_floating_point(), "tensor " << name << " in " << dir << " has dtype "
                                              << t.scalar_type() << "; expected F32, F16 or BF16");
    SQ_CHECK(t.sizes().vec() == shape, "tensor " << name << " in " << dir << " has shape "
                                                 << shape_str(t.sizes()) << " but config.json implies "
                                                 << shape_str(shape));
    check_finite(t, name, ck);
    return t;
  }
  Linear linear(const std::string& canonical, int64_t out, int64_t in, bool bias) {
    Linear l;
    l.name = canonical;
    std::string w = hf_tensor_name(canonical, family);
    std::string prefix = w.substr(0, w.size() - std::string(".weight").size());
    bool resolved = resolver && *resolver && (*resolver)(canonical, prefix, out, in, ck, l, used);
    if (!resolved) l.weight = get(canonical, {out, in});
    if (bias) l.bias = get(canonical + ".bias", {out});
    return l;
  }
};

}  // namespace

int64_t Block::nbytes() const {
  int64_t n = tensor_bytes(attn_norm) + tensor_bytes(q_norm) + tensor_bytes(k_norm) + tensor_bytes(mlp_norm) +
              tensor_bytes(mlp_norm_bias);
  for (const Linear* l : linears()) n += tensor_bytes(l->weight) + tensor_bytes(l->bias);
  for (const OnlineTransform& t : online) n += tensor_bytes(t.scale) + tensor_bytes(t.p1) + tensor_bytes(t.p2);
  return n + tensor_bytes(act_clip);
}

int64_t Model::nbytes() const {
  int64_t n = tensor_bytes(embed) + tensor_bytes(final_norm);
  if (!config.tie_word_embeddings) n += tensor_bytes(lm_head.weight);
  for (const Block& b : blocks) n += b.nbytes();
  return n;
}

std::vector<std::pair<std::string, at::Tensor>> canonical_tensors(const Model& m) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  auto add = [&](const std::string& n, const at::Tensor& t) {
    if (t.defined()) out.emplace_back(n, t);
  };
  add("embed", m.embed);
  for (size_t i = 0; i < m.blocks.size(); ++i) {
    const Block& b = m.blocks[i];
    const std::string p = "blocks." + std::to_string(i) + ".";
    add(p + "attn_norm", b.attn_norm);
    add(p + "attn.q_norm", b.q_norm);
    add(p + "attn.k_norm", b.k_norm);
    add(p + "mlp_norm", b.mlp_norm);
    add(p + "mlp_norm.bias", b.mlp_norm_bias);
    for (const Linear* l : b.linears()) {
      out.emplace_back(l->name, l->weight);  // may be undefined (packed)
      add(l->name + ".bias", l->bias);
    }
    for (int k = 0; k < kOnlinePoints; ++k) {
      const OnlineTransform& t = b.online[k];
      const std::string q = p + "online." + online_point_name(OnlinePoint(k)) + ".";
      add(q + "scale", t.scale);
      add(q + "p1", t.p1);
      add(q + "p2", t.p2);
    }
    add(p + "act_clip", b.act_clip);
  }
  add("final_norm", m.final_norm);
  add("final_norm.bias", m.final_norm_bias);
  if (!m.config.tie_word_embeddings) add("lm_head", m.lm_head.weight);
  return out;
}

Model load_model(const std::string& dir, const LinearResolver& resolver) {
  ModelConfig config = load_model_config(dir);
  return load_model_from(dir, std::move(config), std::make_shared<Checkpoint>(Checkpoint::open(dir)), resolver);
}

Model load_model_from(const std::string& dir, ModelConfig config, std::shared_ptr<Checkpoint> checkpoint,
                      const LinearResolver& resolver) {
  Model m;
  m.dir = dir;
  m.config = std::move(config);
  m.arch = &find_arch(m.config.architecture);
  SQ_CHECK(m.arch->layout, "family " << m.arch->family << " has no block layout");
  m.checkpoint = std::move(checkpoint);
  const ModelConfig& c = m.config;
  const int64_t H = c.hidden_size, I = c.intermediate_size;
  Loader L{*m.checkpoint, dir, {}, &resolver, m.config.family};
  m.embed = L.get("embed", {c.vocab_size, H});
  m.final_norm = L.get("final_norm", {H});
  // Norm output biases (mean-shift corrections written by sliderquant) are optional.
  m.final_norm_bias = L.get("final_norm.bias", {H}, /*required=*/false);
  m.lm_head.name = "lm_head";
  if (c.tie_word_embeddings) {
    m.lm_head.weight = m.embed;
    // Some tied checkpoints still store lm_head.weight; it is ignored but counted as used.
    if (m.checkpoint->has("lm_head.weight")) L.used.insert("lm_head.weight");
  } else {
    m.lm_head.weight = L.get("lm_head", {c.vocab_size, H});
  }
  m.blocks.resize(size_t(c.num_layers));
  for (int64_t i = 0; i < c.num_layers; ++i) {
    Block& b = m.blocks[size_t(i)];
    const std::string p = "blocks." + std::to_string(i) + ".";
    b = Block(block_layout(*m.arch, c, i));
    b.attn_norm = L.get(p + "attn_norm", {H});
    b.mlp_norm = L.get(p + "mlp_norm", {H});
    b.mlp_norm_bias = L.get(p + "mlp_norm.bias", {H}, /*required=*/false);
    if (c.qk_norm) {
      b.q_norm = L.get(p + "attn.q_norm", {c.head_dim});
      b.k_norm = L.get(p + "attn.k_norm", {c.head_dim});
    }
    const BlockLayout& lay = *b.layout;
    for (int j = 0; j < lay.size(); ++j) {
      const LinearSlot& sl = lay.slots[size_t(j)];
      b.slots[size_t(j)] = L.linear(p + sl.name, lay.out_features(j, c), lay.in_features(j, c), has_bias(sl.bias, c));
    }
    // Optional online transforms (written by transform passes; model.h OnlineTransform).
    const int64_t dims[kOnlinePoints] = {H, c.q_dim(), H, I, c.head_dim};
    for (int k = 0; k < kOnlinePoints; ++k) {
      OnlineTransform& t = b.online[k];
      const std::string q = p + "online." + online_point_name(OnlinePoint(k)) + ".";
      const int64_t n = dims[k];
      t.scale = L.get(q + "scale", {n}, /*required=*/false);
      const std::string h1 = hf_tensor_name(q + "p1", c.family), h2 = hf_tensor_name(q + "p2", c.family);
      if (!m.checkpoint->has(h1) && !m.checkpoint->has(h2)) continue;
      SQ_CHECK(m.checkpoint->has(h2), "tensor " << h1 << " in " << dir << " needs " << h2);
      const int64_t n2 = m.checkpoint->get(h2).size(0);
      SQ_CHECK(n2 >= 1 && n % n2 == 0, "tensor " << h2 << " in " << dir << " does not divide " << n);
      t.p2 = L.get(q + "p2", {n2, n2});
      if (m.checkpoint->has(h1)) t.p1 = L.get(q + "p1", {n / n2, n / n2});
      else SQ_CHECK(n2 == n, "tensor " << h2 << " in " << dir << " must be [" << n << ", " << n << "] without " << h1);
    }
    b.act_clip = L.get(p + "act_clip", {kActClipPoints, 2}, /*required=*/false);
    if (b.act_clip.defined()) {
      b.act_clip = b.act_clip.to(at::kFloat);
      SQ_CHECK((b.act_clip > 0).logical_and(b.act_clip <= 1).all().item<bool>(),
               "tensor " << hf_tensor_name(p + "act_clip") << " in " << dir << " has clipping factors outside (0, 1]");
    }
  }
  for (const std::string& n : m.checkpoint->names()) {
    // Rotary caches some exporters write are derived data, not weights.
    if (n.find("rotary_emb.inv_freq") != std::string::npos) continue;
    SQ_CHECK(L.used.count(n), "tensor " << n << " in " << dir << " is not part of a "
                                        << c.architecture << " with this config.json "
                                        << "(wrong num_hidden_layers or architecture?)");
  }
  return m;
}

}  // namespace sq
