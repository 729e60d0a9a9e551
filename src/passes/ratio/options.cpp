// passes/ratio/options: the ratio pass's option table, its checks across options, and its
// registry entry.
#include <cmath>

#include "../options.h"
#include "ratio.h"
#include "sliderquant/core/error.h"

namespace sq::passes {
namespace ratio {

const std::vector<OptionSpec>& options() {
  static const std::vector<OptionSpec> t = {
      option("ratios", &Opts::ratios, std::vector<double>{0.02, 0.05, 0.10, 0.15, 0.20},
             {"non-empty, each in (0, 1)",
              [](const nlohmann::json& v) {
                const auto r = v.get<std::vector<double>>();
                if (r.empty()) return std::string(" must not be empty");
                for (double x : r)
                  if (!(x > 0 && x < 1)) return std::string(" must lie in (0, 1)");
                return std::string();
              }},
             "candidate shares of high-precision input channels per linear"),
      option("target_bits", &Opts::target_bits, 0.0,
             "bits per weight over the quantized linears (required for the search)"),
      option("fixed_ratio", &Opts::fixed_ratio, -1.0,
             {"(0, 1), or < 0 for the search",
              [](const nlohmann::json& v) {
                const double f = v.get<double>();
                return f < 0 || (f > 0 && f < 1) ? std::string() : std::string(" must lie in (0, 1) (absent = search)");
              }},
             "every layer at this ratio, no search (absent or < 0: search)"),
      option("hi_bits_delta", &Opts::hi_bits_delta, 1,
             {"1..6",
              [](const nlohmann::json& v) {
                const int64_t d = v.get<int64_t>();
                return d >= 1 && d <= 6 ? std::string() : std::string(" must be 1..6");
              }},
             "high-precision bits over the format's"),
      option("score", &Opts::score, "fisher", one_of({"fisher", "hessian"}),
             "channel score: empirical Fisher or Hessian diagonal"),
      option("score_samples", &Opts::score_samples, 0, at_least(0, " (0 = all)"),
             "calibration windows for the scores (0 = all)"),
      option("probe", &Opts::probe, "block", one_of({"block", "lm"}), "probe loss: block output MSE or LM loss"),
      option("probe_samples", &Opts::probe_samples, 8, at_least(1), "calibration windows of the probes"),
      option("probe_budget", &Opts::probe_budget, 0, at_least(0, " (0 = unlimited)"),
             "most probe forwards (0 = unlimited)"),
      option("probe_quantizer", &Opts::probe_quantizer, "rtn", one_of({"rtn", "gptq"}),
             "how probe weights are quantized"),
      option("probe_base_ratio", &Opts::probe_base_ratio, 0.0, OptionRange{"0 or one of the ratios", nullptr},
             "context of the probes: every other linear at this ratio (0 = full precision)"),
      option("probe_scale", &Opts::probe_scale, "none", one_of({"none", "lm"}),
             "scale each block's block-loss probes to LM loss units"),
      option("quantizer", &Opts::quantizer, "hybrid",
             one_of({"gptq", "rtn", "hybrid"}, "\"gptq\", \"hybrid\" (AdaRound + LWC) or \"rtn\""),
             "final rounding: AdaRound + LWC, mixed GPTQ or mixed RTN"),
      option("damp", &Opts::damp, 0.01, in_unit_open(), "Hessian dampening, a share of the mean diagonal"),
      option("block_size", &Opts::block_size, 128, positive(), "GPTQ columns per lazy batch update"),
      option("epochs", &Opts::epochs, 20, at_least(0), "hybrid: training epochs per layer"),
      option("batch", &Opts::batch, 4, at_least(1), "hybrid: calibration samples per optimizer step"),
      option("round_lr", &Opts::round_lr, 5e-2, at_least(0), "hybrid: learning rate of the AdaRound variables"),
      option("lwc_lr", &Opts::lwc_lr, 5e-2, at_least(0), "hybrid: learning rate of the low part's clipping"),
      option("lwc_init", &Opts::lwc_init, 4.0, "hybrid: initial clipping logit"),
      option("round_reg", &Opts::round_reg, 0.05, at_least(0), "hybrid: weight of the rounding regulariser"),
      option("warmup", &Opts::warmup, 0.2,
             {"[0, 1)",
              [](const nlohmann::json& v) {
                const double w = v.get<double>();
                return w < 0 ? std::string(" must be >= 0") : w >= 1 ? std::string(" must be < 1") : std::string();
              }},
             "hybrid: share of the steps before the regulariser starts"),
      option("beta_start", &Opts::beta_start, 20.0, at_least(0), "hybrid: regulariser beta at the start"),
      option("beta_end", &Opts::beta_end, 2.0, at_least(0), "hybrid: regulariser beta at the end"),
      option("seed", &Opts::seed, 0, "hybrid: shuffling seed")};
  return t;
}

// The checks across options; then the resolved form keeps the hybrid options only for the
// hybrid quantizer, and fixed_ratio or target_bits, whichever applies.
void finish_options(nlohmann::json& j, const std::string& where) {
  const double fixed = j["fixed_ratio"].get<double>();
  if (fixed < 0)
    SQ_CHECK(j["target_bits"].get<double>() > 0,
             where << ": target_bits (bits per weight over the quantized linears) is required for the ratio search");
  const double pb = j["probe_base_ratio"].get<double>();
  bool listed = false;
  for (double r : j["ratios"].get<std::vector<double>>()) listed = listed || std::abs(r - pb) < 1e-12;
  SQ_CHECK(pb == 0 || listed, where << ": probe_base_ratio must be 0 (full-precision context) or one of the ratios");
  SQ_CHECK(j["probe_scale"] == "none" || j["probe"] == "block",
           where << ": probe_scale \"lm\" scales the block probe (probe \"block\")");
  if (j["quantizer"] != "hybrid")
    for (const char* k : {"epochs", "batch", "round_lr", "lwc_lr", "lwc_init", "round_reg", "warmup", "beta_start",
                          "beta_end", "seed"})
      j.erase(k);
  j.erase(fixed >= 0 ? "target_bits" : "fixed_ratio");
}

}  // namespace ratio

const PassInfo& ratio_pass() {
  static const PassInfo info{"ratio",
                             "layer-wise high-impact channel ratios (Fisher/Hessian scores, probed loss increases, exact "
                             "IQP under a bit budget), then hybrid rounding (AdaRound + LWC), mixed GPTQ or RTN per layer",
                             true, ratio::options(), ratio::finish_options, ratio::run,
                             [](const nlohmann::json&) {  // scores and probes need the linears unquantized
                               return PassEffects{true, false, true};
                             },
                             ratio::check_plan};
  return info;
}

}  // namespace sq::passes
