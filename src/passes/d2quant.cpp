// passes/d2quant: D²Quant (Yan et al., arXiv 2602.02546; docs/METHODS.md section 2.2):
// groupwise randomized Hadamard rotation of the residual stream (fused, exact), then
// layer-sequential GPTAQ (GPTQ with the full-precision inputs' cross term) with the
// Hessian-guided group-preserving column order and MSE clip search; the down projection
// may use the dual-scale quantizer (a "d" format such as w2g128d, set in the recipe) whose
// per-column scale is absorbed into the rows of up_proj; and DAC, the deviation-aware
// mean-shift correction, as output biases of the post-attention norm and the final norm.
#include <ATen/ATen.h>

#include "moe.h"
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

struct Opts {
  bool rotate;
  int rotation_block;
  int seed;  // the resolved recipe has always stored it as a 32-bit int
  bool gptaq, dac;
  double dac_clip;
  bool mse;
  double damp;
  int block_size;
  int64_t min_expert_tokens;
  bool calibrate_all_experts;
  std::string starved_fallback;
};

const std::vector<OptionSpec>& options() {
  static std::vector<OptionSpec> t = {
      option("rotate", &Opts::rotate, true, "fuse the norms and rotate the residual stream (randomized Hadamard)"),
      read_as<int64_t>(option("rotation_block", &Opts::rotation_block, 128, at_least(0, " (0 = full)"),
                              "Hadamard block size of the rotation (0 = one full Hadamard)")),
      read_as<uint64_t>(option("seed", &Opts::seed, 0, "seed of the rotation's random signs")),
      option("gptaq", &Opts::gptaq, true, "GPTAQ: add the full-precision inputs' cross term to GPTQ"),
      option("dac", &Opts::dac, true, "DAC mean-shift correction as norm output biases"),
      option("dac_clip", &Opts::dac_clip, 10.0, positive(), "clamp of the DAC biases"),
      option("mse", &Opts::mse, true, "MSE clip search for the group scales"),
      option("damp", &Opts::damp, 0.01, in_unit_open(), "Hessian dampening, a share of the mean diagonal"),
      read_as<int64_t>(option("block_size", &Opts::block_size, 128, positive(), "columns per lazy batch update"))};
  static const bool moe = (add_moe_options<Opts>(t), true);
  (void)moe;
  return t;
}

QTensor to_cpu(const QTensor& q) { return q.to(c10::Device(c10::kCPU)); }

void run(Session& s, const nlohmann::json& json) {
  const Opts o = read_options<Opts>(options(), json);
  if (o.rotate) {
    const int64_t block = o.rotation_block;
    SQ_INFO("d2quant: fusing norms and rotating the residual stream ("
            << (block == 0 ? std::string("full Hadamard") : "block-diagonal Hadamard of " + std::to_string(block))
            << ", seed " << o.seed << ")");
    rotate_model(s.model, block, uint64_t(int64_t(o.seed)), s.runner.device);
  }
  const bool gptaq = o.gptaq;
  const double clip = o.dac_clip;
  SequencerOptions so;
  apply_moe_options(o, so);
  so.teacher_stream = gptaq;
  so.cross_terms = gptaq;
  if (o.dac) {
    so.before_mlp = [clip](Session& ss, int64_t i, const at::Tensor& shift) {
      ss.model.blocks[size_t(i)].mlp_norm_bias = shift.clamp(-clip, clip).to(at::kCPU, at::kFloat);
    };
    so.after_last = [clip](Session& ss, const at::Tensor& shift) {
      ss.model.final_norm_bias = shift.clamp(-clip, clip).to(at::kCPU, at::kFloat);
    };
  }
  GptqOptions g;
  g.percdamp = o.damp;
  g.block_size = o.block_size;
  g.order = GptqOrder::GroupPreserving;
  g.clip.enabled = o.mse;
  run_block_sequential(s, so, [&](Session& ss, const GroupInputs& in) {
    for (const std::string& name : in.linears) {
      const QFormat& f = *ss.plan_for(name)->format;
      // The linear whose rows take a DSQ column scale (the layout's one-to-one edge: up -> down).
      const Block& blk = ss.linear_block(name);
      int64_t layer = 0;
      std::string rest;
      split_block_name(name, layer, rest);
      const int producer = blk.layout->column_producer(blk.layout->find(rest));
      SQ_CHECK(!f.dsq || producer >= 0,
               "d2quant: DSQ format " << f.name() << " on " << name
                                      << ": DSQ needs a linear whose input columns another linear produces one to one "
                                         "(the MLP's down projection), which absorbs its column scale");
      at::Tensor W = ss.linear(name).weight.to(in.H.device(), at::kFloat);
      QTensor q = (in.dXXT.defined() ? gptaq_quantize(W, in.H, in.dXXT, f, g) : gptq_quantize(W, in.H, f, g)).q;
      q = to_cpu(q);
      if (f.dsq && q.col_scale.defined()) {
        // Absorb the column scale into the producer's rows: down(silu(gate) * up) with up's
        // row j times c_j and down's column j divided by c_j is the same function.
        const std::string up = blk.slots[size_t(producer)].name;
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
                             true, options(), nullptr, run,
                             [](const nlohmann::json&) {  // rotation absorbed, mean-shift corrections
                               return PassEffects{true, true, false};
                             }};
  return info;
}

}  // namespace sq::passes
