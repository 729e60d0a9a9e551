// libFuzzer target: the GGUF reader (sq::GgufFile::open, src/io/gguf.cpp). On an accepted
// file: every metadata value through the typed accessors (get_int / get_float / get_bool /
// get_str / get_ints / get_floats / get_strs, which must agree with the value's type), every
// tensor's info (numel, torch_shape, byte range read byte by byte), every readable tensor
// dequantized (src/io/ggml_types.cpp), and, when tokenizer.ggml.model is present, the
// tokenizer stored in the metadata (src/data/gguf_tokenizer.cpp, llama_spm.cpp,
// llama_pretok.cpp) loaded and used on a few fixed texts. The input is written to
// <scratch>/model.gguf. sq::Error is the expected rejection; any other exception, crash,
// leak, UB, timeout or out-of-memory is a finding.
#include <unistd.h>

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_common.h"
#include "sliderquant/core/error.h"
#include "sliderquant/data/gguf_tokenizer.h"
#include "sliderquant/data/tokenizer.h"
#include "sliderquant/io/ggml_types.h"
#include "sliderquant/io/gguf.h"

namespace {

std::string g_dir, g_path;
const uint8_t* g_data = nullptr;
size_t g_size = 0;

void finding(const std::string& what, const std::string& detail) {
  sqfuzz::soft_finding(what, detail, g_data, g_size);
}

const char* const kTexts[] = {
    "Hello world! It's 2024, isn't it?  Tabs\tand\nnew lines\r\n",
    "caf\xc3\xa9 na\xc3\xafve \xe4\xbd\xa0\xe5\xa5\xbd \xf0\x9f\x98\x80 123456789",
    "<|endoftext|>x<|begin_of_text|> <|im_start|>user\n<s></s><unk>",
    "   ",
};

bool is_int(sq::GgufValueType t) {
  using T = sq::GgufValueType;
  return t == T::U8 || t == T::I8 || t == T::U16 || t == T::I16 || t == T::U32 || t == T::I32 || t == T::U64 ||
         t == T::I64;
}

// The typed accessors must accept exactly the values of their type.
void check_value(const sq::GgufFile& f, const std::string& key, const sq::GgufValue& v) {
  using T = sq::GgufValueType;
  (void)sq::gguf_value_type_name(v.type);
  if (f.find(key) != &v) finding("find() does not return the kv() entry", key);
  auto expect = [&](bool ok, const char* accessor, auto&& call) {
    try {
      call();
      if (!ok) finding(std::string(accessor) + " accepted a value of another type", key);
    } catch (const sq::Error&) {
      if (ok) finding(std::string(accessor) + " refused a value of its own type", key);
    }
  };
  expect(is_int(v.type), "get_int", [&] { (void)f.get_int(key); });
  expect(is_int(v.type) || v.type == T::F32 || v.type == T::F64, "get_float", [&] { (void)f.get_float(key); });
  expect(v.type == T::BOOL, "get_bool", [&] { (void)f.get_bool(key); });
  expect(v.type == T::STRING, "get_str", [&] { (void)f.get_str(key); });
  if (v.is_array()) {
    (void)sq::gguf_value_type_name(v.elem);
    size_t n = 0;
    if (v.elem == T::STRING) {
      for (const std::string& s : f.get_strs(key)) n += s.size();
    } else if (v.elem == T::F32 || v.elem == T::F64) {
      for (double d : f.get_floats(key)) n += d > 0;
    } else {
      for (int64_t i : f.get_ints(key)) n += i > 0;
    }
    (void)n;
    (void)v.array_size();
  }
}

void use_tokenizer(const sq::Tokenizer& tok) {
  const int64_t n = tok.vocab_size();
  for (const char* text : kTexts) {
    try {
      std::vector<int64_t> ids = tok.encode_for_model(text);
      for (int64_t id : ids)
        if (id < 0 || id >= n) finding("GGUF tokenizer produced an id outside [0, vocab_size)", std::to_string(id));
      (void)tok.decode(ids);
    } catch (const sq::Error&) {
    }
  }
  for (int64_t id : {int64_t(0), n - 1, tok.bos_id, tok.eos_id}) {
    try {
      (void)tok.decode({id});
    } catch (const sq::Error&) {
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  g_dir = sqfuzz::scratch_dir("gguf");
  g_path = g_dir + "/model.gguf";
  std::atexit([] {
    ::unlink(g_path.c_str());
    ::rmdir(g_dir.c_str());
  });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  g_data = data;
  g_size = size;
  sqfuzz::write_bytes(g_path, data, size);
  return sqfuzz::run_input(data, size, [&] {
    std::shared_ptr<sq::GgufFile> f = sq::GgufFile::open(g_path);
    (void)f->version();
    (void)f->alignment();
    for (const auto& [key, v] : f->kv()) check_value(*f, key, v);
    for (const sq::GgufTensorInfo& t : f->tensors()) {
      if (f->find_tensor(t.name) != &t) finding("find_tensor() does not return the tensors() entry", t.name);
      const int64_t numel = t.numel();
      const std::vector<int64_t> shape = t.torch_shape();
      const sq::GgmlTypeInfo& ti = sq::ggml_type_info(t.type);
      if (numel <= 0 || uint64_t(numel) % uint64_t(ti.block) != 0)
        finding("accepted tensor with an impossible element count", t.name);
      // The data must lie inside the mapped file: read it all.
      const volatile uint8_t* p = f->tensor_data(t);
      uint64_t sum = 0;
      for (uint64_t i = 0; i < t.nbytes; ++i) sum += p[i];
      (void)sum;
      if (ti.readable) {
        at::Tensor x = f->dequantize(t.name);
        if (x.numel() != numel || x.sizes().vec() != shape) finding("dequantized tensor has the wrong shape", t.name);
      }
    }
    if (f->has("tokenizer.ggml.model")) {
      try {
        std::unique_ptr<sq::Tokenizer> tok = sq::load_gguf_tokenizer(*f);
        use_tokenizer(*tok);
        sqfuzz::accepted("tokenizer");
      } catch (const sq::Error& e) {
        sqfuzz::rejected(e);
      }
    }
  });
}
