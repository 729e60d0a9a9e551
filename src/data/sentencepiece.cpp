// data/sentencepiece: the SentencePiece Tokenizer over the module libsq_spm.so.
// Owns the module search (SQ_SPM_MODULE, next to the executable, ../, ../lib/sliderquant/,
// the build tree) and the one dlopen(RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND) per process:
// Debian's libsentencepiece carries protobuf 3.14, which must never be bound into the
// process's global symbol scope beside libtorch's protobuf 3.21.
#include "sentencepiece.h"

#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <sstream>
#include <vector>

#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "spm_module/spm_module.h"

#ifndef SQ_SPM_MODULE_BUILD_PATH
#define SQ_SPM_MODULE_BUILD_PATH ""
#endif

namespace sq {
namespace {

struct SpmApi {
  std::string path;   // the module loaded, "" when none
  std::string error;  // why none was loaded
  void* handle = nullptr;
  decltype(&sq_spm_abi_version) abi_version = nullptr;
  decltype(&sq_spm_load) load = nullptr;
  decltype(&sq_spm_free) free_model = nullptr;
  decltype(&sq_spm_free_buffer) free_buffer = nullptr;
  decltype(&sq_spm_vocab_size) vocab_size = nullptr;
  decltype(&sq_spm_bos_id) bos_id = nullptr;
  decltype(&sq_spm_eos_id) eos_id = nullptr;
  decltype(&sq_spm_unk_id) unk_id = nullptr;
  decltype(&sq_spm_encode) encode = nullptr;
  decltype(&sq_spm_decode) decode = nullptr;
};

std::string exe_dir() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  buf[n] = '\0';
  return parent_dir(std::string(buf));
}

std::vector<std::string> module_candidates() {
  std::vector<std::string> c;
  if (const char* env = std::getenv("SQ_SPM_MODULE"); env != nullptr && *env != '\0')
    c.emplace_back(env);
  std::string dir = exe_dir();
  if (!dir.empty()) {
    c.push_back(path_join(dir, "libsq_spm.so"));
    c.push_back(path_join(dir, "../libsq_spm.so"));
    c.push_back(path_join(dir, "../lib/sliderquant/libsq_spm.so"));
  }
  std::string build = SQ_SPM_MODULE_BUILD_PATH;
  if (!build.empty()) c.push_back(build);
  return c;
}

template <typename F>
bool bind(void* h, const char* name, F& fn, std::string& missing) {
  void* sym = ::dlsym(h, name);
  if (sym == nullptr) {
    missing += missing.empty() ? name : std::string(", ") + name;
    return false;
  }
  fn = reinterpret_cast<F>(sym);
  return true;
}

SpmApi open_module() {
  SpmApi api;
  std::vector<std::string> tried = module_candidates();
  for (const std::string& p : tried) {
    if (!path_exists(p)) continue;
    void* h = ::dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
    if (h == nullptr) {
      const char* e = ::dlerror();
      api.error = "cannot load the SentencePiece module " + p + ": " + (e ? e : "dlopen failed");
      return api;
    }
    std::string missing;
    bind(h, "sq_spm_abi_version", api.abi_version, missing);
    bind(h, "sq_spm_load", api.load, missing);
    bind(h, "sq_spm_free", api.free_model, missing);
    bind(h, "sq_spm_free_buffer", api.free_buffer, missing);
    bind(h, "sq_spm_vocab_size", api.vocab_size, missing);
    bind(h, "sq_spm_bos_id", api.bos_id, missing);
    bind(h, "sq_spm_eos_id", api.eos_id, missing);
    bind(h, "sq_spm_unk_id", api.unk_id, missing);
    bind(h, "sq_spm_encode", api.encode, missing);
    bind(h, "sq_spm_decode", api.decode, missing);
    if (!missing.empty()) {
      api.error = "SentencePiece module " + p + " lacks " + missing + " (stale build?)";
      ::dlclose(h);
      return api;
    }
    int v = api.abi_version();
    if (v != SQ_SPM_ABI_VERSION) {
      api.error = "SentencePiece module " + p + " has ABI version " + std::to_string(v) +
                  ", expected " + std::to_string(SQ_SPM_ABI_VERSION) + " (stale build?)";
      ::dlclose(h);
      return api;
    }
    api.handle = h;  // never closed: lives as long as the process
    api.path = p;
    return api;
  }
  std::ostringstream os;
  os << "SentencePiece module libsq_spm.so not found (tried:";
  for (const auto& p : tried) os << " " << p;
  os << "); set SQ_SPM_MODULE to its path";
  api.error = os.str();
  return api;
}

const SpmApi& spm_api() {
  static const SpmApi api = open_module();  // thread-safe, once per process
  return api;
}

std::string take_error(const SpmApi& api, char* err, const std::string& fallback) {
  std::string s = err != nullptr ? std::string(err) : fallback;
  if (err != nullptr) api.free_buffer(err);
  return s;
}

class SentencePieceTokenizer : public Tokenizer {
 public:
  SentencePieceTokenizer(const SpmApi& api, sq_spm_model* m, std::string path)
      : api_(api), m_(m), path_(std::move(path)) {
    vocab_ = api_.vocab_size(m_);
    bos_id = api_.bos_id(m_);
    eos_id = api_.eos_id(m_);
    add_bos = true;
    add_eos = false;
  }
  ~SentencePieceTokenizer() override { api_.free_model(m_); }
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  std::vector<int64_t> encode(const std::string& text) const override {
    int32_t* ids = nullptr;
    size_t n = 0;
    char* err = nullptr;
    if (api_.encode(m_, text.data(), text.size(), &ids, &n, &err) != 0)
      SQ_FAIL(take_error(api_, err, "SentencePiece encode failed") << " (" << path_ << ")");
    std::vector<int64_t> out(ids, ids + n);
    api_.free_buffer(ids);
    return out;
  }

  std::string decode(const std::vector<int64_t>& ids) const override {
    std::vector<int32_t> in(ids.size());
    for (size_t i = 0; i < ids.size(); ++i) {
      SQ_CHECK(ids[i] >= 0 && ids[i] < vocab_, "token id " << ids[i] << " out of range [0, "
                                                            << vocab_ << ") for " << path_);
      in[i] = static_cast<int32_t>(ids[i]);
    }
    char* text = nullptr;
    size_t len = 0;
    char* err = nullptr;
    if (api_.decode(m_, in.data(), in.size(), &text, &len, &err) != 0)
      SQ_FAIL(take_error(api_, err, "SentencePiece decode failed") << " (" << path_ << ")");
    std::string out(text, len);
    api_.free_buffer(text);
    return out;
  }

  int64_t vocab_size() const override { return vocab_; }
  std::string kind() const override { return "sentencepiece"; }

 private:
  const SpmApi& api_;
  sq_spm_model* m_;
  std::string path_;
  int64_t vocab_ = 0;
};

}  // namespace

std::string spm_module_path() { return spm_api().path; }

std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& model_path) {
  SQ_CHECK(path_exists(model_path), "SentencePiece model not found: " << model_path);
  if (spm_native_requested()) return load_sentencepiece_native(model_path);
  const SpmApi& api = spm_api();
  SQ_CHECK(api.handle != nullptr, api.error << " (needed for " << model_path << ")");
  char* err = nullptr;
  sq_spm_model* m = api.load(model_path.c_str(), &err);
  if (m == nullptr) SQ_FAIL(take_error(api, err, "cannot load SentencePiece model " + model_path));
  return std::make_unique<SentencePieceTokenizer>(api, m, model_path);
}

}  // namespace sq
