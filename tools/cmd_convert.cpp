// tools/cmd_convert: `sliderquant convert IN --out DIR` (any readable model, e.g. a GGUF file,
// to a plain Hugging Face directory every other command takes) and `sliderquant export MODEL
// --format F --out OUT` (a model, quantized or not, in another registered format: its
// quantized linears keep their codes where the format holds them exactly).
#include <ATen/ATen.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "sliderquant/core/error.h"
#include "sliderquant/core/log.h"
#include "sliderquant/core/util.h"
#include "sliderquant/formats/model_format.h"
#include "sliderquant/io/gguf.h"
#include "sliderquant/model/quantized_weight.h"

namespace sq::cli {
namespace {

void cast_model(Model& m, c10::ScalarType dt) {
  auto cast = [dt](at::Tensor& t) {
    if (t.defined() && t.is_floating_point()) t = t.to(dt).contiguous();
  };
  const bool tied = m.config.tie_word_embeddings;
  cast(m.embed);
  cast(m.final_norm);
  cast(m.final_norm_bias);
  if (tied) m.lm_head.weight = m.embed;
  else cast(m.lm_head.weight);
  for (Block& b : m.blocks) {
    cast(b.attn_norm);
    cast(b.q_norm);
    cast(b.k_norm);
    cast(b.mlp_norm);
    cast(b.mlp_norm_bias);
    for (Linear* l : b.linears()) {
      cast(l->weight);
      cast(l->bias);
    }
  }
  m.config.torch_dtype = dtype_name(dt);
}

// The quantized linears of a loaded model, as the format writers take them.
void collect_quantized(const Model& m, std::map<std::string, QTensor>& q, std::map<std::string, MixedQTensor>& mixed) {
  auto take = [&](const Linear& l) {
    if (auto* w = dynamic_cast<const QTensorWeight*>(l.override_.get())) q[l.name] = w->qtensor();
    else if (auto* x = dynamic_cast<const MixedQTensorWeight*>(l.override_.get())) mixed[l.name] = x->mixed();
  };
  for (const Block& b : m.blocks)
    for (const Linear* l : b.linears()) take(*l);
  take(m.lm_head);
}

}  // namespace

int cmd_convert(const ConvertArgs& a, const CommonArgs& common) {
  apply_common(common);
  const c10::ScalarType dt = parse_dtype(a.dtype);
  SQ_CHECK(dt == at::kFloat || dt == at::kBFloat16 || dt == at::kHalf,
           "--dtype must be float32, bfloat16 or float16 (got " << a.dtype << ")");
  const ModelFormat& hf = find_format("hf");
  check_apart_from_source(a.out, "--out", a.in);
  if (path_exists(a.out) && !a.force) throw UsageError(a.out + " already exists (use --force to replace it)");
  Model m = load_any_model(a.in);
  SQ_CHECK(!detect_format(a.in).describe(a.in).value("quantized", false) || is_gguf_file(a.in),
           a.in << " holds packed quantized linears; `export --format` writes them in another format");
  cast_model(m, dt);
  FormatWriteOptions wo;
  wo.force = a.force;
  hf.write(m, {}, {}, a.out, wo);
  SQ_INFO("wrote " << a.out << " (" << m.config.architecture << ", " << m.config.num_layers << " layers, "
                   << dtype_name(dt) << ")");
  return 0;
}

int cmd_export(const ExportArgs& a, const CommonArgs& common) {
  apply_common(common);
  const ModelFormat& f = find_format(a.format);
  if (!a.json.empty()) check_writable_file(a.json, "--json");
  check_apart_from_source(a.out, "--out", a.model);
  if (path_exists(a.out) && !a.force) throw UsageError(a.out + " already exists (use --force to replace it)");
  Model m = load_any_model(a.model);
  std::map<std::string, QTensor> q;
  std::map<std::string, MixedQTensor> mixed;
  collect_quantized(m, q, mixed);
  SQ_CHECK(f.stores_quantized || (q.empty() && mixed.empty()),
           "format " << f.name << " cannot store quantized linears and " << a.model << " has "
                     << q.size() + mixed.size());
  nlohmann::json report = nlohmann::json::object();
  FormatWriteOptions wo;
  wo.force = a.force;
  wo.requant_type = a.gguf_type;
  wo.checkpoint_format = a.gptq_format;
  wo.report = &report;
  // A native source's run report (recipe, calibration) travels into formats that keep one.
  if (std::string(detect_format(a.model).name) == "native") {
    const nlohmann::json described = detect_format(a.model).describe(a.model);
    if (described.contains("metadata") && described["metadata"].is_object()) wo.extra_json = described["metadata"].dump();
  }
  SQ_CHECK(a.gguf_type.empty() || std::string(f.name) == "gguf", "--gguf-type applies to --format gguf only");
  SQ_CHECK(a.gptq_format.empty() || std::string(f.name) == "gptq", "--gptq-format applies to --format gptq only");
  f.write(m, q, mixed, a.out, wo);
  report["source"] = a.model;
  report["quantized_linears"] = q.size() + mixed.size();
  SQ_INFO("wrote " << a.out << " (" << f.name << ", " << q.size() + mixed.size() << " quantized linears)");
  if (report.contains("max_abs_error_exact") && !q.empty())
    SQ_INFO("largest error added to a linear stored exactly: " << report["max_abs_error_exact"].get<double>()
                                                              << " (fp16 rounding of GGUF's block minimum)");
  if (!a.json.empty()) write_file_atomic(a.json, report.dump(2) + "\n");
  return 0;
}

}  // namespace sq::cli
