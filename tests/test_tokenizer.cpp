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
  EXPECT_EQ(tok->kind(), "sentencepiece");
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

TEST(Tokenizer, ModulePathIsReported) {
  load_tokenizer(kStories);
  std::string p = spm_module_path();
  EXPECT_NE(p.find("libsq_spm.so"), std::string::npos) << p;
}

// The test binary links libtorch (protobuf 3.21); the module brings sentencepiece's
// protobuf 3.14. Both in use in one process proves the RTLD_LOCAL|RTLD_DEEPBIND isolation.
TEST(Tokenizer, TorchAndSentencePieceShareOneProcess) {
  at::Tensor t = at::ones({2, 2});
  EXPECT_EQ(t.sum().item<float>(), 4.0f);
  auto tok = load_tokenizer(kLlama2);
  EXPECT_EQ(tok->encode("Hello world"), (std::vector<int64_t>{15043, 3186}));
  EXPECT_EQ((at::arange(4).mul(2)).sum().item<int64_t>(), 12);
}
