// Tests of the byte-level BPE tokenizer (src/data/bpe_tokenizer.cpp, bpe_load.cpp) on the
// real GPT-2, Llama 3 and Qwen3 files in tests/fixtures/tokenizers/. Golden ids were derived
// with tests/fixtures/tokenizers/reference_bpe.py (OpenAI's encoder.py algorithm, written
// independently of the C++ code) and each token checked by hand in the vocabulary: the
// comments name the pre-tokens and the vocabulary entries ("Ġ" is the space byte, "Ċ" the
// newline byte in GPT-2's bytes_to_unicode alphabet). A tiny hand-written tokenizer.json
// checks merge order, TemplateProcessing BOS and the loader's choices.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <random>

#include "../src/data/bpe_tokenizer.h"
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
using Ids = std::vector<int64_t>;

namespace {
using sq::testing::error_of;

const std::string kTok = SQ_FIXTURES_DIR "/tokenizers";

// Loaded once per process: the Llama 3 file takes about a second to parse.
const Tokenizer& tok(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
  auto& t = cache[name];
  if (!t) t = load_tokenizer(kTok + "/" + name);
  return *t;
}

std::string utf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6)), s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12)), s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18)), s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F)), s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// Random text from several planes: ASCII (letters, digits, punctuation, apostrophes,
// whitespace runs), Latin-1, combining accents, Greek/Cyrillic, CJK, Hangul, emoji and
// skin-tone modifiers, plane 2 CJK, non-breaking and ideographic spaces. nfc_stable leaves
// out the combining marks (Qwen normalizes them away, so its round trip is NFC(s)).
std::string random_text(std::mt19937& rng, bool nfc_stable) {
  static const std::vector<std::pair<uint32_t, uint32_t>> ranges = {
      {'a', 'z'},         {'A', 'Z'},         {'0', '9'},         {' ', ' '},         {'\'', '\''},
      {'!', '/'},         {'\n', '\n'},       {'\t', '\t'},       {0xE0, 0xFF},       {0x391, 0x3C9},
      {0x410, 0x44F},     {0x4E00, 0x9FFF},   {0xAC00, 0xD7A3},   {0x1F300, 0x1F64F}, {0x1F3FB, 0x1F3FF},
      {0x20000, 0x2A6DF}, {0xA0, 0xA0},       {0x3000, 0x3000},   {0x300, 0x36F}};
  size_t n_ranges = ranges.size() - (nfc_stable ? 1 : 0);
  std::uniform_int_distribution<size_t> len(0, 40), pick(0, n_ranges - 1);
  std::string s;
  for (size_t i = 0, n = len(rng); i < n; ++i) {
    auto [lo, hi] = ranges[pick(rng)];
    s += utf8(std::uniform_int_distribution<uint32_t>(lo, hi)(rng));
  }
  return s;
}

