// pipeline/channel_scores: the channel-score file, a reusable artifact of the work
// directory (scores from quant/importance, computed once per model and calibration set).
// One float32 [in] tensor per name (e.g. the linear's canonical name) in a safetensors file
// whose __metadata__ holds "content": "sliderquant.channel_scores" plus the caller's
// metadata (e.g. "score": "fisher" or "hessian", the calibration sha256).
#pragma once
#include <ATen/core/Tensor.h>

#include <map>
#include <string>

namespace sq {

// Writes atomically (io/safetensors); throws Error naming the score that is not 1-D float.
// A caller "content" key is replaced by the marker.
void save_channel_scores(const std::string& path, const std::map<std::string, at::Tensor>& scores,
                         const std::map<std::string, std::string>& metadata = {});
// Reads every score (float32, CPU, owning its memory) and, with METADATA, the file's
// __metadata__. Throws Error naming the file when the marker is missing or a tensor is not
// 1-D floating point.
std::map<std::string, at::Tensor> load_channel_scores(const std::string& path,
                                                      std::map<std::string, std::string>* metadata = nullptr);

}  // namespace sq
