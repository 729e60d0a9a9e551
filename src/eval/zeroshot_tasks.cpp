// eval/zeroshot_tasks: the task table and the mapping of the data files (llm-foundry jsonl,
// llama.cpp's HellaSwag text, optionally .bz2) to lm-evaluation-harness 0-shot prompts.
// docs/ZEROSHOT.md lists, per file, how its fields become the harness's strings and where
// they may differ. No tokenization and no model here.
#include <bzlib.h>

#include <algorithm>
#include <cctype>
#include <nlohmann/json.hpp>
#include <sstream>

#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/data/dataset.h"
#include "sliderquant/eval/zeroshot.h"

namespace sq {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
bool starts_with(const std::string& s, const std::string& prefix) { return s.compare(0, prefix.size(), prefix) == 0; }

std::vector<std::string> split_lines(const std::string& s) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < s.size()) {
    size_t nl = s.find('\n', pos);
    size_t end = nl == std::string::npos ? s.size() : nl;
    std::string line = s.substr(pos, end - pos);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    out.push_back(line);
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  return out;
}

// "Question: ...\n" / "Question: ..." -> "Question: ...\nAnswer:" (the harness's suffix).
std::string with_answer_suffix(const std::string& q) {
  if (ends_with(q, "\nAnswer:")) return q;
  if (ends_with(q, "\n")) return q + "Answer:";
  return q + "\nAnswer:";
}

TaskDoc multiple_choice(const std::string& context, const std::vector<std::string>& choices, int gold) {
  TaskDoc d;
  for (const std::string& c : choices) {
    d.contexts.push_back(context);
    d.continuations.push_back(" " + c);  // the harness's target_delimiter
    d.choices.push_back(c);
  }
  d.gold = gold;
  return d;
}

// HellaSwag in llama.cpp's layout: "activity_label: ctx", gold, 4 endings. ctx is
// ctx_a + " " + ctx_b with ctx_b not capitalized; the harness capitalizes ctx_b, which is
// the fragment after the last sentence end when the context does not end a sentence.
std::string hellaswag_query(const std::string& line) {
  std::string s = line;
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.pop_back();
  size_t colon = s.find(": ");
  size_t body = colon == std::string::npos ? 0 : colon + 2;
  if (!s.empty() && s.back() != '.' && s.back() != '!' && s.back() != '?') {
    size_t cut = std::string::npos;
    for (size_t i = s.size(); i-- > body + 1;) {
      char p = s[i - 1];
      if (s[i] == ' ' && (p == '.' || p == '!' || p == '?')) {
        cut = i + 1;
        break;
      }
    }
    if (cut != std::string::npos && cut < s.size()) s = s.substr(0, cut) + py_capitalize(s.substr(cut));
  }
  return hellaswag_preprocess(s);
}

std::vector<TaskDoc> parse_hellaswag(const std::string& contents, int64_t limit, const std::string& src) {
  std::vector<std::string> lines = split_lines(contents);
  while (!lines.empty() && lines.back().empty()) lines.pop_back();
  SQ_CHECK(lines.size() % 6 == 0, src << ": HellaSwag text needs 6 lines per item (context, gold, 4 endings); "
                                      << lines.size() << " lines is not a multiple of 6");
  std::vector<TaskDoc> docs;
  for (size_t i = 0; i < lines.size(); i += 6) {
    if (limit > 0 && int64_t(docs.size()) >= limit) break;
    int gold = -1;
    try {
      gold = std::stoi(lines[i + 1]);
    } catch (const std::exception&) {
    }
    SQ_CHECK(gold >= 0 && gold < 4, src << ": line " << i + 2 << ": gold label '" << lines[i + 1] << "' is not 0-3");
    std::vector<std::string> endings;
    for (size_t k = 0; k < 4; ++k) endings.push_back(hellaswag_preprocess(lines[i + 2 + k]));
    docs.push_back(multiple_choice(hellaswag_query(lines[i]), endings, gold));
  }
  return docs;
}

template <class T>
T field(const nlohmann::json& j, const char* key, const std::string& where) {
  SQ_CHECK(j.contains(key), where << ": missing field \"" << key << "\"");
  try {
    return j.at(key).get<T>();
  } catch (const std::exception&) {
    SQ_FAIL(where << ": field \"" << key << "\" has the wrong type");
  }
}

