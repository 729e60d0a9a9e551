// data/llama_pretok (internal to src/data): byte-level BPE pre-tokenization exactly as
// llama.cpp performs it for a GGUF's tokenizer.ggml.pre: the regex list per pre-tokenizer
// name, the hand-written splitters llama.cpp uses for the GPT-2, Llama 3, Qwen2 and Qwen3.5
// patterns (which differ from a regex engine in places), and for every other pattern the
// same std::regex evaluation over a text whose non-ASCII code points are collapsed to one
// byte per Unicode class. Unicode classes come from src/data/unicode_flags.inc (Unicode 15.1,
// the version of llama.cpp's tables).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "bpe_tokenizer.h"

namespace sq {

// What llama.cpp derives from tokenizer.ggml.pre for a `gpt2` vocabulary.
struct LlamaBpePre {
  std::vector<std::string> regexes;
  bool ignore_merges = false;
  bool add_bos = false;    // the default of tokenizer.ggml.add_bos_token
  bool bos_none = false;   // the default BOS id is dropped (chatglm)
};

// False when llama.cpp does not know NAME (an empty NAME is llama.cpp's "default").
bool llama_bpe_pre(const std::string& name, LlamaBpePre& out);

// The pre-tokenizer llama.cpp runs for REGEXES (applied in order, each splitting the pieces
// of the one before). Throws Error naming SOURCE for a pattern std::regex cannot compile.
std::shared_ptr<const PreSplitter> make_llama_pre_splitter(const std::vector<std::string>& regexes,
                                                           const std::string& source);

// Unicode class bits of a code point, as llama.cpp's unicode_cpt_flags: 0x1 unassigned,
// 0x2 number, 0x4 letter, 0x8 separator, 0x10 mark, 0x20 punctuation, 0x40 symbol,
// 0x80 other; 0x100 added for White_Space.
uint16_t llama_cpt_flags(uint32_t cpt);

}  // namespace sq
