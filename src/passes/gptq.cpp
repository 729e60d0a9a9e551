// passes/gptq: GPTQ (Frantar et al. 2022, METHODS.md section 5.2) run block by block by the
// sequencer: each linear group's Hessian comes from the quantized student stream.
#include <ATen/ATen.h>

#include "options.h"
#include "sliderquant/pipeline/pass.h"
#include "sliderquant/pipeline/sequencer.h"
#include "sliderquant/pipeline/session.h"
#include "sliderquant/quant/gptq.h"

namespace sq::passes {
namespace {

GptqOrder parse_order(const std::string& s, const std::string& where) {
  if (s == "natural") return GptqOrder::Natural;
  if (s == "act_order") return GptqOrder::ActOrder;
  if (s == "group_preserving") return GptqOrder::GroupPreserving;
  SQ_FAIL(where << ": order '" << s << "' unknown (natural, act_order, group_preserving)");
}

void validate(const nlohmann::json& o, const std::string& where) {
  check_keys(o, {"damp", "block_size", "order", "static_groups", "mse"}, where);
  double damp = get_or<double>(o, "damp", 0.01, where);
  SQ_CHECK(damp >= 0 && damp < 1, where << ": damp must be in [0, 1)");
  int64_t bs = get_or<int64_t>(o, "block_size", 128, where);
  SQ_CHECK(bs >= 1, where << ": block_size must be positive");
  parse_order(get_or<std::string>(o, "order", "natural", where), where);
  get_or<bool>(o, "static_groups", false, where);
  get_or<bool>(o, "mse", false, where);
}

nlohmann::json resolve(const nlohmann::json& o) {
  return {{"damp", o.value("damp", 0.01)},
          {"block_size", o.value("block_size", 128)},
          {"order", o.value("order", "natural")},
          {"static_groups", o.value("static_groups", false)},
          {"mse", o.value("mse", false)}};
}

void run(Session& s, const nlohmann::json& o) {
  GptqOptions g;
  g.percdamp = o.value("damp", 0.01);
  g.block_size = o.value("block_size", 128);
  g.order = parse_order(o.value("order", "natural"), "gptq");
  g.static_groups = o.value("static_groups", false);
  g.clip.enabled = o.value("mse", false);
  SequencerOptions so;
  run_block_sequential(s, so, [&](Session& ss, const GroupInputs& in) {
    for (const std::string& name : in.linears) {
      const LinearPlan* p = ss.plan_for(name);
      at::Tensor W = ss.linear(name).weight.to(in.H.device(), at::kFloat);
      GptqResult r = gptq_quantize(W, in.H, *p->format, g);
      ss.set_quantized(name, r.q.to(at::kCPU));
    }
  });
}

}  // namespace

const PassInfo& gptq_pass() {
  static const PassInfo info{"gptq", "GPTQ, block by block on the quantized stream (Hessian from calibration)",
                             true, validate, resolve, run};
  return info;
}

}  // namespace sq::passes
