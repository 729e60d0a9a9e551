// data/llama_spm (internal to src/data): what GGUF vocabularies share with llama.cpp's way of
// reading them: token attributes from tokenizer.ggml.token_type (with llama.cpp's overrides
// by token text), which tokens are matched in raw text, and the native SentencePiece-style
// (`llama`) tokenizer: space -> U+2581, an optional leading space, merges of adjacent
// symbols by best vocabulary score, byte fallback through <0xXX> tokens.
#pragma once
#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "sliderquant/data/tokenizer.h"

namespace sq {

// GGUF token types (tokenizer.ggml.token_type).
enum GgufTokenType : int32_t {
  kTokNormal = 1, kTokUnknown = 2, kTokControl = 3, kTokUserDefined = 4, kTokUnused = 5, kTokByte = 6,
};

// The ids of the tokens llama.cpp matches in raw text when special tokens are not parsed
// (user-defined, not control-looking), in the order it tries them (longest text first).
std::vector<int32_t> llama_raw_matched_tokens(const std::vector<std::string>& tokens,
                                              const std::vector<int32_t>& types);

struct LlamaSpmConfig {
  std::string source;  // for errors
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;  // empty: all normal
  bool add_space_prefix = true;
};

class LlamaSpmTokenizer : public Tokenizer {
 public:
  explicit LlamaSpmTokenizer(LlamaSpmConfig cfg);
  std::vector<int64_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(cfg_.tokens.size()); }
  std::string kind() const override { return "spm"; }

 private:
  void encode_piece(const std::string& text, std::vector<int64_t>& out) const;
  int32_t byte_token(unsigned char b) const;
  int32_t find(const std::string& s) const {
    auto it = to_id_.find(s);
    return it == to_id_.end() ? -1 : it->second;
  }
  LlamaSpmConfig cfg_;
  std::unordered_map<std::string, int32_t> to_id_;
  std::vector<int32_t> matched_;  // raw-text tokens, in matching order
};

}  // namespace sq
