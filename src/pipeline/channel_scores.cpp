// pipeline/channel_scores: save and load of the channel-score file (safetensors with a
// content marker in __metadata__).
#include "sliderquant/pipeline/channel_scores.h"

#include <ATen/ATen.h>

#include "sliderquant/core/error.h"
#include "sliderquant/io/safetensors.h"

namespace sq {
namespace {

constexpr const char* kScoreContent = "sliderquant.channel_scores";

}  // namespace

void save_channel_scores(const std::string& path, const std::map<std::string, at::Tensor>& scores,
                         const std::map<std::string, std::string>& metadata) {
  NamedTensors ts;
  for (const auto& [name, s] : scores) {
    SQ_CHECK(s.defined() && s.dim() == 1 && c10::isFloatingType(s.scalar_type()),
             "channel scores " << path << ": score " << name << " must be a 1-D float tensor, got "
                               << (s.defined() ? s.sizes() : at::IntArrayRef{}));
    ts.emplace_back(name, s.to(at::kCPU, at::kFloat).contiguous());
  }
  std::map<std::string, std::string> meta = metadata;
  meta["content"] = kScoreContent;
  write_safetensors(path, ts, meta);
}

std::map<std::string, at::Tensor> load_channel_scores(const std::string& path,
                                                      std::map<std::string, std::string>* metadata) {
  auto f = SafetensorsFile::open(path);
  auto it = f->metadata().find("content");
  SQ_CHECK(it != f->metadata().end() && it->second == kScoreContent,
           "channel scores " << path << ": not a channel-score file (its __metadata__ has no \"content\": \""
                             << kScoreContent << "\")");
  std::map<std::string, at::Tensor> out;
  for (const TensorInfo& t : f->tensors()) {
    at::Tensor s = f->tensor(t.name);
    SQ_CHECK(s.dim() == 1 && c10::isFloatingType(s.scalar_type()),
             "channel scores " << path << ": tensor " << t.name << " has shape " << s.sizes() << " and dtype "
                               << c10::toString(s.scalar_type()) << ", expected a 1-D float tensor");
    out.emplace(t.name, s.to(at::kFloat).clone());
  }
  if (metadata) *metadata = f->metadata();
  return out;
}

}  // namespace sq