TaskDoc jsonl_doc(const TaskSpec& spec, const nlohmann::json& j, const std::string& where) {
  const std::string& t = spec.name;
  if (t == "winogrande") {
    auto opts = field<std::vector<std::string>>(j, "context_options", where);
    std::string cont = field<std::string>(j, "continuation", where);
    int gold = field<int>(j, "gold", where);
    SQ_CHECK(opts.size() == 2 && gold >= 0 && gold < 2, where << ": expected 2 context_options and gold 0/1");
    // harness: choices = sentence[:idx] + option; target = " " + sentence[idx+1:].strip()
    size_t a = cont.find_first_not_of(" \t\n"), b = cont.find_last_not_of(" \t\n");
    std::string target = a == std::string::npos ? "" : cont.substr(a, b - a + 1);
    TaskDoc d;
    for (const auto& o : opts) {
      d.contexts.push_back(o);
      d.continuations.push_back(" " + target);
      d.choices.push_back(o);
    }
    d.gold = gold;
    return d;
  }
  if (t == "lambada_openai") {
    TaskDoc d;
    d.contexts.push_back(field<std::string>(j, "context", where));
    std::string word = field<std::string>(j, "continuation", where);
    d.continuations.push_back(" " + word);  // harness: ' ' + text.split(' ')[-1]
    d.choices.push_back(word);
    return d;
  }
  std::string query = field<std::string>(j, "query", where);
  auto choices = field<std::vector<std::string>>(j, "choices", where);
  int gold = field<int>(j, "gold", where);
  SQ_CHECK(!choices.empty() && gold >= 0 && gold < int(choices.size()),
           where << ": gold " << gold << " is not an index of the " << choices.size() << " choices");
  if (t == "boolq") {
    // llm-foundry: "Passage: {passage}\nQuestion: {question}?"; harness: "{passage}\nQuestion: {question}?\nAnswer:"
    if (starts_with(query, "Passage: ")) query = query.substr(9);
    return multiple_choice(with_answer_suffix(query), choices, gold);
  }
  // piqa ("Question: {goal}\n") and arc ("Question: {question}"): harness "Question: {..}\nAnswer:"
  SQ_CHECK(starts_with(query, "Question: "), where << ": query does not start with \"Question: \"");
  return multiple_choice(with_answer_suffix(query), choices, gold);
}

}  // namespace

const std::vector<TaskSpec>& zeroshot_tasks() {
  static const std::vector<TaskSpec> tasks = {
      {"piqa", "piqa.jsonl", true, false, "Question: {goal}\\nAnswer: | \" \" + sol", "lm-eval-0.4/sq1"},
      {"arc_easy", "arc_easy.jsonl", true, false, "Question: {question}\\nAnswer: | \" \" + choice text",
       "lm-eval-0.4/sq1"},
      {"arc_challenge", "arc_challenge.jsonl", true, false, "Question: {question}\\nAnswer: | \" \" + choice text",
       "lm-eval-0.4/sq1"},
      {"hellaswag", "hellaswag_val_full.txt.bz2", true, false,
       "preprocess(label: ctx_a ctx_b.capitalize()) | \" \" + preprocess(ending)", "lm-eval-0.4/sq1"},
      {"winogrande", "winogrande.jsonl", false, false, "sentence[:_] + option | \" \" + sentence[_+1:].strip()",
       "lm-eval-0.4/sq1"},
      {"boolq", "boolq.jsonl", false, false, "{passage}\\nQuestion: {question}?\\nAnswer: | \" no\" / \" yes\"",
       "lm-eval-0.4/sq1"},
      {"lambada_openai", "lambada_openai.jsonl", false, true, "text without last word | \" \" + last word",
       "lm-eval-0.4/sq1"},
  };
  return tasks;
}

const TaskSpec& zeroshot_task(const std::string& name) {
  std::string known;
  for (const TaskSpec& t : zeroshot_tasks()) {
    if (t.name == name) return t;
    known += (known.empty() ? "" : ", ") + t.name;
  }
  throw UsageError("unknown zero-shot task '" + name + "' (known: " + known + ", or all)");
}

std::vector<std::string> parse_task_list(const std::string& csv) {
  std::vector<std::string> out;
  std::stringstream ss(csv);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    if (item == "all") {
      for (const TaskSpec& t : zeroshot_tasks())
        if (std::find(out.begin(), out.end(), t.name) == out.end()) out.push_back(t.name);
      continue;
    }
    zeroshot_task(item);
    if (std::find(out.begin(), out.end(), item) != out.end()) throw UsageError("task '" + item + "' given twice");
    out.push_back(item);
  }
  if (out.empty()) throw UsageError("--tasks needs at least one task name (or all)");
  return out;
}

std::vector<TaskDoc> parse_task_docs(const std::string& task, const std::string& contents, int64_t limit,
                                     const std::string& source_name) {
  const TaskSpec& spec = zeroshot_task(task);
  const std::string src = source_name.empty() ? task : source_name;
  if (task == "hellaswag") return parse_hellaswag(contents, limit, src);
  std::vector<TaskDoc> docs;
  size_t lineno = 0;
  for (const std::string& line : split_lines(contents)) {
    ++lineno;
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    if (limit > 0 && int64_t(docs.size()) >= limit) break;
    const std::string where = src + ":" + std::to_string(lineno);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      SQ_FAIL(where << ": not a JSON object (" << e.what() << ")");
    }
    docs.push_back(jsonl_doc(spec, j, where));
  }
  SQ_CHECK(!docs.empty(), src << ": no documents");
  return docs;
}

