// data/gguf_tokenizer: tokenizers stored in GGUF metadata (tokenizer.ggml.*), both ways.
//   - Reading: `llama` (SentencePiece-style vocabulary with scores and token types; merges by
//     score with byte fallback, as llama.cpp's SPM tokenizer does) and `gpt2` (byte-level BPE
//     with merges; the pre-tokenizer regexes chosen by tokenizer.ggml.pre as llama.cpp
//     chooses them). Tokenizes exactly as llama.cpp does for the same file.
//   - Writing: the tokenizer.ggml.* keys for a Hugging Face model directory (tokenizer.model
//     or tokenizer.json), what a GGUF export stores.
//   - Converting: the HF tokenizer files (tokenizer.json + tokenizer_config.json, and for a
//     `llama` vocabulary also a SentencePiece tokenizer.model) equivalent to a GGUF's.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "sliderquant/data/tokenizer.h"
#include "sliderquant/io/gguf.h"

namespace sq {

// The tokenizer of F (bos/eos ids and add_bos/add_eos from tokenizer.ggml.*; llama.cpp's
// defaults where absent). Throws Error naming the file and key for an unknown
// tokenizer.ggml.model or tokenizer.ggml.pre, or inconsistent arrays.
std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& f);

// The tokenizer.ggml.* metadata (model, pre, tokens, scores, token_type, merges, special
// token ids, add_bos_token / add_eos_token, add_space_prefix, chat_template when present)
// describing the tokenizer of the HF model directory DIR. Throws Error naming DIR when its
// tokenizer cannot be expressed (e.g. a pre-tokenizer llama.cpp does not know).
std::vector<std::pair<std::string, GgufValue>> gguf_tokenizer_metadata(const std::string& dir);

// Writes into DIR the HF tokenizer files for F's tokenizer: tokenizer.json and
// tokenizer_config.json (special tokens, add_bos_token, add_eos_token, chat_template), plus
// tokenizer.model for a `llama` vocabulary, such that load_tokenizer(DIR) and Hugging Face's
// AutoTokenizer tokenize as load_gguf_tokenizer(F) does. Returns the file names written.
std::vector<std::string> write_hf_tokenizer_files(const GgufFile& f, const std::string& dir);

}  // namespace sq
