// pipeline/block_walker: the walk over the decoder blocks (see the header).
#include "sliderquant/pipeline/block_walker.h"

#include <ATen/ATen.h>

#include "sliderquant/core/error.h"

namespace sq {

at::Tensor BlockStep::forward(const at::Tensor& x, BlockTaps* taps) const {
  const ModelConfig& c = s_.model.config;
  const BlockWeights w = prepare_block(s_.model.blocks[size_t(index)], c, s_.runner.dtype, s_.runner.device, index);
  return block_forward(w, c, x.to(s_.runner.device, s_.runner.dtype), rope_, taps);
}

void BlockStep::advance(BlockTaps* taps) {
  SQ_CHECK(!done_, "block " << index << ": the stream was already moved past it");
  const ModelConfig& c = s_.model.config;
  const BlockWeights w = o_.weights ? o_.weights(index)
                                    : prepare_block(s_.model.blocks[size_t(index)], c, s_.runner.dtype,
                                                    s_.runner.device, index);
  output_.clear();
  for (const at::Tensor& x : input)
    output_.push_back(block_forward(w, c, x.to(s_.runner.device, s_.runner.dtype), rope_, taps)
                          .to(x.device(), x.scalar_type()));
  done_ = true;
}

void BlockStep::set_output(BlockStream y) {
  SQ_CHECK(!done_, "block " << index << ": the stream was already moved past it");
  output_ = std::move(y);
  done_ = true;
}

BlockStream walk_blocks(Session& s, BlockStream stream, const std::function<void(BlockStep&)>& visit,
                        const BlockWalkOptions& o) {
  if (stream.empty()) return stream;
  const RopeTable rope = make_rope(s.model.config, stream.front().size(1), s.runner.device);
  for (int64_t b = 0; b < int64_t(s.model.blocks.size()); ++b) {
    BlockStep step(s, o, rope, b, stream);
    visit(step);
    if (!step.done_) step.advance();
    stream = std::move(step.output_);
  }
  return stream;
}

}  // namespace sq
