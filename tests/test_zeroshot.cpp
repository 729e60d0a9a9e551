// Tests of eval/zeroshot and eval/kld: the harness prompts built from one real item per task
// (fixtures), acc vs acc_norm, WinoGrande partial scoring and LAMBADA greedy matching with a
// fake scorer of known log-likelihoods, HFLM-style tokenization, ModelScorer against a direct
// per-request computation, pinned stories260K accuracies, KL of a model against itself and
// against its bf16 computation, and the CLI's zero-shot / KL report.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "test_util.h"
#include <sys/wait.h>

#include <array>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/data/tokenizer.h"
#include "sliderquant/eval/kld.h"
#include "sliderquant/eval/zeroshot.h"
#include "sliderquant/model/model.h"

using namespace sq;

namespace {
const std::string kFixtures = SQ_FIXTURES_DIR;
const std::string kModel = kFixtures + "/stories260K/hf";
const std::string kText = kFixtures + "/text/wikitext2_head.txt";

// One id per byte (ids 3..258), BOS = 1: continuation ids are exactly its bytes.
class ByteTokenizer : public Tokenizer {
 public:
  ByteTokenizer() { bos_id = 1; }
  std::vector<int64_t> encode(const std::string& text) const override {
    std::vector<int64_t> ids;
    for (unsigned char c : text) ids.push_back(int64_t(c) + 3);
    return ids;
  }
  std::string decode(const std::vector<int64_t>& ids) const override {
    std::string s;
    for (int64_t i : ids)
      if (i >= 3) s += char(i - 3);
    return s;
  }
  int64_t vocab_size() const override { return 259; }
  std::string kind() const override { return "bytes"; }
};

// Log-likelihoods by (context, continuation) strings; records what it was asked.
class FakeScorer : public Scorer {
 public:
  std::map<std::pair<std::string, std::string>, LoglikResult> table;
  std::vector<std::pair<std::string, std::string>> asked;
  ByteTokenizer tok;
  std::vector<LoglikResult> score(const std::vector<Request>& reqs) override {
    std::vector<LoglikResult> out;
    for (const Request& r : reqs) {
      auto key = std::make_pair(tok.decode(r.context), tok.decode(r.continuation));
      asked.push_back(key);
      auto it = table.find(key);
      if (it == table.end()) throw Error("fake scorer: no entry for [" + key.first + "|" + key.second + "]");
      out.push_back(it->second);
    }
    return out;
  }
};

TaskData task_from(const std::string& name, std::vector<TaskDoc> docs) {
  TaskData d;
  d.spec = zeroshot_task(name);
  d.docs = std::move(docs);
  return d;
}

ZeroshotOptions quiet_opts() {
  ZeroshotOptions o;
  o.progress = false;
  return o;
}

TaskData fixture_task(const std::string& name, int64_t limit) { return load_task(name, kFixtures, limit); }
}  // namespace

