// passes/gptq: GPTQ (Frantar et al. 2022, docs/METHODS.md section 5.2) run block by block by the
// sequencer: each linear group's Hessian comes from the quantized student stream.
#include <ATen/ATen.h>

#include "moe.h"
#include "options.h"
#include "sliderquant/pipeline/pass.h"
#include "sliderquant/pipeline/sequencer.h"
#include "sliderquant/pipeline/session.h"
#include "sliderquant/quant/gptq.h"

namespace sq::passes {
namespace {

struct Opts {
  double damp;
  int block_size;
  std::string order, group_params;
  bool static_groups, mse;
  int64_t min_expert_tokens;
  bool calibrate_all_experts;
  std::string starved_fallback;
};

const std::vector<OptionSpec>& options() {
  static std::vector<OptionSpec> t = {
      option("damp", &Opts::damp, 0.01, in_unit_open(), "Hessian dampening, a share of the mean diagonal"),
      read_as<int64_t>(option("block_size", &Opts::block_size, 128, positive(), "columns per lazy batch update")),
      option("order", &Opts::order, "natural",
             {"natural | act_order | group_preserving",
              [](const nlohmann::json& v) {
                const std::string o = v.get<std::string>();
                return o == "natural" || o == "act_order" || o == "group_preserving"
                           ? std::string()
                           : " '" + o + "' unknown (natural, act_order, group_preserving)";
              }},
             "column order: as stored, by decreasing Hessian diagonal, or that within fixed groups"),
      option("static_groups", &Opts::static_groups, false, "group scales from the original weights up front"),
      option("group_params", &Opts::group_params, "current",
             {"current | block_start",
              [](const nlohmann::json& v) {
                const std::string o = v.get<std::string>();
                return o == "current" || o == "block_start" ? std::string()
                                                            : " '" + o + "' unknown (current, block_start)";
              }},
             "dynamic group scales from the group's current columns, or from its columns as they stood when "
             "the lazy block began (IST-DASLab gptq.py, GPTQModel)"),
      option("mse", &Opts::mse, false, "MSE clip search for the group scales")};
  static const bool moe = (add_moe_options<Opts>(t), true);
  (void)moe;
  return t;
}

GptqOrder parse_order(const std::string& s) {
  return s == "act_order" ? GptqOrder::ActOrder : s == "group_preserving" ? GptqOrder::GroupPreserving : GptqOrder::Natural;
}

void run(Session& s, const nlohmann::json& json) {
  const Opts o = read_options<Opts>(options(), json);
  GptqOptions g;
  g.percdamp = o.damp;
  g.block_size = o.block_size;
  g.order = parse_order(o.order);
  g.static_groups = o.static_groups;
  g.params_at_block_start = o.group_params == "block_start";
  g.clip.enabled = o.mse;
  SequencerOptions so;
  apply_moe_options(o, so);
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
                             true, options(), nullptr, run};
  return info;
}

}  // namespace sq::passes
