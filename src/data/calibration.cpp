// data/calibration: random calibration windows from a tokenized text, seeded and hashed so
// that a quantized model records exactly which tokens it was calibrated on.
#include <random>

#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/data/dataset.h"

namespace sq {

CalibrationSet make_calibration_set(const std::vector<int64_t>& tokens, int64_t samples, int64_t seqlen,
                                    uint64_t seed) {
  SQ_CHECK(samples > 0 && seqlen > 1, "calibration needs samples > 0 and seqlen > 1");
  const int64_t n = int64_t(tokens.size());
  SQ_CHECK(n > seqlen, "calibration text has " << n << " tokens, not more than one window of " << seqlen);
  CalibrationSet c;
  c.seed = seed;
  c.samples = samples;
  c.seqlen = seqlen;
  c.ids.reserve(size_t(samples * seqlen));
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> start(0, n - seqlen);
  for (int64_t s = 0; s < samples; ++s) {
    int64_t i = start(rng);
    c.ids.insert(c.ids.end(), tokens.begin() + i, tokens.begin() + i + seqlen);
  }
  c.sha256 = sha256_hex(c.ids.data(), c.ids.size() * sizeof(int64_t));
  c.note = std::to_string(samples) + " windows of " + std::to_string(seqlen) +
           " tokens at uniform random offsets (mt19937_64, seed " + std::to_string(seed) + ")";
  return c;
}

}  // namespace sq
