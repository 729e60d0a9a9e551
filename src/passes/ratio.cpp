// passes/ratio: layer-wise high-impact parameter ratio optimization (Pham et al., arXiv
// 2511.17801; METHODS.md section 3). Per quantized linear a ratio rho of its input channels,
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
#include <ATen/ATen.h>

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <array>
#include <map>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>
#include <tuple>

#include "options.h"
#include "sliderquant/core/log.h"
#include "sliderquant/core/util.h"
#include "sliderquant/pipeline/channel_scores.h"
#include "sliderquant/pipeline/pass.h"
#include "sliderquant/pipeline/sequencer.h"
#include "sliderquant/pipeline/window_trainer.h"
#include "sliderquant/quant/adaround.h"
#include "sliderquant/quant/learnable.h"
#include "sliderquant/transform/smooth.h"
#include "sliderquant/pipeline/session.h"
#include "sliderquant/quant/gptq.h"
#include "sliderquant/quant/importance.h"
#include "sliderquant/quant/mixed.h"
#include "sliderquant/quant/ratio_iqp.h"

namespace sq::passes {
namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
void ensure_dir(const std::string& d) {
  if (!is_directory(d)) SQ_CHECK(::mkdir(d.c_str(), 0755) == 0, "cannot create work directory " << d);
}

const std::vector<double> kRatios = {0.02, 0.05, 0.10, 0.15, 0.20};

struct Opts {
  std::vector<double> ratios = kRatios;
  double target_bits = 0;    // bits per weight over the quantized linears
  double fixed_ratio = -1;   // >= 0: every layer at this ratio, no search
  int hi_bits_delta = 1;     // b_H = b_L + this
  std::string score = "fisher";
  int64_t score_samples = 0;  // 0 = every calibration window
  std::string probe = "block";
  int64_t probe_samples = 8;
  int64_t probe_budget = 0;  // 0 = unlimited
  std::string probe_quantizer = "rtn";  // "rtn" or "gptq" (mixed GPTQ on the probe windows' Hessians)
  double probe_base_ratio = 0;          // > 0: probes in the context of every other linear at this ratio
  std::string probe_scale = "none";     // "lm": each block's block-loss probes scaled to LM loss units
  std::string quantizer = "hybrid";
  double damp = 0.01;
  int64_t block_size = 128;
  // quantizer "hybrid": AdaRound (high part) + LWC (low part), block reconstruction per layer.
  int64_t epochs = 20, batch = 4;
  double round_lr = 5e-2, lwc_lr = 5e-2, lwc_init = 4.0, round_reg = 0.05, warmup = 0.2;  // tuned on stories260K
  double beta_start = 20, beta_end = 2;
  uint64_t seed = 0;
};

Opts read(const nlohmann::json& o) {
  Opts r;
  if (o.contains("ratios")) r.ratios = o["ratios"].get<std::vector<double>>();
  r.target_bits = o.value("target_bits", r.target_bits);
  r.fixed_ratio = o.value("fixed_ratio", r.fixed_ratio);
  r.hi_bits_delta = o.value("hi_bits_delta", r.hi_bits_delta);
  r.score = o.value("score", r.score);
  r.score_samples = o.value("score_samples", r.score_samples);
  r.probe = o.value("probe", r.probe);
  r.probe_samples = o.value("probe_samples", r.probe_samples);
  r.probe_budget = o.value("probe_budget", r.probe_budget);
  r.probe_quantizer = o.value("probe_quantizer", r.probe_quantizer);
  r.probe_base_ratio = o.value("probe_base_ratio", r.probe_base_ratio);
  r.probe_scale = o.value("probe_scale", r.probe_scale);
  r.quantizer = o.value("quantizer", r.quantizer);
  r.damp = o.value("damp", r.damp);
  r.block_size = o.value("block_size", r.block_size);
  r.epochs = o.value("epochs", r.epochs);
  r.batch = o.value("batch", r.batch);
  r.round_lr = o.value("round_lr", r.round_lr);
  r.lwc_lr = o.value("lwc_lr", r.lwc_lr);
  r.lwc_init = o.value("lwc_init", r.lwc_init);
  r.round_reg = o.value("round_reg", r.round_reg);
  r.warmup = o.value("warmup", r.warmup);
  r.beta_start = o.value("beta_start", r.beta_start);
  r.beta_end = o.value("beta_end", r.beta_end);
  r.seed = o.value("seed", r.seed);
  return r;
}

void validate(const nlohmann::json& o, const std::string& where) {
  check_keys(o,
             {"ratios", "target_bits", "fixed_ratio", "hi_bits_delta", "score", "score_samples", "probe",
              "probe_samples", "probe_budget", "probe_quantizer", "probe_base_ratio", "probe_scale", "quantizer", "damp",
              "block_size", "epochs", "batch", "round_lr",
              "lwc_lr", "lwc_init", "round_reg", "warmup", "beta_start", "beta_end", "seed"},
             where);
  auto ratios = get_or<std::vector<double>>(o, "ratios", kRatios, where);
  SQ_CHECK(!ratios.empty(), where << ": ratios must not be empty");
  for (double r : ratios) SQ_CHECK(r > 0 && r < 1, where << ": ratios must lie in (0, 1)");
  const double fixed = get_or<double>(o, "fixed_ratio", -1.0, where);
  SQ_CHECK(fixed < 0 || (fixed > 0 && fixed < 1), where << ": fixed_ratio must lie in (0, 1) (absent = search)");
  if (fixed < 0)
    SQ_CHECK(get_or<double>(o, "target_bits", 0.0, where) > 0,
             where << ": target_bits (bits per weight over the quantized linears) is required for the ratio search");
  const int d = get_or<int>(o, "hi_bits_delta", 1, where);
  SQ_CHECK(d >= 1 && d <= 6, where << ": hi_bits_delta must be 1..6");
  const std::string sc = get_or<std::string>(o, "score", "fisher", where);
  SQ_CHECK(sc == "fisher" || sc == "hessian", where << ": score must be \"fisher\" or \"hessian\"");
  SQ_CHECK(get_or<int64_t>(o, "score_samples", 0, where) >= 0, where << ": score_samples must be >= 0 (0 = all)");
  const std::string pr = get_or<std::string>(o, "probe", "block", where);
  SQ_CHECK(pr == "block" || pr == "lm", where << ": probe must be \"block\" or \"lm\"");
  SQ_CHECK(get_or<int64_t>(o, "probe_samples", 8, where) >= 1, where << ": probe_samples must be >= 1");
  SQ_CHECK(get_or<int64_t>(o, "probe_budget", 0, where) >= 0, where << ": probe_budget must be >= 0 (0 = unlimited)");
  const std::string pq = get_or<std::string>(o, "probe_quantizer", "rtn", where);
  SQ_CHECK(pq == "rtn" || pq == "gptq", where << ": probe_quantizer must be \"rtn\" or \"gptq\"");
  const double pb = get_or<double>(o, "probe_base_ratio", 0.0, where);
  SQ_CHECK(pb == 0 || std::find_if(ratios.begin(), ratios.end(), [&](double r) { return std::abs(r - pb) < 1e-12; }) !=
                          ratios.end(),
           where << ": probe_base_ratio must be 0 (full-precision context) or one of the ratios");
  const std::string ps = get_or<std::string>(o, "probe_scale", "none", where);
  SQ_CHECK(ps == "none" || ps == "lm", where << ": probe_scale must be \"none\" or \"lm\"");
  SQ_CHECK(ps == "none" || pr == "block", where << ": probe_scale \"lm\" scales the block probe (probe \"block\")");
  const std::string q = get_or<std::string>(o, "quantizer", "hybrid", where);
  SQ_CHECK(q == "gptq" || q == "rtn" || q == "hybrid",
           where << ": quantizer must be \"gptq\", \"hybrid\" (AdaRound + LWC) or \"rtn\"");
  SQ_CHECK(get_or<int64_t>(o, "epochs", 20, where) >= 0, where << ": epochs must be >= 0");
  SQ_CHECK(get_or<int64_t>(o, "batch", 4, where) >= 1, where << ": batch must be >= 1");
  for (const char* k : {"round_lr", "lwc_lr", "round_reg", "warmup", "beta_start", "beta_end"})
    SQ_CHECK(get_or<double>(o, k, 0.0, where) >= 0, where << ": " << k << " must be >= 0");
  SQ_CHECK(get_or<double>(o, "warmup", 0.2, where) < 1, where << ": warmup must be < 1");
  get_or<double>(o, "lwc_init", 4.0, where);
  get_or<uint64_t>(o, "seed", 0, where);
  const double damp = get_or<double>(o, "damp", 0.01, where);
  SQ_CHECK(damp >= 0 && damp < 1, where << ": damp must be in [0, 1)");
  SQ_CHECK(get_or<int64_t>(o, "block_size", 128, where) >= 1, where << ": block_size must be positive");
}

nlohmann::json resolve(const nlohmann::json& o) {
  Opts r = read(o);
  nlohmann::json j = {{"ratios", r.ratios},         {"hi_bits_delta", r.hi_bits_delta},
                      {"score", r.score},           {"score_samples", r.score_samples},
                      {"probe", r.probe},           {"probe_samples", r.probe_samples},
                      {"probe_budget", r.probe_budget}, {"probe_quantizer", r.probe_quantizer},
                      {"probe_base_ratio", r.probe_base_ratio},  {"probe_scale", r.probe_scale},
                      {"quantizer", r.quantizer},
                      {"damp", r.damp},             {"block_size", r.block_size}};
  if (r.quantizer == "hybrid")
    j.update({{"epochs", r.epochs}, {"batch", r.batch}, {"round_lr", r.round_lr}, {"lwc_lr", r.lwc_lr},
              {"lwc_init", r.lwc_init}, {"round_reg", r.round_reg}, {"warmup", r.warmup},
              {"beta_start", r.beta_start}, {"beta_end", r.beta_end}, {"seed", r.seed}});
  if (r.fixed_ratio >= 0) j["fixed_ratio"] = r.fixed_ratio;
  else j["target_bits"] = r.target_bits;
  return j;
}

// One quantized linear of the plan.
struct Layer {
  std::string name;
  int64_t block = 0;
  int64_t out = 0, in = 0;
  QFormat lo, hi;
  at::Tensor score;            // [in] float32 CPU
  std::vector<int64_t> k;      // hi channel count per candidate ratio
};

// The tap point whose input a linear multiplies (its slot's group in the block layout).
TapPoint tap_of(Session& s, const std::string& nm) { return slot_group(*s.linear_block(nm).layout, nm); }

int64_t block_index(const std::string& canonical) { return std::stoll(canonical.substr(7, canonical.find('.', 7) - 7)); }

at::Tensor calib_ids(const Session& s, int64_t first, int64_t n) {
  const int64_t T = s.calib->seqlen;
  return at::tensor(std::vector<int64_t>(s.calib->ids.begin() + first * T, s.calib->ids.begin() + (first + n) * T))
      .view({n, T});
}

at::Tensor lm_loss(const at::Tensor& logits, const at::Tensor& ids) {
  const int64_t T = ids.size(1), V = logits.size(-1);
  at::Tensor l = logits.narrow(1, 0, T - 1).reshape({-1, V}).to(at::kFloat);
  at::Tensor t = ids.narrow(1, 1, T - 1).reshape({-1}).to(logits.device());
  return at::cross_entropy_loss(l, t);
}

// A fixed dense weight (probes).
class DenseWeight : public WeightOverride {
 public:
  explicit DenseWeight(at::Tensor w) : w_(std::move(w)) {}
  at::Tensor weight() const override { return w_; }
  std::string describe() const override { return "probe"; }

