// tools/cmd_tokenize: `sliderquant tokenize PATH [--text S]`: token ids of a text with the
// tokenizer a model directory would use, so users can compare with their own tokenizer.
#include <cstdio>
#include <iostream>
#include <iterator>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "sliderquant/data/tokenizer.h"

namespace sq::cli {

int cmd_tokenize(const TokenizeArgs& a, const CommonArgs& common) {
  apply_common(common);
  auto tok = load_tokenizer(a.path);
  std::string text = a.text;
  if (!a.has_text) text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  std::vector<int64_t> ids = a.no_special ? tok->encode(text) : tok->encode_for_model(text);
  if (a.json) {
    nlohmann::json j{{"ids", ids}, {"tokens", ids.size()}, {"tokenizer", tok->kind()}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    for (size_t i = 0; i < ids.size(); ++i) std::printf(i ? " %lld" : "%lld", (long long)ids[i]);
    std::printf("\n");
  }
  return 0;
}

}  // namespace sq::cli
