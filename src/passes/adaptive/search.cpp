// passes/adaptive/search: the run: per point the kurtosis selector's choice, or the searched
// one (kept in the work directory so a resumed run does not search again), or one kind
// throughout; then block-wise training and hardening.
#include <nlohmann/json.hpp>

#include "../moe.h"
#include "adaptive.h"
#include "sliderquant/core/interrupt.h"
#include "sliderquant/core/log.h"
#include "sliderquant/core/util.h"
#include "sliderquant/io/safetensors.h"

namespace sq::passes::adaptive {
namespace {

// The search's outcome in the work directory (choices and the trained parameters), so a
// resumed run goes straight to the hard phase; keyed by Session::work_identity.
void save_search(const Session& s, AdaptiveStudent& student, const Kinds& kinds) {
  if (s.work_dir.empty()) return;
  nlohmann::json k = nlohmann::json::array();
  for (const auto& layer : kinds) {
    nlohmann::json row = nlohmann::json::array();
    for (TransformKind t : layer) row.push_back(transform_kind_name(t));
    k.push_back(row);
  }
  write_safetensors(path_join(s.work_dir, "adaptive_search.safetensors"), student.state());
  write_file_atomic(path_join(s.work_dir, "adaptive_search.json"),
                    nlohmann::json{{"identity", s.work_identity()}, {"kinds", k}}.dump(2) + "\n");
}

bool load_search(const Session& s, AdaptiveStudent& student, Kinds& kinds) {
  if (s.work_dir.empty()) return false;
  const std::string jp = path_join(s.work_dir, "adaptive_search.json");
  const std::string tp = path_join(s.work_dir, "adaptive_search.safetensors");
  if (!path_exists(jp) || !path_exists(tp)) return false;
  const nlohmann::json j = s.read_work_json(jp);
  if (!s.may_resume(j.value("identity", nlohmann::json()), s.work_identity(), jp)) return false;
  const nlohmann::json& k = j.at("kinds");
  SQ_CHECK(k.size() == kinds.size(), jp << ": " << k.size() << " layers, the model has " << kinds.size());
  for (size_t l = 0; l < kinds.size(); ++l)
    for (size_t p = 0; p < 4; ++p)
      kinds[l][p] = k.at(l).at(p).get<std::string>() == "rotation" ? TransformKind::Rotation : TransformKind::Affine;
  student.load_state(*SafetensorsFile::open(tp));
  SQ_INFO("adaptive: resuming with the transform search's result from " << s.work_dir);
  return true;
}

}  // namespace

void run(Session& s, const nlohmann::json& json) {
  refuse_moe(s, "the adaptive pass");
  const Opts o = read_options<Opts>(options(), json);
  const int64_t L = s.model.config.num_layers;
  AdaptiveStudent student(s, o);
  for (const auto& [pt, n] : student.forced_affine())
    SQ_INFO("adaptive: " << pt << " (order " << n << ") has no Hadamard split; it gets the affine transform");
  Kinds kurt(static_cast<size_t>(L));
  SelectorOptions so;
  so.heavy_tail = o.heavy_tail == "rotation" ? HeavyTail::ToRotation : HeavyTail::ToAffine;
  for (const TransformChoice& ch : select_model_transforms(s.model, o.beta_attn, o.beta_ffn, so))
    kurt[size_t(ch.block)][size_t(ch.point)] = ch.kind;

  WindowTrainOptions wo;
  for (int64_t l = 0; l < L; ++l) wo.windows.push_back({l, l});
  wo.batch = o.batch;
  wo.seed = o.seed;
  wo.student_inputs_fp = o.fp_inputs;
  if (o.mode == "adaptive" && o.select == "search") {
    Kinds found(static_cast<size_t>(L));
    if (!load_search(s, student, found)) {
      student.searching = true;
      wo.epochs = o.search_epochs;
      wo.label = "adaptive-search";
      train_windows(s, student, wo);
      student.searching = false;
      found = student.searched();
      save_search(s, student, found);
      stop_point("the transform search", s.work_dir);
    }
    int agree = 0, total = 0;
    for (size_t l = 0; l < found.size(); ++l)
      for (size_t p = 0; p < 4; ++p)
        if (student.rotation_ok(int64_t(l), int(p))) agree += found[l][p] == kurt[l][p], ++total;
    SQ_INFO("adaptive: the kurtosis selector agrees with the search at " << agree << " of " << total
                                                                        << " points where both kinds exist");
    s.metrics["adaptive selector agreement"] = {double(agree), double(total)};
    student.set_kinds(found);
  } else {
    const TransformKind all = o.mode == "rotation" ? TransformKind::Rotation : TransformKind::Affine;
    student.set_kinds(o.mode == "adaptive" ? kurt : Kinds(size_t(L), {all, all, all, all}));
  }
  SQ_INFO("adaptive: transforms per layer (qkv_in o_in gate_up_in down_in k_cache v_cache; R rotation, A affine): "
          << student.describe());
  wo.epochs = o.epochs;
  wo.label = "adaptive";
  train_windows(s, student, wo);
  student.finish();
  if (o.weights == "none")
    SQ_INFO("adaptive: weights left transformed in full precision for the next pass (weights: \"none\")");
}

}  // namespace sq::passes::adaptive
