// pipeline/session: the Session's lookups and the pass loop.
#include "sliderquant/pipeline/session.h"

#include <nlohmann/json.hpp>
#include <set>

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
  return {{"inputs", nlohmann::json::parse(input_fingerprints)},
          {"recipe_sha256", recipe.sha256()},
          {"calibration_sha256", calib ? calib->sha256 : ""},
          {"device_dtype", dtype_name(runner.dtype)},
          {"train_autocast", train_autocast},
          {"program", std::string("sliderquant ") + SQ_VERSION}};
}

namespace {
// The keys of A and B (objects) whose values differ, with nested "inputs" named file by file.
void changed_keys(const nlohmann::json& a, const nlohmann::json& b, const std::string& prefix,
                  std::vector<std::string>& out) {
  if (!a.is_object() || !b.is_object()) {
    if (a != b) out.push_back(prefix.empty() ? "the checkpoint format" : prefix);
    return;
  }
  std::set<std::string> keys;
  for (auto it = a.begin(); it != a.end(); ++it) keys.insert(it.key());
  for (auto it = b.begin(); it != b.end(); ++it) keys.insert(it.key());
  for (const std::string& k : keys) {
    const std::string name = prefix.empty() ? k : prefix + "/" + k;
    if (!a.contains(k) || !b.contains(k)) {
      out.push_back(name + (a.contains(k) ? " (gone)" : " (new)"));
    } else if (a[k] != b[k]) {
      if (k == "inputs" || prefix.rfind("inputs", 0) == 0) changed_keys(a[k], b[k], name, out);
      else out.push_back(name);
    }
  }
}

std::string shell_quote(const std::string& s) {
  std::string r = "'";
  for (char c : s) r += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return r + "'";
}
}  // namespace

bool Session::may_resume(const nlohmann::json& saved, const nlohmann::json& expected, const std::string& file) const {
  if (saved == expected) return true;
  std::vector<std::string> diff;
  changed_keys(saved, expected, "", diff);
  std::string list;
  for (const std::string& d : diff) list += (list.empty() ? "" : ", ") + d;
  if (resume_strict)
    SQ_FAIL("the checkpoint " << file << " was made from other inputs (changed: " << list
                              << "); refusing to resume (--resume-strict); " << clear_work_hint());
  SQ_INFO("work directory " << work_dir << " holds a checkpoint of other inputs (changed: " << list
                            << "); starting over");
  return false;
}

std::string Session::clear_work_hint() const {
  return "delete the work directory to start over: rm -r -- " + shell_quote(work_dir);
}

nlohmann::json Session::read_work_json(const std::string& file) const {
  try {
    nlohmann::json j = nlohmann::json::parse(read_file(file));
    SQ_CHECK(j.is_object(), "not a JSON object");
    return j;
  } catch (const std::exception& e) {
    SQ_FAIL("the checkpoint " << file << " is damaged (" << e.what() << "); " << clear_work_hint());
  }
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
