// Tests of data/tokenizer: the SentencePiece module (stories260K golden prompt ids, the
// Llama 2 tokenizer), load_tokenizer's file choice and BOS/EOS settings, its errors, and
// that libtorch and the dlopen'ed SentencePiece module coexist in one process.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/data/tokenizer.h"
#include "test_util.h"

// What a tokenizer.model loads as: the SentencePiece module, or under SQ_SPM_NATIVE=1 (set
// by scripts/sanitize.sh, whose ASan build cannot load the module) the native reader.
inline std::string spm_kind() {
  const char* e = std::getenv("SQ_SPM_NATIVE");
  return e && *e && std::string(e) != "0" ? "sentencepiece-native" : "sentencepiece";
}

using namespace sq;
namespace fs = std::filesystem;

namespace {
using sq::testing::error_of;

const std::string kStories = SQ_FIXTURES_DIR "/stories260K/hf";
const std::string kLlama2 = SQ_FIXTURES_DIR "/llama2_tokenizer";

std::string fresh_dir(const std::string& name) {
  fs::path d = fs::path(::testing::TempDir()) / ("sq_tok_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

}  // namespace

TEST(Tokenizer, Stories260KPromptMatchesReferenceIds) {
  auto ref = nlohmann::json::parse(read_file(SQ_FIXTURES_DIR "/stories260K/reference/prompt1.json"));
  std::string prompt = ref.at("prompt").get<std::string>();
  std::vector<int64_t> want = ref.at("prompt_ids").get<std::vector<int64_t>>();

  auto tok = load_tokenizer(kStories);
  EXPECT_EQ(tok->kind(), spm_kind());
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_EQ(tok->bos_id, 1);
  EXPECT_EQ(tok->eos_id, 2);
  EXPECT_TRUE(tok->add_bos);
  EXPECT_FALSE(tok->add_eos);
  EXPECT_EQ(tok->encode_for_model(prompt), want);
  std::vector<int64_t> body = tok->encode(prompt);
  EXPECT_EQ(body, std::vector<int64_t>(want.begin() + 1, want.end()));
  EXPECT_EQ(tok->decode(body), prompt);
}

TEST(Tokenizer, LoadsFromTheModelFileItself) {
  auto tok = load_tokenizer(kStories + "/tokenizer.model");
  EXPECT_EQ(tok->vocab_size(), 512);
  EXPECT_EQ(tok->encode_for_model("Once upon a time").front(), 1);
}

TEST(Tokenizer, Llama2HelloWorld) {
  auto tok = load_tokenizer(kLlama2);
  EXPECT_EQ(tok->vocab_size(), 32000);
  EXPECT_EQ(tok->encode("Hello world"), (std::vector<int64_t>{15043, 3186}));
  EXPECT_EQ(tok->encode_for_model("Hello world"), (std::vector<int64_t>{1, 15043, 3186}));
  EXPECT_EQ(tok->decode({15043, 3186}), "Hello world");
  // Byte fallback round-trips text outside the vocabulary.
  std::string odd = "na\xC3\xAFve \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x99\x82 tab\there";
  EXPECT_EQ(tok->decode(tok->encode(odd)), odd);
  EXPECT_TRUE(tok->encode("").empty());
}

TEST(Tokenizer, ConfigFilesOverrideBosEos) {
  std::string d = fresh_dir("override");
  fs::copy_file(kStories + "/tokenizer.model", d + "/tokenizer.model");
  write_file_atomic(d + "/config.json", R"({"bos_token_id": 5, "eos_token_id": [7, 8]})");
  write_file_atomic(d + "/tokenizer_config.json", R"({"add_bos_token": false, "add_eos_token": true})");
  auto tok = load_tokenizer(d);
  EXPECT_EQ(tok->bos_id, 5);
  EXPECT_EQ(tok->eos_id, 7);
  EXPECT_FALSE(tok->add_bos);
  EXPECT_TRUE(tok->add_eos);
  std::vector<int64_t> ids = tok->encode_for_model("Lily");
  ASSERT_FALSE(ids.empty());
  EXPECT_NE(ids.front(), 5);
  EXPECT_EQ(ids.back(), 7);

  // Without config files: the model's own ids, add_bos on, add_eos off.
  std::string bare = fresh_dir("bare");
  fs::copy_file(kStories + "/tokenizer.model", bare + "/tokenizer.model");
  auto t2 = load_tokenizer(bare);
  EXPECT_EQ(t2->bos_id, 1);
  EXPECT_EQ(t2->eos_id, 2);
  EXPECT_TRUE(t2->add_bos);
  EXPECT_FALSE(t2->add_eos);
  fs::remove_all(d);
  fs::remove_all(bare);
}

TEST(Tokenizer, Errors) {
  EXPECT_NE(error_of([] { load_tokenizer("/nonexistent/model-dir"); }).find("/nonexistent/model-dir"),
            std::string::npos);

  std::string json_only = fresh_dir("json_only");
  write_file_atomic(json_only + "/tokenizer.json", "{}");
  std::string e = error_of([&] { load_tokenizer(json_only); });
  EXPECT_NE(e.find("unexpected tokenizer.json layout"), std::string::npos) << e;
  EXPECT_NE(e.find(json_only), std::string::npos) << e;

  std::string empty = fresh_dir("empty");
  e = error_of([&] { load_tokenizer(empty); });
  EXPECT_NE(e.find(empty), std::string::npos) << e;

  std::string bad = fresh_dir("bad_model");
  write_file_atomic(bad + "/tokenizer.model", "not a protobuf");
  e = error_of([&] { load_tokenizer(bad); });
  EXPECT_NE(e.find(bad + "/tokenizer.model"), std::string::npos) << e;

  auto tok = load_tokenizer(kStories);
  EXPECT_THROW(tok->decode({1, 512}), Error);
  EXPECT_THROW(tok->decode({-1}), Error);
  fs::remove_all(json_only);
  fs::remove_all(empty);
  fs::remove_all(bad);
}

// SpmModule.*: the tests whose subject is the SentencePiece module itself (dlopen'ed with
// RTLD_DEEPBIND, which ASan refuses; scripts/sanitize.sh leaves this suite out).
TEST(SpmModule, PathIsReported) {
  load_tokenizer(kStories);
  std::string p = spm_module_path();
  EXPECT_NE(p.find("libsq_spm.so"), std::string::npos) << p;
}

// The test binary links libtorch (protobuf 3.21); the module brings sentencepiece's
// protobuf 3.14. Both in use in one process proves the RTLD_LOCAL|RTLD_DEEPBIND isolation.
TEST(SpmModule, TorchAndSentencePieceShareOneProcess) {
  at::Tensor t = at::ones({2, 2});
  EXPECT_EQ(t.sum().item<float>(), 4.0f);
  auto tok = load_tokenizer(kLlama2);
  EXPECT_EQ(tok->encode("Hello world"), (std::vector<int64_t>{15043, 3186}));
  EXPECT_EQ((at::arange(4).mul(2)).sum().item<int64_t>(), 12);
}

// SentencePiece quotes a bad piece's text in its error; a newline there made the error two
// lines (found by fuzz/fuzz_spm.cpp). The module escapes control bytes.
TEST(Tokenizer, AModelErrorIsOneLineEvenWhenAPieceHoldsANewline) {
  auto piece = [](const std::string& text, int type) {
    const std::string in = std::string("\x0a") + char(text.size()) + text + "\x18" + char(type);
    return std::string("\x0a") + char(in.size()) + in;
  };
  const std::string model = piece("<unk>", 2) + piece("<s>", 3) + piece("</s>", 3) + piece("<0x\n0F>", 6) +
                            std::string("\x12\x02\x18\x02", 4);  // trainer_spec { model_type: BPE }
  const std::string d = fresh_dir("newline_piece");
  write_file_atomic(d + "/tokenizer.model", model);
  const std::string e = error_of([&] { load_tokenizer(d + "/tokenizer.model"); });
  EXPECT_NE(e.find(d + "/tokenizer.model"), std::string::npos) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  fs::remove_all(d);
}

// ---- SQ_SPM_NATIVE=1: tokenizer.model without the module (src/data/spm_native.cpp), for the
// ASan build that cannot dlopen it. It must give the module's ids, or refuse.
namespace {

// Sets SQ_SPM_NATIVE for one scope and restores what was there.
struct NativeSpmEnv {
  std::string old;
  bool had = false;
  explicit NativeSpmEnv(const char* value) {
    if (const char* e = std::getenv("SQ_SPM_NATIVE")) had = true, old = e;
    ::setenv("SQ_SPM_NATIVE", value, 1);
  }
  ~NativeSpmEnv() {
    if (had) ::setenv("SQ_SPM_NATIVE", old.c_str(), 1);
    else ::unsetenv("SQ_SPM_NATIVE");
  }
};

std::vector<std::string> spm_texts() {
  std::vector<std::string> texts = {"", " ", "Hello world", "  two  spaces, a\ttab and\nnew\n\nlines  ",
                                    "<s> and </s> and <unk> as text", "caf\xc3\xa9 na\xc3\xafve \xc3\x85ngstr\xc3\xb6m",
                                    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x99\x82\xf0\x9f\x9a\x80", "1234567890 3.14",
                                    "\xe2\x96\x81 already a piece marker"};
  const std::string wiki = read_file(SQ_FIXTURES_DIR "/text/wikitext2_head.txt");
  for (size_t at = 0; at < wiki.size(); at += 1500) texts.push_back(wiki.substr(at, 1500));
  const std::string multi = read_file(SQ_FIXTURES_DIR "/text/multilingual.txt");
  size_t at = 0;
  while (at < multi.size()) {
    size_t n = 700;  // whole UTF-8 characters only
    while (at + n < multi.size() && (static_cast<unsigned char>(multi[at + n]) & 0xC0) == 0x80) --n;
    texts.push_back(multi.substr(at, n));
    at += n;
  }
  return texts;
}

}  // namespace

TEST(SpmModule, NativeReaderGivesItsIdsAndTextOnStories260KAndLlama2) {
  const std::vector<std::string> texts = spm_texts();
  for (const std::string& dir : {kStories, kLlama2}) {
    std::unique_ptr<Tokenizer> module, native;
    {
      NativeSpmEnv off("0");
      module = load_tokenizer(dir);
    }
    {
      NativeSpmEnv on("1");
      native = load_tokenizer(dir);
    }
    ASSERT_EQ(module->kind(), "sentencepiece");
    ASSERT_EQ(native->kind(), "sentencepiece-native");
    EXPECT_EQ(native->vocab_size(), module->vocab_size()) << dir;
    EXPECT_EQ(native->bos_id, module->bos_id) << dir;
    EXPECT_EQ(native->eos_id, module->eos_id) << dir;
    EXPECT_EQ(native->add_bos, module->add_bos) << dir;
    size_t tokens = 0;
    for (const std::string& t : texts) {
      const std::vector<int64_t> want = module->encode_for_model(t);
      EXPECT_EQ(native->encode_for_model(t), want) << dir << ": " << t.substr(0, 80);
      EXPECT_EQ(native->decode(want), module->decode(want)) << dir << ": " << t.substr(0, 80);
      tokens += want.size();
    }
    EXPECT_GT(tokens, 4000u) << dir;
  }
}

TEST(NativeSpm, RefusesWhatItCannotReproduceNamingTheFile) {
  NativeSpmEnv on("1");
  const std::string d = fresh_dir("native_spm");
  // A unigram model (trainer_spec.model_type 1): one piece "a", then trainer_spec {3: 1}.
  const std::string unigram = std::string("\x0a\x03\x0a\x01" "a", 5) + std::string("\x12\x02\x18\x01", 4);
  write_file_atomic(d + "/tokenizer.model", unigram);
  std::string e = error_of([&] { load_tokenizer(d + "/tokenizer.model"); });
  EXPECT_NE(e.find(d + "/tokenizer.model"), std::string::npos) << e;
  EXPECT_NE(e.find("not BPE"), std::string::npos) << e;
  EXPECT_NE(e.find("unset SQ_SPM_NATIVE"), std::string::npos) << e;
  // The stories260K file cut in the middle of a piece.
  const std::string real = read_file(kStories + "/tokenizer.model");
  write_file_atomic(d + "/tokenizer.model", real.substr(0, real.size() / 2));
  e = error_of([&] { load_tokenizer(d + "/tokenizer.model"); });
  EXPECT_NE(e.find(d + "/tokenizer.model"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  fs::remove_all(d);
}
