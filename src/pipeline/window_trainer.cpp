// pipeline/window_trainer: the window reconstruction driver (see the header).
#include "sliderquant/pipeline/window_trainer.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>
#include <sys/stat.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sliderquant/core/error.h"
#include "sliderquant/core/interrupt.h"
#include "sliderquant/core/log.h"
#include "sliderquant/core/progress.h"
#include "sliderquant/core/torch_compat.h"
#include "sliderquant/core/util.h"

namespace sq {
namespace {

using Clock = std::chrono::steady_clock;
const auto since = synced_seconds_since;

// AdamW with weight decay 0 (torch.optim.AdamW defaults otherwise: betas 0.9/0.999,
// eps 1e-8), one step counter for all parameters.
class Adam {
 public:
  explicit Adam(std::vector<ParamGroup> groups) : groups_(std::move(groups)) {
    for (const ParamGroup& g : groups_)
      for (const at::Tensor& p : g.params) {
        SQ_CHECK(p.requires_grad() && p.is_leaf(), "optimizer parameter of group " << g.name << " is not a leaf");
        m_.push_back(at::zeros_like(p));
        v_.push_back(at::zeros_like(p));
      }
  }
  // One update with every group's lr times `factor`; clears the gradients.
  void step(double factor) {
    at::NoGradGuard ng;
    ++t_;
    const double bc1 = 1.0 - std::pow(kB1, double(t_)), bc2 = 1.0 - std::pow(kB2, double(t_));
    size_t k = 0;
    for (const ParamGroup& g : groups_) {
      for (const at::Tensor& cp : g.params) {
        at::Tensor p = cp;
        at::Tensor& m = m_[k];
        at::Tensor& v = v_[k];
        ++k;
        const at::Tensor& grad = p.grad();
        if (!grad.defined()) continue;
        m.mul_(kB1).add_(grad, 1.0 - kB1);
        v.mul_(kB2).addcmul_(grad, grad, 1.0 - kB2);
        at::Tensor denom = (v.sqrt() / std::sqrt(bc2)).add_(kEps);
        p.addcdiv_(m, denom, -g.lr * factor / bc1);
        p.mutable_grad().reset();
      }
    }
  }
  // Scales the gradients so their global L2 norm is at most max_norm.
  void clip(double max_norm) {
    at::NoGradGuard ng;
    double sq = 0;
    for (const ParamGroup& g : groups_)
      for (const at::Tensor& p : g.params)
        if (p.grad().defined()) sq += p.grad().pow(2).sum().item<double>();
    const double norm = std::sqrt(sq);
    if (norm <= max_norm || norm == 0) return;
    for (const ParamGroup& g : groups_)
      for (const at::Tensor& cp : g.params) {
        at::Tensor p = cp;
        if (p.grad().defined()) p.mutable_grad().mul_(max_norm / (norm + 1e-6));
      }
  }
  int64_t count() const { return int64_t(m_.size()); }

