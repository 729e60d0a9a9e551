// passes/sliderquant: SliderQuant (Wang et al., arXiv 2603.25284, ICLR 2026; docs/METHODS.md
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
// ggml grid formats (q2_k etc.): clipping trains on the uniform proxy with the grid's bits
// and sub-block width (block_linears.h lwc_format), and the final rounding of the merged
// weight is ggml's own search onto the grid (the learned clipping is not applied there).
#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include <algorithm>
#include <array>
#include <map>
#include <optional>

#include "moe.h"
#include "block_linears.h"
#include "options.h"
#include "sliderquant/core/log.h"
#include "sliderquant/pipeline/pass.h"
#include "sliderquant/pipeline/session.h"
#include "sliderquant/pipeline/window_trainer.h"
#include "sliderquant/pipeline/windows.h"
#include "sliderquant/quant/learnable.h"
#include "sliderquant/quant/rtn.h"
#include "sliderquant/transform/rotation.h"
#include "sliderquant/transform/smooth.h"

namespace sq::passes {
namespace {

const char* kPairs[] = {"qkv", "gate_up", "v_o", "up_down", "q_k"};

struct Opts {
  int64_t epochs;  // per window, split evenly over the stages (official)
  std::vector<double> rates;
  std::string stages;
  WindowParams win;
  std::string schedule;
  int64_t lora_rank, batch;
  double lora_lr, lwc_lr, scale_lr, lwc_init, grad_clip;
  bool lr_scale_batch;
  int abits, attn_abits;
  bool rotate;
  uint64_t seed;
  std::vector<std::string> let_pairs;
  bool stages_per_window() const { return stages == "window"; }
};

const std::vector<OptionSpec>& options() {
  static const std::vector<OptionSpec> t = [] {
    // A field of the window schedule (Opts::win): an int64 row stored into win.*F.
    auto win = [](const char* name, int64_t WindowParams::*f, int64_t dflt, OptionRange r, const char* help) {
      OptionSpec s = option(name, &Opts::epochs, dflt, std::move(r), help);
      s.store = [f](void* o, const nlohmann::json& v) { static_cast<Opts*>(o)->win.*f = v.get<int64_t>(); };
      return s;
    };
    OptionSpec attn = option("attn_abits", &Opts::attn_abits, 16, act_bits(), "bits of attention's Q, K, V quantizers");
    attn.default_value = nullptr;  // abits unless given (finish)
    attn.default_text = "= abits";
    return std::vector<OptionSpec>{
        option("epochs", &Opts::epochs, 20, at_least(0), "epochs per window, split evenly over the stages"),
        option("quant_rates", &Opts::rates, std::vector<double>{0.5, 1.0},
               {"increasing in (0, 1], last 1.0",
                [](const nlohmann::json& v) {
                  const auto r = v.get<std::vector<double>>();
                  if (r.empty() || r.back() != 1.0) return std::string(" must end with 1.0");
                  for (size_t i = 0; i < r.size(); ++i)
                    if (!(r[i] > 0 && r[i] <= 1 && (i == 0 || r[i] > r[i - 1])))
                      return std::string(" must increase within (0, 1]");
                  return std::string();
                }},
               "intra-layer sliding: shares of input columns quantized, stage by stage"),
        option("stages", &Opts::stages, "global", one_of({"global", "window"}),
               "stages as whole passes over the schedule or as phases inside each window"),
        win("fill", &WindowParams::fill, 4, at_least(0), "fill windows at each end: [0], [0,1], ... (0 = none)"),
        win("window", &WindowParams::size, 2, at_least(1), "middle window size in layers"),
        win("stride", &WindowParams::stride, 1, at_least(1), "middle window stride in layers"),
        option("schedule", &Opts::schedule, "", "explicit windows (\"0-1,1-2,...\"; empty = from fill/window/stride)"),
        option("lora_rank", &Opts::lora_rank, 4, at_least(0, " (0 = no LoRA)"), "rank of the LoRA weight update"),
        option("batch", &Opts::batch, 3, at_least(1), "calibration samples per optimizer step"),
        option("lora_lr", &Opts::lora_lr, 5e-4, at_least(0), "learning rate of the LoRA factors"),
        option("lwc_lr", &Opts::lwc_lr, 1e-2, at_least(0), "learning rate of the weight clipping"),
        option("scale_lr", &Opts::scale_lr, 0.0, at_least(0), "learning rate of the equivalent scales (0 = none)"),
        option("lwc_init", &Opts::lwc_init, 4.0, "initial clipping logit (sigmoid(4) = 0.98)"),
        option("grad_clip", &Opts::grad_clip, 0.0, at_least(0), "max global gradient norm (0 = off)"),
        option("lr_scale_batch", &Opts::lr_scale_batch, true, "learning rates times the batch size"),
        option("abits", &Opts::abits, 16, act_bits(), "bits of the per-token activation quantizers"),
        std::move(attn),
        option("rotate", &Opts::rotate, false, "fuse the norms and rotate the residual stream (random Hadamard) first"),
        option("seed", &Opts::seed, 0, "seed of the LoRA init, rotation and shuffling"),
        option("let_pairs", &Opts::let_pairs, std::vector<std::string>(std::begin(kPairs), std::end(kPairs)),
               {"of qkv, gate_up, v_o, up_down, q_k",
                [](const nlohmann::json& v) {
                  for (const std::string& p : v.get<std::vector<std::string>>()) {
                    bool ok = false;
                    for (const char* k : kPairs) ok = ok || p == k;
                    if (!ok) return ": unknown pair '" + p + "' (known: qkv, gate_up, v_o, up_down, q_k)";
                  }
                  return std::string();
                }},
               "equivalent-scale pairs learned when scale_lr > 0")};
  }();
  return t;
}

void finish(nlohmann::json& o, const std::string&) {
  if (!o.contains("attn_abits")) o["attn_abits"] = o["abits"];
}

class SliderStudent : public WindowStudent {
 public:
  SliderStudent(Session& s, const Opts& o) : s_(s), o_(o), layers_(s.model.blocks.size()) {
    check_lwc_formats(s, "sliderquant", /*allow_ggml=*/true);
  }