std::string fresh_dir(const std::string& name) {
  fs::path d = fs::path(::testing::TempDir()) / ("sq_bpe_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

// sha256 of the ids as little-endian int32, as reference_bpe.py --file prints it.
std::string ids_sha256(const Ids& ids) {
  std::vector<int32_t> v(ids.begin(), ids.end());
  return sha256_hex(v.data(), v.size() * sizeof(int32_t));
}

}  // namespace

TEST(BpeGpt2, HelloWorldAndGoldens) {
  const Tokenizer& t = tok("gpt2");
  EXPECT_EQ(t.kind(), "bpe");
  EXPECT_EQ(t.vocab_size(), 50257);
  EXPECT_EQ(t.bos_id, 50256);  // <|endoftext|> is BOS and EOS, neither added (GPT2Tokenizer)
  EXPECT_EQ(t.eos_id, 50256);
  EXPECT_FALSE(t.add_bos);
  // Publicly documented: "Hello" = 15496, "Ġworld" = 995 in encoder.json. "Hello" forms by the
  // merges l+l (rank 41), e+ll (439), ell+o (10853), H+ello (15240).
  EXPECT_EQ(t.encode("Hello world"), (Ids{15496, 995}));
  EXPECT_EQ(t.encode_for_model("Hello world"), (Ids{15496, 995}));
  EXPECT_EQ(t.decode({15496, 995}), "Hello world");
  // \s+(?!\S): "a   b" -> "a", "  ", " b"; "  " has no merged token in GPT-2 -> "Ġ" "Ġ" (220
  // 220), then "Ġb" (275).
  EXPECT_EQ(t.encode("a   b"), (Ids{64, 220, 220, 275}));
  // GPT-2's contractions are case-sensitive: "'M" and "'LL" fall to ` ?[^\s\p{L}\p{N}]+` ("'")
  // and ` ?\p{L}+` ("M", "LL"). Pre-tokens: I | ' | M | Ġdon | 't | Ġwe | ' | LL.
  EXPECT_EQ(t.encode("I'M don't we'LL"), (Ids{40, 6, 44, 836, 470, 356, 6, 3069}));
  // ` ?\p{N}+` keeps "1234567" whole; merges give "123" (10163) "45" (2231) "67" (3134).
  EXPECT_EQ(t.encode("1234567"), (Ids{10163, 2231, 3134}));
  // The special token in running text is one id; "x" = 87, "y" = 88.
  EXPECT_EQ(t.encode("x<|endoftext|>y"), (Ids{87, 50256, 88}));
  // U+1F642 = F0 9F 99 82: "ðŁ" (F0 9F, 8582) "ĻĤ" (99 82, 25081).
  EXPECT_EQ(t.encode("\xF0\x9F\x99\x82"), (Ids{8582, 25081}));
  EXPECT_TRUE(t.encode("").empty());
}

TEST(BpeLlama3, Goldens) {
  const Tokenizer& t = tok("llama3");
  EXPECT_EQ(t.vocab_size(), 128256);  // 128,000 BPE tokens + 256 added
  EXPECT_EQ(t.bos_id, 128000);        // tokenizer_config.json bos_token <|begin_of_text|>
  EXPECT_EQ(t.eos_id, 128001);        // <|end_of_text|>
  // This revision's post_processor is a plain ByteLevel (no TemplateProcessing) and
  // tokenizer_config.json has no add_bos_token: Hugging Face adds no BOS, nor do we.
  EXPECT_FALSE(t.add_bos);
  // "Hello" = 9906, "Ġworld" = 1917 in model.vocab (ignore_merges: both pre-tokens are
  // vocabulary entries, emitted whole).
  EXPECT_EQ(t.encode("Hello world"), (Ids{9906, 1917}));
  EXPECT_EQ(t.decode({128000, 9906, 1917}), "<|begin_of_text|>Hello world");
  // "a   b" -> "a" (64) | "ĠĠ" (256) | "Ġb" (293).
  EXPECT_EQ(t.encode("a   b"), (Ids{64, 256, 293}));
  // "  x" -> " " (220, \s+(?!\S) backs off one space) | "Ġx" (865).
  EXPECT_EQ(t.encode("  x"), (Ids{220, 865}));
  // \p{N}{1,3}: "1234567" -> "123" (4513) | "456" (10961) | "7" (22).
  EXPECT_EQ(t.encode("1234567"), (Ids{4513, 10961, 22}));
  // (?i:'s|'t|...): "I'M" -> "I" (40) | "'M" (28703); "don't" -> "Ġdon" (1541) | "'t" (956);
  // "'LL" matches (?i:'ll) as one pre-token but is not a vocabulary entry: merges give "'" (6)
  // "LL" (4178).
  EXPECT_EQ(t.encode("I'M don't we'LL"), (Ids{40, 28703, 1541, 956, 584, 6, 4178}));
  // \s*[\r\n]+: "\n\n\n" is one pre-token, "ĊĊĊ" (1432).
  EXPECT_EQ(t.encode("a\n\n\nb"), (Ids{64, 1432, 65}));
  // "café 世界 🙂" -> "café" = "ca" (936) "fÃ©" (59958) | "Ġä¸ĸçķĮ" (" 世界", 127365) |
  // "ĠðŁĻĤ" (" 🙂", 28584).
  EXPECT_EQ(t.encode("caf\xC3\xA9 \xE4\xB8\x96\xE7\x95\x8C \xF0\x9F\x99\x82"), (Ids{936, 59958, 127365, 28584}));
  // "日本語のテキスト" is one \p{L}+ pre-token: "日本" (102433) "語" (102158) "の" (16144)
  // "テ" (57933) "キ" (62903) "スト" (71634).
  EXPECT_EQ(t.encode("\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9\xE3\x83\x88"),
            (Ids{102433, 102158, 16144, 57933, 62903, 71634}));
  // "🙂👍🏽" (one ` ?[^\s\p{L}\p{N}]+` pre-token): byte pieces "ðŁ" (9468) "ĻĤ" (19044) "ðŁ"
  // "ĳ" (239) "į" (235) "ðŁ" "ı" (237) "½" (121).
  EXPECT_EQ(t.encode("\xF0\x9F\x99\x82\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD"),
            (Ids{9468, 19044, 9468, 239, 235, 9468, 237, 121}));
  // Special tokens in the text are single ids; "x" = 87, "y" = 88.
  EXPECT_EQ(t.encode("x<|begin_of_text|>y<|end_of_text|>"), (Ids{87, 128000, 88, 128001}));
  EXPECT_EQ(t.encode("<|begin_of_text|>"), (Ids{128000}));
}

TEST(BpeQwen3, Goldens) {
  const Tokenizer& t = tok("qwen3");
  EXPECT_EQ(t.vocab_size(), 151669);  // 151,643 BPE tokens + 26 added (ids up to 151668)
  EXPECT_EQ(t.bos_id, -1);            // bos_token null
  EXPECT_EQ(t.eos_id, 151645);        // <|im_end|>
  EXPECT_FALSE(t.add_bos);
  // "Hello" = 9707, "Ġworld" = 1879 in model.vocab.
  EXPECT_EQ(t.encode("Hello world"), (Ids{9707, 1879}));
  // Qwen's regex has \p{N} (one digit per pre-token): "1" = 16 ... "7" = 22.
  EXPECT_EQ(t.encode("1234567"), (Ids{16, 17, 18, 19, 20, 21, 22}));
  // NFC: "e" + U+0301 composes to "é" before BPE; "Ã©" (963) and "Ã©tÃ©" (38783).
  EXPECT_EQ(t.encode("e\xCC\x81"), (Ids{963}));
  EXPECT_EQ(t.encode("e\xCC\x81t\xC3\xA9"), t.encode("\xC3\xA9t\xC3\xA9"));
  EXPECT_EQ(t.encode("\xC3\xA9t\xC3\xA9"), (Ids{38783}));
  // Chat markup: "<|im_start|>" (151644) | "user" (872) | "Ċ" (198) | "hi" (6023) | "<|im_end|>".
  EXPECT_EQ(t.encode("<|im_start|>user\nhi<|im_end|>"), (Ids{151644, 872, 198, 6023, 151645}));
  // Non-special added tokens match too: "<think>" 151667, "</think>" 151668.
  EXPECT_EQ(t.encode("<think>x</think>"), (Ids{151667, 87, 151668}));
  // "don't I'M": "don" (15007) | "'t" (944) | "ĠI" (358) | "'M" (27603).
  EXPECT_EQ(t.encode("don't I'M"), (Ids{15007, 944, 358, 27603}));
  // "🙂👍🏽": whole-emoji tokens "ðŁĻĤ" (145080) "ðŁĳį" (144349) "ðŁı½" (145375).
  EXPECT_EQ(t.encode("\xF0\x9F\x99\x82\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD"), (Ids{145080, 144349, 145375}));
  // CJK: "日本" (101059) "語" (102819) "の" (15767) "テ" (56833) "キ" (61803) "スト" (70534).
  EXPECT_EQ(t.encode("\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E\xE3\x81\xAE\xE3\x83\x86\xE3\x82\xAD\xE3\x82\xB9\xE3\x83\x88"),
            (Ids{101059, 102819, 15767, 56833, 61803, 70534}));
}

// The first 19 kB of WikiText-2 test: count and sha256 of the ids from reference_bpe.py
// --file (the full 1.3 MB file also matches: see bench/bench_tokenizer.sh).
TEST(BpeAll, WikiText2HeadMatchesReferenceImplementation) {
  std::string text = read_file(SQ_FIXTURES_DIR "/text/wikitext2_head.txt");
  struct Want {
    const char* name;
    size_t tokens;
    const char* sha;
  };
  for (const Want& w : {Want{"llama3", 4289, "f58f191020a4550df9aeb737e15026698bcbd137b1ae5239f52d48ae49db7b8e"},
                        Want{"qwen3", 4431, "a20c2ec3a974caf74878e49942a6b6fa972eee5def9f003657e636a6ccc72283"},
                        Want{"gpt2", 4344, "c311657b43291555521ff8d84b12aece3dd8d1767f3f7978f6813fb085fdcc8c"}}) {
    Ids ids = tok(w.name).encode(text);
    EXPECT_EQ(ids.size(), w.tokens) << w.name;
    EXPECT_EQ(ids_sha256(ids), w.sha) << w.name;
    EXPECT_EQ(tok(w.name).decode(ids), text) << w.name;
  }
}

TEST(BpeAll, RandomUtf8RoundTrips) {
  std::mt19937 rng(1234);
  for (const char* name : {"llama3", "gpt2"}) {
    for (int i = 0; i < 300; ++i) {
      std::string s = random_text(rng, false);
      ASSERT_EQ(tok(name).decode(tok(name).encode(s)), s) << name << " case " << i;
    }
  }
  const Tokenizer& q = tok("qwen3");
  for (int i = 0; i < 300; ++i) {
    std::string s = random_text(rng, true);
    ASSERT_EQ(q.decode(q.encode(s)), s) << "qwen3 case " << i;
    std::string with_marks = random_text(rng, false);  // NFC changes it; encoding is idempotent
    Ids once = q.encode(with_marks);
    ASSERT_EQ(q.encode(q.decode(once)), once) << "qwen3 NFC case " << i;
  }
}

TEST(BpeAll, HeapMergeLoopEqualsReference) {
  auto& t = dynamic_cast<const BpeTokenizer&>(tok("llama3"));
  std::mt19937 rng(7);
  const std::string alphabet = "etaoinshrdlu ETAOIN'\xC3\xA9";
  for (int i = 0; i < 200; ++i) {
    std::string w;
    for (size_t n = std::uniform_int_distribution<size_t>(1, 300)(rng); w.size() < n;)
      w += alphabet[std::uniform_int_distribution<size_t>(0, alphabet.size() - 1)(rng)];
    ASSERT_EQ(t.merge_word(w, true), t.merge_word(w, false)) << w;
  }
  // A long pre-token (heap path) inside encode still round-trips.
  std::string long_word(5000, 'a');
  EXPECT_EQ(t.decode(t.encode(long_word)), long_word);
}

TEST(BpeAll, InvalidInputs) {
  const Tokenizer& t = tok("gpt2");
  std::string e = error_of([&] { t.encode("ok \xC3("); });
  EXPECT_NE(e.find("not valid UTF-8 at byte 3"), std::string::npos) << e;
  EXPECT_THROW(t.decode({50257}), Error);
  EXPECT_THROW(t.decode({-1}), Error);
}

namespace {

// GPT-2's bytes_to_unicode, written out again for the hand-made tokenizer below.
std::string byte_token(int b) {
  bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  if (printable) return utf8(static_cast<uint32_t>(b));
  int k = 0;
  for (int c = 0; c < b; ++c)
    if (!((c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) || (c >= 0xAE && c <= 0xFF))) ++k;
  return utf8(256 + static_cast<uint32_t>(k));
}

// Byte b has id b; "ab" 256, "abc" 257, "Ġa" 258; merges as [a, b] pairs in rank order
// (a b) < (ab c) < (Ġ a); <s> = 300 added at the front by a TemplateProcessing.
std::string tiny_tokenizer_json() {
  nlohmann::json vocab = nlohmann::json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_token(b)] = b;
  vocab["ab"] = 256;
  vocab["abc"] = 257;
  vocab[byte_token(' ') + "a"] = 258;
  nlohmann::json j = {
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}}}},
      {"added_tokens", {{{"id", 300}, {"content", "<s>"}, {"special", true}}}},
      {"model",
       {{"type", "BPE"},
        {"vocab", vocab},
        {"merges", nlohmann::json::array({nlohmann::json::array({"a", "b"}), nlohmann::json::array({"ab", "c"}),
                                          nlohmann::json::array({byte_token(' '), "a"})})}}}};
  return j.dump();
}

}  // namespace

