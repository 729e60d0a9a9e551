// eval/zeroshot: documents -> requests (tokenized as lm-eval's HFLM._encode_pair) -> a
// Scorer -> the harness's metrics (acc, acc_norm = argmax loglik / len(choice), sample
// stderr; LAMBADA: greedy match and perplexity = exp(-mean loglik)).
// Task files and prompts: zeroshot_tasks.cpp. Running a model: zeroshot_scorer.cpp.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include "sliderquant/core/error.h"
#include "sliderquant/core/progress.h"
#include "sliderquant/eval/zeroshot.h"

namespace sq {

Request encode_request(const Tokenizer& tok, const std::string& context, const std::string& continuation,
                       bool add_bos) {
  std::string ctx = context, cont = continuation;
  size_t keep = ctx.find_last_not_of(" \t\n\r\v\f");
  keep = keep == std::string::npos ? 0 : keep + 1;
  if (keep < ctx.size()) {  // n_spaces = len(context) - len(context.rstrip())
    cont = ctx.substr(keep) + cont;
    ctx.resize(keep);
  }
  std::vector<int64_t> whole = tok.encode(ctx + cont);
  std::vector<int64_t> c = tok.encode(ctx);
  Request r;
  if (add_bos && tok.bos_id >= 0) r.context.push_back(tok.bos_id);
  size_t n = std::min(c.size(), whole.size());
  r.context.insert(r.context.end(), whole.begin(), whole.begin() + long(n));
  r.continuation.assign(whole.begin() + long(n), whole.end());
  SQ_CHECK(!r.continuation.empty(), "continuation \"" << continuation << "\" encodes to no tokens after its context");
  SQ_CHECK(!r.context.empty(), "empty context for continuation \"" << continuation
                                                                   << "\" (use a BOS token: --zs-bos yes)");
  return r;
}

double binary_stderr(double p, int64_t n) {
  if (n < 2) return 0;
  return std::sqrt(std::max(0.0, p * (1 - p)) / double(n - 1));
}

double zeroshot_summary(const std::vector<TaskResult>& results) {
  if (results.empty()) return 0;
  double s = 0;
  for (const TaskResult& r : results) s += r.score;
  return s / double(results.size());
}

namespace {

int argmax_first(const std::vector<double>& v) {  // np.argmax: the first maximum
  int best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[size_t(best)]) best = int(i);
  return best;
}

}  // namespace

TaskResult evaluate_task(const TaskData& data, Scorer& scorer, const Tokenizer& tok, const ZeroshotOptions& opts) {
  SQ_CHECK(opts.chunk_docs >= 1, "chunk_docs must be at least 1");
  TaskResult r;
  r.task = data.spec.name;
  r.n = int64_t(data.docs.size());
  r.has_acc_norm = data.spec.has_acc_norm;
  r.has_ppl = data.spec.is_lambada;
  SQ_CHECK(r.n > 0, "task " << r.task << " has no documents");
  auto t0 = std::chrono::steady_clock::now();
  std::optional<Progress> bar;
  if (opts.progress) bar.emplace(r.task, r.n);
  double correct = 0, correct_norm = 0, ll_sum = 0;
  for (int64_t d0 = 0; d0 < r.n; d0 += opts.chunk_docs) {
    const int64_t d1 = std::min(r.n, d0 + opts.chunk_docs);
    std::vector<Request> reqs;
    for (int64_t d = d0; d < d1; ++d) {
      const TaskDoc& doc = data.docs[size_t(d)];
      SQ_CHECK(doc.contexts.size() == doc.continuations.size() && doc.choices.size() == doc.contexts.size(),
               "task " << r.task << " document " << d << ": contexts, continuations and choices differ in number");
      for (size_t k = 0; k < doc.contexts.size(); ++k)
        reqs.push_back(encode_request(tok, doc.contexts[k], doc.continuations[k], opts.add_bos));
    }
    std::vector<LoglikResult> res = scorer.score(reqs);
    SQ_CHECK(res.size() == reqs.size(), "scorer returned " << res.size() << " results for " << reqs.size());
    r.requests += int64_t(reqs.size());
    size_t k = 0;
    for (int64_t d = d0; d < d1; ++d) {
      const TaskDoc& doc = data.docs[size_t(d)];
      std::vector<double> ll, norm;
      bool greedy = true;
      for (size_t c = 0; c < doc.contexts.size(); ++c, ++k) {
        SQ_CHECK(std::isfinite(res[k].logprob), "task " << r.task << " document " << d << " choice " << c
                                                        << ": the log-likelihood is " << res[k].logprob
                                                        << " (the model's logits are not finite)");
        ll.push_back(res[k].logprob);
        norm.push_back(res[k].logprob / double(std::max<int64_t>(1, utf8_length(doc.choices[c]))));
        greedy = greedy && res[k].is_greedy;
      }
      if (data.spec.is_lambada) {
        r.pred.push_back(greedy ? 1 : 0);
        correct += greedy ? 1 : 0;
        ll_sum += ll[0];
      } else {
        int p = argmax_first(ll), pn = argmax_first(norm);
        r.pred.push_back(p);
        r.pred_norm.push_back(pn);
        correct += p == doc.gold;
        correct_norm += pn == doc.gold;
      }
      r.loglik.push_back(std::move(ll));
    }
    if (opts.progress) {
      char buf[48];
      std::snprintf(buf, sizeof buf, "acc %.4f", correct / double(d1));
      bar->update(d1, buf);
    }
  }
  if (bar) bar->finish();
  r.acc = correct / double(r.n);
  r.acc_stderr = binary_stderr(r.acc, r.n);
  if (r.has_acc_norm) {
    r.acc_norm = correct_norm / double(r.n);
    r.acc_norm_stderr = binary_stderr(r.acc_norm, r.n);
  }
  if (r.has_ppl) r.ppl = std::exp(-ll_sum / double(r.n));
  r.score = 100.0 * (r.has_acc_norm ? r.acc_norm : r.acc);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.items_per_second = r.seconds > 0 ? double(r.n) / r.seconds : 0;
  return r;
}

}  // namespace sq