 private:
  at::Tensor w_;
};

// ---- 1. channel scores --------------------------------------------------------------------

// The empirical Fisher per input channel, sum over windows and rows of (dL/dW)^2, without
// holding the model's gradients: per calibration window a forward pass (no grad) keeps each
// block's input, the LM loss gives the gradient at the last block's output, and then, from
// the last block down, the block is recomputed with float32 weights that require grad, the
// incoming gradient is backpropagated, each linear's squared weight gradient is summed over
// rows into its channel score, and the input gradient goes down to the block below. Memory:
// one block's float32 weights and gradients plus one window's block inputs (not the whole
// model's gradients, which for a 7B model would not fit one GPU).
std::map<std::string, at::Tensor> fisher_scores(Session& s, const std::vector<Layer>& layers, int64_t n) {
  const ModelConfig& c = s.model.config;
  const c10::Device dev = s.runner.device;
  const c10::ScalarType dt = s.runner.dtype;
  Runner runner(s.model, s.runner);
  const RopeTable rope = make_rope(c, s.calib->seqlen, dev);
  std::set<std::string> wanted;
  for (const Layer& L : layers) wanted.insert(L.name);
  std::map<std::string, at::Tensor> score;
  const int64_t nb = int64_t(s.model.blocks.size());
  for (int64_t i = 0; i < n; ++i) {
    at::Tensor ids = calib_ids(s, i, 1);
    std::vector<at::Tensor> inputs;
    at::Tensor x;
    {
      at::NoGradGuard ng;
      x = runner.embed(ids);
      for (int64_t b = 0; b < nb; ++b) {
        inputs.push_back(x);
        x = runner.block(b, x);
      }
    }
    at::Tensor top = x.detach().requires_grad_(true);
    lm_loss(runner.head(top), ids).backward();
    at::Tensor g = top.grad();
    for (int64_t b = nb - 1; b >= 0; --b) {
      Block blk = s.model.blocks[size_t(b)];
      for (Linear* l : blk.linears()) {
        l->weight = l->effective_weight().detach().to(dev, at::kFloat).requires_grad_(true);
        l->override_.reset();
      }
      at::Tensor xin = inputs[size_t(b)].detach().requires_grad_(true);
      inputs[size_t(b)] = at::Tensor();
      block_forward(prepare_block(blk, c, dt, dev, b), c, xin, rope).backward(g);
      at::NoGradGuard ng;
      for (Linear* l : blk.linears()) {
        if (!wanted.count(l->name)) continue;
        at::Tensor gw = l->weight.grad().to(at::kFloat);
        at::Tensor add = (gw * gw).sum(0);
        at::Tensor& acc = score[l->name];
        acc = acc.defined() ? acc + add : add;
      }
      g = xin.grad();
    }
  }
  std::map<std::string, at::Tensor> out;
  for (auto& [name, t] : score) out[name] = t.to(at::kCPU);
  return out;
}

std::map<std::string, at::Tensor> hessian_scores(Session& s, const std::vector<Layer>& layers, int64_t n) {
  c10::InferenceMode guard;
  const ModelConfig& c = s.model.config;
  const c10::Device dev = s.runner.device;
  Runner runner(s.model, s.runner);
  const RopeTable rope = make_rope(c, s.calib->seqlen, dev);
  std::vector<at::Tensor> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[size_t(i)] = runner.embed(calib_ids(s, i, 1));
  std::map<std::string, at::Tensor> out;
  for (int64_t b = 0; b < int64_t(s.model.blocks.size()); ++b) {
    at::Tensor sq[kTapPoints];
    int64_t tokens = 0;
    BlockTaps taps{[&](TapPoint p, const at::Tensor& t) {
                     at::Tensor v = t.reshape({-1, t.size(-1)}).to(at::kFloat);
                     at::Tensor add = (v * v).sum(0);
                     at::Tensor& a = sq[int(p)];
                     a = a.defined() ? a + add : add;
                   },
                   std::nullopt};
    const BlockWeights& w = runner.weights(b);
    for (int64_t i = 0; i < n; ++i) {
      tokens += x[size_t(i)].size(0) * x[size_t(i)].size(1);
      x[size_t(i)] = block_forward(w, c, x[size_t(i)], rope, &taps);
    }
    for (Linear* l : s.model.blocks[size_t(b)].linears()) {
      auto it = std::find_if(layers.begin(), layers.end(), [&](const Layer& L) { return L.name == l->name; });
      if (it == layers.end()) continue;
      const std::string& nm = l->name;
      at::Tensor H = at::diag(sq[int(tap_of(s, nm))] * (2.0 / double(tokens)));
      out[nm] = hessian_channel_scores(l->effective_weight().to(dev, at::kFloat), H).to(at::kCPU);
    }
  }
  return out;
}

void load_or_compute_scores(Session& s, std::vector<Layer>& layers, const Opts& o) {
  const int64_t n = o.score_samples > 0 ? std::min(o.score_samples, s.calib->samples) : s.calib->samples;
  const std::map<std::string, std::string> meta = {
      {"score", o.score}, {"calibration_sha256", s.calib->sha256}, {"samples", std::to_string(n)}, {"model", s.model.dir}};
  const std::string path = s.work_dir.empty() ? "" : path_join(s.work_dir, "channel_scores.safetensors");
  std::map<std::string, at::Tensor> scores;
  if (!path.empty() && path_exists(path)) {
    std::map<std::string, std::string> got;
    std::map<std::string, at::Tensor> loaded = load_channel_scores(path, &got);
    bool same = true;
    for (const auto& [k, v] : meta) same = same && got.count(k) && got[k] == v;
    for (const Layer& L : layers) same = same && loaded.count(L.name) && loaded[L.name].size(0) == L.in;
    if (same) {
      SQ_INFO("ratio: reusing " << o.score << " channel scores from " << path);
      scores = std::move(loaded);
    }
  }
  if (scores.empty()) {
    auto t0 = Clock::now();
    scores = o.score == "fisher" ? fisher_scores(s, layers, n) : hessian_scores(s, layers, n);
    s.seconds["ratio: channel scores"] += since(t0);
    if (!path.empty()) {
      ensure_dir(s.work_dir);
      save_channel_scores(path, scores, meta);
    }
  }
  for (Layer& L : layers) L.score = scores.at(L.name);
}

// ---- 2. probes ------------------------------------------------------------------------------

struct Probes {
  std::vector<std::vector<double>> single;                 // [layer][candidate]
  std::map<std::tuple<int64_t, int, int64_t, int>, double> pair;
  int64_t forwards = 0;
  int64_t blocks_without_pairs = 0;
};

MixedQTensor gptq_mixed(const at::Tensor& W, const at::Tensor& H, const at::Tensor& hi_cols, const Layer& L,
                        const GptqOptions& g);

Probes run_probes(Session& s, const std::vector<Layer>& layers, const Opts& o) {
  c10::InferenceMode guard;
  const ModelConfig& c = s.model.config;
  const c10::Device dev = s.runner.device;
  const int64_t P = std::min(o.probe_samples, s.calib->samples);
  const int C = int(o.ratios.size());
  const int64_t nb = int64_t(s.model.blocks.size());
  at::Tensor ids = calib_ids(s, 0, P);
  const RopeTable rope = make_rope(c, s.calib->seqlen, dev);
  const bool lm = o.probe == "lm", gptq = o.probe_quantizer == "gptq", scale = o.probe_scale == "lm";
  GptqOptions g;
  g.percdamp = o.damp;
  g.block_size = o.block_size;
  // The context candidate: with probe_base_ratio every linear not probed sits at it.
  int base_c = -1;
  for (int ci = 0; ci < C; ++ci)
    if (o.probe_base_ratio > 0 && std::abs(o.ratios[size_t(ci)] - o.probe_base_ratio) < 1e-12) base_c = ci;
  SQ_CHECK(o.probe_base_ratio <= 0 || base_c >= 0,
           "ratio: probe_base_ratio " << o.probe_base_ratio << " is not one of the candidate ratios");

  // Layers per block and the probe budget.
  std::map<int64_t, std::vector<int64_t>> of_block;
  for (size_t l = 0; l < layers.size(); ++l) {
    of_block[layers[l].block].push_back(int64_t(l));
    SQ_CHECK(!s.linear(layers[l].name).override_, "ratio: " << layers[l].name << " is already quantized; ratio must run first");
  }
  const int64_t singles = int64_t(layers.size()) * C, scales = scale ? int64_t(of_block.size()) : 0;
  SQ_CHECK(o.probe_budget == 0 || singles + scales <= o.probe_budget,
           "ratio: probe_budget " << o.probe_budget << " is below the " << singles
                                  << " single-layer probe forwards (layers x candidates)"
                                  << (scale ? " and " + std::to_string(scales) + " block-scale forwards" : std::string())
                                  << " the search needs");
  int64_t left = o.probe_budget == 0 ? -1 : o.probe_budget - singles - scales;

  // Probe weights of block B's layers at each candidate not yet made (mixed RTN, or mixed
  // GPTQ with the Hessians of the block's inputs X on the probe windows); ONLY >= 0: that
  // candidate alone.
  std::map<std::pair<int64_t, int>, at::Tensor> wq;
  auto quantize_block = [&](int64_t b, const at::Tensor& x, int only) {
    auto it = of_block.find(b);
    if (it == of_block.end()) return;
    std::array<at::Tensor, kTapPoints> H;
    if (gptq) {
      BlockTaps taps{[&](TapPoint p, const at::Tensor& t) {
                       at::Tensor v = t.reshape({-1, t.size(-1)}).to(at::kFloat);
                       H[size_t(p)] = v.t().mm(v) * (2.0 / double(v.size(0)));
                     },
                     TapPoint::DownIn};
      block_forward(prepare_block(s.model.blocks[size_t(b)], c, s.runner.dtype, dev, b), c, x, rope, &taps);
    }
    for (int64_t l : it->second) {
      const Layer& L = layers[size_t(l)];
      at::Tensor W = s.linear(L.name).effective_weight().to(dev, at::kFloat);
      for (int ci = 0; ci < C; ++ci) {
        if ((only >= 0 && ci != only) || wq.count({l, ci})) continue;
        const at::Tensor cols = top_k_channels(L.score, L.k[size_t(ci)]);
        wq[{l, ci}] = (gptq ? gptq_mixed(W, H[size_t(tap_of(s, L.name))], cols, L, g).dequantize().to(dev)
                            : MixedQTensor::rtn(W, cols, L.hi, L.lo).dequantize())
                          .to(s.runner.dtype);
      }
    }
  };
  // Drops block B's probe weights but the context's (which the overrides hold).
  auto drop = [&](int64_t b) {
    for (auto w = wq.begin(); w != wq.end();)
      w = layers[size_t(w->first.first)].block == b && w->first.second != base_c ? wq.erase(w) : ++w;
  };
  auto set = [&](int64_t l, int ci) {
    Linear& lin = s.linear(layers[size_t(l)].name);
    if (ci < 0) lin.override_.reset();
    else lin.override_ = std::make_shared<DenseWeight>(wq.at({l, ci}));
  };
  auto forward = [&](int64_t b, const at::Tensor& x) {
    return block_forward(prepare_block(s.model.blocks[size_t(b)], c, s.runner.dtype, dev, b), c, x, rope);
  };
  // The context: every layer at the base candidate, block by block on the context's own stream
  // (GPTQ probes see the inputs of the quantized blocks below).
  if (base_c >= 0) {
    Runner r0(s.model, s.runner);
    at::Tensor x = r0.embed(ids);
    for (int64_t b = 0; b < nb; ++b) {
      quantize_block(b, x, base_c);
      if (of_block.count(b))
        for (int64_t l : of_block[b]) set(l, base_c);
      drop(b);
      x = forward(b, x);
    }
  }
  Runner runner(s.model, s.runner);  // after the context is set: later blocks run at the base
  double base = 0;
  if (lm || scale) base = lm_loss(runner.logits(ids), ids).item<double>();

  Probes r;
  r.single.assign(layers.size(), std::vector<double>(size_t(C), 0.0));
  at::Tensor x = runner.embed(ids);
  for (int64_t b = 0; b < nb; ++b) {
    auto it = of_block.find(b);
    if (it == of_block.end()) {
      x = forward(b, x);
      continue;
    }
    const std::vector<int64_t>& ls = it->second;
    // The reference: the full-precision block on the (context's) stream; the block loss is
    // the MSE against it, less the context's own MSE.
    for (int64_t l : ls) set(l, -1);
    const at::Tensor y_fp = forward(b, x).to(at::kFloat);
    quantize_block(b, x, -1);  // the other candidates (the context's are kept)
    for (int64_t l : ls) set(l, base_c);
    const at::Tensor y_base = forward(b, x);
    const double ref = base_c < 0 ? 0.0 : (y_base.to(at::kFloat) - y_fp).pow(2).mean().item<double>();
    auto eval = [&](const std::vector<std::pair<int64_t, int>>& cfg) {
      for (auto [l, ci] : cfg) set(l, ci);
      at::Tensor y = forward(b, x);
      for (auto [l, ci] : cfg) set(l, base_c);
      ++r.forwards;
      if (!lm) return (y.to(at::kFloat) - y_fp).pow(2).mean().item<double>() - ref;
      for (int64_t j = b + 1; j < nb; ++j) y = runner.block(j, y);
      return lm_loss(runner.head(y), ids).item<double>() - base;
    };
    for (int64_t l : ls)
      for (int ci = 0; ci < C; ++ci) r.single[size_t(l)][size_t(ci)] = eval({{l, ci}});
    const int64_t npairs = int64_t(ls.size() * (ls.size() - 1) / 2) * C * C;
    if (left < 0 || npairs <= left) {
      if (left >= 0) left -= npairs;
      for (size_t a = 0; a < ls.size(); ++a)
        for (size_t bb = a + 1; bb < ls.size(); ++bb)
          for (int ca = 0; ca < C; ++ca)
            for (int cb = 0; cb < C; ++cb) r.pair[{ls[a], ca, ls[bb], cb}] = eval({{ls[a], ca}, {ls[bb], cb}});
    } else if (npairs > 0) {
      ++r.blocks_without_pairs;
    }
    if (scale) {
      // LM loss per unit of block-output MSE, with every probed layer of the block at the lowest
      // candidate (the highest when that is the context): block MSEs of different depths are
      // not comparable. One more (LM) probe forward per block.
      const int sc = base_c == 0 ? C - 1 : 0;
      for (int64_t l : ls) set(l, sc);
      at::Tensor y = forward(b, x);
      for (int64_t l : ls) set(l, base_c);
      const double mse = (y.to(at::kFloat) - y_fp).pow(2).mean().item<double>() - ref;
      for (int64_t j = b + 1; j < nb; ++j) y = runner.block(j, y);
      const double dlm = lm_loss(runner.head(y), ids).item<double>() - base;
      ++r.forwards;
      const double lambda = mse > 0 ? std::max(dlm, 0.0) / mse : 0.0;
      SQ_INFO("ratio: block " << b << " probe scale " << lambda << " (LM loss +" << dlm << " at block MSE " << mse << ")");
      for (int64_t l : ls)
        for (double& v : r.single[size_t(l)]) v *= lambda;
      for (auto& [key, v] : r.pair)
        if (layers[size_t(std::get<0>(key))].block == b) v *= lambda;
    }
    drop(b);
    x = base_c < 0 ? y_fp.to(y_base.scalar_type()) : y_base;
  }
  for (size_t l = 0; l < layers.size(); ++l) s.linear(layers[l].name).override_.reset();
  if (r.blocks_without_pairs > 0)
    SQ_INFO("ratio: warning: probe_budget " << o.probe_budget << " left " << r.blocks_without_pairs
                                   << " block(s) without pair probes (their M is diagonal)");
  return r;
}

// ---- 4. final quantization ------------------------------------------------------------------

MixedQTensor gptq_mixed(const at::Tensor& W, const at::Tensor& H, const at::Tensor& hi_cols, const Layer& L,
                        const GptqOptions& g) {
  MixedQTensor m;
  m.in = L.in;
  m.hi_cols = checked_hi_cols(hi_cols, L.in, L.name + " hi_cols");
  const at::Tensor hc = m.hi_cols.to(W.device(), at::kLong), lc = m.lo_cols().to(W.device());
  const at::Tensor Hhh = H.index_select(0, hc).index_select(1, hc);
  const at::Tensor Hll = H.index_select(0, lc).index_select(1, lc);
  const at::Tensor Hlh = H.index_select(0, lc).index_select(1, hc);
  at::Tensor Wh = W.index_select(1, hc), Wl = W.index_select(1, lc);
  m.hi = gptq_quantize(Wh, Hhh, L.hi, g).q;
  // The low columns' least-squares answer to the high part's error E = Wh - Qh:
  // minimising tr([E, D] H [E, D]^T) over D gives D = -E H_hl H_ll^-1, i.e. target Wl + E H_hl H_ll^-1.
  const at::Tensor E = Wh - m.hi.dequantize().to(W.device());
  at::Tensor Hd = Hll.clone();
  double md = Hd.diagonal().mean().item<double>();
  Hd.diagonal().add_(md > 0 ? g.percdamp * md + 1e-8 : 1.0);
  at::Tensor Xt = at::linalg_solve(Hd, Hlh);  // H_ll^-1 H_lh [nl, k]
  Wl = Wl + at::matmul(E, Xt.t());
  m.lo = gptq_quantize(Wl, Hll, L.lo, g).q;
  m.hi = m.hi.to(at::kCPU);
  m.lo = m.lo.to(at::kCPU);
  m.hi_cols = m.hi_cols.to(at::kCPU);
  return m;
}


// ---- 4b. hybrid rounding: AdaRound on the high part, LWC on the low part ---------------------

// Block reconstruction per layer (train_windows with one-layer windows). While grad mode is
// off (targets and stream forwards) the AdaRound parts are hardened, so later layers see
// the deployed rounding.
class HybridStudent : public WindowStudent {
 public:
  HybridStudent(Session& s, const Opts& o, const std::vector<Layer>& layers, const std::vector<int>& choice)
      : s_(s), o_(o), parts_(s.model.blocks.size()) {
    for (size_t l = 0; l < layers.size(); ++l) want_[layers[l].name] = {&layers[l], layers[l].k[size_t(choice[l])]};
  }

