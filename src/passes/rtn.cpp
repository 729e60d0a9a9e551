// passes/rtn: round-to-nearest weight quantization of every planned linear (no
// calibration), min-max or with the MSE clip search (METHODS.md sections 0 and 5.1).
#include <ATen/ATen.h>

#include "options.h"
#include "sliderquant/core/progress.h"
#include "sliderquant/pipeline/pass.h"
#include "sliderquant/pipeline/session.h"
#include "sliderquant/quant/rtn.h"

namespace sq::passes {
namespace {

void validate(const nlohmann::json& o, const std::string& where) {
  check_keys(o, {"mse"}, where);
  get_or<bool>(o, "mse", false, where);
}

nlohmann::json resolve(const nlohmann::json& o) { return {{"mse", o.value("mse", false)}}; }

void run(Session& s, const nlohmann::json& o) {
  ClipSearch clip;
  clip.enabled = o.value("mse", false);
  Progress bar("rtn", int64_t(s.plan.size()));
  int64_t k = 0;
  for (const LinearPlan& p : s.plan) {
    ++k;
    if (!p.format) continue;
    Linear& l = s.linear(p.name);
    at::Tensor W = l.weight.to(s.runner.device, at::kFloat);
    s.set_quantized(p.name, rtn_quantize(W, *p.format, clip).to(at::kCPU));
    bar.update(k);
  }
  bar.finish();
}

}  // namespace

const PassInfo& rtn_pass() {
  static const PassInfo info{"rtn", "round-to-nearest (min-max or MSE clip search), no calibration", false,
                             validate, resolve, run};
  return info;
}

}  // namespace sq::passes
