// passes/sliderquant: SliderQuant (Wang et al., arXiv 2603.25284, ICLR 2026; METHODS.md
// section 1): learned quantization over sliding windows of decoder layers (expanding over
// the shallow layers, fixed in the middle, contracting over the deep ones), trained with
// the window reconstruction driver (pipeline/window_trainer.h). Per quantized linear:
// learnable weight clipping and a rank-r LoRA update merged before quantization; in
// weight-activation settings also learnable equivalent channel scales (transform/smooth.h),
// per-token activation quantizers (inputs of every linear, and attention's Q, K, V), and
// optionally the fused random-Hadamard residual rotation first. Intra-layer sliding: stages
// that quantize only the first share of input columns / channels (quant_rates), run as
// whole passes over the schedule (the official code) or as phases inside each window.
// At the end scales are merged into norms and weights, LoRA into weights, and every weight
// is quantized once with its learned clipping: the written model is the evaluated one.
#include <ATen/ATen.h>

#include <algorithm>
#include <array>
#include <map>
#include <optional>

#include "block_linears.h"
#include "options.h"
#include "sliderquant/core/log.h"
#include "sliderquant/pipeline/pass.h"
#include "sliderquant/pipeline/session.h"
#include "sliderquant/pipeline/window_trainer.h"
#include "sliderquant/pipeline/windows.h"
#include "sliderquant/quant/learnable.h"
#include "sliderquant/transform/rotation.h"
#include "sliderquant/transform/smooth.h"

namespace sq::passes {
namespace {

const char* kPairs[] = {"qkv", "gate_up", "v_o", "up_down", "q_k"};

struct Opts {
  int64_t epochs = 20;  // per window, split evenly over the stages (official)
  std::vector<double> rates{0.5, 1.0};
  bool stages_per_window = false;
  WindowParams win;
  std::string schedule;
  int64_t lora_rank = 4, batch = 3;
  double lora_lr = 5e-4, lwc_lr = 1e-2, scale_lr = 0, lwc_init = 4.0, grad_clip = 0;
  bool lr_scale_batch = true;
  int abits = 16, attn_abits = 16;
  bool rotate = false;
  uint64_t seed = 0;
  std::vector<std::string> let_pairs{std::begin(kPairs), std::end(kPairs)};
};

Opts read(const nlohmann::json& o) {
  Opts r;
  r.epochs = o.value("epochs", r.epochs);
  if (o.contains("quant_rates")) r.rates = o["quant_rates"].get<std::vector<double>>();
  r.stages_per_window = o.value("stages", std::string("global")) == "window";
  r.win.fill = o.value("fill", r.win.fill);
  r.win.size = o.value("window", r.win.size);
  r.win.stride = o.value("stride", r.win.stride);
  r.schedule = o.value("schedule", std::string());
  r.lora_rank = o.value("lora_rank", r.lora_rank);
  r.batch = o.value("batch", r.batch);
  r.lora_lr = o.value("lora_lr", r.lora_lr);
  r.lwc_lr = o.value("lwc_lr", r.lwc_lr);
  r.scale_lr = o.value("scale_lr", r.scale_lr);
  r.lwc_init = o.value("lwc_init", r.lwc_init);
  r.grad_clip = o.value("grad_clip", r.grad_clip);
  r.lr_scale_batch = o.value("lr_scale_batch", r.lr_scale_batch);
  r.abits = o.value("abits", r.abits);
  r.attn_abits = o.value("attn_abits", r.abits);
  r.rotate = o.value("rotate", r.rotate);
  r.seed = o.value("seed", r.seed);
  if (o.contains("let_pairs")) r.let_pairs = o["let_pairs"].get<std::vector<std::string>>();
  return r;
}

void validate(const nlohmann::json& o, const std::string& where) {
  check_keys(o,
             {"epochs", "quant_rates", "stages", "fill", "window", "stride", "schedule", "lora_rank", "batch",
              "lora_lr", "lwc_lr", "scale_lr", "lwc_init", "grad_clip", "lr_scale_batch", "abits", "attn_abits",
              "rotate", "seed", "let_pairs"},
             where);
  SQ_CHECK(get_or<int64_t>(o, "epochs", 20, where) >= 0, where << ": epochs must be >= 0");
  auto rates = get_or<std::vector<double>>(o, "quant_rates", {0.5, 1.0}, where);
  SQ_CHECK(!rates.empty() && rates.back() == 1.0, where << ": quant_rates must end with 1.0");
  for (size_t i = 0; i < rates.size(); ++i)
    SQ_CHECK(rates[i] > 0 && rates[i] <= 1 && (i == 0 || rates[i] > rates[i - 1]),
             where << ": quant_rates must increase within (0, 1]");
  const std::string st = get_or<std::string>(o, "stages", "global", where);
  SQ_CHECK(st == "global" || st == "window", where << ": stages must be \"global\" or \"window\"");
  SQ_CHECK(get_or<int64_t>(o, "fill", 4, where) >= 0, where << ": fill must be >= 0");
  SQ_CHECK(get_or<int64_t>(o, "window", 2, where) >= 1, where << ": window must be >= 1");
  SQ_CHECK(get_or<int64_t>(o, "stride", 1, where) >= 1, where << ": stride must be >= 1");
  get_or<std::string>(o, "schedule", "", where);
  SQ_CHECK(get_or<int64_t>(o, "lora_rank", 4, where) >= 0, where << ": lora_rank must be >= 0 (0 = no LoRA)");
  SQ_CHECK(get_or<int64_t>(o, "batch", 3, where) >= 1, where << ": batch must be >= 1");
  for (const char* k : {"lora_lr", "lwc_lr", "scale_lr", "grad_clip"})
    SQ_CHECK(get_or<double>(o, k, 0.0, where) >= 0, where << ": " << k << " must be >= 0");
  get_or<double>(o, "lwc_init", 4.0, where);
  get_or<bool>(o, "lr_scale_batch", true, where);
  for (const char* k : {"abits", "attn_abits"}) {
    const int b = get_or<int>(o, k, 16, where);
    SQ_CHECK((b >= 2 && b <= 8) || b == 16, where << ": " << k << " must be 2..8 or 16 (off)");
  }
  get_or<bool>(o, "rotate", false, where);
  get_or<uint64_t>(o, "seed", 0, where);
  for (const std::string& p : get_or<std::vector<std::string>>(o, "let_pairs", {}, where)) {
    bool ok = false;
    for (const char* k : kPairs) ok = ok || p == k;
    SQ_CHECK(ok, where << ": let_pairs: unknown pair '" << p << "' (known: qkv, gate_up, v_o, up_down, q_k)");
  }
}

nlohmann::json resolve(const nlohmann::json& o) {
  Opts r = read(o);
  return {{"epochs", r.epochs},
          {"quant_rates", r.rates},
          {"stages", r.stages_per_window ? "window" : "global"},
          {"fill", r.win.fill},
          {"window", r.win.size},
          {"stride", r.win.stride},
          {"schedule", r.schedule},
          {"lora_rank", r.lora_rank},
          {"batch", r.batch},
          {"lora_lr", r.lora_lr},
          {"lwc_lr", r.lwc_lr},
          {"scale_lr", r.scale_lr},
          {"lwc_init", r.lwc_init},
          {"grad_clip", r.grad_clip},
          {"lr_scale_batch", r.lr_scale_batch},
          {"abits", r.abits},
          {"attn_abits", r.attn_abits},
          {"rotate", r.rotate},
          {"seed", r.seed},
          {"let_pairs", r.let_pairs}};
}

class SliderStudent : public WindowStudent {
 public:
  SliderStudent(Session& s, const Opts& o) : s_(s), o_(o), layers_(s.model.blocks.size()) {
    check_lwc_formats(s, "sliderquant");
  }

