// data/bpe_load: reads byte-level BPE files into a BpeConfig: Hugging Face tokenizer.json
// (optionally .xz-compressed) and GPT-2's encoder.json + vocab.bpe. Supports what GPT-2,
// Llama 3 and Qwen2/3 use: model BPE (merges as "a b" strings or [a, b] pairs,
// ignore_merges), normalizer null / NFC / Sequence of NFC, pre-tokenizers Split(Regex,
// Isolated) and ByteLevel, TemplateProcessing post-processors. Anything else is refused
// with one line naming the file and the part. The tokenizer itself is bpe_tokenizer.cpp.
#include <nlohmann/json.hpp>

#include "bpe_tokenizer.h"
#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/data/dataset.h"

namespace sq {
namespace {

using nlohmann::json;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

json parse_json_file(const std::string& path) {
  std::string text = ends_with(path, ".xz") ? read_xz_file(path) : read_file(path);
  try {
    return json::parse(text);
  } catch (const json::exception& e) {
    SQ_FAIL("cannot parse " << path << ": " << e.what());
  }
}

// A token id as JSON: a non-negative integer below 2^31 (a float, string or huge number is
// damage; converting it would be undefined behaviour). WHAT names the entry.
int64_t token_id(const json& v, const std::string& what) {
  SQ_CHECK(v.is_number_integer() && (v.is_number_unsigned() || v.get<int64_t>() >= 0) &&
               v.get<uint64_t>() < (uint64_t(1) << 31),
           what << ": the id must be a non-negative integer below 2^31, got " << v.dump());
  return v.get<int64_t>();
}

std::string type_of(const json& j) {
  return j.is_object() && j.contains("type") && j.at("type").is_string() ? j.at("type").get<std::string>() : "";
}

bool flag(const json& j, const char* key, bool dflt) {
  return j.contains(key) && j.at(key).is_boolean() ? j.at(key).get<bool>() : dflt;
}

bool null_or_empty(const json& j, const char* key) {
  return !j.contains(key) || j.at(key).is_null() || (j.at(key).is_string() && j.at(key).get<std::string>().empty());
}

void parse_normalizer(const json& n, BpeConfig& cfg) {
  if (n.is_null()) return;
  std::string t = type_of(n);
  if (t == "NFC") {
    cfg.nfc = true;
  } else if (t == "Sequence") {
    for (const json& sub : n.at("normalizers")) parse_normalizer(sub, cfg);
  } else {
    SQ_FAIL("unsupported normalizer \"" << t << "\" in " << cfg.source
                                        << " (byte-level BPE supports none, NFC, or a Sequence of NFC)");
  }
}

void parse_pre_tokenizer(const json& p, bool only, BpeConfig& cfg) {
  if (p.is_null()) return;
  std::string t = type_of(p);
  if (t == "Sequence") {
    const json& list = p.at("pretokenizers");
    for (const json& sub : list) parse_pre_tokenizer(sub, list.size() == 1, cfg);
  } else if (t == "Split") {
    const json& pat = p.at("pattern");
    SQ_CHECK(pat.contains("Regex"), "unsupported Split pattern " << pat.dump() << " in " << cfg.source
                                                                 << " (only {\"Regex\": ...})");
    std::string behavior = p.value("behavior", "");
    SQ_CHECK(behavior == "Isolated" && !flag(p, "invert", false),
             "unsupported Split behavior \"" << behavior << "\" in " << cfg.source << " (only Isolated, invert false)");
    cfg.split_regexes.push_back(pat.at("Regex").get<std::string>());
  } else if (t == "ByteLevel") {
    if (flag(p, "use_regex", true)) cfg.split_regexes.push_back(kGpt2SplitRegex);
    if (flag(p, "add_prefix_space", false)) {
      SQ_CHECK(only, "ByteLevel add_prefix_space together with other pre-tokenizers is not supported ("
                         << cfg.source << ")");
      cfg.add_prefix_space = true;
    }
  } else {
    SQ_FAIL("unsupported pre_tokenizer \"" << t << "\" in " << cfg.source
                                           << " (byte-level BPE supports Split(Regex, Isolated) and ByteLevel)");
  }
}

// TemplateProcessing (possibly inside a Sequence): the special tokens around "A" in "single".
void parse_post_processor(const json& p, BpeConfig& cfg) {
  std::string t = type_of(p);
  if (t == "Sequence") {
    for (const json& sub : p.at("processors")) parse_post_processor(sub, cfg);
    return;
  }
  if (t != "TemplateProcessing" || !p.contains("single") || !p.at("single").is_array()) return;
  const json& single = p.at("single");
  auto special = [](const json& piece) -> std::string {
    return piece.contains("SpecialToken") ? piece.at("SpecialToken").at("id").get<std::string>() : "";
  };
  if (single.size() >= 2) {
    cfg.template_bos = special(single.front());
    cfg.template_eos = special(single.back());
  }
}

void parse_model(const json& m, BpeConfig& cfg) {
  SQ_CHECK(type_of(m) == "BPE", "tokenizer model type \"" << type_of(m) << "\" in " << cfg.source
                                                          << " is not supported (expected BPE)");
  SQ_CHECK(!flag(m, "byte_fallback", false), "BPE with byte_fallback in " << cfg.source
               << " is SentencePiece-style, not byte-level; use the model's tokenizer.model");
  SQ_CHECK(m.value("dropout", json()).is_null() && null_or_empty(m, "continuing_subword_prefix") &&
               null_or_empty(m, "end_of_word_suffix"),
           "BPE dropout / continuing_subword_prefix / end_of_word_suffix in " << cfg.source << " are not supported");
  cfg.ignore_merges = flag(m, "ignore_merges", false);
  const json& vocab = m.at("vocab");
  cfg.vocab.reserve(vocab.size());
  for (auto it = vocab.begin(); it != vocab.end(); ++it) cfg.vocab.emplace_back(it.key(), token_id(it.value(), "vocab entry " + it.key()));
  const json& merges = m.at("merges");
  cfg.merges.reserve(merges.size());
  for (const json& mg : merges) {
    if (mg.is_array() && mg.size() == 2) {
      cfg.merges.emplace_back(mg[0].get<std::string>(), mg[1].get<std::string>());
      continue;
    }
    const std::string& s = mg.get_ref<const std::string&>();
    size_t sp = s.find(' ');
    SQ_CHECK(sp != std::string::npos && s.find(' ', sp + 1) == std::string::npos,
             "bad merge \"" << s << "\" in " << cfg.source << " (expected \"a b\" or [a, b])");
    cfg.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
  }
}

BpeConfig config_from_json(const json& j, const std::string& source) {
  BpeConfig cfg;
  cfg.source = source;
  // A byte the vocabulary lacks (SmolLM2 has no token for 0x04) is dropped from the text, as
  // Hugging Face's BPE does without an unk_token (and llama.cpp does for the same vocabulary).
  cfg.missing_bytes_ok = true;
  try {
    parse_model(j.at("model"), cfg);
    parse_normalizer(j.value("normalizer", json()), cfg);
    parse_pre_tokenizer(j.value("pre_tokenizer", json()), true, cfg);
    parse_post_processor(j.value("post_processor", json()), cfg);
    for (const json& a : j.value("added_tokens", json::array())) {
      BpeAddedToken t;
      t.id = token_id(a.at("id"), "added_tokens id");
      t.content = a.at("content").get<std::string>();
      t.special = flag(a, "special", false);
      t.lstrip = flag(a, "lstrip", false);
      t.rstrip = flag(a, "rstrip", false);
      cfg.added.push_back(std::move(t));
    }
  } catch (const json::exception& e) {
    SQ_FAIL("unexpected tokenizer.json layout in " << source << ": " << e.what());
  } catch (const Error& e) {
    SQ_FAIL(source << ": " << e.what());
  }
  return cfg;
}

bool mentions_byte_level(const json& j) {
  if (type_of(j) == "ByteLevel") return true;
  if (j.is_object() || j.is_array())
    for (const json& sub : j)
      if (mentions_byte_level(sub)) return true;
  return false;
}

}  // namespace

std::unique_ptr<BpeTokenizer> load_bpe_tokenizer_json(const std::string& path) {
  return std::make_unique<BpeTokenizer>(config_from_json(parse_json_file(path), path));
}

bool is_byte_level_bpe_json(const std::string& path) {
  json j = parse_json_file(path);
  const json& m = j.value("model", json::object());
  return type_of(m) == "BPE" && !flag(m, "byte_fallback", false) &&
         (mentions_byte_level(j.value("pre_tokenizer", json())) || mentions_byte_level(j.value("decoder", json())));
}

std::unique_ptr<BpeTokenizer> load_bpe_gpt2(const std::string& encoder_json, const std::string& vocab_bpe) {
  BpeConfig cfg;
  cfg.source = encoder_json;
  json enc = parse_json_file(encoder_json);
  SQ_CHECK(enc.is_object(), encoder_json << " is not a JSON object of token -> id");
  for (auto it = enc.begin(); it != enc.end(); ++it) cfg.vocab.emplace_back(it.key(), token_id(it.value(), encoder_json + ": token " + it.key()));

  std::string text = read_file(vocab_bpe);
  size_t pos = 0;
  for (size_t line_no = 1; pos < text.size(); ++line_no) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    size_t sp = line.find(' ');
    SQ_CHECK(sp != std::string::npos, "bad merge line " << line_no << " in " << vocab_bpe << ": \"" << line << "\"");
    cfg.merges.emplace_back(line.substr(0, sp), line.substr(sp + 1));
  }
  cfg.split_regexes.push_back(kGpt2SplitRegex);  // GPT-2: ByteLevel(add_prefix_space=false)
  if (enc.contains("<|endoftext|>")) {
    BpeAddedToken eot;
    eot.id = token_id(enc.at("<|endoftext|>"), encoder_json + ": token <|endoftext|>");
    eot.content = "<|endoftext|>";
    eot.special = true;
    cfg.added.push_back(eot);
  }
  return std::make_unique<BpeTokenizer>(cfg);
}

}  // namespace sq