  void focus(int64_t first, int64_t last) override {
    for (auto it = fp_.begin(); it != fp_.end();) it = (it->first < first || it->first > last) ? fp_.erase(it) : ++it;
  }

  std::vector<ParamGroup> param_groups(int64_t first, int64_t last) override {
    ParamGroup ada{"adaround", {}, o_.round_lr}, lwc{"lwc", {}, o_.lwc_lr};
    for (int64_t l = first; l <= last; ++l)
      for (auto& p : ensure(l)) {
        if (!p) continue;
        ada.params.push_back(p->ada.V());
        lwc.params.insert(lwc.params.end(), {p->lwc.gamma(), p->lwc.beta()});
      }
    std::vector<ParamGroup> g;
    for (ParamGroup* p : {&ada, &lwc})
      if (p->lr > 0 && !p->params.empty()) g.push_back(std::move(*p));
    return g;
  }

  BlockWeights block(int64_t l, double) override {
    auto it = fp_.find(l);
    if (it == fp_.end()) it = fp_.emplace(l, block_tensors(s_.model.blocks[size_t(l)], s_.runner.device)).first;
    BlockTensors t = it->second;
    const bool hard = !at::GradMode::is_enabled();
    auto& ps = ensure(l);
    for (int i = 0; i < int(ps.size()); ++i) {
      if (!ps[size_t(i)]) continue;
      Part& p = *ps[size_t(i)];
      at::Tensor& W = *weights(t, i);
      W = at::zeros_like(W).index_copy(1, p.hc, p.ada.fake_quant(hard)).index_copy(1, p.lc, p.lwc.fake_quant(W.index_select(1, p.lc)));
    }
    return fuse_block_tensors(t, s_.runner.dtype);
  }