TaskData load_task_file(const std::string& task, const std::string& path, int64_t limit) {
  TaskData d;
  d.spec = zeroshot_task(task);
  d.source = path;
  SQ_CHECK(path_exists(path), "task " << task << ": " << path << " not found");
  d.sha256 = sha256_file(path);
  std::string contents = ends_with(path, ".bz2") ? read_bz2_file(path) : read_file(path);
  d.docs = parse_task_docs(task, contents, limit, path);
  return d;
}

TaskData load_task(const std::string& task, const std::string& data_dir, int64_t limit) {
  const TaskSpec& spec = zeroshot_task(task);
  std::string dir;
  try {
    dir = resolve_data_dir(data_dir);
  } catch (const Error& e) {
    SQ_FAIL("task '" << task << "' needs zeroshot/" << spec.file << " under a data directory: " << e.what());
  }
  std::string path = path_join(path_join(dir, "zeroshot"), spec.file);
  if (!path_exists(path) && ends_with(path, ".bz2")) {
    std::string plain = path.substr(0, path.size() - 4);
    if (path_exists(plain)) path = plain;
  }
  SQ_CHECK(path_exists(path), "task '" << task << "': " << path
                                       << " not found; pass --data-dir pointing at a folder laid out like shared/data");
  return load_task_file(task, path, limit);
}

std::string hellaswag_preprocess(const std::string& text) {
  size_t a = text.find_first_not_of(" \t\n\r\v\f"), b = text.find_last_not_of(" \t\n\r\v\f");
  std::string s = a == std::string::npos ? "" : text.substr(a, b - a + 1);
  std::string t;
  for (size_t i = 0; i < s.size();) {  // " [title]" -> ". "
    if (s.compare(i, 8, " [title]") == 0) {
      t += ". ";
      i += 8;
    } else {
      t += s[i++];
    }
  }
  std::string u;
  for (size_t i = 0; i < t.size();) {  // re.sub("\\[.*?\\]", "", text): '.' does not match '\n'
    if (t[i] == '[') {
      size_t j = i + 1;
      while (j < t.size() && t[j] != ']' && t[j] != '\n') ++j;
      if (j < t.size() && t[j] == ']') {
        i = j + 1;
        continue;
      }
    }
    u += t[i++];
  }
  std::string v;
  for (size_t i = 0; i < u.size();) {  // str.replace("  ", " "): one left-to-right pass
    if (u.compare(i, 2, "  ") == 0) {
      v += ' ';
      i += 2;
    } else {
      v += u[i++];
    }
  }
  return v;
}

std::string py_capitalize(const std::string& s) {
  std::string out = s;
  for (size_t i = 0; i < out.size(); ++i) {
    unsigned char c = static_cast<unsigned char>(out[i]);
    if (c >= 0x80) continue;
    out[i] = char(i == 0 ? std::toupper(c) : std::tolower(c));
  }
  return out;
}

int64_t utf8_length(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string read_bz2_file(const std::string& path) {
  std::string in = read_file(path);
  std::string out;
  size_t pos = 0;
  std::vector<char> buf(1 << 20);
  while (pos < in.size()) {  // one bz2 stream per iteration (pbzip2 writes several)
    bz_stream st{};
    SQ_CHECK(BZ2_bzDecompressInit(&st, 0, 0) == BZ_OK, path << ": cannot initialise bzip2 decompression");
    st.next_in = const_cast<char*>(in.data() + pos);
    st.avail_in = static_cast<unsigned>(std::min<size_t>(in.size() - pos, 1u << 30));
    int rc = BZ_OK;
    while (rc == BZ_OK) {
      st.next_out = buf.data();
      st.avail_out = static_cast<unsigned>(buf.size());
      rc = BZ2_bzDecompress(&st);
      out.append(buf.data(), buf.size() - st.avail_out);
      if (rc == BZ_OK && st.avail_in == 0 && st.avail_out != 0) rc = BZ_UNEXPECTED_EOF;
    }
    size_t used = size_t(st.next_in - in.data()) - pos;
    BZ2_bzDecompressEnd(&st);
    SQ_CHECK(rc == BZ_STREAM_END, path << ": bzip2 data is " << (rc == BZ_UNEXPECTED_EOF ? "truncated" : "corrupt")
                                       << " (libbz2 code " << rc << ")");
    pos += used;
    while (pos < in.size() && in[pos] == '\0') ++pos;  // tolerate zero padding between streams
  }
  return out;
}

}  // namespace sq
