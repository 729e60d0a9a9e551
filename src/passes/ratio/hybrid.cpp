// passes/ratio/hybrid: 4. hybrid rounding of the chosen channel counts: AdaRound on the high
// part, LWC on the low part, trained per layer on the block reconstruction loss.
#include <array>
#include <optional>
#include <set>

#include <ATen/core/grad_mode.h>

#include "ratio.h"
#include "sliderquant/core/log.h"
#include "sliderquant/pipeline/window_trainer.h"
#include "sliderquant/quant/adaround.h"
#include "sliderquant/quant/importance.h"
#include "sliderquant/quant/learnable.h"
#include "sliderquant/transform/smooth.h"

namespace sq::passes::ratio {
// Block reconstruction per layer (train_windows with one-layer windows). While grad mode is
// off (targets and stream forwards) the AdaRound parts are hardened, so later layers see
// the deployed rounding.
namespace {

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
    return fuse_block_tensors(t, s_.train_dtype(), s_.model.config);
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

}  // namespace

void quantize_hybrid(Session& s, const Opts& o, const std::vector<Layer>& layers, const std::vector<int>& choice) {
  HybridStudent student(s, o, layers, choice);
  WindowTrainOptions wo;
  for (int64_t l = 0; l < s.model.config.num_layers; ++l) wo.windows.push_back({l, l});
  wo.epochs = o.epochs;
  wo.batch = o.batch;
  wo.seed = o.seed;
  wo.label = "ratio";
  train_windows(s, student, wo);
  student.finish();
}

}  // namespace sq::passes::ratio
