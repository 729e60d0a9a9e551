// passes/registry: the explicit table of quantization passes (no static self-registration).
// Add a method here.
#include "sliderquant/core/error.h"
#include "sliderquant/pipeline/pass.h"
#include "sliderquant/pipeline/recipe.h"

namespace sq {
namespace passes {
const PassInfo& rtn_pass();
const PassInfo& gptq_pass();
const PassInfo& d2quant_pass();
const PassInfo& sliderquant_pass();
const PassInfo& adaptive_pass();
const PassInfo& ratio_pass();
}  // namespace passes

const std::vector<const PassInfo*>& pass_registry() {
  static const std::vector<const PassInfo*> all = {&passes::rtn_pass(), &passes::gptq_pass(),
                                                       &passes::d2quant_pass(), &passes::sliderquant_pass(),
                                                       &passes::adaptive_pass(), &passes::ratio_pass()};
  return all;
}

const PassInfo& find_pass(const std::string& name) {
  std::string known;
  for (const PassInfo* p : pass_registry()) {
    if (p->name == name) return *p;
    known += (known.empty() ? "" : ", ") + p->name;
  }
  SQ_FAIL("unknown pass '" << name << "' (known: " << known << ")");
}

std::vector<std::string> check_recipe_passes(const Recipe& recipe, const std::vector<LinearPlan>& plan) {
  std::vector<std::string> warnings;
  bool quantizes = plan.empty();  // no model given: the order checks assume the recipe quantizes
  for (const LinearPlan& p : plan) quantizes = quantizes || p.format.has_value();
  struct Step {
    const PassInfo* info;
    nlohmann::json options;
    PassEffects fx;
    std::string where;
  };
  const std::string label = recipe.path.empty() ? recipe.name : recipe.path;
  std::vector<Step> steps;
  for (size_t i = 0; i < recipe.passes.size(); ++i) {
    const PassInfo& info = find_pass(recipe.passes[i].name);
    nlohmann::json o = nlohmann::json::parse(recipe.passes[i].options_json);
    const std::string where = label + " pipeline[" + std::to_string(i) + "] (" + info.name + ")";
    steps.push_back({&info, o, info.effects ? info.effects(o) : PassEffects{}, where});
  }
  for (size_t j = 0; j < steps.size(); ++j)
    for (size_t i = 0; i < j; ++i) {
      const Step &a = steps[i], &b = steps[j];
      if (!quantizes || !a.fx.sets_codes) continue;
      SQ_CHECK(!b.fx.needs_unquantized, b.where << " needs linears no pass has quantized yet, but " << a.where
                                                << " quantizes them first: put " << b.info->name << " first");
      if (!b.fx.sets_codes) continue;
      SQ_CHECK(a.fx.other_effects, a.where << " is discarded: " << b.where
                                           << " quantizes the same linears again from their full-precision "
                                              "weights; remove "
                                           << a.info->name << " from the pipeline");
      warnings.push_back(a.where + ": its weight codes are replaced by " + b.where +
                         "'s; only its other effects (transforms, activation quantizers, corrections) remain" +
                         (a.info->name == "adaptive" ? " (set its \"weights\" to \"none\" to skip the rounding)" : ""));
    }
  bool coded = false;
  for (const Step& st : steps) coded = coded || st.fx.sets_codes;
  if (quantizes && !coded)
    warnings.push_back(label +
                       ": no pass writes weight codes, so the weights stay in full precision (a pass with "
                       "\"weights\": \"none\" expects a gptq or rtn pass after it)");
  for (const Step& st : steps)
    if (st.info->check_plan && !plan.empty()) st.info->check_plan(st.options, plan, st.where, warnings);
  return warnings;
}

}  // namespace sq
