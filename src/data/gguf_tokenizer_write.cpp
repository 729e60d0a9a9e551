// data/gguf_tokenizer_write: the other two directions of gguf_tokenizer.h. From a Hugging Face
// directory to tokenizer.ggml.* metadata (byte-level BPE tokenizer.json or GPT-2's
// encoder.json + vocab.bpe -> `gpt2` with the pre-tokenizer name llama.cpp uses for its
// regexes; SentencePiece tokenizer.model -> `llama`, parsed here without the sentencepiece
// library); and from a GGUF back to HF files (tokenizer.json for `gpt2`; a tokenizer.model
// serialized here for `llama`; tokenizer_config.json for both).
#include <nlohmann/json.hpp>

#include <cstring>
#include <map>

#include "bpe_tokenizer.h"
#include "llama_pretok.h"
#include "llama_spm.h"
#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/data/dataset.h"
#include "sliderquant/data/gguf_tokenizer.h"

namespace sq {
namespace {

using nlohmann::json;
using KV = std::vector<std::pair<std::string, GgufValue>>;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

json read_json(const std::string& path) {
  try {
    return json::parse(ends_with(path, ".xz") ? read_xz_file(path) : read_file(path));
  } catch (const json::exception& e) {
    SQ_FAIL("cannot parse " << path << ": " << e.what());
  }
}

json read_json_if_exists(const std::string& path) { return path_exists(path) ? read_json(path) : json(); }

// ---- protobuf (SentencePiece's ModelProto), the few wire types it uses ----------------------
struct PbReader {
  const uint8_t* p;
  const uint8_t* end;
  std::string source;
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      SQ_CHECK(p < end, "truncated protobuf in " << source);
      uint8_t b = *p++;
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (b < 0x80) return v;
    }
    SQ_FAIL("bad varint in " << source);
  }
  // Calls f(field, wire_type, varint value, bytes) for each field.
  template <class F>
  void each(F&& f) {
    while (p < end) {
      uint64_t key = varint();
      uint32_t field = static_cast<uint32_t>(key >> 3), wt = key & 7;
      uint64_t v = 0;
      std::string_view bytes;
      if (wt == 0) {
        v = varint();
      } else if (wt == 1 || wt == 5) {
        size_t n = wt == 1 ? 8 : 4;
        SQ_CHECK(static_cast<size_t>(end - p) >= n, "truncated protobuf in " << source);
        bytes = std::string_view(reinterpret_cast<const char*>(p), n);
        p += n;
      } else if (wt == 2) {
        uint64_t n = varint();
        SQ_CHECK(n <= static_cast<uint64_t>(end - p), "truncated protobuf in " << source);
        bytes = std::string_view(reinterpret_cast<const char*>(p), n);
        p += n;
      } else {
        SQ_FAIL("unsupported protobuf wire type " << wt << " in " << source);
      }
      f(field, wt, v, bytes);
    }
  }
};

PbReader reader_of(std::string_view bytes, const std::string& source) {
  return PbReader{reinterpret_cast<const uint8_t*>(bytes.data()),
                  reinterpret_cast<const uint8_t*>(bytes.data()) + bytes.size(), source};
}

void pb_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7F) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}
void pb_key(std::string& out, uint32_t field, uint32_t wt) { pb_varint(out, (static_cast<uint64_t>(field) << 3) | wt); }
void pb_bytes(std::string& out, uint32_t field, std::string_view b) {
  pb_key(out, field, 2);
  pb_varint(out, b.size());
  out.append(b);
}
void pb_uint(std::string& out, uint32_t field, uint64_t v) {
  pb_key(out, field, 0);
  pb_varint(out, v);
}
void pb_float(std::string& out, uint32_t field, float f) {
  pb_key(out, field, 5);
  char b[4];
  std::memcpy(b, &f, 4);
  out.append(b, 4);
}

// ---- HF directory -> metadata --------------------------------------------------------------
// llama.cpp's pre-tokenizer name for the pre-tokenizer regexes of a tokenizer.json.
std::string pre_name_of(const std::vector<std::string>& regexes, const std::string& dir) {
  const std::string gpt2 = kGpt2SplitRegex;
  const std::string llama3 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
      "\\s+(?!\\S)|\\s+";
  const std::string qwen2 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
      "\\s+(?!\\S)|\\s+";
  const std::string qwen35 =
      "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|"
      "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
  if (regexes == std::vector<std::string>{llama3}) return "llama-bpe";
  if (regexes == std::vector<std::string>{qwen2}) return "qwen2";
  if (regexes == std::vector<std::string>{qwen35}) return "qwen35";
  if (regexes == std::vector<std::string>{gpt2}) return "gpt-2";
  if (regexes == std::vector<std::string>{"\\p{N}", gpt2}) return "smollm";
  std::string list;
  for (const auto& r : regexes) list += (list.empty() ? "" : ", ") + r;
  SQ_FAIL("the pre-tokenizer of " << dir << " (regexes: " << list
                                  << ") is not one llama.cpp knows (llama-bpe, qwen2, qwen35, gpt-2, smollm)");
}

