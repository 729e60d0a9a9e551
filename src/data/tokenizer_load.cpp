// data/tokenizer_load: load_tokenizer(PATH) picks the implementation from the files in a
// model directory (or a tokenizer file) and applies the model's own BOS/EOS settings:
// ids from config.json (bos_token_id / eos_token_id) over the tokenizer's, add_bos /
// add_eos from tokenizer_config.json (add_bos_token / add_eos_token). A .gguf file: its
// tokenizer.ggml.* metadata (gguf_tokenizer.cpp). SentencePiece for
// tokenizer.model; byte-level BPE for tokenizer.json[.xz] (preferred to tokenizer.model only
// when it is byte-level) or GPT-2's encoder.json + vocab.bpe.
#include <nlohmann/json.hpp>

#include "bpe_tokenizer.h"
#include "sentencepiece.h"
#include "sliderquant/core/error.h"
#include "sliderquant/data/gguf_tokenizer.h"
#include "sliderquant/io/gguf.h"
#include "sliderquant/core/util.h"
#include "sliderquant/data/tokenizer.h"

namespace sq {
namespace {

using nlohmann::json;

std::string base_name(const std::string& path) {
  auto p = path.find_last_of('/');
  return p == std::string::npos ? path : path.substr(p + 1);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// Parses DIR/NAME if it exists; null json otherwise. Throws Error naming the file if bad.
json read_json_if_exists(const std::string& dir, const std::string& name) {
  std::string path = path_join(dir, name);
  if (!path_exists(path)) return json();
  try {
    return json::parse(read_file(path));
  } catch (const json::exception& e) {
    SQ_FAIL("cannot parse " << path << ": " << e.what());
  }
}

// An id field: an integer, or (Llama 3 style) a list whose first element is used.
bool json_token_id(const json& j, const char* key, int64_t& out) {
  if (!j.is_object() || !j.contains(key)) return false;
  const json& v = j.at(key);
  if (v.is_number_integer()) {
    out = v.get<int64_t>();
    return true;
  }
  if (v.is_array() && !v.empty() && v.at(0).is_number_integer()) {
    out = v.at(0).get<int64_t>();
    return true;
  }
  return false;
}

bool json_bool(const json& j, const char* key, bool& out) {
  if (!j.is_object() || !j.contains(key) || !j.at(key).is_boolean()) return false;
  out = j.at(key).get<bool>();
  return true;
}

// A bos_token / eos_token entry of tokenizer_config.json: a string, {"content": ...} or null.
std::string special_token_text(const json& tcfg, const char* key) {
  if (!tcfg.is_object() || !tcfg.contains(key)) return "";
  const json& v = tcfg.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v.at("content").is_string()) return v.at("content").get<std::string>();
  return "";
}

int64_t resolve_token(const BpeTokenizer& tok, const std::string& text, const std::string& where) {
  int64_t id = tok.token_id(text);
  SQ_CHECK(id >= 0, where << " names the token \"" << text << "\", which is not in the tokenizer's vocabulary");
  return id;
}

// Byte-level BPE defaults, before config.json / tokenizer_config.json are applied: BOS/EOS
// tokens from tokenizer_config.json; add_bos / add_eos only where tokenizer.json's
// TemplateProcessing post-processor puts a special token before / after the text (as the
// Hugging Face fast tokenizer does; Llama 3 at Meta's current revision adds
// <|begin_of_text|> this way, Qwen adds nothing).
void bpe_defaults(BpeTokenizer& tok, const json& tcfg, const std::string& dir) {
  tok.add_bos = false;
  tok.add_eos = false;
  std::string where = path_join(dir, "tokenizer_config.json");
  std::string bos = special_token_text(tcfg, "bos_token"), eos = special_token_text(tcfg, "eos_token");
  if (!bos.empty()) tok.bos_id = resolve_token(tok, bos, where + " bos_token");
  if (!eos.empty()) tok.eos_id = resolve_token(tok, eos, where + " eos_token");
  if (!tok.template_bos().empty()) {
    tok.bos_id = resolve_token(tok, tok.template_bos(), "the TemplateProcessing post-processor");
    tok.add_bos = true;
  }
  if (!tok.template_eos().empty()) {
    tok.eos_id = resolve_token(tok, tok.template_eos(), "the TemplateProcessing post-processor");
    tok.add_eos = true;
  }
}

// DIR/tokenizer.json, else DIR/tokenizer.json.xz; "" if neither.
std::string tokenizer_json_in(const std::string& dir) {
  for (const char* name : {"tokenizer.json", "tokenizer.json.xz"}) {
    std::string p = path_join(dir, name);
    if (path_exists(p)) return p;
  }
  return "";
}

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  SQ_CHECK(!path.empty(), "no tokenizer path given");
  SQ_CHECK(path_exists(path), "tokenizer path not found: " << path);
  if (!is_directory(path) && (ends_with(path, ".gguf") || is_gguf_file(path)))
    return load_gguf_tokenizer(*GgufFile::open(path));

