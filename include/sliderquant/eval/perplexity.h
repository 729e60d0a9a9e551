// eval/perplexity: perplexity under the GPTQ protocol: the text tokenized once (BOS as the
// tokenizer adds it), cut into non-overlapping windows of seqlen tokens, tail dropped,
// every next-token prediction in each window scored (seqlen-1 per window),
// ppl = exp(mean over windows of the window's mean NLL) exactly as GPTQ's eval computes it.
// Knows nothing of how the model was quantized: it only runs a Runner.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "sliderquant/model/forward.h"

namespace sq {

struct PplOptions {
  int64_t seqlen = 2048;     // capped by the model's max_position_embeddings
  int64_t batch_size = 1;    // windows per forward
  int64_t max_windows = 0;   // 0 = all
  bool progress = true;
  std::string label = "perplexity";  // progress line label
};

struct PplResult {
  std::string protocol = "gptq";
  int64_t seqlen = 0;
  int64_t windows = 0;
  int64_t tokens_total = 0;     // tokens in the tokenized text
  int64_t tokens_scored = 0;    // windows * (seqlen - 1)
  double nll = 0;               // mean NLL (nats per token)
  double ppl = 0;
  double seconds = 0;
  double tokens_per_second = 0; // windows * seqlen / seconds
  bool streamed = false;        // weights moved to the device block by block
  std::vector<double> window_nll;
};

// Scores ids (the whole tokenized text). seqlen is used as given (the caller caps it).
PplResult perplexity(Runner& runner, const std::vector<int64_t>& ids, const PplOptions& opts);

// Mean next-token NLL per row of logits [B, T, V] against ids [B, T] (float64 result [B]),
// computed in float32 in chunks so that [T, V] float32 is never materialised at once.
std::vector<double> window_nll(const at::Tensor& logits, const at::Tensor& ids);

}  // namespace sq
