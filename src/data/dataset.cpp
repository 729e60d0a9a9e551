// data/dataset: evaluation texts by name (wikitext2, ptb, c4-2k under a data directory laid
// out like shared/data) or by path, built exactly as GPTQ-style evaluations build them;
// the data-directory search; and a whole-file .xz reader (liblzma).
// Does no tokenization: the text returned is the exact string a Tokenizer will see.
#include "sliderquant/data/dataset.h"

#include <lzma.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <nlohmann/json.hpp>
#include <vector>

#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"

namespace sq {
namespace {

constexpr const char* kWikitext2Rel = "eval/wikitext2/wikitext2_test_gptq_join.txt";
constexpr const char* kPtbRel = "eval/ptb/ptb.test.txt";
constexpr const char* kC4Rel = "eval/c4/c4_validation_2k.jsonl.xz";
constexpr size_t kC4Docs = 1100;
constexpr int64_t kC4Windows = 256;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

const char* lzma_ret_text(lzma_ret r) {
  switch (r) {
    case LZMA_MEM_ERROR: return "out of memory";
    case LZMA_MEMLIMIT_ERROR: return "memory limit reached";
    case LZMA_FORMAT_ERROR: return "not in the .xz format";
    case LZMA_OPTIONS_ERROR: return "unsupported compression options";
    case LZMA_DATA_ERROR: return "compressed data is corrupt";
    case LZMA_BUF_ERROR: return "compressed data is truncated or corrupt";
    default: return "liblzma error";
  }
}

// Python's str.splitlines-by-file-iteration + str.strip(): lines split on '\n' (a final
// empty piece after a trailing newline is not a line), ASCII whitespace stripped.
std::vector<std::string> stripped_lines(const std::string& s) {
  auto is_ws = [](char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f' ||
           c == '\x1c' || c == '\x1d' || c == '\x1e' || c == '\x1f';
  };
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t nl = s.find('\n', pos);
    size_t end = nl == std::string::npos ? s.size() : nl;
    size_t a = pos, b = end;
    while (a < b && is_ws(s[a])) ++a;
    while (b > a && is_ws(s[b - 1])) --b;
    out.emplace_back(s, a, b - a);
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  return out;
}

std::string join(const std::vector<std::string>& parts, const std::string& sep) {
  size_t total = 0;
  for (const auto& p : parts) total += p.size() + sep.size();
  std::string out;
  out.reserve(total);
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) out += sep;
    out += parts[i];
  }
  return out;
}

// " ".join of the "text" fields of the first MAX_DOCS non-empty lines of a jsonl text.
std::string join_jsonl_text(const std::string& jsonl, size_t max_docs, const std::string& path,
                            size_t& docs, size_t skip_docs = 0) {
  std::vector<std::string> texts;
  size_t skipped = 0;
  size_t pos = 0, line_no = 0;
  while (pos < jsonl.size() && texts.size() < max_docs) {
    size_t nl = jsonl.find('\n', pos);
    size_t end = nl == std::string::npos ? jsonl.size() : nl;
    ++line_no;
    std::string line = jsonl.substr(pos, end - pos);
    pos = nl == std::string::npos ? jsonl.size() : nl + 1;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      SQ_FAIL(path << " line " << line_no << ": invalid JSON: " << e.what());
    }
    SQ_CHECK(j.is_object() && j.contains("text") && j.at("text").is_string(),
             path << " line " << line_no << ": no string field \"text\"");
    if (skipped < skip_docs) {
      ++skipped;
      continue;
    }
    texts.push_back(j.at("text").get<std::string>());
  }
  docs = texts.size();
  return join(texts, " ");
}

std::string read_text_file(const std::string& path) {
  return ends_with(path, ".xz") ? read_xz_file(path) : read_file(path);
}

}  // namespace

std::string read_xz_file(const std::string& path) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  SQ_CHECK(f != nullptr, "cannot open " << path);

  lzma_stream strm = LZMA_STREAM_INIT;
  lzma_ret r = lzma_stream_decoder(&strm, UINT64_MAX, LZMA_CONCATENATED);
  SQ_CHECK(r == LZMA_OK, "cannot start the xz decoder for " << path << ": " << lzma_ret_text(r));
  std::unique_ptr<lzma_stream, void (*)(lzma_stream*)> guard(&strm, &lzma_end);

  std::vector<uint8_t> in(1 << 16);
  std::string out;
  std::vector<uint8_t> buf(1 << 18);
  lzma_action action = LZMA_RUN;
  strm.next_in = nullptr;
  strm.avail_in = 0;
  for (;;) {
    if (strm.avail_in == 0 && action == LZMA_RUN) {
      size_t n = std::fread(in.data(), 1, in.size(), f.get());
      SQ_CHECK(!std::ferror(f.get()), "read error on " << path);
      strm.next_in = in.data();
      strm.avail_in = n;
      if (n < in.size() && std::feof(f.get())) action = LZMA_FINISH;
    }
    strm.next_out = buf.data();
    strm.avail_out = buf.size();
    r = lzma_code(&strm, action);
    out.append(reinterpret_cast<const char*>(buf.data()), buf.size() - strm.avail_out);
    if (r == LZMA_STREAM_END) break;
    SQ_CHECK(r == LZMA_OK, "cannot decompress " << path << ": " << lzma_ret_text(r));
  }
  return out;
}

