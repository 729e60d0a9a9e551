// passes/d2quant: D²Quant (Yan et al., arXiv 2602.02546; METHODS.md section 2.2):
// groupwise randomized Hadamard rotation of the residual stream (fused, exact), then
// layer-sequential GPTAQ (GPTQ with the full-precision inputs' cross term) with the
// Hessian-guided group-preserving column order and MSE clip search; the down projection
// may use the dual-scale quantizer (a "d" format such as w2g128d, set in the recipe) whose
// per-column scale is absorbed into the rows of up_proj; and DAC, the deviation-aware
// mean-shift correction, as output biases of the post-attention norm and the final norm.
#include <ATen/ATen.h>

#include "options.h"
#include "sliderquant/core/log.h"
#include "sliderquant/pipeline/pass.h"
#include "sliderquant/pipeline/sequencer.h"
#include "sliderquant/pipeline/session.h"
#include "sliderquant/quant/dsq.h"
#include "sliderquant/quant/gptq.h"
#include "sliderquant/transform/rotation.h"

namespace sq::passes {
namespace {

void validate(const nlohmann::json& o, const std::string& where) {
  check_keys(o, {"rotate", "rotation_block", "seed", "gptaq", "dac", "dac_clip", "mse", "damp", "block_size"}, where);
  get_or<bool>(o, "rotate", true, where);
  SQ_CHECK(get_or<int64_t>(o, "rotation_block", 128, where) >= 0, where << ": rotation_block must be >= 0 (0 = full)");
  get_or<uint64_t>(o, "seed", 0, where);
  get_or<bool>(o, "gptaq", true, where);
  get_or<bool>(o, "dac", true, where);
  SQ_CHECK(get_or<double>(o, "dac_clip", 10.0, where) > 0, where << ": dac_clip must be positive");
  get_or<bool>(o, "mse", true, where);
  double damp = get_or<double>(o, "damp", 0.01, where);
  SQ_CHECK(damp >= 0 && damp < 1, where << ": damp must be in [0, 1)");
  SQ_CHECK(get_or<int64_t>(o, "block_size", 128, where) >= 1, where << ": block_size must be positive");
}

nlohmann::json resolve(const nlohmann::json& o) {
  return {{"rotate", o.value("rotate", true)},   {"rotation_block", o.value("rotation_block", 128)},
          {"seed", o.value("seed", 0)},           {"gptaq", o.value("gptaq", true)},
          {"dac", o.value("dac", true)},          {"dac_clip", o.value("dac_clip", 10.0)},
          {"mse", o.value("mse", true)},          {"damp", o.value("damp", 0.01)},
          {"block_size", o.value("block_size", 128)}};
}

QTensor to_cpu(const QTensor& q) { return q.to(c10::Device(c10::kCPU)); }

void run(Session& s, const nlohmann::json& o) {
  if (o.value("rotate", true)) {
    const int64_t block = o.value("rotation_block", 128);
    SQ_INFO("d2quant: fusing norms and rotating the residual stream ("
            << (block == 0 ? std::string("full Hadamard") : "block-diagonal Hadamard of " + std::to_string(block))
            << ", seed " << o.value("seed", 0) << ")");
    rotate_model(s.model, block, o.value("seed", uint64_t(0)), s.runner.device);
  }
  const bool gptaq = o.value("gptaq", true);
  const double clip = o.value("dac_clip", 10.0);
  SequencerOptions so;
  so.teacher_stream = gptaq;
  so.cross_terms = gptaq;
  if (o.value("dac", true)) {
    so.before_mlp = [clip](Session& ss, int64_t i, const at::Tensor& shift) {
      ss.model.blocks[size_t(i)].mlp_norm_bias = shift.clamp(-clip, clip).to(at::kCPU, at::kFloat);
    };
    so.after_last = [clip](Session& ss, const at::Tensor& shift) {
      ss.model.final_norm_bias = shift.clamp(-clip, clip).to(at::kCPU, at::kFloat);
    };
  }
  GptqOptions g;
  g.percdamp = o.value("damp", 0.01);
  g.block_size = o.value("block_size", 128);
  g.order = GptqOrder::GroupPreserving;
  g.clip.enabled = o.value("mse", true);
  run_block_sequential(s, so, [&](Session& ss, const GroupInputs& in) {
    for (const std::string& name : in.linears) {
      const QFormat& f = *ss.plan_for(name)->format;
      SQ_CHECK(!f.dsq || (name.size() > 8 && name.compare(name.size() - 8, 8, "mlp.down") == 0),
               "d2quant: DSQ format " << f.name() << " on " << name
                                      << ": DSQ is for mlp.down only (its column scale is absorbed into up_proj)");
      at::Tensor W = ss.linear(name).weight.to(in.H.device(), at::kFloat);
      QTensor q = (in.dXXT.defined() ? gptaq_quantize(W, in.H, in.dXXT, f, g) : gptq_quantize(W, in.H, f, g)).q;
      q = to_cpu(q);
      if (f.dsq && q.col_scale.defined()) {
        // Absorb the column scale into up_proj's rows: down(silu(gate) * up) with up's row j
        // times c_j and down's column j divided by c_j is the same function.
        const std::string up = name.substr(0, name.size() - std::string("down").size()) + "up";
        auto it = ss.quantized.find(up);
        // The scale goes into up's quantization scales, which the block checkpoint records; a
        // full-precision up_proj would lose it on resume, so it is refused.
        SQ_CHECK(it != ss.quantized.end(), "d2quant: DSQ on " << name << " needs " << up
                                               << " quantized too (its column scale is absorbed into up's scales)");
        QTensor uq = it->second;
        SQ_CHECK(!ss.linear(up).bias.defined(), "cannot absorb a DSQ column scale into " << up << " with a bias");
        absorb_column_scale(q, uq);  // up's row scales times c, as stored (fp16)
        ss.set_quantized(up, std::move(uq));
      }
      ss.set_quantized(name, std::move(q));
    }
  });
}

}  // namespace

const PassInfo& d2quant_pass() {
  static const PassInfo info{"d2quant",
                             "D²Quant: groupwise Hadamard rotation, GPTAQ with group-preserving order, "
                             "DSQ down projections (d formats), DAC mean-shift correction",
                             true, validate, resolve, run};
  return info;
}

}  // namespace sq::passes