// ---- prompts: one real item per task, the exact strings the harness builds ----------------
TEST(ZeroshotPrompts, PiqaArcBoolq) {
  TaskDoc p = fixture_task("piqa", 1).docs[0];
  EXPECT_EQ(p.contexts[0], "Question: How do I ready a guinea pig cage for it's new occupants?\nAnswer:");
  EXPECT_EQ(p.contexts[1], p.contexts[0]);
  EXPECT_EQ(p.continuations[0].substr(0, 25), " Provide the guinea pig w");
  EXPECT_EQ(p.continuations[0], " " + p.choices[0]);
  EXPECT_EQ(p.gold, 0);

  TaskDoc e = fixture_task("arc_easy", 1).docs[0];
  EXPECT_EQ(e.contexts[0],
            "Question: Which statement best explains why photosynthesis is the foundation of most food webs?\nAnswer:");
  ASSERT_EQ(e.choices.size(), 4u);
  EXPECT_EQ(e.continuations[0], " Sunlight is the source of energy for nearly all ecosystems.");
  EXPECT_EQ(e.gold, 0);
  TaskDoc c = fixture_task("arc_challenge", 1).docs[0];
  EXPECT_EQ(c.contexts[0].substr(0, 40), "Question: An astronomer observes that a ");
  EXPECT_EQ(c.contexts[0].substr(c.contexts[0].size() - 21), " in rotation?\nAnswer:");
  EXPECT_EQ(c.continuations[2], " Planetary days will become shorter.");
  EXPECT_EQ(c.gold, 2);

  TaskDoc b = fixture_task("boolq", 1).docs[0];
  EXPECT_EQ(b.contexts[0].substr(0, 27), "All biomass goes through at");  // "Passage: " removed
  const std::string tail = "\nQuestion: does ethanol take more energy make that produces?\nAnswer:";
  EXPECT_EQ(b.contexts[0].substr(b.contexts[0].size() - tail.size()), tail);
  EXPECT_EQ(b.continuations, (std::vector<std::string>{" no", " yes"}));
  EXPECT_EQ(b.gold, 0);
}

TEST(ZeroshotPrompts, HellaswagWinograndeLambada) {
  TaskData h = fixture_task("hellaswag", 0);  // the .bz2 fixture: 20 items
  ASSERT_EQ(h.docs.size(), 20u);
  // ctx_b ("he") capitalized as the harness does; endings preprocessed, " " delimiter.
  EXPECT_EQ(h.docs[0].contexts[0], "Roof shingle removal: A man is sitting on a roof. He");
  EXPECT_EQ(h.docs[0].continuations[3], " starts pulling up roofing on a roof.");
  EXPECT_EQ(h.docs[0].gold, 3);
  EXPECT_EQ(h.docs[1].contexts[0], "Clean and jerk: A lady walks to a barbell. She bends down and grabs the pole. The lady");
  EXPECT_EQ(h.spec.has_acc_norm, true);

  TaskDoc w = fixture_task("winogrande", 1).docs[0];
  EXPECT_EQ(w.contexts, (std::vector<std::string>{"Sarah was a much better surgeon than Maria so Sarah",
                                                  "Sarah was a much better surgeon than Maria so Maria"}));
  EXPECT_EQ(w.continuations, (std::vector<std::string>{" always got the easier cases.", " always got the easier cases."}));
  EXPECT_EQ(w.gold, 1);

  TaskDoc l = fixture_task("lambada_openai", 1).docs[0];
  EXPECT_EQ(l.continuations, std::vector<std::string>{" signs"});
  const std::string end = "his mouth curved in a confident grin, I don't care about";
  EXPECT_EQ(l.contexts[0].substr(l.contexts[0].size() - end.size()), end);
}

TEST(ZeroshotPrompts, PreprocessAndHelpers) {
  EXPECT_EQ(hellaswag_preprocess("  How to x [title] Do it. [step] Then  go [header] now "), "How to x. Do it. Then go now");
  EXPECT_EQ(hellaswag_preprocess("a [unclosed b"), "a [unclosed b");
  EXPECT_EQ(py_capitalize("the lady In Paris"), "The lady in paris");
  EXPECT_EQ(utf8_length("caf\xc3\xa9"), 4);
  EXPECT_EQ(parse_task_list("all").size(), 7u);
  EXPECT_EQ(parse_task_list("piqa,boolq"), (std::vector<std::string>{"piqa", "boolq"}));
  EXPECT_THROW(parse_task_list("piqa,mmlu"), UsageError);
  EXPECT_THROW(parse_task_list("piqa,piqa"), UsageError);
  EXPECT_THROW(parse_task_docs("piqa", "{\"query\": \"Question: x\", \"choices\": [\"a\"], \"gold\": 3}\n", 0), Error);
  EXPECT_THROW(parse_task_docs("hellaswag", "a: b\n0\nx\ny\n", 0), Error);
  EXPECT_EQ(parse_task_docs("arc_easy", read_file(kFixtures + "/zeroshot/arc_easy.jsonl"), 7).size(), 7u);
  EXPECT_NEAR(binary_stderr(0.5, 5), 0.25, 1e-12);
  EXPECT_EQ(binary_stderr(1.0, 1), 0.0);
}

