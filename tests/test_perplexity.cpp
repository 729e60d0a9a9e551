// Tests of eval/perplexity: the GPTQ protocol against a direct float64 computation, the
// golden prompt NLL of stories260K, determinism, batching and the streaming runner.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/data/tokenizer.h"
#include "sliderquant/eval/perplexity.h"
#include "sliderquant/model/model.h"

using namespace sq;

namespace {
const std::string kModel = std::string(SQ_FIXTURES_DIR) + "/stories260K/hf";
const std::string kText = std::string(SQ_FIXTURES_DIR) + "/text/wikitext2_head.txt";

std::vector<int64_t> fixture_ids() {
  auto tok = load_tokenizer(kModel);
  return tok->encode_for_model(read_file(kText));
}

PplOptions opts(int64_t seqlen, int64_t batch = 1) {
  PplOptions o;
  o.seqlen = seqlen;
  o.batch_size = batch;
  o.progress = false;
  return o;
}
}  // namespace

// The reference prompt's NLL per token was computed in float64 by an independent forward.
TEST(Perplexity, GoldenPromptNll) {
  auto j = nlohmann::json::parse(read_file(std::string(SQ_FIXTURES_DIR) + "/stories260K/reference/prompt1.json"));
  std::vector<int64_t> ids = j["prompt_ids"].get<std::vector<int64_t>>();
  Model m = load_model(kModel);
  Runner r(m, {});
  PplResult res = perplexity(r, ids, opts(int64_t(ids.size())));
  EXPECT_EQ(res.windows, 1);
  EXPECT_EQ(res.tokens_scored, int64_t(ids.size()) - 1);
  EXPECT_NEAR(res.nll, j["prompt_nll_per_token"].get<double>(), 2e-6);
}

// GPTQ protocol by hand: non-overlapping windows, tail dropped, mean of window means.
TEST(Perplexity, MatchesDirectComputation) {
  std::vector<int64_t> ids = fixture_ids();
  Model m = load_model(kModel);
  Runner r(m, {});
  const int64_t T = 256, n = int64_t(ids.size()) / T;
  PplResult res = perplexity(r, ids, opts(T));
  ASSERT_EQ(res.windows, n);
  double total = 0;
  for (int64_t w = 0; w < n; ++w) {
    at::Tensor x = at::tensor(at::ArrayRef<int64_t>(ids.data() + w * T, size_t(T))).view({1, T});
    at::Tensor lp = at::log_softmax(r.logits(x).squeeze(0).to(at::kDouble), -1);
    double s = 0;
    for (int64_t t = 0; t + 1 < T; ++t) s -= lp[t][ids[size_t(w * T + t + 1)]].item<double>();
    total += s / double(T - 1);
    EXPECT_NEAR(res.window_nll[size_t(w)], s / double(T - 1), 1e-5) << w;
  }
  EXPECT_NEAR(res.ppl, std::exp(total / double(n)), 1e-3);
  // Pinned value (float32, CPU): the fixture text is fixed, so is this number.
  EXPECT_NEAR(res.ppl, 106.2842, 0.01);
}

TEST(Perplexity, DeterministicAcrossBatchingAndStreaming) {
  std::vector<int64_t> ids = fixture_ids();
  Model m = load_model(kModel);
  Runner r(m, {});
  PplResult a = perplexity(r, ids, opts(128));
  PplResult b = perplexity(r, ids, opts(128));
  EXPECT_EQ(a.ppl, b.ppl);
  PplResult c = perplexity(r, ids, opts(128, 5));  // last batch is partial
  EXPECT_NEAR(a.ppl, c.ppl, 1e-4 * a.ppl);
  RunnerOptions so;
  so.resident_budget = 0;
  Runner s(m, so);
  PplResult d = perplexity(s, ids, opts(128, 4));
  EXPECT_TRUE(d.streamed);
  EXPECT_NEAR(a.ppl, d.ppl, 1e-4 * a.ppl);
  PplOptions lim = opts(128);
  lim.max_windows = 3;
  PplResult e = perplexity(r, ids, lim);
  EXPECT_EQ(e.windows, 3);
  EXPECT_EQ(e.window_nll[2], a.window_nll[2]);
}

TEST(Perplexity, TooShortTextIsAnError) {
  Model m = load_model(kModel);
  Runner r(m, {});
  std::vector<int64_t> ids(100, 5);
  try {
    perplexity(r, ids, opts(256));
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("fewer than one window"), std::string::npos) << e.what();
  }
}