void collect_regexes(const json& p, std::vector<std::string>& out, const std::string& dir) {
  if (p.is_null()) return;
  std::string t = p.value("type", "");
  if (t == "Sequence") {
    for (const json& s : p.at("pretokenizers")) collect_regexes(s, out, dir);
  } else if (t == "Split") {
    SQ_CHECK(p.at("pattern").contains("Regex"), "unsupported Split pattern in the tokenizer.json of " << dir);
    out.push_back(p.at("pattern").at("Regex").get<std::string>());
  } else if (t == "ByteLevel") {
    if (p.value("use_regex", true)) out.push_back(kGpt2SplitRegex);
  } else {
    SQ_FAIL("unsupported pre_tokenizer \"" << t << "\" in the tokenizer.json of " << dir);
  }
}

void add_common(KV& kv, const std::string& dir, const json& tcfg, int64_t bos, int64_t eos, bool add_bos,
                bool add_eos) {
  json config = read_json_if_exists(path_join(dir, "config.json"));
  auto id_of = [&](const char* key, int64_t& id) {
    if (!config.is_object() || !config.contains(key)) return;
    const json& v = config.at(key);
    if (v.is_number_integer()) id = v.get<int64_t>();
    if (v.is_array() && !v.empty() && v.at(0).is_number_integer()) id = v.at(0).get<int64_t>();
  };
  id_of("bos_token_id", bos);
  id_of("eos_token_id", eos);
  if (tcfg.is_object() && tcfg.contains("add_bos_token") && tcfg.at("add_bos_token").is_boolean())
    add_bos = tcfg.at("add_bos_token").get<bool>();
  if (tcfg.is_object() && tcfg.contains("add_eos_token") && tcfg.at("add_eos_token").is_boolean())
    add_eos = tcfg.at("add_eos_token").get<bool>();
  if (bos >= 0) kv.emplace_back("tokenizer.ggml.bos_token_id", GgufValue::u32(static_cast<uint32_t>(bos)));
  if (eos >= 0) kv.emplace_back("tokenizer.ggml.eos_token_id", GgufValue::u32(static_cast<uint32_t>(eos)));
  kv.emplace_back("tokenizer.ggml.add_bos_token", GgufValue::boolean(add_bos));
  kv.emplace_back("tokenizer.ggml.add_eos_token", GgufValue::boolean(add_eos));
  if (tcfg.is_object() && tcfg.contains("chat_template") && tcfg.at("chat_template").is_string())
    kv.emplace_back("tokenizer.chat_template", GgufValue::str(tcfg.at("chat_template").get<std::string>()));
}