// ---- tokenization as HFLM._encode_pair ---------------------------------------------------
TEST(ZeroshotEncode, WholeStringSplitAndTrailingSpace) {
  ByteTokenizer bt;
  Request r = encode_request(bt, "Q: a \n", "b", false);  // trailing whitespace moves
  EXPECT_EQ(bt.decode(r.context), "Q: a");
  EXPECT_EQ(bt.decode(r.continuation), " \nb");
  Request b = encode_request(bt, "x", " y", true);
  EXPECT_EQ(b.context.front(), 1);
  EXPECT_EQ(b.context.size(), 2u);
  // SentencePiece: context ids + continuation ids == encode(context + continuation).
  auto tok = load_tokenizer(kModel);
  const std::string ctx = "Question: Where is the cat?\nAnswer:", cont = " under the table";
  Request s = encode_request(*tok, ctx, cont, false);
  std::vector<int64_t> joined = s.context;
  joined.insert(joined.end(), s.continuation.begin(), s.continuation.end());
  EXPECT_EQ(joined, tok->encode(ctx + cont));
  EXPECT_EQ(s.context, tok->encode(ctx));
  Request sb = encode_request(*tok, ctx, cont, true);
  EXPECT_EQ(sb.context.front(), tok->bos_id);
  EXPECT_EQ(sb.continuation, s.continuation);
}

// ---- metrics with a fake scorer -----------------------------------------------------------
TEST(ZeroshotMetrics, AccVersusAccNorm) {
  // Choice "a" (1 char) ll -2, "bbbb" (4 chars) ll -4: acc picks "a", acc_norm (-2 vs -1) "bbbb".
  TaskDoc d;
  d.contexts = {"Q", "Q"};
  d.continuations = {" a", " bbbb"};
  d.choices = {"a", "bbbb"};
  d.gold = 1;
  TaskDoc d2 = d;  // second document: both metrics right
  d2.contexts = {"R", "R"};
  d2.gold = 0;
  FakeScorer f;
  f.table[{"Q", " a"}] = {-2.0, false};
  f.table[{"Q", " bbbb"}] = {-4.0, false};
  f.table[{"R", " a"}] = {-1.0, false};
  f.table[{"R", " bbbb"}] = {-8.0, false};
  TaskResult r = evaluate_task(task_from("piqa", {d, d2}), f, f.tok, quiet_opts());
  EXPECT_EQ(r.pred, (std::vector<int>{0, 0}));
  EXPECT_EQ(r.pred_norm, (std::vector<int>{1, 0}));
  EXPECT_DOUBLE_EQ(r.acc, 0.5);
  EXPECT_DOUBLE_EQ(r.acc_norm, 1.0);
  EXPECT_DOUBLE_EQ(r.acc_stderr, std::sqrt(0.25 / 1.0));
  EXPECT_DOUBLE_EQ(r.acc_norm_stderr, 0.0);
  EXPECT_DOUBLE_EQ(r.score, 100.0);  // piqa reports acc_norm
  // The same documents as boolq (no acc_norm): the score is acc.
  TaskResult b = evaluate_task(task_from("boolq", {d, d2}), f, f.tok, quiet_opts());
  EXPECT_FALSE(b.has_acc_norm);
  EXPECT_DOUBLE_EQ(b.score, 50.0);
  EXPECT_DOUBLE_EQ(zeroshot_summary({r, b}), 75.0);
  // Ties: the first maximum wins (np.argmax).
  f.table[{"Q", " a"}] = {-4.0, false};
  EXPECT_EQ(evaluate_task(task_from("piqa", {d}), f, f.tok, quiet_opts()).pred[0], 0);
}

