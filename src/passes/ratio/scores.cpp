// passes/ratio/scores: 1. the channel scores (empirical Fisher or Hessian diagonal), kept in
// the work directory and reused when the score kind, calibration, sample count and the run's
// work identity (the model's content among it) match.
#include <sys/stat.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>

#include <ATen/core/grad_mode.h>

#include "ratio.h"
#include "sliderquant/core/log.h"
#include "sliderquant/core/util.h"
#include "sliderquant/pipeline/block_walker.h"
#include "sliderquant/pipeline/channel_scores.h"
#include "sliderquant/quant/importance.h"

namespace sq::passes::ratio {

void ensure_dir(const std::string& d) {
  if (!is_directory(d)) SQ_CHECK(::mkdir(d.c_str(), 0755) == 0, "cannot create work directory " << d);
}

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

namespace {

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
  BlockWalkOptions walk;
  walk.weights = [&](int64_t b) { return runner.weights(b); };
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
      x = walk_blocks(s, {runner.embed(ids)}, [&](BlockStep& b) { inputs.push_back(b.input[0]); }, walk)[0];
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
  const c10::Device dev = s.runner.device;
  Runner runner(s.model, s.runner);
  BlockWalkOptions walk;
  walk.weights = [&](int64_t b) { return runner.weights(b); };
  BlockStream x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[size_t(i)] = runner.embed(calib_ids(s, i, 1));
  std::map<std::string, at::Tensor> out;
  walk_blocks(
      s, std::move(x),
      [&](BlockStep& step) {
        at::Tensor sq[kTapPoints];
        int64_t tokens = 0;
        BlockTaps taps{[&](TapPoint p, const at::Tensor& t) {
                         at::Tensor v = t.reshape({-1, t.size(-1)}).to(at::kFloat);
                         at::Tensor add = (v * v).sum(0);
                         at::Tensor& a = sq[int(p)];
                         a = a.defined() ? a + add : add;
                       },
                       std::nullopt, nullptr, false};
        for (const at::Tensor& xi : step.input) tokens += xi.size(0) * xi.size(1);
        step.advance(&taps);
        for (Linear* l : s.model.blocks[size_t(step.index)].linears()) {
          auto it = std::find_if(layers.begin(), layers.end(), [&](const Layer& L) { return L.name == l->name; });
          if (it == layers.end()) continue;
          const std::string& nm = l->name;
          at::Tensor H = at::diag(sq[int(tap_of(s, nm))] * (2.0 / double(tokens)));
          out[nm] = hessian_channel_scores(l->effective_weight().to(dev, at::kFloat), H).to(at::kCPU);
        }
      },
      walk);
  return out;
}

}  // namespace

void load_or_compute_scores(Session& s, std::vector<Layer>& layers, const Opts& o) {
  const int64_t n = o.score_samples > 0 ? std::min(o.score_samples, s.calib->samples) : s.calib->samples;
  const std::map<std::string, std::string> meta = {
      {"score", o.score}, {"calibration_sha256", s.calib->sha256}, {"samples", std::to_string(n)},
      {"work_identity_sha256", sha256_hex(s.work_identity().dump())}};  // the model's content, recipe, dtype, ...
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

}  // namespace sq::passes::ratio