  at::Tensor regularizer(int64_t first, int64_t last, double progress) override {
    if (progress < o_.warmup || o_.round_reg == 0) return {};
    const double f = (progress - o_.warmup) / (1 - o_.warmup);
    const double beta = o_.beta_end + (o_.beta_start - o_.beta_end) * (1 - f);  // annealed beta_start -> beta_end
    at::Tensor r;
    for (int64_t l = first; l <= last; ++l)
      for (auto& p : ensure(l))
        if (p) r = r.defined() ? r + p->ada.regularizer(beta) : p->ada.regularizer(beta);
    return r.defined() ? r * o_.round_reg : r;
  }

  NamedTensors state() override {
    NamedTensors ts;
    for (size_t l = 0; l < parts_.size(); ++l)
      for (auto& p : parts_[l])
        if (p) {
          ts.emplace_back(p->name + ".adaround_V", p->ada.V().detach().cpu());
          ts.emplace_back(p->name + ".lwc_gamma", p->lwc.gamma().detach().cpu());
          ts.emplace_back(p->name + ".lwc_beta", p->lwc.beta().detach().cpu());
        }
    return ts;
  }

  void load_state(const SafetensorsFile& f) override {
    at::NoGradGuard ng;
    for (size_t l = 0; l < parts_.size(); ++l) {
      const std::string probe = "blocks." + std::to_string(l) + ".";
      bool any = false;
      for (const TensorInfo& ti : f.tensors()) any = any || ti.name.rfind(probe, 0) == 0;
      if (!any) continue;
      for (auto& p : ensure(int64_t(l)))
        if (p)
          for (auto [suffix, dst] : {std::pair<const char*, at::Tensor*>{".adaround_V", &p->ada.V()},
                                     {".lwc_gamma", &p->lwc.gamma()}, {".lwc_beta", &p->lwc.beta()}})
            if (f.find(p->name + suffix)) dst->copy_(f.tensor(p->name + suffix));
    }
  }

