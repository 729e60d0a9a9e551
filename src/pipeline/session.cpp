// pipeline/session: the Session's lookups and the pass loop.
#include "sliderquant/pipeline/session.h"

#include <nlohmann/json.hpp>

#include "sliderquant/core/error.h"
#include "sliderquant/core/log.h"
#include "sliderquant/core/util.h"
#include "sliderquant/pipeline/pass.h"

namespace sq {

Session::Session(Model& m, const Recipe& r) : model(m), recipe(r), plan(plan_linears(r, m.config)) {}

const LinearPlan* Session::plan_for(const std::string& linear) const {
  for (const LinearPlan& p : plan)
    if (p.name == linear) return &p;
  return nullptr;
}

Block& Session::linear_block(const std::string& canonical) {
  size_t dot = canonical.find('.', 7);
  SQ_CHECK(canonical.rfind("blocks.", 0) == 0 && dot != std::string::npos, "not a block tensor: " << canonical);
  int64_t i = std::stoll(canonical.substr(7, dot - 7));
  SQ_CHECK(i >= 0 && i < int64_t(model.blocks.size()), "no block " << i << " for " << canonical);
  return model.blocks[size_t(i)];
}

Linear& Session::linear(const std::string& canonical) {
  for (Linear* l : linear_block(canonical).linears())
    if (l->name == canonical) return *l;
  SQ_FAIL("no linear named " << canonical);
}

namespace {
// The linear NAME of S after checking that a result [out, in] fits it.
Linear& fitting_linear(Session& s, const std::string& name, int64_t out, int64_t in) {
  Linear& l = s.linear(name);
  SQ_CHECK(out == l.weight.size(0) && in == l.weight.size(1), "quantized " << name << " has the wrong shape");
  return l;
}
}  // namespace

void Session::set_quantized(const std::string& name, QTensor q) {
  Linear& l = fitting_linear(*this, name, q.out_features(), q.in_features());
  mixed.erase(name);
  quantized[name] = q;
  l.override_ = std::make_shared<QTensorWeight>(std::move(q));
}

void Session::set_quantized(const std::string& name, MixedQTensor q) {
  Linear& l = fitting_linear(*this, name, q.out_features(), q.in_features());
  quantized.erase(name);
  mixed[name] = q;
  l.override_ = std::make_shared<MixedQTensorWeight>(std::move(q));
}

nlohmann::json Session::work_identity() const {
  return {{"model", model.dir},
          {"recipe_sha256", recipe.sha256()},
          {"calibration_sha256", calib ? calib->sha256 : ""},
          {"device_dtype", dtype_name(runner.dtype)},
          {"train_autocast", train_autocast}};
}

void run_passes(Session& s) {
  for (const PassSpec& p : s.recipe.passes) {
    const PassInfo& info = find_pass(p.name);
    SQ_CHECK(!info.needs_calibration || s.calib != nullptr, "pass '" << p.name << "' needs a calibration set");
    SQ_INFO("pass " << p.name << ": " << info.description);
    info.run(s, nlohmann::json::parse(p.options_json));
  }
}

}  // namespace sq
