// eval/perplexity: the GPTQ-protocol perplexity loop. With the whole model on the device it
// runs window batch by window batch; when the runner streams weights block by block it runs
// layer-major instead (every window through block i, then block i+1), keeping the hidden
// states in host memory, so each block is moved to the device once per evaluation.
#include "sliderquant/eval/perplexity.h"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cstdio>
#include <cmath>

#include "sliderquant/core/error.h"
#include "sliderquant/core/progress.h"
#include "sliderquant/core/torch_compat.h"

namespace sq {

std::vector<double> window_nll(const at::Tensor& logits, const at::Tensor& ids) {
  const int64_t B = logits.size(0), T = logits.size(1);
  at::Tensor tgt = ids.to(logits.device(), at::kLong).narrow(1, 1, T - 1);  // [B, T-1]
  at::Tensor sum = at::zeros({B}, logits.options().dtype(at::kDouble));
  const int64_t chunk = 512;
  for (int64_t t0 = 0; t0 < T - 1; t0 += chunk) {
    int64_t n = std::min(chunk, T - 1 - t0);
    at::Tensor lp = at::log_softmax(logits.narrow(1, t0, n).to(at::kFloat), -1);   // [B, n, V]
    at::Tensor picked = lp.gather(-1, tgt.narrow(1, t0, n).unsqueeze(-1)).squeeze(-1);
    sum -= picked.to(at::kDouble).sum(1);
  }
  at::Tensor mean = (sum / double(T - 1)).cpu();
  return std::vector<double>(mean.data_ptr<double>(), mean.data_ptr<double>() + B);
}

PplResult perplexity(Runner& runner, const std::vector<int64_t>& ids, const PplOptions& opts) {
  SQ_CHECK(opts.seqlen >= 2, "seqlen must be at least 2");
  SQ_CHECK(opts.batch_size >= 1, "batch size must be at least 1");
  PplResult r;
  r.seqlen = opts.seqlen;
  r.tokens_total = int64_t(ids.size());
  r.windows = r.tokens_total / opts.seqlen;
  if (opts.max_windows > 0) r.windows = std::min(r.windows, opts.max_windows);
  SQ_CHECK(r.windows > 0, "the text has " << ids.size() << " tokens, fewer than one window of "
                                          << opts.seqlen << " (use a smaller --seqlen or a longer text)");
  r.tokens_scored = r.windows * (opts.seqlen - 1);
  r.streamed = !runner.resident();

  c10::InferenceMode guard;
  const c10::Device dev = runner.options().device;
  at::Tensor all = at::from_blob(const_cast<int64_t*>(ids.data()), {r.windows * opts.seqlen}, at::kLong)
                       .view({r.windows, opts.seqlen});
  const int64_t nb = (r.windows + opts.batch_size - 1) / opts.batch_size;
  auto batch_ids = [&](int64_t b) {
    int64_t w0 = b * opts.batch_size, n = std::min(opts.batch_size, r.windows - w0);
    return all.narrow(0, w0, n);
  };
  cuda_synchronize();
  auto t0 = std::chrono::steady_clock::now();
  if (runner.resident()) {
    Progress bar(opts.label, r.windows);
    for (int64_t b = 0; b < nb; ++b) {
      at::Tensor x = batch_ids(b);
      auto nll = window_nll(runner.logits(x), x);
      r.window_nll.insert(r.window_nll.end(), nll.begin(), nll.end());
      double m = 0;
      for (double v : r.window_nll) m += v;
      if (opts.progress) {
        char buf[48];
        std::snprintf(buf, sizeof buf, "ppl %.4f", std::exp(m / double(r.window_nll.size())));
        bar.update(int64_t(r.window_nll.size()), buf);
      }
    }
    if (opts.progress) bar.finish();
  } else {
    const int64_t L = runner.model().config.num_layers;
    Progress bar(opts.label + " (streaming layers)", L);
    std::vector<at::Tensor> hidden(static_cast<size_t>(nb));  // host copies, compute dtype
    for (int64_t b = 0; b < nb; ++b) hidden[size_t(b)] = runner.embed(batch_ids(b)).cpu();
    for (int64_t i = 0; i < L; ++i) {
      for (int64_t b = 0; b < nb; ++b) hidden[size_t(b)] = runner.block(i, hidden[size_t(b)].to(dev)).cpu();
      if (opts.progress) bar.update(i + 1);
    }
    for (int64_t b = 0; b < nb; ++b) {
      auto nll = window_nll(runner.head(hidden[size_t(b)].to(dev)), batch_ids(b));
      r.window_nll.insert(r.window_nll.end(), nll.begin(), nll.end());
    }
    if (opts.progress) bar.finish();
  }
  cuda_synchronize();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  double sum = 0;
  for (double v : r.window_nll) sum += v;
  r.nll = sum / double(r.window_nll.size());
  for (size_t w = 0; w < r.window_nll.size(); ++w)
    SQ_CHECK(std::isfinite(r.window_nll[w]), opts.label << ": the loss of window " << w << " is " << r.window_nll[w]
                                                        << " (the model's logits are not finite); no perplexity");
  r.ppl = std::exp(r.nll);
  r.tokens_per_second = r.seconds > 0 ? double(r.windows * opts.seqlen) / r.seconds : 0;
  return r;
}

}  // namespace sq