  void finish() {
    at::NoGradGuard ng;
    fp_.clear();
    double undecided = 0;
    int64_t n = 0;
    for (size_t l = 0; l < parts_.size(); ++l) {
      BlockTensors t = block_tensors(s_.model.blocks[l], s_.runner.device);
      auto& ps = ensure(int64_t(l));
      for (int i = 0; i < int(ps.size()); ++i) {
        if (!ps[size_t(i)]) continue;
        Part& p = *ps[size_t(i)];
        MixedQTensor m;
        m.in = p.in;
        m.hi_cols = p.hc.to(at::kCPU, at::kInt);
        m.hi = p.ada.quantize().to(at::kCPU);
        m.lo = p.lwc.quantize(weights(t, i)->index_select(1, p.lc)).to(at::kCPU);
        undecided += p.ada.undecided(), ++n;
        s_.set_quantized(p.name, std::move(m));
      }
    }
    SQ_INFO("ratio: hybrid rounding hardened; AdaRound weights still undecided (h in (0.01, 0.99)): "
            << (n ? 100.0 * undecided / double(n) : 0.0) << "% on average");
    s_.metrics["ratio adaround undecided share"] = {n ? undecided / double(n) : 0.0};
  }

 private:
  struct Part {
    std::string name;
    int64_t in = 0;
    at::Tensor hc, lc;  // int64 on the device
    AdaRoundQuantizer ada;
    LwcQuantizer lwc;
  };
  static at::Tensor* weights(BlockTensors& t, int i) { return &t.w[size_t(i)]; }