TEST(ZeroshotMetrics, WinograndePartialScoring) {
  TaskDoc w = fixture_task("winogrande", 1).docs[0];
  FakeScorer f;
  const std::string cont = " always got the easier cases.";
  f.table[{"Sarah was a much better surgeon than Maria so Sarah", cont}] = {-10.0, false};
  f.table[{"Sarah was a much better surgeon than Maria so Maria", cont}] = {-9.0, false};
  TaskResult r = evaluate_task(task_from("winogrande", {w}), f, f.tok, quiet_opts());
  ASSERT_EQ(f.asked.size(), 2u);
  EXPECT_EQ(f.asked[0].second, cont);  // the continuation is scored under each filled-in context
  EXPECT_EQ(f.asked[1].second, cont);
  EXPECT_NE(f.asked[0].first, f.asked[1].first);
  EXPECT_EQ(r.pred[0], 1);
  EXPECT_DOUBLE_EQ(r.acc, 1.0);
  EXPECT_FALSE(r.has_acc_norm);
}

TEST(ZeroshotMetrics, LambadaGreedyAndPerplexity) {
  TaskData t = fixture_task("lambada_openai", 3);
  FakeScorer f;
  f.table[{t.docs[0].contexts[0], " signs"}] = {-1.0, true};
  f.table[{t.docs[1].contexts[0], " Shane"}] = {-2.0, false};  // likely, but not every token greedy
  f.table[{t.docs[2].contexts[0], " insurance"}] = {-3.0, true};
  TaskResult r = evaluate_task(t, f, f.tok, quiet_opts());
  EXPECT_EQ(r.pred, (std::vector<int>{1, 0, 1}));
  EXPECT_NEAR(r.acc, 2.0 / 3.0, 1e-12);
  EXPECT_NEAR(r.ppl, std::exp(2.0), 1e-9);  // exp(-mean loglik)
  EXPECT_DOUBLE_EQ(r.score, 100.0 * r.acc);
}

// ---- ModelScorer on stories260K -----------------------------------------------------------
TEST(ZeroshotScorer, MatchesDirectComputation) {
  Model m = load_model(kModel);
  Runner run(m, {});
  auto tok = load_tokenizer(kModel);
  std::vector<Request> reqs = {
      encode_request(*tok, "Once upon a time", " there was", true),
      encode_request(*tok, "Once upon a time", " there", true),  // a prefix of the first's input
      encode_request(*tok, "Once upon a time", " a", true),      // same input as " there"
      encode_request(*tok, "Lily saw a big dog.", " She was happy.", true),
      encode_request(*tok, "Lily saw a big dog.", " She was happy.", true),  // duplicate
      encode_request(*tok, "Tom", " ran to the park and played with his ball.", false),
  };
  auto direct = [&](const Request& q, int64_t L) {
    std::vector<int64_t> full = q.context;
    full.insert(full.end(), q.continuation.begin(), q.continuation.end());
    if (int64_t(full.size()) > L + 1) full.erase(full.begin(), full.end() - (L + 1));
    std::vector<int64_t> in(full.begin(), full.end() - 1);
    at::Tensor lp = at::log_softmax(run.logits(at::tensor(in, at::kLong).view({1, -1})).squeeze(0).to(at::kDouble), -1);
    const int64_t n = std::min<int64_t>(int64_t(q.continuation.size()), int64_t(in.size()));
    LoglikResult r{0, true};
    for (int64_t k = 0; k < n; ++k) {
      const int64_t pos = int64_t(in.size()) - n + k, t = full[size_t(pos + 1)];
      r.logprob += lp[pos][t].item<double>();
      r.is_greedy = r.is_greedy && lp[pos].argmax().item<int64_t>() == t;
    }
    return r;
  };
  for (int64_t bs : {1, 3, 32}) {
    ModelScorerOptions o;
    o.batch_size = bs;
    ModelScorer s(run, o);
    auto got = s.score(reqs);
    for (size_t i = 0; i < reqs.size(); ++i) {
      LoglikResult want = direct(reqs[i], m.config.max_position_embeddings);
      EXPECT_NEAR(got[i].logprob, want.logprob, 1e-4) << "bs " << bs << " request " << i;
      EXPECT_EQ(got[i].is_greedy, want.is_greedy) << "bs " << bs << " request " << i;
    }
    EXPECT_EQ(s.stats().sequences, 3);  // shared: {there was, there, a}, the duplicates, Tom
  }
  // Left truncation to a short context; a streaming runner gives the same numbers.
  ModelScorerOptions o;
  o.max_length = 6;
  RunnerOptions so;
  so.resident_budget = 0;
  Runner stream(m, so);
  ModelScorer s(stream, o);
  auto got = s.score(reqs);
  for (size_t i = 0; i < reqs.size(); ++i) EXPECT_NEAR(got[i].logprob, direct(reqs[i], 6).logprob, 1e-4) << i;
}

