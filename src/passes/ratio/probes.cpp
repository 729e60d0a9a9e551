// passes/ratio/probes: 2. the probe losses: each layer at each candidate ratio, and each pair
// of layers of a block at each pair of candidates, measured over the probe windows in a
// full-precision context or with every other linear at probe_base_ratio (see ratio.h).
#include <algorithm>
#include <array>
#include <cmath>
#include <memory>

#include "ratio.h"
#include "sliderquant/core/log.h"
#include "sliderquant/pipeline/block_walker.h"
#include "sliderquant/quant/importance.h"

namespace sq::passes::ratio {
namespace {

// A fixed dense weight (probes).
class DenseWeight : public WeightOverride {
 public:
  explicit DenseWeight(at::Tensor w) : w_(std::move(w)) {}
  at::Tensor weight() const override { return w_; }
  std::string describe() const override { return "probe"; }

 private:
  at::Tensor w_;
};

}  // namespace

Probes run_probes(Session& s, const std::vector<Layer>& layers, const Opts& o) {
  c10::InferenceMode guard;
  const int64_t P = std::min(o.probe_samples, s.calib->samples);
  const int C = int(o.ratios.size());
  const int64_t nb = int64_t(s.model.blocks.size());
  at::Tensor ids = calib_ids(s, 0, P);
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

  // Probe weights of the step's block's layers at each candidate not yet made (mixed RTN, or
  // mixed GPTQ with the Hessians of the block's inputs X on the probe windows); ONLY >= 0:
  // that candidate alone.
  const c10::Device dev = s.runner.device;
  std::map<std::pair<int64_t, int>, at::Tensor> wq;
  auto quantize_block = [&](const BlockStep& step, const at::Tensor& x, int only) {
    auto it = of_block.find(step.index);
    if (it == of_block.end()) return;
    std::array<at::Tensor, kTapPoints> H;
    if (gptq) {
      BlockTaps taps{[&](TapPoint p, const at::Tensor& t) {
                       at::Tensor v = t.reshape({-1, t.size(-1)}).to(at::kFloat);
                       H[size_t(p)] = v.t().mm(v) * (2.0 / double(v.size(0)));
                     },
                     TapPoint::DownIn, nullptr, false};
      step.forward(x, &taps);
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
  // The context: every layer at the base candidate, block by block on the context's own stream
  // (GPTQ probes see the inputs of the quantized blocks below).
  if (base_c >= 0) {
    Runner r0(s.model, s.runner);
    walk_blocks(s, {r0.embed(ids)}, [&](BlockStep& step) {
      quantize_block(step, step.input[0], base_c);
      if (of_block.count(step.index))
        for (int64_t l : of_block[step.index]) set(l, base_c);
      drop(step.index);
    });
  }
  Runner runner(s.model, s.runner);  // after the context is set: later blocks run at the base
  double base = 0;
  if (lm || scale) base = lm_loss(runner.logits(ids), ids).item<double>();

  Probes r;
  r.single.assign(layers.size(), std::vector<double>(size_t(C), 0.0));
  walk_blocks(s, {runner.embed(ids)}, [&](BlockStep& step) {
    const int64_t b = step.index;
    auto it = of_block.find(b);
    if (it == of_block.end()) return;
    const at::Tensor& x = step.input[0];
    const std::vector<int64_t>& ls = it->second;
    // The reference: the full-precision block on the (context's) stream; the block loss is
    // the MSE against it, less the context's own MSE.
    for (int64_t l : ls) set(l, -1);
    const at::Tensor y_fp = step.forward(x).to(at::kFloat);
    quantize_block(step, x, -1);  // the other candidates (the context's are kept)
    for (int64_t l : ls) set(l, base_c);
    const at::Tensor y_base = step.forward(x);
    const double ref = base_c < 0 ? 0.0 : (y_base.to(at::kFloat) - y_fp).pow(2).mean().item<double>();
    auto eval = [&](const std::vector<std::pair<int64_t, int>>& cfg) {
      for (auto [l, ci] : cfg) set(l, ci);
      at::Tensor y = step.forward(x);
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
      at::Tensor y = step.forward(x);
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
    step.set_output({base_c < 0 ? y_fp.to(y_base.scalar_type()) : y_base});
  });
  for (size_t l = 0; l < layers.size(); ++l) s.linear(layers[l].name).override_.reset();
  if (r.blocks_without_pairs > 0)
    SQ_INFO("ratio: warning: probe_budget " << o.probe_budget << " left " << r.blocks_without_pairs
                                   << " block(s) without pair probes (their M is diagonal)");
  return r;
}

}  // namespace sq::passes::ratio