  std::vector<std::optional<Part>>& ensure(int64_t l) {
    auto& ps = parts_[size_t(l)];
    if (ready_.count(l)) return ps;
    ready_.insert(l);
    ps.resize(s_.model.blocks[size_t(l)].slots.size());
    const c10::Device dev = s_.runner.device;
    BlockTensors t = block_tensors(s_.model.blocks[size_t(l)], dev);
    std::vector<const Linear*> lin = static_cast<const Block&>(s_.model.blocks[size_t(l)]).linears();
    for (int i = 0; i < int(ps.size()); ++i) {
      auto w = want_.find(lin[size_t(i)]->name);
      if (w == want_.end()) continue;
      const Layer& L = *w->second.first;
      MixedQTensor cols;
      cols.in = L.in;
      cols.hi_cols = checked_hi_cols(top_k_channels(L.score, w->second.second), L.in, L.name);
      const at::Tensor W = weights(t, i)->detach();
      Part p;
      p.name = L.name;
      p.in = L.in;
      p.hc = cols.hi_cols.to(dev, at::kLong);
      p.lc = cols.lo_cols().to(dev);
      p.ada = AdaRoundQuantizer(W.index_select(1, p.hc), L.hi);
      p.lwc = LwcQuantizer(L.lo, L.out, L.in - w->second.second, o_.lwc_init, dev);
      ps[size_t(i)] = std::move(p);
    }
    return ps;
  }