TEST(BpeLoad, TinyTokenizerMergeOrderAndTemplateBos) {
  std::string d = fresh_dir("tiny");
  write_file_atomic(d + "/tokenizer.json", tiny_tokenizer_json());
  auto t = load_tokenizer(d);
  EXPECT_EQ(t->kind(), "bpe");
  EXPECT_EQ(t->vocab_size(), 301);
  EXPECT_TRUE(t->add_bos);  // from the TemplateProcessing post-processor
  EXPECT_EQ(t->bos_id, 300);
  // "abc" -> a b c -> ab c (rank 0) -> abc (rank 1). " abd" -> Ġ a b d: (a b) has rank 0, lower
  // than (Ġ a) rank 2, so "ab" forms first and "Ġa" never does: Ġ(32) ab(256) d(100).
  EXPECT_EQ(t->encode("abc abd"), (Ids{257, 32, 256, 100}));
  EXPECT_EQ(t->encode_for_model("abc"), (Ids{300, 257}));
  EXPECT_EQ(t->decode({300, 257, 32, 256, 100}), "<s>abc abd");

  // tokenizer_config.json's add_bos_token wins over the template; config.json ids win too.
  write_file_atomic(d + "/tokenizer_config.json", R"({"add_bos_token": false, "eos_token": {"content": "<s>"}})");
  write_file_atomic(d + "/config.json", R"({"bos_token_id": 7})");
  auto t2 = load_tokenizer(d);
  EXPECT_FALSE(t2->add_bos);
  EXPECT_EQ(t2->bos_id, 7);
  EXPECT_EQ(t2->eos_id, 300);
  fs::remove_all(d);
}