TextDataset load_calibration_text(const std::string& name, const std::string& data_dir) {
  if (name != "c4-2k" && name != "ptb") {
    TextDataset ds = load_text_dataset(name, data_dir);
    if (name == "wikitext2")
      ds.note += "; WARNING: this is the WikiText-2 *test* text (no train split is bundled): "
                 "calibrating on it flatters WikiText-2 perplexity";
    return ds;
  }
  TextDataset ds;
  ds.name = name;
  std::string dir = resolve_data_dir(data_dir);
  if (name == "ptb") {
    ds.source = path_join(dir, "eval/ptb/ptb.valid.txt");
    SQ_CHECK(path_exists(ds.source), "calibration set 'ptb': " << ds.source << " not found");
    std::vector<std::string> lines = stripped_lines(read_file(ds.source));
    ds.text = join(lines, " ");
    ds.note = "ptb calibration: the validation split (ptb.valid.txt), lines stripped, joined with \" \"";
  } else {
    ds.source = path_join(dir, kC4Rel);
    SQ_CHECK(path_exists(ds.source), "calibration set 'c4-2k': " << ds.source << " not found");
    size_t docs = 0;
    ds.text = join_jsonl_text(read_xz_file(ds.source), SIZE_MAX, ds.source, docs, kC4Docs);
    ds.note = "c4-2k calibration: \" \".join of documents " + std::to_string(kC4Docs) + ".." +
              std::to_string(kC4Docs + docs - 1) + " (disjoint from the c4-2k evaluation documents)";
  }
  ds.sha256 = sha256_hex(ds.text);
  return ds;
}

std::string resolve_data_dir(const std::string& data_dir) {
  if (!data_dir.empty()) {
    SQ_CHECK(is_directory(data_dir), "data directory not found: " << data_dir);
    return data_dir;
  }
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("SQ_DATA_DIR"); env != nullptr && *env != '\0')
    candidates.emplace_back(env);
  candidates.emplace_back("../shared/data");
  candidates.emplace_back("./data");
  std::string tried;
  for (const auto& c : candidates) {
    if (is_directory(c)) return c;
    tried += (tried.empty() ? "" : ", ") + c;
  }
  SQ_FAIL("no data directory found (tried $SQ_DATA_DIR, then: " << tried << "); pass --data-dir");
}

TextDataset load_text_dataset(const std::string& name_or_path, const std::string& data_dir) {
  TextDataset ds;
  ds.name = name_or_path;
  const std::string& name = name_or_path;

  const char* rel = name == "wikitext2" ? kWikitext2Rel
                    : name == "ptb"     ? kPtbRel
                    : name == "c4-2k"   ? kC4Rel
                                        : nullptr;
  if (rel != nullptr) {
    std::string dir;
    try {
      dir = resolve_data_dir(data_dir);
    } catch (const Error& e) {
      SQ_FAIL("dataset '" << name << "' needs " << rel << " under a data directory: " << e.what());
    }
    ds.source = path_join(dir, rel);
    SQ_CHECK(path_exists(ds.source), "dataset '" << name << "': " << ds.source
                                                 << " not found; pass --data-dir pointing at a folder "
                                                    "laid out like shared/data");
    if (name == "wikitext2") {
      ds.text = read_file(ds.source);
      ds.note = "wikitext2: " + std::string(rel) +
                " used as is (\"\\n\\n\".join of wikitext-2-raw-v1 test, as GPTQ)";
    } else if (name == "ptb") {
      std::vector<std::string> lines = stripped_lines(read_file(ds.source));
      ds.text = join(lines, " ");
      ds.note = "ptb: " + std::to_string(lines.size()) + " lines of " + rel +
                " stripped and joined with \" \" (as GPTQ's \" \".join(test[\"sentence\"]))";
    } else {
      size_t docs = 0;
      ds.text = join_jsonl_text(read_xz_file(ds.source), kC4Docs, ds.source, docs);
      ds.max_windows = kC4Windows;
      ds.note = "c4-2k: \" \".join of the \"text\" of the first " + std::to_string(docs) + " documents of " +
                rel + ", first " + std::to_string(kC4Windows) +
                " windows scored (GPTQ c4_new layout; not comparable with published C4 numbers)";
    }
  } else {
    if (name.empty() || !path_exists(name) || is_directory(name))  // a name the command line got wrong
      throw UsageError("unknown dataset '" + name + "' (known: wikitext2, ptb, c4-2k; or give a path to a text file)");
    ds.source = name;
    ds.text = read_text_file(name);
    ds.note = ends_with(name, ".xz") ? "text file " + name + " decompressed, used as is"
                                     : "text file " + name + " used as is";
  }
  ds.sha256 = sha256_hex(ds.text);
  return ds;
}

}  // namespace sq