  const std::string& name(int64_t l, int i) const { return linear_name(s_, l, i); }

  void focus(int64_t first, int64_t last) override {
    for (auto it = fp_.begin(); it != fp_.end();) it = (it->first < first || it->first > last) ? fp_.erase(it) : ++it;
  }

  std::vector<ParamGroup> param_groups(int64_t first, int64_t last) override {
    const double f = o_.lr_scale_batch ? double(o_.batch) : 1.0;
    ParamGroup lora{"lora", {}, o_.lora_lr * f}, lwc{"lwc", {}, o_.lwc_lr * f}, scale{"scale", {}, o_.scale_lr * f};
    for (int64_t l = first; l <= last; ++l) {
      Layer& L = ensure(l);
      for (int i = 0; i < int(L.lwc.size()); ++i) {
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
    BlockWeights w = fuse_block_tensors(t, s_.train_dtype(), s_.model.config);
    w.act = {o_.abits, o_.attn_abits, rate};
    return w;
  }

  NamedTensors state() override {
    NamedTensors ts;
    for (size_t l = 0; l < layers_.size(); ++l) {
      Layer& L = layers_[l];
      if (!L.ready) continue;
      for (int i = 0; i < int(L.lwc.size()); ++i) {
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
      for (int i = 0; i < int(L.lwc.size()); ++i) {
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
      for (int i = 0; i < int(L.lwc.size()); ++i) {
        Linear& li = *lin[size_t(i)];
        if (L.lwc[size_t(i)]) {
          if (L.lora[size_t(i)].defined() || has_let()) li.weight = host(weight_of(t, i));
          const LinearPlan* p = s_.plan_for(li.name);
          if (p && p->format && p->format->ggml())  // trained on the proxy grid; ggml's own search rounds
            s_.set_quantized(li.name, rtn_quantize(weight_of(t, i).detach(), *p->format).to(c10::Device(c10::kCPU)));
          else
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
    std::vector<std::optional<LwcQuantizer>> lwc;  // per layout slot
    std::vector<LoraDelta> lora;
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
    L.lwc.resize(lin.size());
    L.lora.resize(lin.size());
    for (int i = 0; i < int(L.lwc.size()); ++i) {
      const LinearPlan* p = s_.plan_for(name(l, i));
      if (!p || !p->format) continue;
      const int64_t out = lin[size_t(i)]->weight.size(0), in = lin[size_t(i)]->weight.size(1);
      L.lwc[size_t(i)].emplace(lwc_format(*p->format), out, in, o_.lwc_init, dev);
      if (o_.lora_rank > 0) L.lora[size_t(i)] = LoraDelta(out, in, o_.lora_rank, o_.seed * 7919ULL + uint64_t(l) * lin.size() + uint64_t(i), dev);
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
    for (int i = 0; i < int(L.lwc.size()); ++i) {
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
  const Opts o = read_options<Opts>(options(), json);
  // MoE blocks: every expert linear (and the shared expert's) is a slot with its own clipping and
  // LoRA, trained through the routed forward, so an expert learns from the tokens routed to it
  // only (a starved expert keeps its initial clipping); the router stays full precision and is
  // not trained. Equivalent scales would have to reach the router and every expert: refused.
  if (o.scale_lr > 0) refuse_moe(s, "sliderquant's equivalent scales (scale_lr > 0)", "sliderquant with scale_lr 0");
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
                          << " stage(s) " << (o.stages_per_window() ? "inside each window" : "over the whole schedule")
                          << ", " << per_stage << " epoch(s) each; LoRA rank " << o.lora_rank
                          << (o.scale_lr > 0 ? ", equivalent scales" : "") << "; activations "
                          << (o.abits < 16 ? "A" + std::to_string(o.abits) : std::string("A16")));
  SliderStudent student(s, o);
  WindowTrainOptions wo;
  wo.windows = windows;
  wo.rates = o.rates;
  wo.stages_per_window = o.stages_per_window();
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
                             true, options(), finish, run,
                             [](const nlohmann::json&) {  // equivalent scales, activation quantizers (W4A4)
                               return PassEffects{true, true, false};
                             }};
  return info;
}

}  // namespace sq::passes
