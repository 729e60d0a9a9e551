// eval/kld: KL(P_base || P_model) per scored token on perplexity windows. Per window batch the
// final hidden states of both runners are computed (layer-major in groups for streaming
// runners), then the heads run on 256-position chunks: KL, top-1 agreement and both NLLs are
// reduced at once, so [T, V] logits are never materialised for a whole window.
#include "sliderquant/eval/kld.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include "batch_forward.h"
#include "sliderquant/core/error.h"
#include "sliderquant/core/progress.h"
#include "sliderquant/core/torch_compat.h"

namespace sq {

double percentile(std::vector<float>& v, double q) {
  SQ_CHECK(!v.empty(), "percentile of no values");
  const double pos = q / 100.0 * double(v.size() - 1);
  const size_t lo = size_t(std::floor(pos));
  std::nth_element(v.begin(), v.begin() + long(lo), v.end());
  const double a = v[lo];
  if (lo + 1 >= v.size()) return a;
  const double b = *std::min_element(v.begin() + long(lo) + 1, v.end());
  return a + (b - a) * (pos - double(lo));
}

KldResult kl_divergence(Runner& model, Runner& base, const std::vector<int64_t>& ids, const KldOptions& opts) {
  SQ_CHECK(opts.seqlen >= 2, "seqlen must be at least 2");
  SQ_CHECK(opts.batch_size >= 1, "batch size must be at least 1");
  SQ_CHECK(model.model().config.vocab_size == base.model().config.vocab_size,
           "KL divergence needs one vocabulary: the model has " << model.model().config.vocab_size
                                                               << " tokens, the base " << base.model().config.vocab_size);
  SQ_CHECK(model.options().device == base.options().device, "KL divergence needs both models on one device");
  KldResult r;
  r.seqlen = opts.seqlen;
  r.windows = int64_t(ids.size()) / opts.seqlen;
  if (opts.max_windows > 0) r.windows = std::min(r.windows, opts.max_windows);
  SQ_CHECK(r.windows > 0, "the text has " << ids.size() << " tokens, fewer than one window of " << opts.seqlen);
  r.tokens = r.windows * (opts.seqlen - 1);

  c10::InferenceMode guard;
  const c10::Device dev = model.options().device;
  at::Tensor all = at::from_blob(const_cast<int64_t*>(ids.data()), {r.windows * opts.seqlen}, at::kLong)
                       .view({r.windows, opts.seqlen});
  std::vector<at::Tensor> batches;
  for (int64_t w = 0; w < r.windows; w += opts.batch_size)
    batches.push_back(all.narrow(0, w, std::min(opts.batch_size, r.windows - w)));
  const bool resident = model.resident() && base.resident();
  const int64_t budget = int64_t(1) << 30;

  std::vector<float> values;
  values.reserve(size_t(r.tokens));
  double kl_sum = 0, base_nll = 0, model_nll = 0;
  int64_t agree = 0, done = 0;
  std::optional<Progress> bar;
  if (opts.progress) bar.emplace(opts.label, r.windows);
  cuda_synchronize();
  auto t0 = std::chrono::steady_clock::now();
  for (size_t g0 = 0; g0 < batches.size();) {
    size_t g1 = g0 + 1;
    if (!resident) {
      int64_t bytes = detail::hidden_bytes(model, batches[g0].size(0), opts.seqlen);
      while (g1 < batches.size() && bytes + detail::hidden_bytes(model, batches[g1].size(0), opts.seqlen) <= budget)
        bytes += detail::hidden_bytes(model, batches[g1++].size(0), opts.seqlen);
    }
    std::vector<at::Tensor> group(batches.begin() + long(g0), batches.begin() + long(g1));
    std::vector<at::Tensor> hb = detail::final_hidden(base, group);
    std::vector<at::Tensor> hm = detail::final_hidden(model, group);
    for (size_t g = 0; g < group.size(); ++g) {
      const int64_t B = group[g].size(0), T = opts.seqlen, chunk = 256;
      at::Tensor tgt = group[g].to(dev).narrow(1, 1, T - 1);  // [B, T-1]
      for (int64_t t0c = 0; t0c < T - 1; t0c += chunk) {
        const int64_t n = std::min(chunk, T - 1 - t0c);
        at::Tensor lb = at::log_softmax(base.head(hb[g].narrow(1, t0c, n)).to(at::kFloat), -1);   // [B, n, V]
        at::Tensor lm = at::log_softmax(model.head(hm[g].narrow(1, t0c, n)).to(at::kFloat), -1);  // [B, n, V]
        at::Tensor kl = (lb.exp() * (lb - lm)).sum(-1).clamp_min(0).reshape({-1}).cpu();   // [B n]
        at::Tensor tg = tgt.narrow(1, t0c, n).unsqueeze(-1);
        base_nll -= lb.gather(-1, tg).to(at::kDouble).sum().item<double>();
        model_nll -= lm.gather(-1, tg).to(at::kDouble).sum().item<double>();
        agree += lb.argmax(-1).eq(lm.argmax(-1)).sum().item<int64_t>();
        const float* p = kl.data_ptr<float>();
        for (int64_t i = 0; i < kl.numel(); ++i) kl_sum += p[i];
        values.insert(values.end(), p, p + kl.numel());
      }
      done += B;
    }
    if (bar) {
      char buf[48];
      std::snprintf(buf, sizeof buf, "mean KL %.5f", kl_sum / double(values.size()));
      bar->update(done, buf);
    }
    g0 = g1;
  }
  if (bar) bar->finish();
  cuda_synchronize();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double N = double(values.size());
  r.mean_kl = kl_sum / N;
  SQ_CHECK(std::isfinite(kl_sum) && std::isfinite(base_nll) && std::isfinite(model_nll),
           "KL divergence: a value is not finite (KL sum " << kl_sum << ", base NLL " << base_nll << ", model NLL "
                                                           << model_nll << "); the logits of a model are not finite");
  r.top1_agreement = double(agree) / N;
  r.base_nll = base_nll / N;
  r.model_nll = model_nll / N;
  r.max_kl = *std::max_element(values.begin(), values.end());
  if (opts.keep_values) r.values = values;
  r.p99_kl = percentile(values, 99.0);
  r.median_kl = percentile(values, 50.0);
  return r;
}

}  // namespace sq
