// model/synthetic: seeded random checkpoints in the HF layout. Linear and embedding weights
// are N(0, 0.02) (the HF initializer_range), norms 1 + N(0, 0.1), biases N(0, 0.02); every
// tensor draws from its own generator seeded by (seed, tensor index), so a checkpoint is
// reproducible bit for bit whatever the order of generation.
#include "sliderquant/model/synthetic.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <sys/stat.h>

#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/io/safetensors.h"

namespace sq {

std::vector<std::string> synthetic_presets() {
  std::vector<std::string> r = {"tiny", "tiny256"};
  for (const ArchSpec* a : arch_registry())
    for (const ShapePreset& p : a->presets) r.push_back(p.name);
  return r;
}

ModelConfig synthetic_config(const std::string& family_in, const std::string& preset) {
  ModelConfig c;
  std::string family = family_in;
  c.rms_norm_eps = 1e-5;
  if (preset == "tiny") {  // any family
    if (family.empty()) family = "llama";
    c.hidden_size = 64; c.intermediate_size = 128; c.num_layers = 2; c.num_heads = 4; c.num_kv_heads = 2;
    c.head_dim = 16; c.vocab_size = 512; c.max_position_embeddings = 256;
  } else if (preset == "tiny256") {  // any family; rows fill whole 256-wide ggml k-quant blocks
    if (family.empty()) family = "llama";
    c.hidden_size = 256; c.intermediate_size = 512; c.num_layers = 2; c.num_heads = 4; c.num_kv_heads = 2;
    c.head_dim = 64; c.vocab_size = 512; c.max_position_embeddings = 256;
  } else {
    const ShapePreset* found = nullptr;
    std::string owner;
    for (const ArchSpec* a : arch_registry())
      for (const ShapePreset& p : a->presets)
        if (p.name == preset) found = &p, owner = a->family;
    if (!found) {
      std::string names;
      for (const auto& p : synthetic_presets()) names += (names.empty() ? "" : ", ") + p;
      throw UsageError("unknown synthetic preset '" + preset + "' (known: " + names + ")");
    }
    SQ_CHECK(family.empty() || family == owner, "preset '" << preset << "' is a " << owner << " model, not " << family);
    family = owner;
    const ShapePreset& p = *found;
    c.hidden_size = p.hidden; c.intermediate_size = p.intermediate; c.num_layers = p.layers; c.num_heads = p.heads;
    c.num_kv_heads = p.kv_heads; c.head_dim = p.head_dim > 0 ? p.head_dim : p.hidden / p.heads;
    c.vocab_size = p.vocab; c.max_position_embeddings = p.context; c.rope_theta = p.rope_theta;
    c.rms_norm_eps = p.rms_norm_eps; c.rope_scaling = p.rope_scaling; c.sliding_window = p.sliding_window;
    c.num_experts = p.experts; c.experts_per_token = p.experts_per_token; c.moe_intermediate_size = p.moe_intermediate;
  }
  const ArchSpec& spec = find_family(family);
  if (spec.moe && c.num_experts == 0) {  // tiny presets of a MoE family: 4 experts, top 2, half-width experts
    c.num_experts = 4;
    c.experts_per_token = 2;
    c.moe_intermediate_size = c.intermediate_size / 2;
    c.norm_topk_prob = true;
  }
  if (spec.moe && spec.moe->shared_gate.size() > 0 && c.shared_expert_intermediate_size == 0)
    c.shared_expert_intermediate_size = c.intermediate_size;
  c.family = family;
  c.architecture = spec.architectures[0];
  c.tie_word_embeddings = false;
  c.bos_token_id = 1;
  c.eos_token_ids = {2};
  // The family's own switches (q/k norms, biases) as its config parser sets them.
  return parse_model_config(model_config_json(c), "synthetic " + family + " " + preset);
}

namespace {

void copy_file(const std::string& from, const std::string& to) { write_file_atomic(to, read_file(from)); }

}  // namespace

void write_synthetic_model(const std::string& dir, const ModelConfig& c, const SyntheticOptions& o) {
  if (!is_directory(dir)) SQ_CHECK(::mkdir(dir.c_str(), 0755) == 0, "cannot create directory " << dir);
  ModelConfig cfg = c;
  cfg.torch_dtype = dtype_name(o.dtype);
  NamedTensors ts;
  uint64_t counter = 0;
  auto add = [&](const std::string& canonical, std::vector<int64_t> shape, double mean, double std) {
    auto gen = at::detail::createCPUGenerator(o.seed * 1000003ULL + counter++);
    at::Tensor t = at::normal(mean, std, shape, gen, at::TensorOptions().dtype(at::kFloat)).to(o.dtype);
    ts.emplace_back(hf_tensor_name(canonical, c.family), t);
  };
  const int64_t H = c.hidden_size;
  const ArchSpec& spec = find_family(c.family);
  add("embed", {c.vocab_size, H}, 0, 0.02);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    const BlockLayout& lay = block_layout(spec, c, i);
    const std::string p = "blocks." + std::to_string(i) + ".";
    // One half of the block: the weights of its slots, then their biases, in table order.
    auto half = [&](bool attention) {
      for (int pass = 0; pass < 2; ++pass)
        for (int j = 0; j < lay.size(); ++j) {
          const LinearSlot& sl = lay.slots[size_t(j)];
          if ((sl.group == TapPoint::QkvIn || sl.group == TapPoint::OIn) != attention) continue;
          const int64_t out = lay.out_features(j, c), in = lay.in_features(j, c);
          if (pass == 0) add(p + sl.name, {out, in}, 0, 0.02);
          else if (has_bias(sl.bias, c)) add(p + sl.name + ".bias", {out}, 0, 0.02);
        }
    };
    add(p + "attn_norm", {H}, 1, 0.1);
    half(true);
    if (c.qk_norm) {
      add(p + "attn.q_norm", {c.head_dim}, 1, 0.1);
      add(p + "attn.k_norm", {c.head_dim}, 1, 0.1);
    }
    add(p + "mlp_norm", {H}, 1, 0.1);
    half(false);
  }
  add("final_norm", {H}, 1, 0.1);
  if (!c.tie_word_embeddings) add("lm_head", {c.vocab_size, H}, 0, 0.02);
  write_checkpoint(dir, ts, {{"format", "pt"}, {"generator", "sliderquant synth seed " + std::to_string(o.seed)}},
                   o.max_shard_bytes);
  write_file_atomic(path_join(dir, "config.json"), model_config_json(cfg));
  write_file_atomic(path_join(dir, "generation_config.json"),
                    "{\n  \"bos_token_id\": " + std::to_string(c.bos_token_id) + ",\n  \"eos_token_id\": " +
                        std::to_string(c.eos_token_ids.empty() ? -1 : c.eos_token_ids[0]) + "\n}\n");
  if (!o.tokenizer_from.empty()) {
    std::string src = is_directory(o.tokenizer_from) ? o.tokenizer_from : parent_dir(o.tokenizer_from);
    bool any = false;
    for (const char* f : {"tokenizer.model", "tokenizer_config.json", "tokenizer.json", "tokenizer.json.xz",
                          "encoder.json", "vocab.bpe"}) {
      if (path_exists(path_join(src, f))) {
        copy_file(path_join(src, f), path_join(dir, f));
        any = true;
      }
    }
    SQ_CHECK(any, "no tokenizer files (tokenizer.model, tokenizer.json) in " << src);
  }
}

}  // namespace sq