KV bpe_metadata(const std::string& dir, const std::string& tj) {
  std::map<int64_t, std::pair<std::string, int32_t>> toks;  // id -> text, type
  std::vector<std::string> merges, regexes;
  bool ignore_merges = false;
  json tcfg = read_json_if_exists(path_join(dir, "tokenizer_config.json"));
  int64_t bos = -1, eos = -1;
  bool add_bos = false, add_eos = false;
  if (!tj.empty()) {
    json j = read_json(tj);
    const json& m = j.at("model");
    for (auto it = m.at("vocab").begin(); it != m.at("vocab").end(); ++it)
      toks[it.value().get<int64_t>()] = {it.key(), kTokNormal};
    for (const json& mg : m.at("merges"))
      merges.push_back(mg.is_array() ? mg[0].get<std::string>() + " " + mg[1].get<std::string>() : mg.get<std::string>());
    ignore_merges = m.value("ignore_merges", false);
    for (const json& a : j.value("added_tokens", json::array()))
      toks[a.at("id").get<int64_t>()] = {a.at("content").get<std::string>(),
                                         a.value("special", false) ? kTokControl : kTokUserDefined};
    collect_regexes(j.value("pre_tokenizer", json()), regexes, dir);
    // BOS / EOS and whether they are added, as load_tokenizer reads the directory.
    auto tok = load_tokenizer(dir);
    bos = tok->bos_id, eos = tok->eos_id, add_bos = tok->add_bos, add_eos = tok->add_eos;
  } else {
    json enc = read_json(path_join(dir, "encoder.json"));
    for (auto it = enc.begin(); it != enc.end(); ++it) toks[it.value().get<int64_t>()] = {it.key(), kTokNormal};
    std::string text = read_file(path_join(dir, "vocab.bpe"));
    size_t pos = 0;
    for (size_t line = 1; pos < text.size(); ++line) {
      size_t eol = text.find('\n', pos);
      if (eol == std::string::npos) eol = text.size();
      std::string l = text.substr(pos, eol - pos);
      pos = eol + 1;
      if (!l.empty() && l.back() == '\r') l.pop_back();
      if (l.empty() || (line == 1 && l.rfind("#version", 0) == 0)) continue;
      merges.push_back(l);
    }
    if (enc.contains("<|endoftext|>")) {
      int64_t id = enc.at("<|endoftext|>").get<int64_t>();
      toks[id].second = kTokControl;
      bos = eos = id;
    }
    regexes = {kGpt2SplitRegex};
  }
  std::string pre = pre_name_of(regexes, dir);
  LlamaBpePre info;
  llama_bpe_pre(pre, info);
  SQ_CHECK(!ignore_merges || info.ignore_merges,
           "the tokenizer.json of " << dir << " ignores merges, which llama.cpp's \"" << pre << "\" does not");
  int64_t n = toks.empty() ? 0 : toks.rbegin()->first + 1;
  std::vector<std::string> tokens(n);
  std::vector<int64_t> types(n, kTokUnused);
  for (int64_t i = 0; i < n; ++i) tokens[i] = "[PAD" + std::to_string(i) + "]";
  for (const auto& [id, tt] : toks) tokens[id] = tt.first, types[id] = tt.second;
  KV kv;
  kv.emplace_back("tokenizer.ggml.model", GgufValue::str("gpt2"));
  kv.emplace_back("tokenizer.ggml.pre", GgufValue::str(pre));
  kv.emplace_back("tokenizer.ggml.tokens", GgufValue::str_array(std::move(tokens)));
  kv.emplace_back("tokenizer.ggml.token_type", GgufValue::i32_array(std::move(types)));
  kv.emplace_back("tokenizer.ggml.merges", GgufValue::str_array(std::move(merges)));
  add_common(kv, dir, tcfg, bos, eos, add_bos, add_eos);
  return kv;
}

KV spm_metadata(const std::string& dir, const std::string& model) {
  std::string data = read_file(model);
  std::vector<std::string> pieces;
  std::vector<double> scores;
  std::vector<int64_t> types;
  bool add_dummy_prefix = true;
  int32_t model_type = 1;
  PbReader r = reader_of(data, model);
  r.each([&](uint32_t field, uint32_t wt, uint64_t, std::string_view bytes) {
    if (field == 1 && wt == 2) {
      std::string piece;
      float score = 0;
      int64_t type = kTokNormal;
      PbReader sub = reader_of(bytes, model);
      sub.each([&](uint32_t f2, uint32_t wt2, uint64_t v2, std::string_view b2) {
        if (f2 == 1 && wt2 == 2) piece.assign(b2);
        if (f2 == 2 && wt2 == 5) std::memcpy(&score, b2.data(), 4);
        if (f2 == 3 && wt2 == 0) type = static_cast<int64_t>(v2);
      });
      pieces.push_back(piece);
      scores.push_back(score);
      types.push_back(type);
    } else if (field == 2 && wt == 2) {
      PbReader sub = reader_of(bytes, model);
      sub.each([&](uint32_t f2, uint32_t wt2, uint64_t v2, std::string_view) {
        if (f2 == 3 && wt2 == 0) model_type = static_cast<int32_t>(v2);
      });
    } else if (field == 3 && wt == 2) {
      PbReader sub = reader_of(bytes, model);
      sub.each([&](uint32_t f2, uint32_t wt2, uint64_t v2, std::string_view) {
        if (f2 == 3 && wt2 == 0) add_dummy_prefix = v2 != 0;
      });
    }
  });
  SQ_CHECK(!pieces.empty(), model << " holds no pieces: not a SentencePiece model");
  SQ_CHECK(model_type == 1 || model_type == 2,
           model << " is a SentencePiece model of type " << model_type << " (only unigram or BPE is supported)");
  int64_t bos = -1, eos = -1, unk = -1;
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (pieces[i] == "<s>" && bos < 0) bos = static_cast<int64_t>(i);
    if (pieces[i] == "</s>" && eos < 0) eos = static_cast<int64_t>(i);
    if (types[i] == kTokUnknown && unk < 0) unk = static_cast<int64_t>(i);
  }
  json tcfg = read_json_if_exists(path_join(dir, "tokenizer_config.json"));
  KV kv;
  kv.emplace_back("tokenizer.ggml.model", GgufValue::str("llama"));
  kv.emplace_back("tokenizer.ggml.tokens", GgufValue::str_array(std::move(pieces)));
  kv.emplace_back("tokenizer.ggml.scores", GgufValue::f32_array(std::move(scores)));
  kv.emplace_back("tokenizer.ggml.token_type", GgufValue::i32_array(std::move(types)));
  kv.emplace_back("tokenizer.ggml.add_space_prefix", GgufValue::boolean(add_dummy_prefix));
  if (unk >= 0) kv.emplace_back("tokenizer.ggml.unknown_token_id", GgufValue::u32(static_cast<uint32_t>(unk)));
  add_common(kv, dir, tcfg, bos, eos, true, false);
  return kv;
}

}  // namespace

