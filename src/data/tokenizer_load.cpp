// data/tokenizer_load: load_tokenizer(PATH) picks the implementation from the files in a
// model directory (or a tokenizer file) and applies the model's own BOS/EOS settings:
// ids from config.json (bos_token_id / eos_token_id) over the tokenizer's, add_bos /
// add_eos from tokenizer_config.json (add_bos_token / add_eos_token).
#include <nlohmann/json.hpp>

#include "sentencepiece.h"
#include "sliderquant/core/error.h"
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

}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  SQ_CHECK(!path.empty(), "no tokenizer path given");
  SQ_CHECK(path_exists(path), "tokenizer path not found: " << path);

  std::string dir;
  std::string spm_path;
  if (is_directory(path)) {
    dir = path;
    std::string model = path_join(dir, "tokenizer.model");
    if (path_exists(model)) {
      spm_path = model;
    } else if (path_exists(path_join(dir, "tokenizer.json"))) {
      SQ_FAIL("byte-level BPE tokenizer.json is not supported yet (" << path_join(dir, "tokenizer.json")
                                                                     << ")");
    } else {
      SQ_FAIL("no tokenizer.model or tokenizer.json in " << dir);
    }
  } else {
    dir = parent_dir(path);
    std::string base = base_name(path);
    if (ends_with(base, ".json")) SQ_FAIL("byte-level BPE tokenizer.json is not supported yet (" << path << ")");
    SQ_CHECK(ends_with(base, ".model"),
             "not a tokenizer file (expected a model directory, tokenizer.model or tokenizer.json): "
                 << path);
    spm_path = path;
  }

  std::unique_ptr<Tokenizer> tok = load_sentencepiece(spm_path);
  tok->add_bos = true;  // SentencePiece (Llama 1/2) defaults
  tok->add_eos = false;

  json config = read_json_if_exists(dir, "config.json");
  json_token_id(config, "bos_token_id", tok->bos_id);
  json_token_id(config, "eos_token_id", tok->eos_id);

  json tcfg = read_json_if_exists(dir, "tokenizer_config.json");
  json_bool(tcfg, "add_bos_token", tok->add_bos);
  json_bool(tcfg, "add_eos_token", tok->add_eos);

  return tok;
}

}  // namespace sq