  static std::string name(int64_t l, int i) { return linear_name(l, i); }

  void focus(int64_t first, int64_t last) override {
    for (auto it = fp_.begin(); it != fp_.end();) it = (it->first < first || it->first > last) ? fp_.erase(it) : ++it;
  }

  std::vector<ParamGroup> param_groups(int64_t first, int64_t last) override {
    const double f = o_.lr_scale_batch ? double(o_.batch) : 1.0;
    ParamGroup lora{"lora", {}, o_.lora_lr * f}, lwc{"lwc", {}, o_.lwc_lr * f}, scale{"scale", {}, o_.scale_lr * f};
    for (int64_t l = first; l <= last; ++l) {
      Layer& L = ensure(l);
      for (int i = 0; i < kLinears; ++i) {
        if (L.lora[size_t(i)].defined()) lora.params.insert(lora.params.end(), {L.lora[size_t(i)].A, L.lora[size_t(i)].B});
        if (L.lwc[size_t(i)]) lwc.params.insert(lwc.params.end(), {L.lwc[size_t(i)]->gamma(), L.lwc[size_t(i)]->beta()});
      }
      for (at::Tensor* t : lets(L))
        if (t->defined()) scale.params.push_back(*t);
    }
    std::vector<ParamGroup> g;
    for (ParamGroup* p : {&lora, &scale, &lwc})
      if (p->lr > 0 && !p->params.empty()) g.push_back(std::move(*p));
    return g;
  }

