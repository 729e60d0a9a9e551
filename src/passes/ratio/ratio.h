// passes/ratio (private): layer-wise high-impact parameter ratio optimization (Pham et al., arXiv
// 2511.17801; docs/METHODS.md section 3). Per quantized linear a ratio rho of its input channels,
// the highest-scoring ones, is quantized at b_H = b_L + 1 bits and the rest at b_L
// (quant/mixed: two QTensors over column subsets, packed by pack/native_mixed).
//  1. Scores per input channel (quant/importance): the empirical Fisher (squared gradients
//     of the calibration LM loss, one sample per backward, summed over the channel's
//     weights) or the cheap Hessian diagonal diag(H) * sum_r W^2 on the full-precision
//     stream. Saved in the work directory (pipeline/channel_scores) and reused when the
//     score kind, calibration and sample count match.
//  2. Probes: each layer at each candidate ratio, and each pair of layers of the same block
//     at each pair of candidates, is quantized by mixed RTN or, with probe_quantizer "gptq",
//     by mixed GPTQ with the Hessians of the block's inputs on the probe windows (closer to
//     what the final rounding makes of a ratio; the GPTQ solves are not counted as forwards)
//     while the rest of the model stays full precision, or, with probe_base_ratio, sits at
//     that ratio (the marginal effect in a quantized model; its stream feeds each block);
//     the measured increase of the probe loss over that context on the first `probe_samples`
//     calibration windows builds M (diagonal: single layers; off-diagonal: polarization of
//     the pairs; zero across blocks). Probe losses: "block" (MSE of the block output against
//     the full-precision block on the same input; with probe_scale "lm" each block's probes
//     are scaled by the LM loss increase per unit block MSE of one extra whole-block probe) or
//     "lm" (the calibration LM loss, running the rest of the model). `probe_budget` bounds the count
//     of probe forwards (one forward = one configuration on the probe batch): single-layer
//     probes must fit, pair probes are taken block by block while they fit (blocks left
//     without them get a diagonal M; a warning says how many).
//  3. The exact IQP (quant/ratio_iqp) minimises delta^T M delta within target_bits (bits per
//     weight over the quantized linears, counted honestly: codes, scales, zeros of both parts
//     and 32 bits per high-precision channel index); an infeasible target is an error
//     stating the feasible range.
//  4. Final quantization block by block on the quantized stream (pipeline/sequencer):
//     GPTQ of the high part with its Hessian sub-block, its error compensated into the low
//     columns (W_lo += E_hi H_hl H_ll^-1, the least-squares optimum), then GPTQ of the low
//     part ("gptq"), plain mixed RTN ("rtn"), or hybrid rounding ("hybrid": AdaRound on the
//     high part, LWC on the low part, trained per layer on the block reconstruction loss).
//
// Files: options.cpp (the option table and the pass), scores.cpp (1), probes.cpp (2),
// allocate.cpp (3, and the run), finalize.cpp (4: mixed GPTQ / RTN), hybrid.cpp (4: hybrid).
#pragma once
#include <ATen/ATen.h>

#include <chrono>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "sliderquant/core/error.h"
#include "sliderquant/model/forward.h"
#include "sliderquant/pipeline/pass.h"
#include "sliderquant/pipeline/session.h"
#include "sliderquant/quant/gptq.h"
#include "sliderquant/quant/mixed.h"

namespace sq::passes::ratio {

struct Opts {
  std::vector<double> ratios;
  double target_bits;    // bits per weight over the quantized linears
  double fixed_ratio;    // >= 0: every layer at this ratio, no search
  int hi_bits_delta;     // b_H = b_L + this
  std::string score;
  int64_t score_samples;  // 0 = every calibration window
  std::string probe;
  int64_t probe_samples;
  int64_t probe_budget;  // 0 = unlimited
  std::string probe_quantizer;  // "rtn" or "gptq" (mixed GPTQ on the probe windows' Hessians)
  double probe_base_ratio;      // > 0: probes in the context of every other linear at this ratio
  std::string probe_scale;      // "lm": each block's block-loss probes scaled to LM loss units
  std::string quantizer;
  double damp;
  int64_t block_size;
  // quantizer "hybrid": AdaRound (high part) + LWC (low part), block reconstruction per layer.
  int64_t epochs, batch;
  double round_lr, lwc_lr, lwc_init, round_reg, warmup;
  double beta_start, beta_end;
  uint64_t seed;
};

const std::vector<OptionSpec>& options();                                    // options.cpp
void finish_options(nlohmann::json& resolved, const std::string& where);     // options.cpp
void run(Session& s, const nlohmann::json& options);                         // allocate.cpp

// One quantized linear of the plan.
struct Layer {
  std::string name;
  int64_t block = 0;
  int64_t out = 0, in = 0;
  QFormat lo, hi;
  at::Tensor score;            // [in] float32 CPU
  std::vector<int64_t> k;      // hi channel count per candidate ratio
};

// The quantized linears of PLAN as layers with their formats and candidate channel counts
// (no scores); throws Error for a format the pass cannot split.             // allocate.cpp
std::vector<Layer> plan_layers(const std::vector<LinearPlan>& plan, const Opts& o);
// Plan-time checks (recipe check --model, quantize before calibrating): the formats, and a
// target_bits outside the budgets the ratios can reach on this model.      // allocate.cpp
void check_plan(const nlohmann::json& resolved, const std::vector<LinearPlan>& plan, const std::string& where,
                std::vector<std::string>& warnings);

// The tap point whose input a linear multiplies (its slot's group in the block layout).
inline TapPoint tap_of(Session& s, const std::string& nm) { return slot_group(*s.linear_block(nm).layout, nm); }

using Clock = std::chrono::steady_clock;
inline double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
void ensure_dir(const std::string& d);                                           // scores.cpp
at::Tensor calib_ids(const Session& s, int64_t first, int64_t n);                // scores.cpp
at::Tensor lm_loss(const at::Tensor& logits, const at::Tensor& ids);             // scores.cpp

// 1. Channel scores into layers[i].score (reused from the work directory when they match).
void load_or_compute_scores(Session& s, std::vector<Layer>& layers, const Opts& o);

// 2. Probe losses.
struct Probes {
  std::vector<std::vector<double>> single;                 // [layer][candidate]
  std::map<std::tuple<int64_t, int, int64_t, int>, double> pair;
  int64_t forwards = 0;
  int64_t blocks_without_pairs = 0;
};
Probes run_probes(Session& s, const std::vector<Layer>& layers, const Opts& o);

// 4. Final quantization of the chosen channel counts (CHOICE: candidate per layer).
MixedQTensor gptq_mixed(const at::Tensor& W, const at::Tensor& H, const at::Tensor& hi_cols, const Layer& L,
                        const GptqOptions& g);
void quantize_hybrid(Session& s, const Opts& o, const std::vector<Layer>& layers, const std::vector<int>& choice);
void quantize_final(Session& s, const Opts& o, const std::vector<Layer>& layers, const std::vector<int>& choice);

}  // namespace sq::passes::ratio
