// eval/kld: KL divergence of a model's next-token distributions from a base model's,
// KL(P_base || P_model) per token, on the perplexity protocol's windows (the text tokenized
// once, non-overlapping windows of seqlen tokens, tail dropped, the seqlen-1 positions with a
// next token in the window scored). Logits are never held beyond one window batch, and a
// batch's vocabulary rows are reduced in chunks. Knows nothing of quantization.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "sliderquant/model/forward.h"

namespace sq {

struct KldOptions {
  int64_t seqlen = 2048;
  int64_t batch_size = 1;   // windows per forward
  int64_t max_windows = 0;  // 0 = all
  bool progress = true;
  std::string label = "kld";
  bool keep_values = false;  // return every per-token KL (tests)
};

struct KldResult {
  std::string protocol = "gptq-windows";
  int64_t seqlen = 0;
  int64_t windows = 0;
  int64_t tokens = 0;           // scored positions: windows * (seqlen - 1)
  double mean_kl = 0;           // nats
  double median_kl = 0;
  double p99_kl = 0;            // 99th percentile (numpy's default linear interpolation)
  double max_kl = 0;
  double top1_agreement = 0;    // argmax of both distributions equal
  double base_nll = 0, model_nll = 0;  // mean next-token NLL of each (ppl = exp)
  double seconds = 0;
  std::vector<float> values;    // per-token KL when keep_values
};

// model and base must share the vocabulary (same vocab_size). ids as for perplexity().
KldResult kl_divergence(Runner& model, Runner& base, const std::vector<int64_t>& ids, const KldOptions& opts);

// numpy.percentile(v, q) with linear interpolation; v is reordered.
double percentile(std::vector<float>& v, double q);

}  // namespace sq