 private:
  static constexpr double kB1 = 0.9, kB2 = 0.999, kEps = 1e-8;
  std::vector<ParamGroup> groups_;
  std::vector<at::Tensor> m_, v_;
  int64_t t_ = 0;
};

struct Progressor {
  std::string state_path, params_path;
  nlohmann::json identity;
  int64_t units_done = 0;
  // Per finished unit, in order: [first-epoch loss, last-epoch loss, seconds, peak GPU bytes],
  // so a resumed run reports the same series as an uninterrupted one.
  nlohmann::json unit_metrics = nlohmann::json::array();
};

// The checkpoint is one file: the student's parameters with the state (identity, units done,
// per-unit metrics) in its metadata, so parameters and position can never disagree after a
// kill. windows.json repeats the state for people and scripts.
constexpr const char* kStateKey = "sliderquant_window_state";

Progressor open_state(const Session& s, const WindowTrainOptions& o, WindowStudent& student) {
  Progressor p;
  if (s.work_dir.empty()) return p;
  if (!is_directory(s.work_dir))
    SQ_CHECK(::mkdir(s.work_dir.c_str(), 0755) == 0, "cannot create work directory " << s.work_dir);
  p.state_path = path_join(s.work_dir, "windows.json");
  p.params_path = path_join(s.work_dir, "window_params.safetensors");
  p.identity = s.work_identity();
  p.identity["schedule"] = format_window_schedule(o.windows);
  p.identity["label"] = o.label;
  if (!path_exists(p.params_path)) return p;
  std::shared_ptr<SafetensorsFile> f;
  nlohmann::json st;
  try {
    f = SafetensorsFile::open(p.params_path);
    auto it = f->metadata().find(kStateKey);
    SQ_CHECK(it != f->metadata().end(), "no " << kStateKey << " in its metadata");
    st = nlohmann::json::parse(it->second);
    SQ_CHECK(st.is_object() && st.contains("units_done") && st["units_done"].is_number_integer() &&
                 st["units_done"].get<int64_t>() >= 0 && st.value("metrics", nlohmann::json()).is_array(),
             "its state is incomplete");
  } catch (const std::exception& e) {
    SQ_FAIL("the checkpoint " << p.params_path << " is damaged (" << e.what() << "); " << s.clear_work_hint());
  }
  if (!s.may_resume(st.value("identity", nlohmann::json()), p.identity, p.params_path)) return p;
  p.units_done = st["units_done"].get<int64_t>();
  p.unit_metrics = st["metrics"];
  SQ_CHECK(int64_t(p.unit_metrics.size()) == p.units_done,
           "the checkpoint " << p.params_path << " is damaged (" << p.unit_metrics.size() << " metric rows for "
                             << p.units_done << " units); " << s.clear_work_hint());
  if (p.units_done > 0) {
    try {
      student.load_state(*f);
    } catch (const std::exception& e) {
      SQ_FAIL("the checkpoint " << p.params_path << " cannot be resumed (" << e.what() << "); " << s.clear_work_hint());
    }
    SQ_INFO("resuming from " << s.work_dir << ": " << p.units_done << " window stage(s) already trained");
  }
  return p;
}

void save_state(Progressor& p, WindowStudent& student, int64_t units_done) {
  if (p.state_path.empty()) return;
  p.units_done = units_done;
  nlohmann::json st{{"identity", p.identity}, {"units_done", units_done}, {"metrics", p.unit_metrics}};
  write_safetensors(p.params_path, student.state(), {{kStateKey, st.dump()}});
  write_file_atomic(p.state_path, st.dump(2) + "\n");
}

}  // namespace

std::vector<WindowLog> train_windows(Session& s, WindowStudent& student, const WindowTrainOptions& o) {
  SQ_CHECK(s.calib != nullptr, "window training needs a calibration set");
  SQ_CHECK(!o.windows.empty() && !o.rates.empty(), "window training needs windows and at least one stage");
  SQ_CHECK(o.epochs >= 0 && o.batch >= 1, "window training: epochs must be >= 0 and batch >= 1");
  const ModelConfig& c = s.model.config;
  const c10::Device dev = s.runner.device;
  const c10::ScalarType dt = s.train_dtype();  // float32 under autocast
  const int64_t N = s.calib->samples, T = s.calib->seqlen;
  const int64_t ibs = std::max<int64_t>(1, s.batch_size);  // inference batch
  at::Tensor ids = at::from_blob(const_cast<int64_t*>(s.calib->ids.data()), {N, T}, at::kLong).clone();
  RopeTable rope = make_rope(c, T, dev);
  const int64_t S = int64_t(o.rates.size()), K = int64_t(o.windows.size());

  auto t0 = Clock::now();
  at::Tensor emb;
  {
    at::NoGradGuard ng;
    emb = at::embedding(s.model.embed, ids).to(s.store_dtype);  // [N, T, H] host
  }
  s.seconds["embed"] += since(t0);

  // Runs layers [first, first + count) on every sample of STREAM (no grad) in inference
  // batches; `weights(l)` gives layer l's weights.
  auto run_layers = [&](const std::function<BlockWeights(int64_t)>& weights, const at::Tensor& stream,
                        int64_t first, int64_t count) {
    at::NoGradGuard ng;
    if (count == 0) return stream;
    std::vector<BlockWeights> ws;
    for (int64_t l = first; l < first + count; ++l) ws.push_back(weights(l));
    at::Tensor out = at::empty_like(stream);
    for (int64_t b = 0; b < N; b += ibs) {
      const int64_t n = std::min(ibs, N - b);
      at::Tensor x = stream.narrow(0, b, n).to(dev, dt);
      AutocastGuard ac(s.train_autocast, dev);
      for (const BlockWeights& w : ws) x = block_forward(w, c, x, rope);
      out.narrow(0, b, n).copy_(x.to(at::kCPU, s.store_dtype));
    }
    return out;
  };
  auto teacher = [&](int64_t l) { return prepare_block(s.model.blocks[size_t(l)], c, dt, dev, l); };

  Progressor prog = open_state(s, o, student);
  std::vector<WindowLog> logs;
  Progress bar(o.label, S * K);
  int64_t unit = 0;
  at::Tensor x_fp, x_q;
  // The targets of the window last computed, valid while x_fp is unchanged (the stages of
  // one window in stages_per_window mode share them).
  at::Tensor target;
  size_t target_window = SIZE_MAX;

  // Trains window k at stage st (one unit), or only logs it when already done.
  auto train_unit = [&](size_t k, int64_t st) {
    const LayerWindow& w = o.windows[k];
    const double rate = o.rates[size_t(st)];
    WindowLog log;
    log.stage = st;
    log.window = k;
    student.focus(w.first, w.last);
    if (unit < prog.units_done) {
      log.resumed = true;
      const nlohmann::json& m = prog.unit_metrics.at(size_t(unit));
      log.first_epoch_loss = m.at(0).get<double>();
      log.last_epoch_loss = m.at(1).get<double>();
      s.metrics[o.label + " window first-epoch loss"].push_back(log.first_epoch_loss);
      s.metrics[o.label + " window last-epoch loss"].push_back(log.last_epoch_loss);
      s.metrics[o.label + " window seconds"].push_back(m.at(2).get<double>());
      s.metrics[o.label + " window peak GPU bytes"].push_back(m.at(3).get<double>());
      logs.push_back(log);
      ++unit;
      return;
    }
    auto tt = Clock::now();
    if (target_window != k) {
      target = run_layers(teacher, x_fp, w.first, w.size());
      target_window = k;
    }
    s.seconds["window targets"] += since(tt);
    auto tr = Clock::now();
    Adam opt(student.param_groups(w.first, w.last));
    const int64_t steps_per_epoch = (N + o.batch - 1) / o.batch, total = o.epochs * steps_per_epoch;
    at::Generator gen = at::detail::createCPUGenerator(o.seed * 1000003ULL + uint64_t(st) * 7919ULL + k);
    int64_t step = 0;
    for (int64_t e = 0; e < o.epochs; ++e) {
      at::Tensor perm = at::randperm(N, gen, at::TensorOptions().dtype(at::kLong));
      double sum = 0;
      for (int64_t j = 0; j < steps_per_epoch; ++j) {
        at::Tensor idx = perm.narrow(0, j * o.batch, std::min(o.batch, N - j * o.batch));
        at::Tensor x = (o.student_inputs_fp ? x_fp : x_q).index_select(0, idx).to(dev, dt);
        at::Tensor y = target.index_select(0, idx).to(dev, at::kFloat);
        at::Tensor loss, reg;
        {
          AutocastGuard ac(s.train_autocast, dev);  // forward and loss under autocast, backward outside (as torch.autocast)
          for (int64_t l = w.first; l <= w.last; ++l) x = block_forward(student.block(l, rate), c, x, rope);
          loss = at::mse_loss(x.to(at::kFloat), y);
          reg = student.regularizer(w.first, w.last, double(step) / double(total));
        }
        (reg.defined() ? loss + reg : loss).backward();
        const double lv = loss.item<double>();
        SQ_CHECK(std::isfinite(lv), o.label << ": the loss of window " << w.first << "-" << w.last
                                            << " became " << lv << " (lower the learning rates?)");
        sum += lv;
        if (o.grad_clip > 0) opt.clip(o.grad_clip);
        opt.step(double(total - step) / double(total));  // linear decay to 0, no warm-up
        ++step;
      }
      const double mean = sum / double(steps_per_epoch);
      if (e == 0) log.first_epoch_loss = mean;
      log.last_epoch_loss = mean;
      std::ostringstream extra;
      extra << "stage " << st + 1 << "/" << S << " (rate " << rate << ") window " << k + 1 << "/" << K << " [layers "
            << w.first << "-" << w.last << "] epoch " << e + 1 << "/" << o.epochs << " loss " << std::setprecision(4)
            << mean;
      bar.update(unit, extra.str());
    }
    s.seconds["window training"] += since(tr);
    const double unit_seconds = since(tt), peak_gpu = double(cuda_peak_bytes());
    s.metrics[o.label + " window first-epoch loss"].push_back(log.first_epoch_loss);
    s.metrics[o.label + " window last-epoch loss"].push_back(log.last_epoch_loss);
    s.metrics[o.label + " window seconds"].push_back(unit_seconds);
    s.metrics[o.label + " window peak GPU bytes"].push_back(peak_gpu);
    prog.unit_metrics.push_back({log.first_epoch_loss, log.last_epoch_loss, unit_seconds, peak_gpu});
    SQ_INFO(o.label << ": stage " << st + 1 << " window " << k + 1 << "/" << K << " [" << w.first << "-" << w.last
                     << "] loss " << log.first_epoch_loss << " -> " << log.last_epoch_loss);
    logs.push_back(log);
    ++unit;
    save_state(prog, student, unit);
    bar.update(unit);
    stop_point(o.label + " window stage " + std::to_string(unit) + " of " + std::to_string(S * K), s.work_dir);
    // Test hook: simulate a killed run after N trained window stages ("N", or "LABEL:N" for
    // the training run of that label only).
    if (const char* env = std::getenv("SQ_TEST_STOP_AFTER_WINDOWS")) {
      const std::string stop = env;
      const size_t colon = stop.rfind(':');
      const bool mine = colon == std::string::npos || stop.substr(0, colon) == o.label;
      if (mine && unit >= std::atoll(stop.c_str() + (colon == std::string::npos ? 0 : colon + 1)))
        SQ_FAIL(o.label << ": stopped after " << unit << " window stage(s) (SQ_TEST_STOP_AFTER_WINDOWS)");
    }
  };
  // Advances both streams past the layers that leave window k (student at RATE).
  auto advance = [&](size_t k, double rate) {
    const int64_t adv = window_advance(o.windows, k);
    if (adv == 0) return;
    auto ta = Clock::now();
    const int64_t first = o.windows[k].first;
    x_fp = run_layers(teacher, x_fp, first, adv);
    target_window = SIZE_MAX;
    if (!o.student_inputs_fp) x_q = run_layers([&](int64_t l) { return student.block(l, rate); }, x_q, first, adv);
    s.seconds["stream forwards"] += since(ta);
  };

  if (!o.stages_per_window) {
    for (int64_t st = 0; st < S; ++st) {
      if (prog.units_done >= (st + 1) * K) {  // a stage finished before the resume: nothing to replay
        for (size_t k = 0; k < o.windows.size(); ++k) train_unit(k, st);  // logs the saved metrics only
        continue;
      }
      x_fp = emb, x_q = emb;
      target_window = SIZE_MAX;
      for (size_t k = 0; k < o.windows.size(); ++k) {
        train_unit(k, st);
        advance(k, o.rates[size_t(st)]);
      }
    }
  } else {
    x_fp = emb, x_q = emb;
    for (size_t k = 0; k < o.windows.size(); ++k) {
      for (int64_t st = 0; st < S; ++st) train_unit(k, st);
      advance(k, o.rates.back());
    }
  }
  bar.finish();
  return logs;
}

}  // namespace sq