TEST(BpeLoad, FileChoiceAndErrors) {
  // A file path works as well as its directory; GPT-2's pair loads from either file.
  EXPECT_EQ(load_tokenizer(kTok + "/qwen3/tokenizer.json.xz")->encode("Hello world"), (Ids{9707, 1879}));
  EXPECT_EQ(load_tokenizer(kTok + "/gpt2/vocab.bpe")->encode("Hello world"), (Ids{15496, 995}));

  // Beside tokenizer.model, a SentencePiece-style tokenizer.json (Llama 2: BPE with byte
  // fallback, no ByteLevel) is ignored; a byte-level one is preferred.
  std::string both = fresh_dir("both");
  fs::copy_file(SQ_FIXTURES_DIR "/llama2_tokenizer/tokenizer.model", both + "/tokenizer.model");
  write_file_atomic(both + "/tokenizer.json",
                    R"({"model": {"type": "BPE", "byte_fallback": true, "vocab": {}, "merges": []},
                        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Replace"}]},
                        "pre_tokenizer": null, "decoder": {"type": "Sequence", "decoders": []}})");
  EXPECT_EQ(load_tokenizer(both)->kind(), spm_kind());
  write_file_atomic(both + "/tokenizer.json", tiny_tokenizer_json());
  EXPECT_EQ(load_tokenizer(both)->kind(), "bpe");

  // Unsupported parts are named with the file.
  std::string bad = fresh_dir("bad");
  std::string j = tiny_tokenizer_json();
  auto parsed = nlohmann::json::parse(j);
  parsed["normalizer"] = {{"type", "Lowercase"}};
  write_file_atomic(bad + "/tokenizer.json", parsed.dump());
  std::string e = error_of([&] { load_tokenizer(bad); });
  EXPECT_NE(e.find("unsupported normalizer \"Lowercase\""), std::string::npos) << e;
  EXPECT_NE(e.find(bad + "/tokenizer.json"), std::string::npos) << e;
  parsed["normalizer"] = nullptr;
  parsed["model"]["byte_fallback"] = true;
  write_file_atomic(bad + "/tokenizer.json", parsed.dump());
  e = error_of([&] { load_tokenizer(bad); });
  EXPECT_NE(e.find("byte_fallback"), std::string::npos) << e;
  fs::remove_all(both);
  fs::remove_all(bad);
}
