// passes/ratio/allocate: the run: the quantized linears and their candidate channel counts,
// scores (1) and probes (2), 3. the exact IQP for the ratios within target_bits (or the
// fixed ratio), the choice recorded in the work directory, then the final quantization (4).
#include <cmath>
#include <cstdint>
#include <iomanip>
#include <sstream>

#include <nlohmann/json.hpp>

#include "../moe.h"
#include "ratio.h"
#include "sliderquant/core/log.h"
#include "sliderquant/core/util.h"
#include "sliderquant/quant/ratio_iqp.h"

namespace sq::passes::ratio {
namespace {

int64_t block_index(const std::string& canonical) { return std::stoll(canonical.substr(7, canonical.find('.', 7) - 7)); }

// A layer's bits with K high-precision input channels, rounded to whole bits (the solver's costs).
int64_t layer_cost(const Layer& L, int64_t k) {
  return int64_t(std::llround(mixed_bits_per_weight(L.hi, L.lo, L.out, L.in, k) * double(L.out * L.in)));
}

}  // namespace

std::vector<Layer> plan_layers(const std::vector<LinearPlan>& plan, const Opts& o) {
  std::vector<Layer> layers;
  for (const LinearPlan& p : plan) {
    if (!p.format) continue;
    SQ_CHECK(!p.format->dsq, "ratio: " << p.name << " has the DSQ format " << p.format->name()
                                       << "; mixed precision needs uniform formats");
    SQ_CHECK(!p.format->ggml(), "ratio: " << p.name << " has the ggml grid " << p.format->name()
                                          << "; the ratio pass splits a linear's input channels into two uniform "
                                             "widths, which no ggml block type holds (mix grids per linear with "
                                             "recipe overrides instead)");
    Layer L;
    L.name = p.name, L.block = block_index(p.name), L.out = p.out, L.in = p.in, L.lo = *p.format;
    L.hi = L.lo;
    L.hi.bits = L.lo.bits + o.hi_bits_delta;
    SQ_CHECK(L.hi.bits <= 8, "ratio: " << p.name << ": high part would need " << L.hi.bits << " bits (at most 8)");
    const std::vector<double> cand = o.fixed_ratio >= 0 ? std::vector<double>{o.fixed_ratio} : o.ratios;
    for (double r : cand) L.k.push_back(mixed_hi_count(r, L.in, L.hi, L.lo));
    layers.push_back(std::move(L));
  }
  return layers;
}

void check_plan(const nlohmann::json& resolved, const std::vector<LinearPlan>& plan, const std::string& where,
                std::vector<std::string>& warnings) {
  const Opts o = read_options<Opts>(options(), resolved);
  const std::vector<Layer> layers = plan_layers(plan, o);
  SQ_CHECK(!layers.empty(), where << ": the recipe quantizes no linear");
  if (o.fixed_ratio >= 0) return;
  // The same integer costs as the run's solver: the cheapest and the dearest assignment.
  int64_t weights = 0, lo = 0, hi = 0;
  for (const Layer& L : layers) {
    weights += L.out * L.in;
    int64_t cmin = INT64_MAX, cmax = 0;
    for (int64_t k : L.k) {
      const int64_t c = layer_cost(L, k);
      cmin = std::min(cmin, c), cmax = std::max(cmax, c);
    }
    lo += cmin, hi += cmax;
  }
  const int64_t budget = int64_t(std::floor(o.target_bits * double(weights)));
  std::ostringstream range;
  range << std::fixed << std::setprecision(4) << "[" << double(lo) / double(weights) << ", "
        << double(hi) / double(weights) << "] bits per weight over this model's " << layers.size()
        << " quantized linears";
  SQ_CHECK(budget >= lo, where << ": target_bits " << o.target_bits
                               << " is below the cheapest assignment of the ratios; feasible budgets are "
                               << range.str());
  if (budget >= hi)
    warnings.push_back(where + ": target_bits " + std::to_string(o.target_bits) +
                       " does not bind: every linear can take its largest ratio (" + range.str() + ")");
}

void run(Session& s, const nlohmann::json& json) {
  refuse_moe(s, "the ratio pass");
  const Opts o = read_options<Opts>(options(), json);
  // The quantized linears and their candidate channel counts.
  std::vector<Layer> layers = plan_layers(s.plan, o);
  SQ_CHECK(!layers.empty(), "ratio: the recipe quantizes no linear");
  load_or_compute_scores(s, layers, o);

  // Costs and the choice.
  int64_t weights = 0;
  for (const Layer& L : layers) weights += L.out * L.in;
  auto cost = [](const Layer& L, int64_t k) { return layer_cost(L, k); };
  std::vector<int> choice(layers.size(), 0);
  nlohmann::json artifact;
  if (o.fixed_ratio < 0) {
    Opts po = o;
    Probes pr = [&] {
      auto t0 = Clock::now();
      Probes r = run_probes(s, layers, po);
      s.seconds["ratio: probes"] += since(t0);
      return r;
    }();
    RatioIqpProblem prob;
    prob.weight_count = weights;
    std::map<int64_t, int64_t> dense;
    for (const Layer& L : layers) {
      if (!dense.count(L.block)) dense.emplace(L.block, int64_t(dense.size()));
      prob.block_of.push_back(dense[L.block]);
      std::vector<int64_t> c;
      for (int64_t k : L.k) c.push_back(cost(L, k));
      prob.cost.push_back(c);
    }
    prob.M = ratio_iqp_matrix_from_losses(prob.block_of, pr.single, [&](int64_t l, int c, int64_t l2, int c2) {
      auto it = pr.pair.find({l, c, l2, c2});
      return it != pr.pair.end() ? it->second : pr.single[size_t(l)][size_t(c)] + pr.single[size_t(l2)][size_t(c2)];
    });
    const int64_t budget = int64_t(std::floor(o.target_bits * double(weights)));
    RatioIqpResult res = solve_ratio_iqp(prob, budget);
    choice = res.choice;
    SQ_INFO("ratio: " << pr.forwards << " probe forwards (" << o.probe << " loss, " << std::min(o.probe_samples, s.calib->samples)
                      << " samples, " << o.probe_quantizer << " probe weights, context "
                      << (o.probe_base_ratio > 0 ? "every other linear at " + std::to_string(o.probe_base_ratio)
                                                 : std::string("full precision"))
                      << ", " << s.seconds["ratio: probes"] << " s); objective " << res.objective << "; feasible bits per weight ["
                      << double(res.min_cost_bits) / double(weights) << ", "
                      << double(res.unconstrained_cost_bits) / double(weights) << "]");
    artifact["probe_forwards"] = pr.forwards;
    artifact["objective"] = res.objective;
    artifact["target_bits"] = o.target_bits;
    artifact["feasible_bits"] = {double(res.min_cost_bits) / double(weights),
                                 double(res.unconstrained_cost_bits) / double(weights)};
    s.metrics["ratio probe forwards"] = {double(pr.forwards)};
  }

  // Final quantization.
  double bits = 0, code_bits = 0, paper_bits = 0;
  std::vector<double> chosen;
  artifact["layers"] = nlohmann::json::array();
  for (size_t l = 0; l < layers.size(); ++l) {
    const Layer& L = layers[l];
    const int64_t k = L.k[size_t(choice[l])];
    const double r = o.fixed_ratio >= 0 ? o.fixed_ratio : o.ratios[size_t(choice[l])];
    const double bpw = mixed_bits_per_weight(L.hi, L.lo, L.out, L.in, k);
    bits += bpw * double(L.out * L.in);
    code_bits += (double(k) * L.hi.bits + double(L.in - k) * L.lo.bits) * double(L.out);
    // The papers' count (codes plus one fp16 scale per group; no zero points, no channel indices).
    const int64_t groups = (k > 0 ? L.hi.groups(k) : 0) + (L.in - k > 0 ? L.lo.groups(L.in - k) : 0);
    paper_bits += (double(k) * L.hi.bits + double(L.in - k) * L.lo.bits + 16.0 * double(groups)) * double(L.out);
    chosen.push_back(r);
    artifact["layers"].push_back({{"name", L.name}, {"ratio", r}, {"k", k}, {"hi", L.hi.name()}, {"lo", L.lo.name()},
                                  {"bits_per_weight", bpw}});
    SQ_INFO("ratio: " << L.name << " rho " << r << " (" << k << "/" << L.in << " channels at " << L.hi.name() << "), "
                      << bpw << " bits per weight");
  }
  artifact["bits_per_weight"] = bits / double(weights);
  artifact["code_bits_per_weight"] = code_bits / double(weights);
  artifact["paper_bits_per_weight"] = paper_bits / double(weights);
  artifact["bits_counts"] = "bits_per_weight: as stored (codes, fp16 scales, packed zeros, channel indices); "
                            "paper_bits_per_weight: codes + one fp16 scale per group (the mixed-precision papers' "
                            "average bits); code_bits_per_weight: codes alone";
  SQ_INFO("ratio: " << bits / double(weights) << " bits per weight over the quantized linears as stored, "
                    << paper_bits / double(weights) << " counted as the papers do (codes + fp16 group scales), "
                    << code_bits / double(weights) << " in codes alone");
  s.metrics["ratio chosen"] = chosen;
  s.metrics["ratio bits per weight"] = {bits / double(weights), code_bits / double(weights), paper_bits / double(weights)};
  if (!s.work_dir.empty()) {
    ensure_dir(s.work_dir);
    write_file_atomic(path_join(s.work_dir, "ratio_choice.json"), artifact.dump(2) + "\n");
  }

  if (o.quantizer == "hybrid") quantize_hybrid(s, o, layers, choice);
  else quantize_final(s, o, layers, choice);
}

}  // namespace sq::passes::ratio
