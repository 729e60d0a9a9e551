// data/spm_module: the C API of spm_module.h over sentencepiece::SentencePieceProcessor.
// Built alone as the MODULE libsq_spm.so, linked only to libsentencepiece; sqlib dlopens it
// (see src/data/sentencepiece.cpp). No exception crosses the C boundary: every failure
// becomes a malloc'ed error string.
#include "spm_module.h"

#include <sentencepiece_processor.h>

#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <new>
#include <string>
#include <vector>

#define SQ_SPM_EXPORT __attribute__((visibility("default")))

struct sq_spm_model {
  sentencepiece::SentencePieceProcessor sp;
};

namespace {

char* dup_string(const std::string& s) {
  char* p = static_cast<char*>(std::malloc(s.size() + 1));
  if (p == nullptr) return nullptr;
  std::memcpy(p, s.data(), s.size());
  p[s.size()] = '\0';
  return p;
}

// Errors are one line: SentencePiece quotes piece texts as they are stored, and a piece may hold
// a newline or other control bytes (found by fuzz/fuzz_spm.cpp); those become \xNN.
std::string one_line(const std::string& msg) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(msg.size());
  for (unsigned char c : msg) {
    if (c < 0x20 || c == 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += char(c);
    }
  }
  return out;
}

void set_err(char** err, const std::string& msg) {
  if (err != nullptr) *err = dup_string(one_line(msg));
}

}  // namespace

extern "C" {

SQ_SPM_EXPORT int sq_spm_abi_version(void) { return SQ_SPM_ABI_VERSION; }

SQ_SPM_EXPORT sq_spm_model* sq_spm_load(const char* path, char** err) {
  if (err != nullptr) *err = nullptr;
  try {
    // Owned until it is handed out: an exception from Load must not leak it (found by fuzz_spm:
    // LeakSanitizer, 88 bytes plus the half-parsed ModelProto, on a mutated stories260K model).
    std::unique_ptr<sq_spm_model> m(new sq_spm_model());
    auto st = m->sp.Load(path);
    if (!st.ok()) {
      // SentencePiece's status text names its own source lines; say what it means instead.
      const std::string why = st.ToString().find("ParseFromArray") != std::string::npos
                                  ? "the file is not a SentencePiece model (it does not parse as one; truncated or "
                                    "another format?)"
                                  : st.ToString();
      set_err(err, std::string("cannot load SentencePiece model ") + path + ": " + why);
      return nullptr;
    }
    return m.release();
  } catch (const std::exception& e) {
    set_err(err, std::string("cannot load SentencePiece model ") + path + ": " + e.what());
  } catch (...) {
    set_err(err, std::string("cannot load SentencePiece model ") + path + ": unknown error");
  }
  return nullptr;
}

SQ_SPM_EXPORT void sq_spm_free(sq_spm_model* m) { delete m; }
SQ_SPM_EXPORT void sq_spm_free_buffer(void* p) { std::free(p); }

SQ_SPM_EXPORT int32_t sq_spm_vocab_size(const sq_spm_model* m) { return m->sp.GetPieceSize(); }
SQ_SPM_EXPORT int32_t sq_spm_bos_id(const sq_spm_model* m) { return m->sp.bos_id(); }
SQ_SPM_EXPORT int32_t sq_spm_eos_id(const sq_spm_model* m) { return m->sp.eos_id(); }
SQ_SPM_EXPORT int32_t sq_spm_unk_id(const sq_spm_model* m) { return m->sp.unk_id(); }
SQ_SPM_EXPORT int32_t sq_spm_pad_id(const sq_spm_model* m) { return m->sp.pad_id(); }

SQ_SPM_EXPORT int sq_spm_encode(const sq_spm_model* m, const char* text, size_t len,
                                int32_t** ids, size_t* n, char** err) {
  if (err != nullptr) *err = nullptr;
  *ids = nullptr;
  *n = 0;
  try {
    std::vector<int> out;
    auto st = m->sp.Encode(absl::string_view(text, len), &out);
    if (!st.ok()) {
      set_err(err, "SentencePiece encode failed: " + st.ToString());
      return 1;
    }
    if (!out.empty()) {
      *ids = static_cast<int32_t*>(std::malloc(out.size() * sizeof(int32_t)));
      if (*ids == nullptr) throw std::bad_alloc();
      for (size_t i = 0; i < out.size(); ++i) (*ids)[i] = static_cast<int32_t>(out[i]);
    }
    *n = out.size();
    return 0;
  } catch (const std::exception& e) {
    set_err(err, std::string("SentencePiece encode failed: ") + e.what());
  } catch (...) {
    set_err(err, "SentencePiece encode failed: unknown error");
  }
  return 1;
}

SQ_SPM_EXPORT int sq_spm_decode(const sq_spm_model* m, const int32_t* ids, size_t n,
                                char** text, size_t* len, char** err) {
  if (err != nullptr) *err = nullptr;
  *text = nullptr;
  *len = 0;
  try {
    const int size = m->sp.GetPieceSize();
    std::vector<int> in(n);
    for (size_t i = 0; i < n; ++i) {
      if (ids[i] < 0 || ids[i] >= size) {
        set_err(err, "SentencePiece decode: id " + std::to_string(ids[i]) +
                         " out of range [0, " + std::to_string(size) + ")");
        return 1;
      }
      in[i] = ids[i];
    }
    std::string out;
    auto st = m->sp.Decode(in, &out);
    if (!st.ok()) {
      set_err(err, "SentencePiece decode failed: " + st.ToString());
      return 1;
    }
    *text = dup_string(out);
    if (*text == nullptr) throw std::bad_alloc();
    *len = out.size();
    return 0;
  } catch (const std::exception& e) {
    set_err(err, std::string("SentencePiece decode failed: ") + e.what());
  } catch (...) {
    set_err(err, "SentencePiece decode failed: unknown error");
  }
  return 1;
}

}  // extern "C"