  std::string dir;
  std::string spm_path, bpe_json, gpt2_encoder;
  if (is_directory(path)) {
    dir = path;
    std::string model = path_join(dir, "tokenizer.model");
    std::string tj = tokenizer_json_in(dir);
    // Both present: Llama 1/2 repositories ship a SentencePiece-style tokenizer.json beside
    // tokenizer.model; only a byte-level BPE tokenizer.json is preferred to it.
    if (path_exists(model) && (tj.empty() || !is_byte_level_bpe_json(tj))) {
      spm_path = model;
    } else if (!tj.empty()) {
      bpe_json = tj;
    } else if (path_exists(path_join(dir, "encoder.json")) && path_exists(path_join(dir, "vocab.bpe"))) {
      gpt2_encoder = path_join(dir, "encoder.json");
    } else {
      SQ_FAIL("no tokenizer.model, tokenizer.json or encoder.json + vocab.bpe in " << dir);
    }
  } else {
    dir = parent_dir(path);
    std::string base = base_name(path);
    if (base == "encoder.json" || base == "vocab.bpe") {
      gpt2_encoder = path_join(dir, "encoder.json");
      SQ_CHECK(path_exists(gpt2_encoder) && path_exists(path_join(dir, "vocab.bpe")),
               "GPT-2 style tokenizer " << path << " needs both encoder.json and vocab.bpe in " << dir);
    } else if (ends_with(base, ".json") || ends_with(base, ".json.xz")) {
      bpe_json = path;
    } else {
      SQ_CHECK(ends_with(base, ".model"),
               "not a tokenizer file (expected a model directory, tokenizer.model, tokenizer.json[.xz] or "
               "encoder.json): "
                   << path);
      spm_path = path;
    }
  }

  json tcfg = read_json_if_exists(dir, "tokenizer_config.json");
  std::unique_ptr<Tokenizer> tok;
  if (!spm_path.empty()) {
    tok = load_sentencepiece(spm_path);
    tok->add_bos = true;  // SentencePiece (Llama 1/2) defaults
    tok->add_eos = false;
  } else {
    std::unique_ptr<BpeTokenizer> bpe = bpe_json.empty()
                                            ? load_bpe_gpt2(gpt2_encoder, path_join(dir, "vocab.bpe"))
                                            : load_bpe_tokenizer_json(bpe_json);
    if (!bpe_json.empty() || tcfg.is_object()) {
      bpe_defaults(*bpe, tcfg, dir);
    } else {  // bare GPT-2 files: <|endoftext|> is BOS and EOS, neither is added (GPT2Tokenizer)
      bpe->bos_id = bpe->eos_id = bpe->token_id("<|endoftext|>");
      bpe->add_bos = bpe->add_eos = false;
    }
    tok = std::move(bpe);
  }

  json config = read_json_if_exists(dir, "config.json");
  json_token_id(config, "bos_token_id", tok->bos_id);
  json_token_id(config, "eos_token_id", tok->eos_id);

  json_bool(tcfg, "add_bos_token", tok->add_bos);
  json_bool(tcfg, "add_eos_token", tok->add_eos);

  return tok;
}

}  // namespace sq