// Deterministic accuracies of stories260K on the first 10 items of each task (float32, CPU,
// no BOS as lm-eval's default). Counts are discrete: tolerance 0.
TEST(ZeroshotStories260K, PinnedAccuracies) {
  Model m = load_model(kModel);
  Runner run(m, {});
  auto tok = load_tokenizer(kModel);
  ModelScorer scorer(run, {});
  struct Pin {
    const char* task;
    int correct, correct_norm;
  };
  const std::vector<Pin> pins = {{"piqa", 5, 7},       {"arc_easy", 3, 1},   {"arc_challenge", 2, 1},
                                 {"hellaswag", 4, 1},  {"winogrande", 4, -1}, {"boolq", 2, -1},
                                 {"lambada_openai", 0, -1}};
  for (const Pin& p : pins) {
    TaskResult r = evaluate_task(fixture_task(p.task, 10), scorer, *tok, quiet_opts());
    ASSERT_EQ(r.n, 10);
    int c = int(std::lround(r.acc * 10)), cn = int(std::lround(r.acc_norm * 10));
    EXPECT_EQ(c, p.correct) << p.task;
    if (r.has_acc_norm) {
      EXPECT_EQ(cn, p.correct_norm) << p.task;
    }
    if (r.has_ppl) {
      EXPECT_NEAR(std::log(r.ppl), 19.33931, 1e-3);  // LAMBADA: -mean loglik
    }
  }
}

// ---- KL divergence ------------------------------------------------------------------------
TEST(Kld, SelfIsZeroAndBf16IsSmallPositive) {
  Model m = load_model(kModel);
  auto tok = load_tokenizer(kModel);
  std::vector<int64_t> ids = tok->encode_for_model(read_file(kText));
  Runner fp32(m, {});
  KldOptions o;
  o.seqlen = 256;
  o.max_windows = 6;
  o.batch_size = 4;  // a partial last batch
  o.progress = false;
  o.keep_values = true;
  KldResult self = kl_divergence(fp32, fp32, ids, o);
  EXPECT_EQ(self.windows, 6);
  EXPECT_EQ(self.tokens, 6 * 255);
  EXPECT_EQ(int64_t(self.values.size()), self.tokens);
  EXPECT_LT(self.mean_kl, 1e-7);
  EXPECT_LT(self.p99_kl, 1e-6);
  EXPECT_DOUBLE_EQ(self.top1_agreement, 1.0);
  EXPECT_NEAR(self.base_nll, self.model_nll, 1e-9);

  RunnerOptions bo;
  bo.dtype = at::kBFloat16;
  Runner bf16(m, bo);
  KldResult q = kl_divergence(bf16, fp32, ids, o);
  EXPECT_GT(q.mean_kl, 1e-6);
  EXPECT_LT(q.mean_kl, 0.05);
  EXPECT_GE(q.p99_kl, q.median_kl);
  EXPECT_GE(q.max_kl, q.p99_kl);
  EXPECT_GT(q.top1_agreement, 0.8);
  EXPECT_LT(q.top1_agreement, 1.0 + 1e-12);
  // The mean equals the mean of the kept per-token values; a streaming base gives the same.
  double s = 0;
  for (float v : q.values) s += v;
  EXPECT_NEAR(q.mean_kl, s / double(q.values.size()), 1e-9);
  RunnerOptions so;
  so.resident_budget = 0;
  Runner stream(m, so);
  KldResult q2 = kl_divergence(bf16, stream, ids, o);
  EXPECT_NEAR(q2.mean_kl, q.mean_kl, 1e-6);
}