std::vector<std::pair<std::string, GgufValue>> gguf_tokenizer_metadata(const std::string& dir) {
  SQ_CHECK(is_directory(dir), "not a directory: " << dir);
  std::string tj;
  for (const char* name : {"tokenizer.json", "tokenizer.json.xz"})
    if (tj.empty() && path_exists(path_join(dir, name))) tj = path_join(dir, name);
  std::string model = path_join(dir, "tokenizer.model");
  if (!tj.empty() && is_byte_level_bpe_json(tj)) return bpe_metadata(dir, tj);
  if (path_exists(model)) return spm_metadata(dir, model);
  if (path_exists(path_join(dir, "encoder.json")) && path_exists(path_join(dir, "vocab.bpe")))
    return bpe_metadata(dir, "");
  SQ_FAIL("no byte-level tokenizer.json, tokenizer.model or encoder.json + vocab.bpe in " << dir);
}

// ---- GGUF -> HF files ----------------------------------------------------------------------
std::vector<std::string> write_hf_tokenizer_files(const GgufFile& f, const std::string& dir) {
  SQ_CHECK(is_directory(dir), "not a directory: " << dir);
  const std::string model = f.get_str("tokenizer.ggml.model");
  const auto& tokens = f.get_strs("tokenizer.ggml.tokens");
  const size_t n = tokens.size();
  std::vector<int64_t> types(n, kTokNormal);
  if (f.has("tokenizer.ggml.token_type")) {
    const auto& t = f.get_ints("tokenizer.ggml.token_type");
    SQ_CHECK(t.size() >= n, f.path() << ": tokenizer.ggml.token_type is shorter than tokenizer.ggml.tokens");
    types.assign(t.begin(), t.begin() + static_cast<std::ptrdiff_t>(n));
  }
  auto tok = load_gguf_tokenizer(f);  // validates the rest and gives BOS/EOS as llama.cpp reads them
  std::vector<std::string> written;
  json tcfg = json::object();
  auto name_of = [&](int64_t id) { return id >= 0 && id < static_cast<int64_t>(n) ? json(tokens[id]) : json(); };
  tcfg["bos_token"] = name_of(tok->bos_id);
  tcfg["eos_token"] = name_of(tok->eos_id);
  tcfg["add_bos_token"] = tok->add_bos;
  tcfg["add_eos_token"] = tok->add_eos;
  if (f.has("tokenizer.chat_template")) tcfg["chat_template"] = f.get_str("tokenizer.chat_template");

  if (model == "gpt2") {
    LlamaBpePre pre;
    std::string pre_name = f.get_str("tokenizer.ggml.pre", "");
    llama_bpe_pre(pre_name, pre);  // known: load_gguf_tokenizer checked it
    json vocab = json::object(), added = json::array(), merges = json::array(), pretoks = json::array();
    for (size_t i = 0; i < n; ++i) {
      // Control and user-defined tokens are added tokens and, as in Hugging Face's own files, also
      // entries of the model's vocab: tokenizers gives an added token missing from the vocab a new
      // id past its end (SmolLM2's <|im_start|> would become 49136, another token's id).
      if (types[i] == kTokControl || types[i] == kTokUserDefined)
        added.push_back({{"id", i}, {"content", tokens[i]}, {"single_word", false}, {"lstrip", false},
                         {"rstrip", false}, {"normalized", false}, {"special", types[i] == kTokControl}});
      vocab[tokens[i]] = i;
    }
    for (const std::string& m : f.get_strs("tokenizer.ggml.merges")) merges.push_back(m);
    for (const std::string& re : pre.regexes) {
      // llama.cpp's GPT-2 pattern leaves out the final \s+ its own splitter implies.
      std::string r = re == "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
                          ? std::string(kGpt2SplitRegex)
                          : re;
      pretoks.push_back({{"type", "Split"}, {"pattern", {{"Regex", r}}}, {"behavior", "Isolated"}, {"invert", false}});
    }
    pretoks.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}});
    json post = nullptr;
    if (tok->add_bos && tok->bos_id >= 0) {
      std::string b = tokens[tok->bos_id];
      post = {{"type", "TemplateProcessing"},
              {"single", json::array({{{"SpecialToken", {{"id", b}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
              {"pair", json::array({{{"SpecialToken", {{"id", b}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                                    {{"SpecialToken", {{"id", b}, {"type_id", 1}}}}, {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
              {"special_tokens", {{b, {{"id", b}, {"ids", {tok->bos_id}}, {"tokens", {b}}}}}}};
    }
    json j = {{"version", "1.0"},
              {"truncation", nullptr},
              {"padding", nullptr},
              {"added_tokens", added},
              {"normalizer", nullptr},
              {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", pretoks}}},
              {"post_processor", post},
              {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
              {"model", {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr},
                         {"continuing_subword_prefix", nullptr}, {"end_of_word_suffix", nullptr}, {"fuse_unk", false},
                         {"byte_fallback", false}, {"ignore_merges", pre.ignore_merges}, {"vocab", vocab},
                         {"merges", merges}}}};
    write_file_atomic(path_join(dir, "tokenizer.json"), j.dump(1));
    written.push_back("tokenizer.json");
    tcfg["tokenizer_class"] = "PreTrainedTokenizerFast";
  } else {
    const GgufValue* sv = f.find("tokenizer.ggml.scores");
    std::string pb, trainer, normalizer;
    for (size_t i = 0; i < n; ++i) {
      std::string piece;
      pb_bytes(piece, 1, tokens[i]);
      double score = 0;
      if (sv && i < sv->array_size()) score = sv->elem == GgufValueType::F32 ? sv->floats[i] : static_cast<double>(sv->ints[i]);
      pb_float(piece, 2, static_cast<float>(score));
      int64_t type = types[i] >= 1 && types[i] <= 6 ? types[i] : static_cast<int64_t>(kTokNormal);
      if (type != kTokNormal) pb_uint(piece, 3, static_cast<uint64_t>(type));
      pb_bytes(pb, 1, piece);
    }
    pb_uint(trainer, 3, 2);  // model_type BPE
    pb_uint(trainer, 4, n);  // vocab_size
    bool has_bytes = false;
    for (int64_t t : types) has_bytes |= t == kTokByte;
    if (has_bytes) pb_uint(trainer, 35, 1);  // byte_fallback
    int64_t unk = -1;
    for (size_t i = 0; i < n && unk < 0; ++i)
      if (types[i] == kTokUnknown) unk = static_cast<int64_t>(i);
    pb_uint(trainer, 40, static_cast<uint64_t>(unk < 0 ? 0 : unk));
    pb_uint(trainer, 41, static_cast<uint64_t>(tok->bos_id));
    pb_uint(trainer, 42, static_cast<uint64_t>(tok->eos_id));
    pb_bytes(normalizer, 1, "identity");
    pb_uint(normalizer, 3, f.get_bool("tokenizer.ggml.add_space_prefix", true) ? 1 : 0);  // add_dummy_prefix
    pb_uint(normalizer, 4, 0);  // remove_extra_whitespaces
    pb_uint(normalizer, 5, 1);  // escape_whitespaces
    pb_bytes(pb, 2, trainer);
    pb_bytes(pb, 3, normalizer);
    write_file_atomic(path_join(dir, "tokenizer.model"), pb);
    written.push_back("tokenizer.model");
    tcfg["tokenizer_class"] = "LlamaTokenizer";
    tcfg["legacy"] = true;
    if (tok->add_bos) tcfg["add_bos_token"] = true;
  }
  write_file_atomic(path_join(dir, "tokenizer_config.json"), tcfg.dump(2));
  written.push_back("tokenizer_config.json");
  return written;
}

}  // namespace sq