  BlockWeights block(int64_t l, double rate) override {
    Layer& L = ensure(l);
    auto it = fp_.find(l);
    if (it == fp_.end()) it = fp_.emplace(l, block_tensors(s_.model.blocks[size_t(l)], s_.runner.device)).first;
    BlockTensors t = learned(L, it->second, [&](const LwcQuantizer& q, const at::Tensor& W) { return q.fake_quant(W, rate); });
    BlockWeights w = fuse_block_tensors(t, s_.runner.dtype);
    w.act = {o_.abits, o_.attn_abits, rate};
    return w;
  }

  NamedTensors state() override {
    NamedTensors ts;
    for (size_t l = 0; l < layers_.size(); ++l) {
      Layer& L = layers_[l];
      if (!L.ready) continue;
      for (int i = 0; i < kLinears; ++i) {
        const std::string n = name(int64_t(l), i);
        if (L.lwc[size_t(i)]) {
          ts.emplace_back(n + ".lwc_gamma", L.lwc[size_t(i)]->gamma().detach().cpu());
          ts.emplace_back(n + ".lwc_beta", L.lwc[size_t(i)]->beta().detach().cpu());
        }
        if (L.lora[size_t(i)].defined()) {
          ts.emplace_back(n + ".lora_A", L.lora[size_t(i)].A.detach().cpu());
          ts.emplace_back(n + ".lora_B", L.lora[size_t(i)].B.detach().cpu());
        }
      }
      for (int p = 0; p < 5; ++p)
        if (lets(L)[size_t(p)]->defined())
          ts.emplace_back("blocks." + std::to_string(l) + ".let." + kPairs[p], lets(L)[size_t(p)]->detach().cpu());
    }
    return ts;
  }

  void load_state(const SafetensorsFile& f) override {
    at::NoGradGuard ng;
    auto load = [&](const std::string& n, at::Tensor& dst) {
      if (!f.find(n)) return;
      at::Tensor src = f.tensor(n);
      SQ_CHECK(src.sizes() == dst.sizes(), "window checkpoint: " << n << " has shape " << src.sizes());
      dst.copy_(src);
    };
    for (size_t l = 0; l < layers_.size(); ++l) {
      const std::string probe = "blocks." + std::to_string(l) + ".";
      bool any = false;
      for (const TensorInfo& ti : f.tensors()) any = any || ti.name.rfind(probe, 0) == 0;
      if (!any) continue;
      Layer& L = ensure(int64_t(l));
      for (int i = 0; i < kLinears; ++i) {
        const std::string n = name(int64_t(l), i);
        if (L.lwc[size_t(i)]) load(n + ".lwc_gamma", L.lwc[size_t(i)]->gamma()), load(n + ".lwc_beta", L.lwc[size_t(i)]->beta());
        if (L.lora[size_t(i)].defined()) load(n + ".lora_A", L.lora[size_t(i)].A), load(n + ".lora_B", L.lora[size_t(i)].B);
      }
      for (int p = 0; p < 5; ++p)
        if (lets(L)[size_t(p)]->defined()) load(probe + "let." + kPairs[p], *lets(L)[size_t(p)]);
    }
  }

  // Merges scales and LoRA, quantizes every planned linear once with its learned clipping,
  // and writes the merged norms, biases and unquantized weights back into the model.
  void finish() {
    at::NoGradGuard ng;
    fp_.clear();
    for (size_t l = 0; l < layers_.size(); ++l) {
      Layer& L = ensure(int64_t(l));
      Block& b = s_.model.blocks[l];
      BlockTensors t = learned(L, block_tensors(b, s_.runner.device), nullptr);
      auto host = [](const at::Tensor& x) { return x.defined() ? x.detach().to(at::kCPU, at::kFloat).contiguous() : x; };
      std::vector<Linear*> lin = b.linears();
      for (int i = 0; i < kLinears; ++i) {
        Linear& li = *lin[size_t(i)];
        if (L.lwc[size_t(i)]) {
          if (L.lora[size_t(i)].defined() || has_let()) li.weight = host(weight_of(t, i));
          s_.set_quantized(li.name, L.lwc[size_t(i)]->quantize(weight_of(t, i)).to(c10::Device(c10::kCPU)));
        } else if (has_let()) {
          li.weight = host(weight_of(t, i));
        }
        if (li.bias.defined()) li.bias = host(bias_of(t, i));
      }
      if (has_let()) {
        b.attn_norm = host(t.attn_norm), b.mlp_norm = host(t.mlp_norm), b.mlp_norm_bias = host(t.mlp_norm_bias);
        b.q_norm = host(t.q_norm), b.k_norm = host(t.k_norm);
      }
    }
    s_.model.act = {o_.abits, o_.attn_abits, 1.0};
  }

