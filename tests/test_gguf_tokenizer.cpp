// Tests of data/gguf_tokenizer against llama.cpp itself: vocabulary-only GGUFs are written
// from the fixture tokenizers (tests/gguf/make_vocab_gguf.py, gguf-py) and tokenized by
// llama-cpp-python (tests/gguf/llama_tokenize.py); the ids must be identical to ours. The
// Python used is $SQ_PYTHON, else <source>/.venv/bin/python; a missing interpreter, gguf or
// llama_cpp is a failure, never a skip. Also tests needing no Python: HF directory ->
// tokenizer.ggml.* metadata -> GGUF -> tokenizer, and GGUF -> HF files -> load_tokenizer.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/data/gguf_tokenizer.h"
#include "sliderquant/data/tokenizer.h"
#include "sliderquant/io/gguf.h"
#include "test_util.h"

namespace sq {
namespace {

namespace fs = std::filesystem;
const std::string kFix = SQ_FIXTURES_DIR;
const std::string kMultilingual = kFix + "/text/multilingual.txt";
const std::string kWiki = kFix + "/text/wikitext2_head.txt";

std::string python() {
  const char* env = std::getenv("SQ_PYTHON");
  return env && *env ? env : std::string(SQ_SOURCE_DIR) + "/.venv/bin/python";
}

// Runs CMD, returns its stdout; fails the test (with the output) on a non-zero exit.
std::string run(const std::string& cmd) {
  std::string err = testing::fresh_path("gguf_tok_stderr.txt");
  FILE* p = popen((cmd + " 2>" + err).c_str(), "r");
  std::string out;
  char buf[65536];
  size_t n;
  while (p && (n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int rc = p ? pclose(p) : -1;
  if (rc != 0) {
    std::string msg = path_exists(err) ? read_file(err) : "";
    ADD_FAILURE() << "command failed (exit " << rc << "): " << cmd << "\n" << msg;
    throw std::runtime_error("command failed");
  }
  return out;
}

void require_python() {
  std::string py = python();
  ASSERT_TRUE(fs::exists(py)) << "no Python at " << py
                              << ": set SQ_PYTHON to a Python with gguf and llama-cpp-python installed";
  int rc = std::system((py + " -c 'import gguf, llama_cpp' >/dev/null 2>&1").c_str());
  ASSERT_EQ(rc, 0) << py << " cannot import gguf and llama_cpp (pip install gguf llama-cpp-python), "
                   << "or set SQ_PYTHON to a Python that can";
}

std::string make_gguf(const std::string& name, const std::string& kind, const std::string& src,
                      const std::string& pre = "") {
  std::string out = testing::fresh_path("gguf_tok_" + name + ".gguf");
  run(python() + " " + SQ_SOURCE_DIR "/tests/gguf/make_vocab_gguf.py " + kind + " " + src + " " + out + " " + pre);
  return out;
}

std::vector<int64_t> llama_cpp_ids(const std::string& gguf, const std::string& text_file) {
  std::string out = run(python() + " " + SQ_SOURCE_DIR "/tests/gguf/llama_tokenize.py " + gguf + " " + text_file);
  return nlohmann::json::parse(out).at("ids").get<std::vector<int64_t>>();
}

// Index of the first difference, or -1.
long first_diff(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  size_t n = std::min(a.size(), b.size());
  for (size_t i = 0; i < n; ++i)
    if (a[i] != b[i]) return static_cast<long>(i);
  return a.size() == b.size() ? -1 : static_cast<long>(n);
}

void expect_same_as_llama_cpp(const std::string& gguf) {
  auto tok = load_tokenizer(gguf);
  {  // BOS / EOS added as llama.cpp adds them (add_special)
    std::string out = run(python() + " " + SQ_SOURCE_DIR "/tests/gguf/llama_tokenize.py " + gguf + " " + kMultilingual +
                          " --add-bos");
    auto want = nlohmann::json::parse(out).at("ids").get<std::vector<int64_t>>();
    EXPECT_EQ(first_diff(tok->encode_for_model(read_file(kMultilingual)), want), -1) << gguf << " with BOS/EOS";
  }
  for (const std::string& file : {kMultilingual, kWiki}) {
    std::vector<int64_t> want = llama_cpp_ids(gguf, file);
    std::vector<int64_t> got = tok->encode(read_file(file));
    long d = first_diff(got, want);
    EXPECT_EQ(d, -1) << gguf << " on " << file << ": " << got.size() << " ids vs llama.cpp's " << want.size()
                     << ", first difference at " << d << " (ours "
                     << (d >= 0 && d < (long)got.size() ? got[d] : -1) << ", llama.cpp's "
                     << (d >= 0 && d < (long)want.size() ? want[d] : -1) << ")";
  }
}

TEST(GgufTokLlamaCpp, SmolLM2RealGguf) {
  require_python();
  const char* env = std::getenv("SQ_GGUF_SMOLLM2");
  std::string path = env && *env ? env : std::string(SQ_SOURCE_DIR) + "/models/gguf/SmolLM2-135M-Instruct.Q4_1.gguf";
  ASSERT_TRUE(fs::exists(path)) << "SmolLM2 GGUF not found at " << path << " (scripts/get_models.sh fetches it; or set SQ_GGUF_SMOLLM2)";
  expect_same_as_llama_cpp(path);
}

TEST(GgufTokLlamaCpp, Llama3) {
  require_python();
  expect_same_as_llama_cpp(make_gguf("llama3", "tokenizer_json", kFix + "/tokenizers/llama3/tokenizer.json.xz",
                                     "llama-bpe"));
}

TEST(GgufTokLlamaCpp, Qwen3) {
  require_python();
  expect_same_as_llama_cpp(make_gguf("qwen3", "tokenizer_json", kFix + "/tokenizers/qwen3/tokenizer.json.xz",
                                     "qwen2"));
}

TEST(GgufTokLlamaCpp, Gpt2) {
  require_python();
  expect_same_as_llama_cpp(make_gguf("gpt2", "gpt2_files", kFix + "/tokenizers/gpt2", "gpt-2"));
}

TEST(GgufTokLlamaCpp, Gpt2VocabWithOtherPreTokenizers) {
  require_python();
  for (const char* pre : {"smollm", "default", "falcon", "deepseek-llm", "deepseek-coder", "deepseek-v3", "bloom",
                          "viking", "tekken", "gpt-4o", "chameleon", "qwen35", "llama-bpe"})
    expect_same_as_llama_cpp(make_gguf(std::string("gpt2_") + pre, "gpt2_files", kFix + "/tokenizers/gpt2", pre));
}

TEST(GgufTokLlamaCpp, Llama2Spm) {
  require_python();
  expect_same_as_llama_cpp(make_gguf("llama2", "spm", kFix + "/llama2_tokenizer/tokenizer.model"));
}

TEST(GgufTokLlamaCpp, Stories260KSpm) {
  require_python();
  expect_same_as_llama_cpp(make_gguf("stories", "spm", kFix + "/stories260K/hf/tokenizer.model"));
}

// ---- no Python needed ---------------------------------------------------------------------

// The multilingual text without its decomposed accents (Qwen's tokenizer.json normalizes to
// NFC, which GGUF cannot express: llama.cpp does not normalize) and without its last lines,
// which spell special tokens (matched by HF tokenizers, not by llama.cpp when special tokens
// are not parsed).
std::string plain_multilingual() {
  std::string t = read_file(kMultilingual);
  t = t.substr(0, t.find("<|endoftext|>"));
  size_t c = t.find("Combining:");
  return t.substr(0, c) + t.substr(t.find('\n', c) + 1);
}

std::string write_meta_gguf(const std::string& name, const std::vector<std::pair<std::string, GgufValue>>& kv) {
  GgufWriter w;
  w.set("general.architecture", GgufValue::str("llama"));
  for (const auto& [k, v] : kv) w.set(k, v);
  std::string path = testing::fresh_path("gguf_tok_meta_" + name + ".gguf");
  w.write(path);
  return path;
}

void expect_same(const Tokenizer& a, const Tokenizer& b, const std::string& what) {
  for (const std::string& text : {plain_multilingual(), read_file(kWiki)}) {
    std::vector<int64_t> x = a.encode(text), y = b.encode(text);
    EXPECT_EQ(first_diff(x, y), -1) << what << ": " << x.size() << " vs " << y.size() << " ids";
    EXPECT_EQ(b.decode(y), text) << what;
  }
  if (a.add_bos) {  // llama.cpp has a default BOS id even when none is used
    EXPECT_EQ(a.bos_id, b.bos_id) << what;
  }
  EXPECT_EQ(a.eos_id, b.eos_id) << what;
  EXPECT_EQ(a.add_bos, b.add_bos) << what;
  EXPECT_EQ(a.add_eos, b.add_eos) << what;
}

TEST(GgufTokRoundTrip, HfDirToGgufTokenizesAsHf) {
  for (const char* name : {"llama3", "qwen3", "gpt2"}) {
    std::string dir = kFix + "/tokenizers/" + name;
    auto kv = gguf_tokenizer_metadata(dir);
    std::string path = write_meta_gguf(name, kv);
    expect_same(*load_tokenizer(dir), *load_tokenizer(path), std::string("metadata of ") + name);
  }
}

TEST(GgufTokRoundTrip, PreNameFromRegexes) {
  auto pre_of = [](const std::string& dir) {
    for (const auto& [k, v] : gguf_tokenizer_metadata(dir))
      if (k == "tokenizer.ggml.pre") return v.s;
    return std::string("(none)");
  };
  EXPECT_EQ(pre_of(kFix + "/tokenizers/llama3"), "llama-bpe");
  EXPECT_EQ(pre_of(kFix + "/tokenizers/qwen3"), "qwen2");
  EXPECT_EQ(pre_of(kFix + "/tokenizers/gpt2"), "gpt-2");
}

TEST(GgufTokRoundTrip, SpmMetadata) {
  std::string dir = kFix + "/stories260K/hf";
  auto kv = gguf_tokenizer_metadata(dir);
  auto g = load_tokenizer(write_meta_gguf("stories", kv));
  EXPECT_EQ(g->kind(), "spm");
  EXPECT_EQ(g->bos_id, 1);
  EXPECT_EQ(g->eos_id, 2);
  EXPECT_TRUE(g->add_bos);
  std::string text = read_file(kWiki);
  EXPECT_EQ(g->decode(g->encode(text)), text);
  if (!spm_module_path().empty()) {  // the SentencePiece library agrees on plain English text
    auto h = load_tokenizer(dir);
    EXPECT_EQ(first_diff(g->encode(text), h->encode(text)), -1);
  }
}

TEST(GgufTokRoundTrip, GgufToHfFiles) {
  for (const char* name : {"llama3", "qwen3", "gpt2"}) {
    std::string gguf = write_meta_gguf(std::string("conv_") + name,
                                       gguf_tokenizer_metadata(kFix + "/tokenizers/" + name));
    std::string out = testing::fresh_path(std::string("gguf_tok_conv_") + name, true);
    auto files = write_hf_tokenizer_files(*GgufFile::open(gguf), out);
    EXPECT_EQ(files, (std::vector<std::string>{"tokenizer.json", "tokenizer_config.json"}));
    expect_same(*load_tokenizer(gguf), *load_tokenizer(out), std::string("HF files of ") + name);
  }
  std::string gguf = write_meta_gguf("conv_stories", gguf_tokenizer_metadata(kFix + "/stories260K/hf"));
  std::string out = testing::fresh_path("gguf_tok_conv_stories", true);
  auto files = write_hf_tokenizer_files(*GgufFile::open(gguf), out);
  EXPECT_EQ(files, (std::vector<std::string>{"tokenizer.model", "tokenizer_config.json"}));
  // Read back by this module's own SentencePiece parser: the same vocabulary and settings.
  auto again = write_meta_gguf("conv_stories_again", gguf_tokenizer_metadata(out));
  expect_same(*load_tokenizer(gguf), *load_tokenizer(again), "tokenizer.model round trip");
}

TEST(GgufTokErrors, UnknownModelAndPre) {
  auto kv = gguf_tokenizer_metadata(kFix + "/tokenizers/gpt2");
  for (auto& [k, v] : kv)
    if (k == "tokenizer.ggml.pre") v = GgufValue::str("no-such-pre");
  std::string path = write_meta_gguf("badpre", kv);
  std::string err = testing::error_of([&] { load_tokenizer(path); });
  EXPECT_NE(err.find("no-such-pre"), std::string::npos) << err;
  EXPECT_NE(err.find(path), std::string::npos) << err;
  for (auto& [k, v] : kv)
    if (k == "tokenizer.ggml.model") v = GgufValue::str("t5");
  path = write_meta_gguf("badmodel", kv);
  err = testing::error_of([&] { load_tokenizer(path); });
  EXPECT_NE(err.find("\"t5\""), std::string::npos) << err;
}

}  // namespace
}  // namespace sq
