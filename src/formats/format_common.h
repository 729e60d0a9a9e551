// formats/format_common: what the format rows share (private to src/formats/): the atomic
// output directory, the source's config and tokenizer files, the refusal of linears a format
// cannot store, and the rows themselves for the registry's table.
#pragma once
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "sliderquant/formats/model_format.h"

namespace sq::formats {

// Fails (UsageError) when OUT exists and FORCE is off, or when OUT cannot be created.
void check_output(const std::string& out, bool force);
// Runs FILL on an empty OUT.tmp.<pid> and renames it to OUT (replacing an existing OUT);
// on any error the temporary directory is removed and OUT is left as it was.
void write_dir_atomic(const std::string& out, const std::function<void(const std::string& tmp)>& fill);
// config.json of M's source (tie_word_embeddings patched in, since a transform may untie),
// and generation_config.json and the tokenizer files as in the source, into DIR.
void copy_source_files(const Model& m, const std::string& dir);
// Error "FORMAT cannot store NAME (FMT): REASON" for the first linear whose cannot_store
// (or cannot_store_mixed) is not empty; also refuses a name in both maps.
void check_storable(const ModelFormat& f, const std::map<std::string, QTensor>& quantized,
                    const std::map<std::string, MixedQTensor>& mixed);
// DIR holds safetensors weights (model.safetensors, an index, or any *.safetensors file).
bool has_safetensors(const std::string& dir);
// The shared part of describe(): format, summary, dir, architecture, family, parameters,
// and empty "linears"/"formats" with quantized = false.
nlohmann::json describe_common(const ModelFormat& f, const std::string& dir);

// Refuses (Error "FORMAT cannot store ...: REASON") the parts of M's state a checkpoint of
// FORMAT cannot express: online transforms, learned activation clipping, norm biases, and
// activation / KV-cache quantization unless ALLOW_ACTIVATIONS (the caller then checks what
// its schema can say). WHY_NOT ends each reason ("not part of a plain HF model").
void check_plain_state(const Model& m, const char* format, bool allow_activations, const std::string& why_not);
// Throws when M has mixture-of-experts blocks that FORMAT's checkpoints cannot carry to the
// loader people use: any MoE model when LOADABLE is empty; otherwise a family outside LOADABLE
// (the families LOADER was shown to load per-expert linears of, tests/hfquant case moe), or a
// model with dense MLP layers among its MoE layers.
void refuse_moe_export(const Model& m, const char* format, const std::vector<std::string>& loadable = {},
                       const char* loader = "");
// The quantized linears' module names as HF names them ("model.layers.0.self_attn.q_proj",
// "lm_head"): canonical -> module, and every linear of M (quantized or not) in model order.
std::string hf_module_name(const std::string& canonical, const std::string& family = "");
std::vector<std::string> linear_names(const Model& m);  // canonical names, blocks then lm_head
// True when Q has no g_idx or the one it has is the natural j / group width (no act-order).
bool contiguous_groups(const QTensor& q);
// Q as a plain uniform format when it is one in disguise: the legacy ggml zero-form grids
// q4_0 / q5_0 / q8_0 are w4g32s / w5g32s / w8g32s exactly (fp16 scale d per 32 columns,
// zero 2^(bits-1)); anything else is returned as it is.
QTensor uniform_view(const QTensor& q);
std::map<std::string, QTensor> uniform_view(const std::map<std::string, QTensor>& qs);
// config.json's quantization_config of DIR (or the object under ALT_KEY when that is absent),
// null when DIR has no readable config.json or it holds neither object. For detect().
nlohmann::json try_quantization_config(const std::string& dir, const char* alt_key = nullptr);
// "" when Q's scales and zeros are present, finite and fit float16; else why not.
std::string scale_problem(const QTensor& q);
// A regular expression matching exactly NAME (dots escaped), anchored "^...$".
std::string exact_regex(const std::string& name);
// config.json of DIR as JSON (Error naming the file when it is not a JSON object).
nlohmann::json read_config_json(const std::string& dir);

// Sets D["bits_per_weight_quantized_linears"] from D["linears"] (shape and bits_per_weight).
void add_mean_bits(nlohmann::json& d);

// The rows (src/formats/native.cpp, hf.cpp, gguf.cpp, gptq.cpp, compressed_tensors.cpp).
ModelFormat native_format();
ModelFormat hf_format();
ModelFormat gguf_format();
ModelFormat gptq_format();
ModelFormat compressed_tensors_format();
// The ModelConfig a GGUF file's metadata describes (src/formats/gguf.cpp).
ModelConfig gguf_config(const std::string& path);

}  // namespace sq::formats
