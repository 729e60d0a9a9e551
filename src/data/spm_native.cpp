// data/spm_native: a tokenizer.model (SentencePiece ModelProto) read without libsentencepiece
// and tokenized by the native SentencePiece-style engine of llama_spm.cpp. Used when
// SQ_SPM_NATIVE=1: the ASan + UBSan build (scripts/sanitize.sh) cannot dlopen the module
// (RTLD_DEEPBIND), and this path lets the tests that tokenize with stories260K's
// tokenizer.model run there. The module stays the default everywhere else.
//
// Only what that engine reproduces exactly is accepted: a BPE model (trainer_spec.model_type
// 2, every Llama 1/2 and Mistral tokenizer.model) with the identity normalizer (no
// precompiled_charsmap, no whitespace folding). Anything else is refused with one line that
// says to unset SQ_SPM_NATIVE. tests/test_tokenizer.cpp (SpmModule.NativeReader..., NativeSpm.*)
// checks that both paths give the same ids on stories260K and Llama 2.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "llama_spm.h"
#include "sentencepiece.h"
#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"

namespace sq {
namespace {

// A protobuf wire-format reader over one message's bytes; every read is bounds-checked.
struct Wire {
  const uint8_t* p;
  const uint8_t* end;
  const std::string& where;

  bool done() const { return p >= end; }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      SQ_CHECK(p < end, where << ": truncated varint (not a SentencePiece model, or a cut file)");
      const uint8_t b = *p++;
      v |= uint64_t(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    SQ_FAIL(where << ": varint longer than 10 bytes (not a SentencePiece model)");
  }
  Wire sub() {
    const uint64_t n = varint();
    SQ_CHECK(n <= uint64_t(end - p), where << ": a field runs past the end of the file (truncated?)");
    Wire w{p, p + n, where};
    p += n;
    return w;
  }
  std::string bytes() {
    Wire w = sub();
    return std::string(reinterpret_cast<const char*>(w.p), size_t(w.end - w.p));
  }
  float fixed32_float() {
    SQ_CHECK(end - p >= 4, where << ": truncated float field");
    float f;
    std::memcpy(&f, p, 4);
    p += 4;
    return f;
  }
  void skip(uint32_t wire) {
    switch (wire) {
      case 0: varint(); break;
      case 1: SQ_CHECK(end - p >= 8, where << ": truncated field"); p += 8; break;
      case 2: sub(); break;
      case 5: SQ_CHECK(end - p >= 4, where << ": truncated field"); p += 4; break;
      default: SQ_FAIL(where << ": protobuf wire type " << wire << " (not a SentencePiece model)");
    }
  }
};

struct Proto {
  std::vector<std::string> pieces;
  std::vector<float> scores;
  std::vector<int32_t> types;
  int64_t model_type = 1;  // UNIGRAM unless said
  int64_t bos_id = 1, eos_id = 2;
  bool add_dummy_prefix = true, remove_extra_whitespaces = true, escape_whitespaces = true;
  std::string normalizer_name, charsmap;
};

int64_t as_int32(uint64_t v) { return int64_t(int32_t(uint32_t(v))); }  // protobuf int32 (negatives: 10 bytes)

Proto parse(const std::string& data, const std::string& where) {
  Proto m;
  Wire w{reinterpret_cast<const uint8_t*>(data.data()), reinterpret_cast<const uint8_t*>(data.data()) + data.size(),
         where};
  while (!w.done()) {
    const uint64_t key = w.varint();
    const uint32_t field = uint32_t(key >> 3), wire = uint32_t(key & 7);
    if (field == 1 && wire == 2) {  // SentencePiece
      Wire s = w.sub();
      std::string piece;
      float score = 0.f;
      int32_t type = kTokNormal;
      while (!s.done()) {
        const uint64_t k = s.varint();
        const uint32_t f = uint32_t(k >> 3), t = uint32_t(k & 7);
        if (f == 1 && t == 2) piece = s.bytes();
        else if (f == 2 && t == 5) score = s.fixed32_float();
        else if (f == 3 && t == 0) type = int32_t(as_int32(s.varint()));
        else s.skip(t);
      }
      SQ_CHECK(type >= kTokNormal && type <= kTokByte,
               where << ": piece " << m.pieces.size() << " has type " << type << " (SentencePiece has 1..6)");
      m.pieces.push_back(std::move(piece));
      m.scores.push_back(score);
      m.types.push_back(type);
    } else if (field == 2 && wire == 2) {  // TrainerSpec
      Wire s = w.sub();
      while (!s.done()) {
        const uint64_t k = s.varint();
        const uint32_t f = uint32_t(k >> 3), t = uint32_t(k & 7);
        if (t == 0 && f == 3) m.model_type = as_int32(s.varint());
        else if (t == 0 && f == 41) m.bos_id = as_int32(s.varint());
        else if (t == 0 && f == 42) m.eos_id = as_int32(s.varint());
        else s.skip(t);
      }
    } else if (field == 3 && wire == 2) {  // NormalizerSpec
      Wire s = w.sub();
      while (!s.done()) {
        const uint64_t k = s.varint();
        const uint32_t f = uint32_t(k >> 3), t = uint32_t(k & 7);
        if (f == 1 && t == 2) m.normalizer_name = s.bytes();
        else if (f == 2 && t == 2) m.charsmap = s.bytes();
        else if (f == 3 && t == 0) m.add_dummy_prefix = s.varint() != 0;
        else if (f == 4 && t == 0) m.remove_extra_whitespaces = s.varint() != 0;
        else if (f == 5 && t == 0) m.escape_whitespaces = s.varint() != 0;
        else s.skip(t);
      }
    } else {
      w.skip(wire);
    }
  }
  return m;
}

// The id when it names a piece of the expected type, else -1 (as SentencePiece reports a
// special id the vocabulary does not hold).
int64_t special(const Proto& m, int64_t id, int32_t type) {
  return id >= 0 && id < int64_t(m.pieces.size()) && m.types[size_t(id)] == type ? id : -1;
}

// The engine of llama_spm.cpp, named for what it reads.
class NativeSpmTokenizer : public LlamaSpmTokenizer {
 public:
  using LlamaSpmTokenizer::LlamaSpmTokenizer;
  std::string kind() const override { return "sentencepiece-native"; }
};

}  // namespace

bool spm_native_requested() {
  const char* e = std::getenv("SQ_SPM_NATIVE");
  return e != nullptr && *e != '\0' && std::strcmp(e, "0") != 0;
}

std::unique_ptr<Tokenizer> load_sentencepiece_native(const std::string& model_path) {
  const std::string where = model_path + " (read natively: SQ_SPM_NATIVE=1)";
  const Proto m = parse(read_file(model_path), where);
  SQ_CHECK(!m.pieces.empty(), where << ": no pieces (not a SentencePiece model)");
  const char* unset = "; unset SQ_SPM_NATIVE to load it with SentencePiece";
  SQ_CHECK(m.model_type == 2, where << ": model_type " << m.model_type
                                    << " is not BPE; the native reader takes BPE models only" << unset);
  SQ_CHECK(m.charsmap.empty() && (m.normalizer_name.empty() || m.normalizer_name == "identity") &&
               !m.remove_extra_whitespaces && m.escape_whitespaces,
           where << ": normalizer '" << m.normalizer_name
                 << "' (the native reader takes the identity normalizer without whitespace folding only)" << unset);
  LlamaSpmConfig cfg;
  cfg.source = where;
  cfg.tokens = m.pieces;
  cfg.scores = m.scores;
  cfg.types = m.types;
  cfg.add_space_prefix = m.add_dummy_prefix;
  auto tok = std::make_unique<NativeSpmTokenizer>(std::move(cfg));
  tok->bos_id = special(m, m.bos_id, kTokControl);
  tok->eos_id = special(m, m.eos_id, kTokControl);
  tok->add_bos = true;
  tok->add_eos = false;
  return tok;
}

}  // namespace sq
