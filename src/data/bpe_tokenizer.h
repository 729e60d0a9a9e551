// data/bpe_tokenizer (internal to src/data): byte-level BPE as GPT-2, Llama 3 and Qwen use it
// (Hugging Face tokenizer.json, or GPT-2's encoder.json + vocab.bpe). Text -> added tokens
// matched on the raw text -> NFC (optional) -> regex pre-tokens (PCRE2) -> bytes -> merges by
// rank. Internally every token is its raw bytes; the GPT-2 bytes_to_unicode alphabet exists
// only in the files. Which files a directory holds and BOS/EOS are tokenizer_load.cpp's job.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "sliderquant/data/tokenizer.h"

namespace sq {

// Splits a text into pre-tokens (views into it, in order, covering all of it but possibly
// dropping nothing). Used instead of split_regexes when set (llama.cpp-compatible splitting).
class PreSplitter {
 public:
  virtual ~PreSplitter() = default;
  virtual void split(std::string_view text, std::vector<std::string_view>& words) const = 0;
};

struct BpeAddedToken {
  int64_t id = -1;
  std::string content;  // matched verbatim in the raw text, decoded verbatim
  bool special = false;
  bool lstrip = false;  // also swallow (ASCII) whitespace on its left / right
  bool rstrip = false;
};

// Everything a byte-level BPE tokenizer is made of, as the files state it.
struct BpeConfig {
  std::string source;  // file name, for errors
  std::vector<std::pair<std::string, int64_t>> vocab;          // byte-level unicode form
  std::vector<std::pair<std::string, std::string>> merges;     // in rank order
  std::vector<BpeAddedToken> added;
  bool ignore_merges = false;     // a pre-token that is itself in the vocab is one token
  bool nfc = false;               // normalizer NFC
  bool add_prefix_space = false;  // ByteLevel as the only pre-tokenizer
  std::vector<std::string> split_regexes;  // applied in order, Isolated behaviour
  std::shared_ptr<const PreSplitter> pre_splitter;  // replaces split_regexes when set
  // Added tokens matched as llama.cpp partitions a text: each token of `added` in list order
  // (the caller sorts them, longest first) takes every occurrence in the raw fragments left
  // by the tokens before it; instead of leftmost-longest matching.
  bool added_in_list_order = false;
  // Byte tokens missing from the vocabulary are dropped from the output (as llama.cpp does)
  // instead of refusing the vocabulary.
  bool missing_bytes_ok = false;
  // TemplateProcessing post-processor: the special tokens before / after the text ("" = none).
  std::string template_bos, template_eos;
};

class BpeRegex;  // PCRE2 pattern, defined in bpe_tokenizer.cpp

class BpeTokenizer : public Tokenizer {
 public:
  explicit BpeTokenizer(const BpeConfig& cfg);
  ~BpeTokenizer() override;

  std::vector<int64_t> encode(const std::string& text) const override;
  std::string decode(const std::vector<int64_t>& ids) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(id_to_bytes_.size()); }
  std::string kind() const override { return "bpe"; }

  // Id of an added token's content or of a vocabulary token (byte-level form, e.g. "Ġworld",
  // or its plain text "<|endoftext|>"); -1 when there is none.
  int64_t token_id(const std::string& token) const;
  const std::string& template_bos() const { return template_bos_; }
  const std::string& template_eos() const { return template_eos_; }

  // The merge loop on one pre-token (raw bytes); exposed for tests: use_heap=false is the
  // obvious O(n^2) reference, use_heap=true the O(n log n) path taken for long pre-tokens.
  std::vector<int32_t> merge_word(std::string_view bytes, bool use_heap) const;

 private:
  struct Merge {
    int32_t rank;
    int32_t id;
  };
  using Cache = std::unordered_map<std::string, std::vector<int32_t>>;
  struct Scratch;

  void encode_segment(std::string_view text, Scratch& sc, Cache& cache, std::vector<int64_t>& out) const;
  void encode_piece(std::string_view piece, Cache& cache, std::vector<int64_t>& out) const;
  bool match_added(const std::string& text, size_t pos, size_t seg_begin, size_t& begin, size_t& end,
                   int64_t& id) const;
  const Merge* find_merge(int32_t a, int32_t b) const;

  std::string source_;
  std::unordered_map<std::string, int32_t> bytes_to_id_;  // model vocab, raw bytes -> id
  std::vector<std::string> id_to_bytes_;                  // model vocab and added tokens
  std::vector<bool> has_id_;
  std::array<int32_t, 256> byte_id_{};
  std::unordered_map<uint64_t, Merge> merges_;
  std::vector<BpeAddedToken> added_;
  std::array<std::vector<int32_t>, 256> added_by_first_byte_;  // indices, longest first
  bool ignore_merges_ = false;
  bool nfc_ = false;
  bool add_prefix_space_ = false;
  std::vector<std::unique_ptr<BpeRegex>> regexes_;
  std::shared_ptr<const PreSplitter> pre_splitter_;
  bool added_in_list_order_ = false;
  std::vector<int64_t> encode_partitioned(const std::string& text) const;
  std::string template_bos_, template_eos_;
};

// The GPT-2 pre-tokenizer regex (ByteLevel use_regex=true).
extern const char* const kGpt2SplitRegex;

// tokenizer.json or tokenizer.json.xz: throws Error naming the file and the unsupported part.
std::unique_ptr<BpeTokenizer> load_bpe_tokenizer_json(const std::string& path);
// GPT-2's original pair of files. "<|endoftext|>" (when in the vocab) becomes an added token.
std::unique_ptr<BpeTokenizer> load_bpe_gpt2(const std::string& encoder_json, const std::string& vocab_bpe);
// True when tokenizer.json (or .xz) describes a byte-level BPE (model BPE without byte
// fallback, a ByteLevel pre-tokenizer or decoder), i.e. not Llama 2's SentencePiece-style one.
bool is_byte_level_bpe_json(const std::string& path);

}  // namespace sq
