// eval/zeroshot_scorer: ModelScorer, lm-eval's HFLM._loglikelihood_tokens on a Runner.
// Inputs (context + continuation)[-(L+1):][:-1]; requests with equal inputs, or inputs that
// are a prefix of another request's input, share one sequence (a causal model's logits on a
// prefix are the first logits of the longer sequence: BoolQ's " no"/" yes" and every
// one-token continuation of a question run once). Sequences run longest first in right-padded
// batches; the head runs only on the positions some continuation needs.
#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <numeric>
#include <tuple>

#include "batch_forward.h"
#include "sliderquant/core/error.h"
#include "sliderquant/eval/zeroshot.h"

namespace sq {
namespace {

struct Seq {
  std::vector<int64_t> ids;  // the input fed to the model
  int64_t first = 0;         // first position whose logits some request needs
};

bool is_prefix(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  return a.size() <= b.size() && std::equal(a.begin(), a.end(), b.begin());
}

}  // namespace

ModelScorer::ModelScorer(Runner& runner, ModelScorerOptions opts) : runner_(runner), opts_(opts) {
  if (opts_.max_length <= 0) opts_.max_length = runner.model().config.max_position_embeddings;
  SQ_CHECK(opts_.max_length >= 1 && opts_.batch_size >= 1 && opts_.batch_tokens >= 1,
           "scorer options: max_length, batch_size and batch_tokens must be positive");
}

std::vector<LoglikResult> ModelScorer::score(const std::vector<Request>& reqs) {
  const size_t n = reqs.size();
  std::vector<LoglikResult> out(n);
  if (n == 0) return out;
  // 1. Inputs and continuation lengths after left truncation (as the harness).
  std::vector<std::vector<int64_t>> inp(n), target(n);
  for (size_t r = 0; r < n; ++r) {
    const Request& q = reqs[r];
    SQ_CHECK(!q.context.empty() && !q.continuation.empty(), "request " << r << " has an empty context or continuation");
    std::vector<int64_t> full = q.context;
    full.insert(full.end(), q.continuation.begin(), q.continuation.end());
    const size_t keep = std::min(full.size(), size_t(opts_.max_length) + 1);
    full.erase(full.begin(), full.end() - long(keep));
    const size_t contlen = std::min(q.continuation.size(), full.size() - 1);
    target[r].assign(full.end() - long(contlen), full.end());
    full.pop_back();
    inp[r] = std::move(full);
  }
  // 2. Share sequences: in sorted order, the inputs having A as a prefix follow A directly.
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t(0));
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return inp[a] < inp[b]; });
  std::vector<int64_t> host_of(n, -1);  // request -> sequence
  std::vector<Seq> seqs;
  for (size_t i = n; i-- > 0;) {
    const size_t r = order[i];
    if (i + 1 < n && is_prefix(inp[r], inp[order[i + 1]])) {
      host_of[r] = host_of[order[i + 1]];
    } else {
      host_of[r] = int64_t(seqs.size());
      seqs.push_back({inp[r], int64_t(inp[r].size())});
    }
    Seq& s = seqs[size_t(host_of[r])];
    s.first = std::min(s.first, int64_t(inp[r].size() - target[r].size()));
  }
  std::vector<std::vector<size_t>> users(seqs.size());
  for (size_t r = 0; r < n; ++r) users[size_t(host_of[r])].push_back(r);
  // 3. Batches of sequences, longest first.
  std::vector<size_t> by_len(seqs.size());
  std::iota(by_len.begin(), by_len.end(), size_t(0));
  std::stable_sort(by_len.begin(), by_len.end(),
                   [&](size_t a, size_t b) { return seqs[a].ids.size() > seqs[b].ids.size(); });
  std::vector<std::vector<size_t>> batches;
  for (size_t i = 0; i < by_len.size();) {
    const int64_t T = int64_t(seqs[by_len[i]].ids.size());
    std::vector<size_t> b;
    while (i < by_len.size() && int64_t(b.size()) < opts_.batch_size &&
           (b.empty() || int64_t(b.size() + 1) * T <= opts_.batch_tokens))
      b.push_back(by_len[i++]);
    batches.push_back(std::move(b));
  }
  stats_.requests += int64_t(n);
  stats_.sequences += int64_t(seqs.size());

  c10::InferenceMode guard;
  const c10::Device dev = runner_.options().device;
  auto make_ids = [&](const std::vector<size_t>& b) {
    const int64_t T = int64_t(seqs[b[0]].ids.size());
    at::Tensor ids = at::zeros({int64_t(b.size()), T}, at::kLong);  // right padding: id 0, never read
    auto acc = ids.accessor<int64_t, 2>();
    for (size_t j = 0; j < b.size(); ++j) {
      const auto& s = seqs[b[j]].ids;
      for (size_t t = 0; t < s.size(); ++t) acc[long(j)][long(t)] = s[t];
      stats_.tokens += int64_t(s.size());
    }
    stats_.padded_tokens += ids.numel();
    return ids;
  };
  // 4. Forward in groups (one batch when resident), then the head on the needed rows only.
  for (size_t g0 = 0; g0 < batches.size();) {
    size_t g1 = g0 + 1;
    if (!runner_.resident()) {
      int64_t bytes = 0;
      for (; g1 <= batches.size(); ++g1) {
        const auto& b = batches[g1 - 1];
        bytes += detail::hidden_bytes(runner_, int64_t(b.size()), int64_t(seqs[b[0]].ids.size()));
        if (bytes > opts_.host_budget_bytes && g1 > g0 + 1) break;
      }
      --g1;
    }
    std::vector<at::Tensor> ids;
    for (size_t g = g0; g < g1; ++g) ids.push_back(make_ids(batches[g]));
    std::vector<at::Tensor> hidden = detail::final_hidden(runner_, ids);
    stats_.forwards += int64_t(g1 - g0);
    for (size_t g = g0; g < g1; ++g) {
      const auto& b = batches[g];
      const int64_t T = ids[g - g0].size(1);
      std::vector<int64_t> rows;  // flat indices j * T + t
      std::vector<int64_t> row_start(b.size());
      for (size_t j = 0; j < b.size(); ++j) {
        row_start[j] = int64_t(rows.size()) - seqs[b[j]].first;
        for (int64_t t = seqs[b[j]].first; t < int64_t(seqs[b[j]].ids.size()); ++t) rows.push_back(int64_t(j) * T + t);
      }
      at::Tensor h = hidden[g - g0].reshape({-1, hidden[g - g0].size(-1)});
      at::Tensor sel = h.index_select(0, at::tensor(rows, at::kLong).to(dev));  // [R, H]
      // (row, target) pairs per request: a shared row can serve requests with different targets.
      const int64_t R = int64_t(rows.size()), chunk = 512;
      std::vector<std::tuple<size_t, int64_t, int64_t>> pairs;  // request, row, target
      for (size_t j = 0; j < b.size(); ++j)
        for (size_t r : users[b[j]]) {
          const int64_t p0 = int64_t(inp[r].size() - target[r].size());
          for (size_t k = 0; k < target[r].size(); ++k)
            pairs.emplace_back(r, row_start[j] + p0 + int64_t(k), target[r][k]);
        }
      std::vector<double> picked(pairs.size());
      std::vector<int64_t> top(static_cast<size_t>(R));
      for (int64_t c0 = 0; c0 < R; c0 += chunk) {
        const int64_t c1 = std::min(R, c0 + chunk);
        at::Tensor lp = at::log_softmax(runner_.head(sel.narrow(0, c0, c1 - c0).unsqueeze(0)).squeeze(0).to(at::kFloat), -1);
        const int64_t V = lp.size(1);
        at::Tensor am = lp.argmax(-1).cpu();
        std::copy(am.data_ptr<int64_t>(), am.data_ptr<int64_t>() + (c1 - c0), top.begin() + c0);
        std::vector<int64_t> flat, which;
        for (size_t q = 0; q < pairs.size(); ++q) {
          const int64_t row = std::get<1>(pairs[q]);
          if (row < c0 || row >= c1) continue;
          flat.push_back((row - c0) * V + std::get<2>(pairs[q]));
          which.push_back(int64_t(q));
        }
        if (flat.empty()) continue;
        at::Tensor v = lp.reshape({-1}).index_select(0, at::tensor(flat, at::kLong).to(dev)).to(at::kDouble).cpu();
        for (size_t q = 0; q < which.size(); ++q) picked[size_t(which[q])] = v.data_ptr<double>()[q];
      }
      std::vector<double> sum(n, 0.0);  // O(n) per batch: fine for chunks of a few thousand requests
      std::vector<char> greedy(n, 1), touched(n, 0);
      for (size_t q = 0; q < pairs.size(); ++q) {
        const size_t r = std::get<0>(pairs[q]);
        sum[r] += picked[q];
        greedy[r] = greedy[r] && top[size_t(std::get<1>(pairs[q]))] == std::get<2>(pairs[q]);
        touched[r] = 1;
      }
      for (size_t r = 0; r < n; ++r)
        if (touched[r]) out[r] = {sum[r], greedy[r] != 0};
    }
    g0 = g1;
  }
  return out;
}

}  // namespace sq