TEST(Kld, PercentileLikeNumpy) {
  std::vector<float> v = {5, 1, 4, 2, 3};
  EXPECT_DOUBLE_EQ(percentile(v, 50), 3.0);
  v = {5, 1, 4, 2, 3};
  EXPECT_NEAR(percentile(v, 99), 4.96, 1e-6);  // numpy.percentile([1..5], 99) = 4.96
  v = {7};
  EXPECT_DOUBLE_EQ(percentile(v, 99), 7.0);
}

// ---- the CLI ------------------------------------------------------------------------------
namespace {
using CliOut = sq::testing::CliResult;
CliOut cli(const std::string& args) { return sq::testing::run_cli(args); }
}  // namespace

TEST(ZeroshotCli, TasksAndKldReport) {
  const std::string json = sq::testing::fresh_path("zs_cli.json");
  CliOut r = cli("eval " + kModel + " --tasks piqa,winogrande,lambada_openai --limit 5 --data-dir " + kFixtures +
                 " --kld-base " + kModel + " --ppl " + kText + " --seqlen 256 --max-windows 2 --quiet --json " + json);
  ASSERT_EQ(r.code, 0) << r.out;
  auto j = nlohmann::json::parse(read_file(json));
  ASSERT_EQ(j["zeroshot"].size(), 3u);
  const auto& p = j["zeroshot"]["piqa"];
  EXPECT_EQ(p["n"], 5);
  EXPECT_EQ(p["data_sha256"], sha256_file(kFixtures + "/zeroshot/piqa.jsonl"));
  EXPECT_FALSE(p["acc_norm"].is_null());
  EXPECT_TRUE(j["zeroshot"]["winogrande"]["acc_norm"].is_null());
  EXPECT_TRUE(j["zeroshot"]["lambada_openai"].contains("ppl"));
  EXPECT_EQ(p["prompt_format_version"], zeroshot_task("piqa").prompt_format_version);
  EXPECT_TRUE(j["zeroshot_summary"].contains("score"));
  ASSERT_EQ(j["kld"]["results"].size(), 1u);
  EXPECT_LT(j["kld"]["results"][0]["mean_kl"].get<double>(), 1e-7);  // the model against itself
  EXPECT_EQ(j["kld"]["results"][0]["windows"], 2);
  EXPECT_EQ(j["perplexity"].size(), 1u);
  EXPECT_NE(r.out.find("zero-shot summary"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("winogrande"), std::string::npos) << r.out;
  // Nothing to evaluate, or an unknown task: usage errors (exit 2).
  EXPECT_EQ(cli("eval " + kModel).code, 2);
  EXPECT_EQ(cli("eval " + kModel + " --tasks mmlu --data-dir " + kFixtures).code, 2);
  // A missing task file: exit 1 naming it.
  CliOut m = cli("eval " + kModel + " --tasks piqa --data-dir " + kFixtures + "/text");
  EXPECT_EQ(m.code, 1) << m.out;
  EXPECT_NE(m.out.find("piqa.jsonl"), std::string::npos) << m.out;
}