 private:
  struct Layer {
    bool ready = false;
    std::array<std::optional<LwcQuantizer>, kLinears> lwc;
    std::array<LoraDelta, kLinears> lora;
    LetScales let;
  };
  static std::array<at::Tensor*, 5> lets(Layer& L) {
    return {&L.let.qkv, &L.let.gate_up, &L.let.v_o, &L.let.up_down, &L.let.q_k};
  }
  bool has_let() const { return o_.scale_lr > 0; }
  bool pair_on(const char* p) const {
    return has_let() && std::find(o_.let_pairs.begin(), o_.let_pairs.end(), p) != o_.let_pairs.end();
  }

  Layer& ensure(int64_t l) {
    Layer& L = layers_[size_t(l)];
    if (L.ready) return L;
    const c10::Device dev = s_.runner.device;
    const Block& b = s_.model.blocks[size_t(l)];
    std::vector<const Linear*> lin = b.linears();
    for (int i = 0; i < kLinears; ++i) {
      const LinearPlan* p = s_.plan_for(name(l, i));
      if (!p || !p->format) continue;
      const int64_t out = lin[size_t(i)]->weight.size(0), in = lin[size_t(i)]->weight.size(1);
      L.lwc[size_t(i)].emplace(*p->format, out, in, o_.lwc_init, dev);
      if (o_.lora_rank > 0) L.lora[size_t(i)] = LoraDelta(out, in, o_.lora_rank, o_.seed * 7919ULL + uint64_t(l) * 7 + uint64_t(i), dev);
    }
    L.let = let_identity(s_.model.config, pair_on("qkv"), pair_on("gate_up"), pair_on("v_o"), pair_on("up_down"),
                         pair_on("q_k"), dev);
    L.ready = true;
    return L;
  }

  // The block's tensors after scales and LoRA, each quantized linear passed through QUANT
  // (null: left unquantized, for the final merge).
  template <class Q>
  BlockTensors learned(Layer& L, const BlockTensors& fp, const Q& quant) {
    BlockTensors t = has_let() ? apply_let(fp, L.let, s_.model.config) : fp;
    for (int i = 0; i < kLinears; ++i) {
      at::Tensor& W = weight_of(t, i);
      if (L.lora[size_t(i)].defined()) W = W + L.lora[size_t(i)].delta();
      if constexpr (!std::is_same_v<Q, std::nullptr_t>) {
        if (L.lwc[size_t(i)]) W = quant(*L.lwc[size_t(i)], W);
      }
    }
    return t;
  }

  Session& s_;
  Opts o_;
  std::vector<Layer> layers_;
  std::map<int64_t, BlockTensors> fp_;  // device copies of the current window's full-precision tensors
};

void run(Session& s, const nlohmann::json& json) {
  const Opts o = read(json);
  const int64_t L = s.model.config.num_layers;
  std::vector<LayerWindow> windows = o.schedule.empty() ? window_schedule(L, o.win) : parse_window_schedule(o.schedule, L);
  if (o.rotate) {
    SQ_INFO("sliderquant: fusing norms and rotating the residual stream (random Hadamard, seed " << o.seed << ")");
    rotate_model(s.model, 0, o.seed, s.runner.device);
  }
  const int64_t stages = int64_t(o.rates.size());
  const int64_t per_stage = o.epochs / stages;
  SQ_CHECK(o.epochs == 0 || per_stage > 0, "sliderquant: epochs (" << o.epochs << ") must be at least the number of stages ("
                                                                     << stages << ")");
  SQ_INFO("sliderquant: " << windows.size() << " windows " << format_window_schedule(windows) << "; " << stages
                          << " stage(s) " << (o.stages_per_window ? "inside each window" : "over the whole schedule")
                          << ", " << per_stage << " epoch(s) each; LoRA rank " << o.lora_rank
                          << (o.scale_lr > 0 ? ", equivalent scales" : "") << "; activations "
                          << (o.abits < 16 ? "A" + std::to_string(o.abits) : std::string("A16")));
  SliderStudent student(s, o);
  WindowTrainOptions wo;
  wo.windows = windows;
  wo.rates = o.rates;
  wo.stages_per_window = o.stages_per_window;
  wo.epochs = per_stage;
  wo.batch = o.batch;
  wo.grad_clip = o.grad_clip;
  wo.seed = o.seed;
  wo.label = "sliderquant";
  train_windows(s, student, wo);
  student.finish();
}

}  // namespace

const PassInfo& sliderquant_pass() {
  static const PassInfo info{"sliderquant",
                             "SliderQuant: sliding-window learned clipping + LoRA (+ equivalent scales and activation "
                             "quantizers for W4A4) with intra-layer staged quantization",
                             true, validate, resolve, run};
  return info;
}

}  // namespace sq::passes
