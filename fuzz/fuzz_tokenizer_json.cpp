// libFuzzer target: Hugging Face tokenizer.json loading (sq::load_tokenizer on a
// tokenizer.json path: src/data/tokenizer_load.cpp, bpe_load.cpp, and the BpeTokenizer
// constructor of bpe_tokenizer.cpp: vocab, merges, added tokens, normalizer, pre-tokenizer
// regexes compiled with PCRE2, post-processor), then encoding a few fixed texts with the
// loaded tokenizer (added-token matching, NFC, regex splitting, BPE merges) and decoding the
// ids, plus a few fixed ids. The input is written to <scratch>/tokenizer.json; the directory
// holds no tokenizer_config.json / config.json, and never a tokenizer.model (SentencePiece is
// not fuzzed: its module is loaded with dlopen(RTLD_DEEPBIND), which ASan refuses).
// sq::Error is the expected rejection; any other exception, crash, leak, UB, timeout or
// out-of-memory is a finding.
#include <unistd.h>

#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "sliderquant/core/error.h"
#include "sliderquant/data/tokenizer.h"

namespace {

std::string g_dir, g_path;

const char* const kTexts[] = {
    "Hello world! It's 2024, isn't it?  Tabs\tand\nnew lines\r\n",
    "caf\xc3\xa9 \x63\xcc\x81 na\xc3\xafve \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80 123456789",
    "<|endoftext|>x<|begin_of_text|> <|im_start|>user\n<s></s><unk>",
    "   leading and trailing   ",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
};

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_dir = sqfuzz::scratch_dir("tokenizer");
  g_path = g_dir + "/tokenizer.json";
  std::atexit([] {
    ::unlink(g_path.c_str());
    ::rmdir(g_dir.c_str());
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sqfuzz::write_bytes(g_path, data, size);
  return sqfuzz::run_input(data, size, [&] {
    std::unique_ptr<sq::Tokenizer> tok = sq::load_tokenizer(g_path);
    const int64_t n = tok->vocab_size();
    (void)tok->kind();
    for (const char* text : kTexts) {
      try {
        std::vector<int64_t> ids = tok->encode_for_model(text);
        for (int64_t id : ids)
          if (id < 0 || id >= n)
            sqfuzz::soft_finding("encode produced an id outside [0, vocab_size)", std::to_string(id), data, size);
        (void)tok->decode(ids);
      } catch (const sq::Error&) {
        // e.g. an id the vocabulary does not define (a hole): expected
      }
    }
    for (int64_t id : {int64_t(0), n - 1, tok->bos_id, tok->eos_id}) {
      try {
        (void)tok->decode({id});
      } catch (const sq::Error&) {
      }
    }
  });
}
