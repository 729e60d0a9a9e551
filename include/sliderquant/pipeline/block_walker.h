// pipeline/block_walker: one walk over the decoder blocks with a stream of block inputs
// (batches of calibration windows, kept in host memory or on the device). For each block the
// visitor sees the block's input stream and may run the block on it (taps, probes, scores);
// then the stream moves on to the block's output. The block loops of the passes go through
// here (the sequencer and the window trainer keep their own two-stream loops).
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <vector>

#include "sliderquant/model/forward.h"
#include "sliderquant/pipeline/session.h"

namespace sq {

// One [n, T, H] tensor per batch of windows.
using BlockStream = std::vector<at::Tensor>;

struct BlockWalkOptions {
  // The weights the walk advances block B with; default prepare_block on the session's
  // device and compute dtype, prepared when the block is left (after the visitor).
  std::function<BlockWeights(int64_t block)> weights;
};

// Block `index` of a walk as its visitor sees it.
class BlockStep {
 public:
  const int64_t index;
  const BlockStream& input;  // the block's input stream

  // The block on X (moved to the device and compute dtype) with its weights as they are now,
  // prepared for this call: overrides the visitor has just set count. On the device.
  at::Tensor forward(const at::Tensor& x, BlockTaps* taps = nullptr) const;
  // Runs every batch of the input through the block once (the walk's weights, TAPS called
  // on each batch); the outputs, stored like the inputs, are the stream after the block.
  void advance(BlockTaps* taps = nullptr);
  // Y is the stream after the block (instead of advance()).
  void set_output(BlockStream y);

 private:
  friend BlockStream walk_blocks(Session&, BlockStream, const std::function<void(BlockStep&)>&,
                                 const BlockWalkOptions&);
  BlockStep(Session& s, const BlockWalkOptions& o, const RopeTable& rope, int64_t index, const BlockStream& input)
      : index(index), input(input), s_(s), o_(o), rope_(rope) {}
  Session& s_;
  const BlockWalkOptions& o_;
  const RopeTable& rope_;
  BlockStream output_;
  bool done_ = false;
};

// Walks blocks 0 .. n-1 of the session's model over STREAM: VISIT(step) for each block,
// then step.advance() unless the visitor advanced the stream or set it. Returns the stream
// after the last block.
BlockStream walk_blocks(Session& s, BlockStream stream, const std::function<void(BlockStep&)>& visit,
                        const BlockWalkOptions& o = {});

}  // namespace sq