  Session& s_;
  Opts o_;
  std::map<std::string, std::pair<const Layer*, int64_t>> want_;  // linear -> (layer, k)
  std::vector<std::vector<std::optional<Part>>> parts_;  // per block, per layout slot
  std::set<int64_t> ready_;
  std::map<int64_t, BlockTensors> fp_;
};

void run(Session& s, const nlohmann::json& json) {
  const Opts o = read(json);
  // The quantized linears and their candidate channel counts.
  std::vector<Layer> layers;
  for (const LinearPlan& p : s.plan) {
    if (!p.format) continue;
    SQ_CHECK(!p.format->dsq, "ratio: " << p.name << " has the DSQ format " << p.format->name()
                                       << "; mixed precision needs uniform formats");
    Layer L;
    L.name = p.name, L.block = block_index(p.name), L.out = p.out, L.in = p.in, L.lo = *p.format;
    L.hi = L.lo;
    L.hi.bits = L.lo.bits + o.hi_bits_delta;
    SQ_CHECK(L.hi.bits <= 8, "ratio: " << p.name << ": high part would need " << L.hi.bits << " bits (at most 8)");
    const std::vector<double> cand = o.fixed_ratio >= 0 ? std::vector<double>{o.fixed_ratio} : o.ratios;
    for (double r : cand) L.k.push_back(mixed_hi_count(r, L.in, L.hi, L.lo));
    layers.push_back(std::move(L));
  }
  SQ_CHECK(!layers.empty(), "ratio: the recipe quantizes no linear");
  load_or_compute_scores(s, layers, o);

  // Costs and the choice.
  int64_t weights = 0;
  for (const Layer& L : layers) weights += L.out * L.in;
  auto cost = [&](const Layer& L, int64_t k) {
    return int64_t(std::llround(mixed_bits_per_weight(L.hi, L.lo, L.out, L.in, k) * double(L.out * L.in)));
  };
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
  std::map<std::string, size_t> index;
  double bits = 0, code_bits = 0;
  std::vector<double> chosen;
  artifact["layers"] = nlohmann::json::array();
  for (size_t l = 0; l < layers.size(); ++l) {
    const Layer& L = layers[l];
    index[L.name] = l;
    const int64_t k = L.k[size_t(choice[l])];
    const double r = o.fixed_ratio >= 0 ? o.fixed_ratio : o.ratios[size_t(choice[l])];
    const double bpw = mixed_bits_per_weight(L.hi, L.lo, L.out, L.in, k);
    bits += bpw * double(L.out * L.in);
    code_bits += (double(k) * L.hi.bits + double(L.in - k) * L.lo.bits) * double(L.out);
    chosen.push_back(r);
    artifact["layers"].push_back({{"name", L.name}, {"ratio", r}, {"k", k}, {"hi", L.hi.name()}, {"lo", L.lo.name()},
                                  {"bits_per_weight", bpw}});
    SQ_INFO("ratio: " << L.name << " rho " << r << " (" << k << "/" << L.in << " channels at " << L.hi.name() << "), "
                      << bpw << " bits per weight");
  }
  artifact["bits_per_weight"] = bits / double(weights);
  artifact["code_bits_per_weight"] = code_bits / double(weights);
  SQ_INFO("ratio: " << bits / double(weights) << " bits per weight over the quantized linears ("
                    << code_bits / double(weights) << " in codes alone)");
  s.metrics["ratio chosen"] = chosen;
  s.metrics["ratio bits per weight"] = {bits / double(weights), code_bits / double(weights)};
  if (!s.work_dir.empty()) {
    ensure_dir(s.work_dir);
    write_file_atomic(path_join(s.work_dir, "ratio_choice.json"), artifact.dump(2) + "\n");
  }

  if (o.quantizer == "hybrid") {
    HybridStudent student(s, o, layers, choice);
    WindowTrainOptions wo;
    for (int64_t l = 0; l < s.model.config.num_layers; ++l) wo.windows.push_back({l, l});
    wo.epochs = o.epochs;
    wo.batch = o.batch;
    wo.seed = o.seed;
    wo.label = "ratio";
    train_windows(s, student, wo);
    student.finish();
    return;
  }
  GptqOptions g;
  g.percdamp = o.damp;
  g.block_size = o.block_size;
  SequencerOptions so;
  so.hessians = o.quantizer == "gptq";
  run_block_sequential(s, so, [&](Session& ss, const GroupInputs& in) {
    for (const std::string& name : in.linears) {
      const Layer& L = layers[index.at(name)];
      const int64_t k = L.k[size_t(choice[index.at(name)])];
      const at::Tensor cols = top_k_channels(L.score, k);
      at::Tensor W = ss.linear(name).weight.to(s.runner.device, at::kFloat);
      MixedQTensor m;
      if (o.quantizer == "gptq") {
        m = gptq_mixed(W.to(in.H.device()), in.H, cols, L, g);
      } else {
        m = MixedQTensor::rtn(W, cols, L.hi, L.lo);
        m.hi = m.hi.to(at::kCPU), m.lo = m.lo.to(at::kCPU), m.hi_cols = m.hi_cols.to(at::kCPU);
      }
      ss.set_quantized(name, std::move(m));
    }
  });
}

}  // namespace

const PassInfo& ratio_pass() {
  static const PassInfo info{"ratio",
                             "layer-wise high-impact channel ratios (Fisher/Hessian scores, probed loss increases, exact "
                             "IQP under a bit budget), then hybrid rounding (AdaRound + LWC), mixed GPTQ or RTN per layer",
                             true, validate, resolve, run};
  return info;
}

}  // namespace sq::passes
