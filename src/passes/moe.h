// passes/moe (private): what the passes share about mixture-of-experts blocks: the routed-
// calibration options of the sequencer-driven passes (pipeline/sequencer.h SequencerOptions)
// and the refusal of the passes that do not handle experts yet.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "options.h"
#include "sliderquant/pipeline/sequencer.h"
#include "sliderquant/pipeline/session.h"

namespace sq::passes {

// Opts must have fields min_expert_tokens (int64_t), calibrate_all_experts (bool) and
// starved_fallback (std::string).
template <class Opts>
void add_moe_options(std::vector<OptionSpec>& t) {
  t.push_back(option("min_expert_tokens", &Opts::min_expert_tokens, int64_t(16), at_least(0),
                     "MoE: an expert routed fewer calibration tokens is starved and gets starved_fallback"));
  t.push_back(option("calibrate_all_experts", &Opts::calibrate_all_experts, false,
                     "MoE: every calibration token through every expert for statistics (output unchanged)"));
  t.push_back(option("starved_fallback", &Opts::starved_fallback, "mean", one_of({"mean", "rtn"}),
                     "MoE: a starved expert's Hessian: the mean of the block's other experts, or none (RTN)"));
}

template <class Opts>
void apply_moe_options(const Opts& o, SequencerOptions& so) {
  so.min_expert_tokens = o.min_expert_tokens;
  so.calibrate_all_experts = o.calibrate_all_experts;
  so.starved_fallback = o.starved_fallback;
}

// Throws when the session's model has MoE blocks: WHAT (a pass, or a pass setting) does not
// handle routed experts yet.
inline void refuse_moe(const Session& s, const std::string& what,
                       const std::string& instead = "rtn, gptq, d2quant or sliderquant (scale_lr 0)") {
  for (const Block& b : s.model.blocks)
    SQ_CHECK(!b.layout->moe(), what << " does not handle mixture-of-experts blocks yet ("
                                    << s.model.config.architecture << "); MoE models quantize with " << instead);
}

}  // namespace sq::passes
