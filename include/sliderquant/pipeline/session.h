// pipeline/session: everything a pass works with: the model, the recipe and its per-linear
// plan, the calibration set, the device and dtypes, the work directory (for resume), the
// quantized results, and per-phase timings for the report.
#pragma once
#include <c10/core/ScalarType.h>

#include <nlohmann/json_fwd.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "sliderquant/data/dataset.h"
#include "sliderquant/model/forward.h"
#include "sliderquant/model/model.h"
#include "sliderquant/model/quantized_weight.h"
#include "sliderquant/pipeline/recipe.h"
#include "sliderquant/quant/format.h"
#include "sliderquant/quant/mixed.h"

namespace sq {

struct Session {
  Model& model;
  const Recipe& recipe;
  std::vector<LinearPlan> plan;
  const CalibrationSet* calib = nullptr;
  RunnerOptions runner;                       // device and dtype of calibration forwards
  c10::ScalarType store_dtype = c10::kFloat;  // dtype of the activation streams in host memory
  // Learned passes (window training): false = weights and block forwards in runner.dtype;
  // true = master weights, learned parameters and forwards in float32 with the matrix products
  // under bfloat16 autocast (the official SliderQuant code's CUDA setting; quantize --autocast).
  bool train_autocast = false;
  int64_t batch_size = 1;                     // calibration windows per forward
  std::string work_dir;                       // "" = no checkpoints, no resume
  // Content fingerprints of the inputs that change results beyond recipe and calibration
  // tokens (the model's files, core/fs content_fingerprint), set by the caller; part of the
  // work identity, so a model changed in place is never resumed from a stale checkpoint.
  std::string input_fingerprints = "{}";     // a JSON object
  bool resume_strict = false;                 // a checkpoint of other inputs: refuse (true) or start over
  std::map<std::string, QTensor> quantized;   // canonical linear name -> result
  std::map<std::string, MixedQTensor> mixed;  // two-width results (never also in `quantized`)
  std::map<std::string, double> seconds;      // phase -> wall time
  std::map<std::string, std::vector<double>> metrics;  // per-step series for the report (losses, ...)

  Session(Model& m, const Recipe& r);
  // The dtype learned passes build their block weights in (float32 under autocast).
  c10::ScalarType train_dtype() const { return train_autocast ? c10::kFloat : runner.dtype; }
  const LinearPlan* plan_for(const std::string& linear) const;  // nullptr if not a block linear
  Linear& linear(const std::string& canonical);
  Block& linear_block(const std::string& canonical);  // the block a "blocks.{i}...." name is in
  // Records the result and makes the forward pass use it from now on.
  void set_quantized(const std::string& linear, QTensor q);
  void set_quantized(const std::string& linear, MixedQTensor q);
  bool is_quantized(const std::string& linear) const { return quantized.count(linear) || mixed.count(linear); }
  // What a checkpoint in work_dir must match to be resumed: the model's content, recipe and
  // calibration hashes, device dtype, autocast, and the program's version.
  nlohmann::json work_identity() const;
  // Whether the checkpoint FILE, saved under SAVED identity, may be resumed now that the
  // identity is EXPECTED: equal -> true; otherwise logs which inputs changed and returns false
  // (start over), or throws Error naming them when resume_strict.
  bool may_resume(const nlohmann::json& saved, const nlohmann::json& expected, const std::string& file) const;
  // "delete the work directory to start over: rm -r -- 'WORK'" (for errors about checkpoints).
  std::string clear_work_hint() const;
  // Parses the JSON checkpoint state FILE; a damaged one is an Error naming it, with the hint.
  nlohmann::json read_work_json(const std::string& file) const;
};

// Runs the recipe's passes in order (each pass reads the session and fills `quantized`).
void run_passes(Session& s);

}  // namespace sq
