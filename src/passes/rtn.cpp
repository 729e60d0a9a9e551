// passes/rtn: round-to-nearest weight quantization of every planned linear (no
// calibration), min-max or with the MSE clip search (docs/METHODS.md sections 0 and 5.1).
#include <ATen/ATen.h>

#include "options.h"
#include "sliderquant/core/progress.h"
#include "sliderquant/pipeline/pass.h"
#include "sliderquant/pipeline/session.h"
#include "sliderquant/quant/rtn.h"

namespace sq::passes {
namespace {

struct Opts {
  bool mse;
};

const std::vector<OptionSpec>& options() {
  static const std::vector<OptionSpec> t = {
      option("mse", &Opts::mse, false, "search each group's clipping for the least squared error (else min-max)")};
  return t;
}

void run(Session& s, const nlohmann::json& json) {
  const Opts o = read_options<Opts>(options(), json);
  ClipSearch clip;
  clip.enabled = o.mse;
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
                             options(), nullptr, run};
  return info;
}

}  // namespace sq::passes
