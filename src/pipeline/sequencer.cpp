// pipeline/sequencer: the block-by-block calibration driver (see the header). Streams live
// in host memory in the session's store dtype and move to the device one batch at a time;
// block results are checkpointed as plain (unpacked) QTensor fields in the work directory.
#include "sliderquant/pipeline/sequencer.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>

#include "sliderquant/core/error.h"
#include "sliderquant/core/interrupt.h"
#include "sliderquant/core/log.h"
#include "sliderquant/core/progress.h"
#include "sliderquant/core/torch_compat.h"
#include "sliderquant/core/util.h"
#include "sliderquant/io/safetensors.h"
#include "sliderquant/quant/gptq.h"

namespace sq {
namespace {

using Clock = std::chrono::steady_clock;

const auto since = synced_seconds_since;

std::string block_file(const std::string& work, int64_t i) {
  char buf[48];
  std::snprintf(buf, sizeof buf, "block_%05lld.safetensors", (long long)i);
  return path_join(work, buf);
}

constexpr const char* kMetricMeta = "sliderquant_metric:";

// ---- checkpoints: one safetensors file per finished block + state.json ----------------
struct WorkState {
  std::string path;
  nlohmann::json identity;  // what must match for a resume
  int64_t blocks_done = 0;
};

WorkState open_work_dir(const Session& s) {
  WorkState w;
  if (s.work_dir.empty()) return w;
  if (!is_directory(s.work_dir)) SQ_CHECK(::mkdir(s.work_dir.c_str(), 0755) == 0, "cannot create work directory " << s.work_dir);
  w.path = path_join(s.work_dir, "state.json");
  w.identity = s.work_identity();
  if (path_exists(w.path)) {
    nlohmann::json st = s.read_work_json(w.path);
    if (s.may_resume(st.value("identity", nlohmann::json()), w.identity, w.path)) {
      const nlohmann::json done = st.value("blocks_done", nlohmann::json());
      SQ_CHECK(done.is_number_integer() && done.get<int64_t>() >= 0 &&
                   done.get<int64_t>() <= int64_t(s.model.blocks.size()),
               "the checkpoint " << w.path << " is damaged (blocks_done " << done.dump() << "); "
                                 << s.clear_work_hint());
      w.blocks_done = done.get<int64_t>();
      SQ_INFO("resuming from " << s.work_dir << ": " << w.blocks_done << " block(s) already quantized");
    }
  }
  return w;
}

void save_block(Session& s, WorkState& w, int64_t i, const std::vector<std::string>& names) {
  if (w.path.empty()) return;
  NamedTensors ts;
  std::map<std::string, std::string> meta;
  for (const std::string& n : names) {
    if (n == "final_norm.bias") {
      ts.emplace_back(n, s.model.final_norm_bias);
      meta[n] = "bias";
      continue;
    }
    if (n.size() > 13 && n.compare(n.size() - 13, 13, "mlp_norm.bias") == 0) {
      ts.emplace_back(n, s.linear_block(n).mlp_norm_bias);
      meta[n] = "bias";
      continue;
    }
    auto put = [&](const std::string& p, const QTensor& q) {
      ts.emplace_back(p + ".codes", q.codes);
      if (q.scales.defined()) ts.emplace_back(p + ".scales", q.scales);
      if (q.zeros.defined()) ts.emplace_back(p + ".zeros", q.zeros);
      if (q.g_idx.defined()) ts.emplace_back(p + ".g_idx", q.g_idx);
      if (q.levels_r.defined()) ts.emplace_back(p + ".levels_r", q.levels_r);
      if (q.col_scale.defined()) ts.emplace_back(p + ".col_scale", q.col_scale);
      for (auto [suffix, field] : {std::pair{".mins", &q.mins}, std::pair{".sub_scales", &q.sub_scales},
                                   std::pair{".sub_mins", &q.sub_mins}, std::pair{".super_d", &q.super_d},
                                   std::pair{".super_dmin", &q.super_dmin}})
        if (field->defined()) ts.emplace_back(p + suffix, *field);
    };
    if (auto it = s.mixed.find(n); it != s.mixed.end()) {  // meta "mixed:HI:LO"
      const MixedQTensor& m = it->second;
      ts.emplace_back(n + ".hi_cols", m.hi_cols);
      put(n + ".hi", m.hi);
      put(n + ".lo", m.lo);
      meta[n] = "mixed:" + m.hi.format.name() + ":" + m.lo.format.name();
      continue;
    }
    const QTensor& q = s.quantized.at(n);
    put(n, q);
    meta[n] = q.format.name();
  }
  // Per-block report series (MoE expert token counts) travel with the block, so a resumed run
  // reports them too.
  const std::string bp = "blocks." + std::to_string(i) + ".";
  for (const auto& [key, values] : s.metrics)
    for (const char* kind : {"expert_tokens.", "starved_experts."})
      if (key.rfind(std::string(kind) + bp, 0) == 0) meta[kMetricMeta + key] = nlohmann::json(values).dump();
  write_safetensors(block_file(s.work_dir, i), ts, meta);
  w.blocks_done = i + 1;
  nlohmann::json st{{"identity", w.identity}, {"blocks_done", w.blocks_done}};
  write_file_atomic(w.path, st.dump(2) + "\n");
}

void load_block(Session& s, int64_t i) {
  auto f = SafetensorsFile::open(block_file(s.work_dir, i));
  for (const auto& [name, fmt] : f->metadata()) {
    if (name.rfind(kMetricMeta, 0) == 0) {
      s.metrics[name.substr(std::strlen(kMetricMeta))] = nlohmann::json::parse(fmt).get<std::vector<double>>();
      continue;
    }
    if (fmt == "bias") {
      (name == "final_norm.bias" ? s.model.final_norm_bias : s.linear_block(name).mlp_norm_bias) =
          f->tensor(name).clone();
      continue;
    }
    auto get = [&](const std::string& p, const std::string& format) {
      QTensor q;
      q.format = QFormat::parse(format);
      q.codes = f->tensor(p + ".codes").clone();
      for (auto [suffix, field] : {std::pair{".scales", &q.scales}, std::pair{".zeros", &q.zeros},
                                   std::pair{".g_idx", &q.g_idx}, std::pair{".levels_r", &q.levels_r},
                                   std::pair{".col_scale", &q.col_scale}, std::pair{".mins", &q.mins},
                                   std::pair{".sub_scales", &q.sub_scales}, std::pair{".sub_mins", &q.sub_mins},
                                   std::pair{".super_d", &q.super_d}, std::pair{".super_dmin", &q.super_dmin}})
        if (f->find(p + suffix)) *field = f->tensor(p + suffix).clone();
      return q;
    };
    if (fmt.rfind("mixed:", 0) == 0) {
      const size_t colon = fmt.find(':', 6);
      SQ_CHECK(colon != std::string::npos, block_file(s.work_dir, i) << ": bad mixed format " << fmt);
      MixedQTensor m;
      m.hi_cols = f->tensor(name + ".hi_cols").clone();
      m.hi = get(name + ".hi", fmt.substr(6, colon - 6));
      m.lo = get(name + ".lo", fmt.substr(colon + 1));
      m.in = m.hi.in_features() + m.lo.in_features();
      s.set_quantized(name, std::move(m));
      continue;
    }
    s.set_quantized(name, get(name, fmt));
  }
}

}  // namespace

void run_block_sequential(Session& s, const SequencerOptions& o,
                          const std::function<void(Session&, const GroupInputs&)>& quantize_group) {
  SQ_CHECK(s.calib != nullptr, "block-sequential calibration needs a calibration set");
  c10::InferenceMode guard;
  const ModelConfig& c = s.model.config;
  const c10::Device dev = s.runner.device;
  const c10::ScalarType dt = s.runner.dtype;
  const int64_t N = s.calib->samples, L = s.calib->seqlen;
  const int64_t bs = std::max<int64_t>(1, s.batch_size), nb = (N + bs - 1) / bs;
  at::Tensor ids = at::from_blob(const_cast<int64_t*>(s.calib->ids.data()), {N, L}, at::kLong);

  auto t0 = Clock::now();
  std::vector<at::Tensor> student(static_cast<size_t>(nb)), teacher;
  for (int64_t b = 0; b < nb; ++b)
    student[size_t(b)] = at::embedding(s.model.embed, ids.narrow(0, b * bs, std::min(bs, N - b * bs)))
                             .to(s.store_dtype);
  if (o.teacher_stream) teacher = student;
  RopeTable rope = make_rope(c, L, dev);
  s.seconds["embed"] += since(t0);

  WorkState work = open_work_dir(s);
  SQ_CHECK(!o.cross_terms || o.teacher_stream, "cross terms need the teacher stream");
  const bool need_fp_weights = o.teacher_stream || o.before_mlp || o.after_last;
  // Runs weights W on every batch of STREAM up to tap P, calling fn(batch, tap input).
  auto tap_all = [&](const BlockWeights& W, std::vector<at::Tensor>& stream, TapPoint P,
                     const std::function<void(int64_t, const at::Tensor&)>& fn) {
    for (int64_t b = 0; b < nb; ++b) {
      BlockTaps taps;
      taps.stop_after = P;
      taps.fn = [&](TapPoint p, const at::Tensor& x) {
        if (p == P) fn(b, x);
      };
      block_forward(W, c, stream[size_t(b)].to(dev, dt), rope, &taps);
    }
  };
  // Per-channel mean over all calibration tokens of (teacher tap - student tap) at P.
  auto mean_shift = [&](const BlockWeights& teacher_w, const BlockWeights& student_w, TapPoint P) {
    std::vector<at::Tensor> t_out(static_cast<size_t>(nb));
    tap_all(teacher_w, student, P, [&](int64_t b, const at::Tensor& x) { t_out[size_t(b)] = x.to(at::kFloat); });
    at::Tensor sum;
    int64_t n = 0;
    tap_all(student_w, student, P, [&](int64_t b, const at::Tensor& x) {
      at::Tensor d = (t_out[size_t(b)] - x.to(at::kFloat)).reshape({-1, x.size(-1)});
      sum = sum.defined() ? sum + d.sum(0) : d.sum(0);
      n += d.size(0);
    });
    return sum / double(n);
  };
  Progress bar("quantize blocks", c.num_layers);
  for (int64_t i = 0; i < c.num_layers; ++i) {
    Block& blk = s.model.blocks[size_t(i)];
    const std::string prefix = "blocks." + std::to_string(i) + ".";
    const bool last = i == c.num_layers - 1;
    BlockWeights fp_w, attn_q_w;  // full precision; attention quantized with an fp MLP (last block)
    if (need_fp_weights) fp_w = prepare_block(blk, c, dt, dev, i);
    std::vector<std::string> done;
    if (i < work.blocks_done) {
      try {
        load_block(s, i);
      } catch (const std::exception& e) {
        SQ_FAIL("the checkpoint " << block_file(s.work_dir, i) << " cannot be resumed (" << e.what() << "); "
                                  << s.clear_work_hint());
      }
    } else {
      // The routed experts reading input P: one pass over the calibration stream collects
      // every expert's statistics from the tokens routed to it, then each expert is quantized.
      auto quantize_experts = [&](TapPoint P) {
        const BlockLayout& lay = *blk.layout;
        const int E = lay.experts;
        std::vector<GroupInputs> groups(static_cast<size_t>(E));
        bool any = false;
        for (int e = 0; e < E; ++e) {
          groups[size_t(e)].block = i;
          groups[size_t(e)].point = P;
          groups[size_t(e)].expert = e;
          for (int j : lay.group(P, e)) {
            const LinearPlan* p = s.plan_for(blk.slots[size_t(j)].name);
            if (p && p->format) groups[size_t(e)].linears.push_back(p->name);
          }
          any = any || !groups[size_t(e)].linears.empty();
        }
        if (!any) return;
        auto tf = Clock::now();
        BlockWeights w = prepare_block(blk, c, dt, dev, i);
        const int64_t in_features = P == TapPoint::GateUpIn ? c.hidden_size : c.moe_intermediate_size;
        std::vector<HessianAccumulator> acc;
        for (int e = 0; e < E; ++e) acc.emplace_back(in_features);
        std::vector<int64_t> routed(static_cast<size_t>(E), 0), seen(static_cast<size_t>(E), 0);
        for (int64_t b = 0; b < nb; ++b) {
          BlockTaps taps;
          taps.all_experts = o.calibrate_all_experts;
          taps.fn = [&](TapPoint p, const at::Tensor& h) {  // the router's input: count routed tokens
            if (p != TapPoint::GateUpIn) return;
            const at::Tensor top = route_tokens(w.moe, h.reshape({-1, h.size(-1)})).experts.reshape({-1}).to(at::kCPU);
            const at::Tensor counts = at::bincount(top, {}, E);
            for (int e = 0; e < E; ++e) routed[size_t(e)] += counts[e].item<int64_t>();
          };
          taps.expert_fn = [&](TapPoint p, int e, const at::Tensor& x, const at::Tensor& r) {
            if (p != P) return;
            seen[size_t(e)] += x.size(0);
            if (o.hessians) acc[size_t(e)].add(x.to(at::kFloat) * r.to(x.device(), at::kFloat).unsqueeze(1));
          };
          block_forward(w, c, student[size_t(b)].to(dev, dt), rope, &taps);
        }
        const int64_t total = N * L;
        for (int e = 0; e < E; ++e)  // the guard against an expert path that skips the taps
          SQ_CHECK(seen[size_t(e)] == (o.calibrate_all_experts ? total : routed[size_t(e)]),
                   "block " << i << " expert " << e << ": the router sent it " << routed[size_t(e)]
                            << " calibration tokens but its " << tap_name(P) << " statistics saw "
                            << seen[size_t(e)] << " (an expert path bypassed the calibration taps)");
        // Starved experts: the fallback H.
        at::Tensor mean_h;
        int64_t mean_n = 0;
        for (int e = 0; e < E; ++e) {
          GroupInputs& in = groups[size_t(e)];
          in.tokens = seen[size_t(e)];
          // An expert without a routed token is starved whatever min_expert_tokens says (its H is 0).
          in.starved = !o.calibrate_all_experts && routed[size_t(e)] < std::max<int64_t>(1, o.min_expert_tokens);
          if (in.starved || !o.hessians) continue;
          const at::Tensor he = acc[size_t(e)].H() * double(in.tokens);
          mean_h = mean_h.defined() ? mean_h + he : he;
          mean_n += in.tokens;
        }
        std::vector<double> counts, starved;
        for (int e = 0; e < E; ++e) {
          GroupInputs& in = groups[size_t(e)];
          counts.push_back(double(routed[size_t(e)]));
          if (in.starved) starved.push_back(double(e));
          if (!o.hessians) continue;
          if (!in.starved) in.H = acc[size_t(e)].H();
          else if (o.starved_fallback == "mean" && mean_n > 0) in.H = mean_h / double(mean_n);
          else in.H = at::eye(in_features, at::TensorOptions().dtype(at::kFloat).device(dev));
          acc[size_t(e)] = HessianAccumulator(1);  // free it
        }
        const std::string key = prefix + (P == TapPoint::GateUpIn ? "gate_up" : "down");
        s.metrics["expert_tokens." + key] = counts;
        s.metrics["starved_experts." + key] = starved;
        if (!starved.empty())
          SQ_INFO("block " << i << " " << tap_name(P) << ": " << starved.size() << " of " << E
                           << " experts starved (< " << o.min_expert_tokens << " routed calibration tokens), "
                           << (o.starved_fallback == "mean" && mean_n > 0 ? "mean expert Hessian" : "round-to-nearest")
                           << " used for them");
        s.seconds["calibration forwards + hessians"] += since(tf);
        auto ts = Clock::now();
        for (GroupInputs& in : groups) {
          if (in.linears.empty()) continue;
          quantize_group(s, in);
          for (const std::string& n : in.linears) {
            SQ_CHECK(s.is_quantized(n), "pass left " << n << " unquantized");
            done.push_back(n);
          }
        }
        s.seconds["quantize (solve)"] += since(ts);
      };
      for (int g = 0; g < kTapPoints; ++g) {
        GroupInputs in;
        in.block = i;
        in.point = TapPoint(g);
        for (int j : blk.layout->group(TapPoint(g), -1)) {
          const LinearPlan* p = s.plan_for(blk.slots[size_t(j)].name);
          if (p && p->format) in.linears.push_back(p->name);
        }
        auto tf = Clock::now();
        if (in.point == TapPoint::GateUpIn && (o.before_mlp || (o.after_last && last))) {
          BlockWeights cur = prepare_block(blk, c, dt, dev, i);
          if (o.before_mlp) {
            o.before_mlp(s, i, mean_shift(fp_w, cur, TapPoint::GateUpIn));
            if (blk.mlp_norm_bias.defined()) done.push_back(prefix + "mlp_norm.bias");
          }
          if (o.after_last && last) attn_q_w = prepare_block(blk, c, dt, dev, i);
        }
        if (blk.layout->moe() && (in.point == TapPoint::GateUpIn || in.point == TapPoint::DownIn))
          quantize_experts(in.point);  // the block-wide linears of this input (shared expert) go after
        if (in.linears.empty()) continue;
        BlockWeights w = prepare_block(blk, c, dt, dev, i);
        const int64_t in_features = s.linear(in.linears[0]).weight.size(1);
        HessianAccumulator acc(in_features);
        std::vector<at::Tensor> x_fp(o.cross_terms ? static_cast<size_t>(nb) : 0);
        if (o.cross_terms)
          tap_all(fp_w, teacher, in.point, [&](int64_t b, const at::Tensor& x) { x_fp[size_t(b)] = x; });
        at::Tensor cross;
        int64_t cross_n = 0;
        tap_all(w, student, in.point, [&](int64_t b, const at::Tensor& x) {
          if (o.hessians) {  // timed apart: the XᵀX share of "calibration forwards + hessians"
            auto th = Clock::now();
            acc.add(x);
            s.seconds["of which hessian accumulation"] += since(th);
          }
          if (o.cross_terms) {
            at::Tensor xq = x.reshape({-1, x.size(-1)}).to(at::kFloat);
            at::Tensor d = x_fp[size_t(b)].reshape({-1, x.size(-1)}).to(at::kFloat) - xq;
            at::Tensor t = at::matmul(d.t(), xq);
            cross = cross.defined() ? cross + t : t;
            cross_n += xq.size(0);
            x_fp[size_t(b)] = at::Tensor();
          }
        });
        if (o.hessians) in.H = acc.H();
        if (o.cross_terms) in.dXXT = cross * (2.0 / double(cross_n));
        s.seconds["calibration forwards + hessians"] += since(tf);
        auto ts = Clock::now();
        quantize_group(s, in);
        s.seconds["quantize (solve)"] += since(ts);
        for (const std::string& n : in.linears) {
          SQ_CHECK(s.is_quantized(n), "pass left " << n << " unquantized");
          done.push_back(n);
        }
      }
    }
    if (o.after_last && last && i >= work.blocks_done) {
      // Final-norm mean shift: teacher = last block with quantized attention and fp MLP.
      BlockWeights qw = prepare_block(blk, c, dt, dev, i);
      at::Tensor fnorm = s.model.final_norm.to(dev, dt);
      at::Tensor sum;
      int64_t n = 0;
      for (int64_t b = 0; b < nb; ++b) {
        at::Tensor x = student[size_t(b)].to(dev, dt);
        at::Tensor yt = rms_norm(block_forward(attn_q_w, c, x, rope), fnorm, c.rms_norm_eps).to(at::kFloat);
        at::Tensor ys = rms_norm(block_forward(qw, c, x, rope), fnorm, c.rms_norm_eps).to(at::kFloat);
        at::Tensor d = (yt - ys).reshape({-1, yt.size(-1)});
        sum = sum.defined() ? sum + d.sum(0) : d.sum(0);
        n += d.size(0);
      }
      o.after_last(s, sum / double(n));
      if (s.model.final_norm_bias.defined()) done.push_back("final_norm.bias");
    }
    auto ta = Clock::now();
    BlockWeights qw = prepare_block(blk, c, dt, dev, i);
    for (int64_t b = 0; b < nb; ++b) {
      student[size_t(b)] = block_forward(qw, c, student[size_t(b)].to(dev, dt), rope).to(at::kCPU, s.store_dtype);
      if (o.teacher_stream)
        teacher[size_t(b)] = block_forward(fp_w, c, teacher[size_t(b)].to(dev, dt), rope).to(at::kCPU, s.store_dtype);
    }
    s.seconds["stream forwards"] += since(ta);
    if (i >= work.blocks_done) save_block(s, work, i, done);
    bar.update(i + 1);
    stop_point("block " + std::to_string(i + 1) + " of " + std::to_string(c.num_layers), s.work_dir);
  }
  bar.finish();
}

}  // namespace sq
