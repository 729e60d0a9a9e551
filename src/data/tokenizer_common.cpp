// data/tokenizer_common: the parts of the Tokenizer interface shared by all implementations.
#include "sliderquant/data/tokenizer.h"

namespace sq {

std::vector<int64_t> Tokenizer::encode_for_model(const std::string& text) const {
  std::vector<int64_t> ids;
  std::vector<int64_t> body = encode(text);
  ids.reserve(body.size() + 2);
  if (add_bos && bos_id >= 0) ids.push_back(bos_id);
  ids.insert(ids.end(), body.begin(), body.end());
  if (add_eos && eos_id >= 0) ids.push_back(eos_id);
  return ids;
}

}  // namespace sq
