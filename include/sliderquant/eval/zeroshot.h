// eval/zeroshot: lm-evaluation-harness style 0-shot tasks (piqa, arc_easy, arc_challenge,
// hellaswag, winogrande, boolq, lambada_openai) on the project's data files (llm-foundry
// jsonl, llama.cpp's HellaSwag text), mapped to the harness's prompts (docs/ZEROSHOT.md).
// Three pieces: task data -> documents (prompt strings), documents -> token requests
// (tokenized like HFLM._encode_pair), requests -> log-likelihoods (a Scorer; ModelScorer
// runs a Runner). Metrics as the harness: acc, acc_norm (loglik / len(choice)), sample
// stderr, LAMBADA greedy accuracy and perplexity. Knows nothing of quantization.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "sliderquant/data/tokenizer.h"
#include "sliderquant/model/forward.h"

namespace sq {

// ---- scoring -----------------------------------------------------------------------------
struct Request {
  std::vector<int64_t> context;       // token ids fed before the continuation (non-empty)
  std::vector<int64_t> continuation;  // the scored token ids (non-empty)
};

struct LoglikResult {
  double logprob = 0;      // sum over continuation tokens of log p(token | prefix)
  bool is_greedy = false;  // every continuation token is the argmax of its distribution
};

class Scorer {
 public:
  virtual ~Scorer() = default;
  // One result per request, in order.
  virtual std::vector<LoglikResult> score(const std::vector<Request>& reqs) = 0;
};

struct ModelScorerOptions {
  int64_t max_length = 0;      // context of the model; 0 = max_position_embeddings
  int64_t batch_size = 32;     // sequences per forward pass (right-padded)
  int64_t batch_tokens = 16384;  // and at most this many padded tokens per forward
  int64_t host_budget_bytes = int64_t(1) << 30;  // streaming runner: hidden states kept on host
};

struct ScorerStats {
  int64_t requests = 0;       // requests scored
  int64_t sequences = 0;      // distinct sequences run (after sharing identical / prefix inputs)
  int64_t forwards = 0;       // forward passes (batches)
  int64_t tokens = 0;         // real tokens run
  int64_t padded_tokens = 0;  // tokens run including right padding
};

// Scores requests with a Runner the way HFLM._loglikelihood_tokens does: the input is
// (context + continuation)[-(max_length+1):][:-1] (truncated from the left), the
// continuation's log-probabilities are read at its last len(continuation) positions.
// Requests whose inputs are equal or a prefix of another's share one sequence (causal
// attention: a prefix's logits are the longer sequence's first logits); sequences are sorted
// by length and right-padded in batches. With a streaming runner, batches run layer-major
// in groups whose hidden states fit host_budget_bytes.
class ModelScorer : public Scorer {
 public:
  explicit ModelScorer(Runner& runner, ModelScorerOptions opts = {});
  std::vector<LoglikResult> score(const std::vector<Request>& reqs) override;
  const ScorerStats& stats() const { return stats_; }

 private:
  Runner& runner_;
  ModelScorerOptions opts_;
  ScorerStats stats_;
};

// HFLM._encode_pair: trailing whitespace of the context moves to the continuation; the
// continuation's ids are encode(context + continuation) minus the first len(encode(context))
// ids. add_bos prepends the tokenizer's BOS to both (lm-eval's add_bos_token=True; lm-eval
// 0.4's default for causal models is False).
Request encode_request(const Tokenizer& tok, const std::string& context, const std::string& continuation,
                       bool add_bos);

// ---- tasks -------------------------------------------------------------------------------
struct TaskSpec {
  std::string name;            // "piqa"
  std::string file;            // under <data-dir>/zeroshot/
  bool has_acc_norm = false;   // piqa, arc_*, hellaswag
  bool is_lambada = false;     // greedy-match accuracy + perplexity, one request per document
  std::string prompt_format;   // human-readable harness prompt
  std::string prompt_format_version;  // bumps when the mapping changes
};
const std::vector<TaskSpec>& zeroshot_tasks();
const TaskSpec& zeroshot_task(const std::string& name);  // UsageError listing the known ones
// "piqa,arc_easy" or "all" -> task names in the given order (UsageError on unknown/duplicate).
std::vector<std::string> parse_task_list(const std::string& csv);

// One document: a context and a continuation per choice (multiple choice: one context,
// continuations " " + choice; WinoGrande: a context per option, one continuation; LAMBADA:
// one pair). choices[i] is the harness's choice string (acc_norm divides by its length).
struct TaskDoc {
  std::vector<std::string> contexts;
  std::vector<std::string> continuations;
  std::vector<std::string> choices;
  int gold = 0;
};

struct TaskData {
  TaskSpec spec;
  std::string source;   // the file read
  std::string sha256;   // of the file's bytes (as in shared/data/SHA256SUMS)
  std::vector<TaskDoc> docs;
};

// The file's (decompressed) contents -> the first `limit` documents (0 = all).
std::vector<TaskDoc> parse_task_docs(const std::string& task, const std::string& contents, int64_t limit,
                                     const std::string& source_name = "");
TaskData load_task_file(const std::string& task, const std::string& path, int64_t limit);
// data_dir as for load_text_dataset (empty: $SQ_DATA_DIR, ../shared/data, ./data).
TaskData load_task(const std::string& task, const std::string& data_dir, int64_t limit);

// The harness's HellaSwag preprocess: strip, " [title]" -> ". ", drop [...], "  " -> " ".
std::string hellaswag_preprocess(const std::string& text);
// Python's str.capitalize() on ASCII letters: first upper, the rest lower.
std::string py_capitalize(const std::string& s);
// Characters (UTF-8 code points) of s: Python's len(str).
int64_t utf8_length(const std::string& s);
// Whole .bz2 file (libbz2, multi-stream); throws Error naming the path when corrupt.
std::string read_bz2_file(const std::string& path);

// ---- evaluation --------------------------------------------------------------------------
struct ZeroshotOptions {
  bool add_bos = false;     // see encode_request
  bool progress = true;
  int64_t chunk_docs = 512; // documents per Scorer call (bounds memory, drives progress)
};

struct TaskResult {
  std::string task;
  int64_t n = 0;
  double acc = 0, acc_stderr = 0;
  bool has_acc_norm = false;
  double acc_norm = 0, acc_norm_stderr = 0;
  bool has_ppl = false;
  double ppl = 0;            // LAMBADA: exp(-mean of per-document continuation log-likelihoods)
  double score = 0;          // 100 * (acc_norm if reported else acc)
  std::vector<int> pred, pred_norm;  // per document (LAMBADA: pred = 1 if greedy match)
  std::vector<std::vector<double>> loglik;  // per document, per choice
  int64_t requests = 0;
  double seconds = 0;
  double items_per_second = 0;
};

TaskResult evaluate_task(const TaskData& data, Scorer& scorer, const Tokenizer& tok, const ZeroshotOptions& opts);
// The harness's mean_stderr of a 0/1 metric: sqrt(p (1 - p) / (n - 1)) (0 when n < 2).
double binary_stderr(double p, int64_t n);
// Mean of the tasks' scores (acc_norm where reported else acc, x100).
double zeroshot_summary(const std::vector<TaskResult>& results);

}  // namespace sq
