// data/gguf_tokenizer: reading the tokenizer stored in a GGUF's tokenizer.ggml.* metadata, as
// llama.cpp's llama-vocab.cpp reads it: `llama` vocabularies with the native SentencePiece-
// style tokenizer (llama_spm.cpp), `gpt2` ones with the byte-level BPE engine, llama.cpp's
// pre-tokenization (llama_pretok.cpp) and its way of matching added tokens. Writing the
// metadata and converting to HF files is gguf_tokenizer_write.cpp.
#include "sliderquant/data/gguf_tokenizer.h"

#include "bpe_tokenizer.h"
#include "llama_pretok.h"
#include "llama_spm.h"
#include "sliderquant/core/error.h"

namespace sq {
namespace {

std::vector<int32_t> token_types(const GgufFile& f, size_t n) {
  std::vector<int32_t> types;
  if (!f.has("tokenizer.ggml.token_type")) return types;
  const auto& v = f.get_ints("tokenizer.ggml.token_type");
  SQ_CHECK(v.size() >= n, f.path() << ": tokenizer.ggml.token_type has " << v.size() << " entries for " << n
                                   << " tokens");
  types.assign(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n));
  return types;
}

std::vector<float> token_scores(const GgufFile& f, size_t n) {
  std::vector<float> scores;
  const GgufValue* v = f.find("tokenizer.ggml.scores");
  if (!v) return scores;
  SQ_CHECK(v->is_array() && (v->elem == GgufValueType::F32 || v->elem == GgufValueType::I32),
           f.path() << ": tokenizer.ggml.scores is not an array of f32 or i32");
  SQ_CHECK(v->array_size() >= n, f.path() << ": tokenizer.ggml.scores has " << v->array_size() << " entries for "
                                          << n << " tokens");
  for (size_t i = 0; i < n; ++i)
    scores.push_back(v->elem == GgufValueType::F32 ? static_cast<float>(v->floats[i]) : static_cast<float>(v->ints[i]));
  return scores;
}

// A special token id key: the default unless the key holds an id inside the vocabulary.
int64_t special_id(const GgufFile& f, const std::string& key, int64_t dflt, size_t n) {
  if (dflt >= static_cast<int64_t>(n)) dflt = -1;
  if (!f.has(key)) return dflt;
  int64_t id = f.get_int(key);
  return id >= 0 && id < static_cast<int64_t>(n) ? id : dflt;
}

std::unique_ptr<Tokenizer> load_bpe(const GgufFile& f, const std::vector<std::string>& tokens,
                                    const std::vector<int32_t>& types, LlamaBpePre& pre) {
  const std::string pre_name = f.get_str("tokenizer.ggml.pre", "");
  SQ_CHECK(llama_bpe_pre(pre_name, pre),
           f.path() << ": unknown tokenizer.ggml.pre \"" << pre_name << "\" (not a pre-tokenizer llama.cpp knows)");
  BpeConfig cfg;
  cfg.source = f.path();
  std::vector<int32_t> matched = llama_raw_matched_tokens(tokens, types);
  std::vector<bool> is_matched(tokens.size(), false);
  for (int32_t id : matched) is_matched[id] = true;
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (is_matched[i]) continue;
    std::string t = tokens[i].empty() ? "[EMPTY_" + std::to_string(i) + "]" : tokens[i];
    cfg.vocab.emplace_back(std::move(t), static_cast<int64_t>(i));
  }
  for (int32_t id : matched) {
    BpeAddedToken a;
    a.id = id;
    a.content = tokens[id];
    cfg.added.push_back(std::move(a));
  }
  cfg.added_in_list_order = true;
  cfg.missing_bytes_ok = true;
  for (const std::string& m : f.get_strs("tokenizer.ggml.merges")) {
    size_t sp = m.find(' ', 1);
    if (sp == std::string::npos) continue;  // llama.cpp keeps it as an unusable ("", "") pair
    cfg.merges.emplace_back(m.substr(0, sp), m.substr(sp + 1));
  }
  cfg.ignore_merges = pre.ignore_merges;
  cfg.pre_splitter = make_llama_pre_splitter(pre.regexes, f.path() + " (tokenizer.ggml.pre \"" + pre_name + "\")");
  return std::make_unique<BpeTokenizer>(cfg);
}

}  // namespace

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& f) {
  const std::string model = f.get_str("tokenizer.ggml.model");
  const std::vector<std::string>& tokens = f.get_strs("tokenizer.ggml.tokens");
  const size_t n = tokens.size();
  SQ_CHECK(n > 0, f.path() << ": tokenizer.ggml.tokens is empty");
  std::vector<int32_t> types = token_types(f, n);

  std::unique_ptr<Tokenizer> tok;
  int64_t bos = -1, eos = -1;
  bool add_bos = false;
  if (model == "llama") {
    LlamaSpmConfig cfg;
    cfg.source = f.path();
    cfg.tokens = tokens;
    cfg.scores = token_scores(f, n);
    cfg.types = types;
    cfg.add_space_prefix = f.get_bool("tokenizer.ggml.add_space_prefix", true);
    tok = std::make_unique<LlamaSpmTokenizer>(std::move(cfg));
    bos = 1, eos = 2, add_bos = true;
  } else if (model == "gpt2") {
    LlamaBpePre pre;
    tok = load_bpe(f, tokens, types, pre);
    bos = pre.bos_none ? -1 : 11, eos = 11, add_bos = pre.add_bos;
  } else {
    SQ_FAIL(f.path() << ": tokenizer.ggml.model \"" << model << "\" is not supported (only llama and gpt2)");
  }
  tok->bos_id = special_id(f, "tokenizer.ggml.bos_token_id", bos, n);
  tok->eos_id = special_id(f, "tokenizer.ggml.eos_token_id", eos, n);
  tok->add_bos = f.get_bool("tokenizer.ggml.add_bos_token", add_bos);
  tok->add_eos = f.get_bool("tokenizer.ggml.add_eos_token", false);
  return tok;
}

}  // namespace sq
