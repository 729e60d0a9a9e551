// libFuzzer target: SentencePiece models (tokenizer.model) through the project's module
// (src/data/spm_module/spm_module.cpp, the C API that libsq_spm.so exports).
//
// In the product the module is dlopen'ed with RTLD_DEEPBIND, which the ASan runtime refuses,
// so the other targets cannot reach it. Here the module's source is compiled into the target
// itself, linked to Debian's libsentencepiece and NOT to libtorch: with no second protobuf in
// the process there is nothing for DEEPBIND to keep apart, and the module code runs under ASan
// + UBSan exactly as the product calls it (load, vocabulary queries, encode, decode, free).
// libsentencepiece itself is not instrumented: ASan still sees its heap (malloc/free, memcpy);
// a crash or abort inside it on a file the module accepted is a finding in our contract,
// which is that a bad tokenizer.model is one error line.
//
// The same file also goes through the native reader (data/spm_native.cpp, SQ_SPM_NATIVE=1).
//
// Input: "<tokenizer.model bytes>" or "<tokenizer.model bytes>\n--TEXT--\n<text>": the text
// (else a few fixed ones) is encoded, the ids decoded, and ids around the vocabulary's edges
// decoded (in range: must succeed; out of range: must be refused).
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "sentencepiece.h"
#include "sliderquant/core/error.h"
#include "spm_module/spm_module.h"

namespace {

std::string g_dir;
const uint8_t* g_data = nullptr;
size_t g_size = 0;

void finding(const char* what, const std::string& detail) { sqfuzz::soft_finding(what, detail, g_data, g_size); }

// Every failure must come back as a non-empty one-line message.
void check_error(const char* call, char* err) {
  if (err == nullptr || *err == '\0') finding("the module failed without a message", call);
  else if (std::strchr(err, '\n') != nullptr) finding("the module's error is not one line", err);
  sq_spm_free_buffer(err);
}

void encode_decode(const sq_spm_model* m, const std::string& text) {
  int32_t* ids = nullptr;
  size_t n = 0;
  char* err = nullptr;
  if (sq_spm_encode(m, text.data(), text.size(), &ids, &n, &err) != 0) return check_error("encode", err);
  if (n > 0 && ids == nullptr) finding("encode returned a count but no ids", std::to_string(n));
  const int32_t vocab = sq_spm_vocab_size(m);
  for (size_t i = 0; i < n; ++i)
    if (ids[i] < 0 || ids[i] >= vocab)
      finding("encode returned an id outside the vocabulary", std::to_string(ids[i]) + " of " + std::to_string(vocab));
  char* back = nullptr;
  size_t len = 0;
  if (sq_spm_decode(m, ids, n, &back, &len, &err) != 0) check_error("decode of encoded ids", err);
  else if (back == nullptr || std::strlen(back) > len) finding("decode returned a bad buffer", "encoded ids");
  sq_spm_free_buffer(back);
  sq_spm_free_buffer(ids);
}

void decode_ids(const sq_spm_model* m, const std::vector<int32_t>& ids, bool must_succeed) {
  char* text = nullptr;
  size_t len = 0;
  char* err = nullptr;
  const int rc = sq_spm_decode(m, ids.data(), ids.size(), &text, &len, &err);
  if (rc != 0) {
    if (must_succeed) {
      std::string msg = err ? err : "";
      sq_spm_free_buffer(err);
      return finding("decode of in-range ids failed", msg);
    }
    return check_error("decode", err);
  }
  if (!must_succeed) finding("decode accepted an id outside the vocabulary", std::to_string(ids.back()));
  sq_spm_free_buffer(text);
}

// The native reader (SQ_SPM_NATIVE=1) on the same file: sq::Error or a tokenizer whose ids
// stay inside its vocabulary and decode again.
void native(const std::string& path, const std::string* text) {
  try {
    std::unique_ptr<sq::Tokenizer> t = sq::load_sentencepiece_native(path);
    const int64_t vocab = t->vocab_size();
    for (const char* fixed : {"Hello world", "  two  spaces\tand\nnewline ", "caf\xc3\xa9 \xf0\x9f\x99\x82 \xff bad"}) {
      const std::string s = text ? *text : std::string(fixed);
      std::vector<int64_t> ids = t->encode(s);
      for (int64_t id : ids)
        if (id < 0 || id >= vocab) finding("the native reader encoded an id outside the vocabulary", std::to_string(id));
      (void)t->decode(ids);
      (void)t->encode_for_model(s);
      if (text) break;
    }
  } catch (const sq::Error&) {
  } catch (const std::exception& e) {
    sqfuzz::foreign_exception(e, g_data, g_size);
  }
}

void one_input(const uint8_t* data, size_t size) {
  static const char kMarker[] = "\n--TEXT--\n";
  const size_t mlen = sizeof(kMarker) - 1;
  const uint8_t* mark = static_cast<const uint8_t*>(memmem(data, size, kMarker, mlen));
  const size_t model_len = mark ? size_t(mark - data) : size;
  const std::string path = g_dir + "/tokenizer.model";
  sqfuzz::write_bytes(path, data, model_len);

  std::string text;
  if (mark) text.assign(reinterpret_cast<const char*>(mark + mlen), size - model_len - mlen);
  native(path, mark ? &text : nullptr);

  char* err = nullptr;
  sq_spm_model* m = sq_spm_load(path.c_str(), &err);
  if (m == nullptr) {
    if (sqfuzz::verbose()) std::fprintf(stderr, "REJECTED %.400s\n", err ? err : "(no message)");
    return check_error("load", err);
  }
  sqfuzz::accepted("tokenizer.model");
  const int32_t vocab = sq_spm_vocab_size(m);
  if (vocab <= 0) finding("a loaded model has no pieces", std::to_string(vocab));
  for (int32_t id : {sq_spm_bos_id(m), sq_spm_eos_id(m), sq_spm_unk_id(m), sq_spm_pad_id(m)})
    if (id < -1 || id >= vocab) finding("a special id is outside the vocabulary", std::to_string(id));
  if (mark) {
    encode_decode(m, text);
  } else {
    for (const char* t : {"", "Hello world", "  leading spaces, tabs\tand\nnewlines  ",
                          "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac \xf0\x9f\x99\x82 \xff\xfe bad utf-8", "0123456789"})
      encode_decode(m, t);
  }
  if (vocab > 0) {
    decode_ids(m, {0, vocab / 2, vocab - 1}, true);
    decode_ids(m, {0, vocab}, false);
    decode_ids(m, {-1}, false);
  }
  sq_spm_free(m);
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_dir = sqfuzz::scratch_dir("spm");
  std::atexit([] {
    std::remove((g_dir + "/tokenizer.model").c_str());
    ::rmdir(g_dir.c_str());
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  g_data = data;
  g_size = size;
  one_input(data, size);  // the C API throws nothing; a C++ exception escaping it would end the run
  return 0;
}
