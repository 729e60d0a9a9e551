// data/llama_pretok: llama.cpp-compatible pre-tokenization for GGUF `gpt2` vocabularies (see
// llama_pretok.h). Works on code points: each pattern splits every piece left by the one
// before into matches and the gaps between them; the hand-written splitters reproduce
// llama.cpp's own ones (llama-vocab.cpp / unicode.cpp), quirks included, and any other
// pattern goes through std::regex exactly as llama.cpp runs it.
#include "llama_pretok.h"

#include <algorithm>
#include <array>
#include <map>
#include <regex>

#include "sliderquant/core/error.h"

namespace sq {
namespace {

constexpr uint16_t kUndef = 0x1, kNum = 0x2, kLetter = 0x4, kMark = 0x10, kPunct = 0x20, kSym = 0x40,
                   kWs = 0x100;

struct ClassRange {
  uint32_t first;
  uint8_t cls;
};
const ClassRange kClassRanges[] = {
#include "unicode_flags.inc"
};

bool is_white_space(uint32_t c) {
  return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

const std::vector<uint16_t>& flag_table() {
  static const std::vector<uint16_t> table = [] {
    std::vector<uint16_t> t(0x110000, 0);
    const size_t n = sizeof(kClassRanges) / sizeof(kClassRanges[0]);
    for (size_t i = 0; i < n; ++i) {
      uint32_t end = i + 1 < n ? kClassRanges[i + 1].first : 0x110000;
      for (uint32_t c = kClassRanges[i].first; c < end; ++c) t[c] = static_cast<uint16_t>(1u << kClassRanges[i].cls);
    }
    for (uint32_t c = 0; c < 0x3001; ++c)
      if (is_white_space(c)) t[c] |= kWs;
    return t;
  }();
  return table;
}

// ---- the regex lists, per tokenizer.ggml.pre (as llama-vocab.cpp lists them) -------------
const char* const kGpt2 = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const char* const kLlama3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const kLlama3Orig =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";
const char* const kQwen2 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const kQwen35 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| "
    "?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const kPoro = " ?[^(\\s|.,!?\u2026\u3002\uFF0C\u3001\u0964\u06D4\u060C)]+";
const char* const kContractionsCi = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])";
const char* const kGpt4o =
    "[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'["
    "lL][lL]|'[dD])?|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))+((?=[\\p{L}])([^A-Z]))*(?:'[sS]|'[tT]|'[rR][eE]|'["
    "vV][eE]|'[mM]|'[lL][lL]|'[dD])?|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const kDeepseek3Main =
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
    "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+";

enum Names : int {
  kDefault, kLlama3Set, kLlama3Plain, kChatglm, kGlm4, kDeepseekLlm, kDeepseekCoder, kDeepseek3, kFalcon,
  kStarcoder, kGpt2Set, kQwen2Set, kQwen35Set, kPoroSet, kViking, kTekken, kChameleon, kGpt4oSet, kSeedCoder,
  kBailing, kGrok2, kExaoneMoe, kMinicpm5, kSuperbpe, kUfakzeka,
};

const std::map<std::string, int>& pre_names() {
  static const std::map<std::string, int> m = {
      {"", kDefault}, {"default", kDefault},
      {"llama3", kLlama3Set}, {"llama-v3", kLlama3Set}, {"llama-bpe", kLlama3Set}, {"falcon3", kLlama3Set},
      {"falcon-h1", kLlama3Set}, {"pixtral", kLlama3Set}, {"midm-2.0", kLlama3Set}, {"lfm2", kLlama3Set},
      {"jina-v5-nano", kLlama3Set},
      {"dbrx", kLlama3Plain}, {"smaug-bpe", kLlama3Plain},
      {"chatglm-bpe", kChatglm}, {"glm4", kGlm4}, {"glm5", kGlm4},
      {"deepseek-llm", kDeepseekLlm}, {"deepseek-coder", kDeepseekCoder},
      {"deepseek-v3", kDeepseek3}, {"hunyuan-dense", kDeepseek3}, {"joyai-llm", kDeepseek3}, {"hy_v4", kDeepseek3},
      {"falcon", kFalcon},
      {"starcoder", kStarcoder}, {"refact", kStarcoder}, {"command-r", kStarcoder}, {"smollm", kStarcoder},
      {"codeshell", kStarcoder}, {"exaone", kStarcoder}, {"minerva-7b", kStarcoder}, {"mellum2", kStarcoder},
      {"gpt-2", kGpt2Set}, {"phi-2", kGpt2Set}, {"jina-es", kGpt2Set}, {"jina-de", kGpt2Set},
      {"gigachat", kGpt2Set}, {"jina-v2-es", kGpt2Set}, {"jina-v2-de", kGpt2Set}, {"a.x-4.0", kGpt2Set},
      {"mellum", kGpt2Set}, {"modern-bert", kGpt2Set}, {"jina-v1-en", kGpt2Set}, {"jina-v2-code", kGpt2Set},
      {"roberta-bpe", kGpt2Set}, {"mpt", kGpt2Set}, {"olmo", kGpt2Set}, {"jais", kGpt2Set},
      {"trillion", kGpt2Set}, {"granite-docling", kGpt2Set}, {"exaone4", kGpt2Set},
      {"qwen2", kQwen2Set}, {"deepseek-r1-qwen", kQwen2Set}, {"kormo", kQwen2Set}, {"f2llmv2", kQwen2Set},
      {"stablelm2", kQwen2Set}, {"megrez", kQwen2Set}, {"hunyuan", kQwen2Set}, {"solar-open", kQwen2Set},
      {"qwen35", kQwen35Set},
      {"poro-chat", kPoroSet}, {"bloom", kPoroSet}, {"gpt3-finnish", kPoroSet},
      {"viking", kViking}, {"tekken", kTekken}, {"chameleon", kChameleon},
      {"gpt-4o", kGpt4oSet}, {"llama4", kGpt4oSet}, {"kanana2", kGpt4oSet}, {"talkie", kGpt4oSet},
      {"minimax-m2", kGpt4oSet},
      {"seed-coder", kSeedCoder}, {"bailingmoe", kBailing}, {"bailingmoe2", kBailing}, {"llada-moe", kBailing},
      {"grok-2", kGrok2}, {"exaone-moe", kExaoneMoe}, {"minicpm5", kMinicpm5}, {"superbpe", kSuperbpe},
      {"ufakzeka", kUfakzeka},
  };
  return m;
}

// ---- code points -----------------------------------------------------------------------
constexpr uint32_t kOutside = 0xFFFFFFFF;

// Valid UTF-8 (checked by the caller) -> code points and the byte offset of each (+ end).
void decode_utf8(std::string_view s, std::vector<uint32_t>& cpts, std::vector<size_t>& at) {
  cpts.clear();
  at.clear();
  size_t i = 0;
  while (i < s.size()) {
    auto b = static_cast<unsigned char>(s[i]);
    size_t n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
    n = std::min(n, s.size() - i);
    uint32_t c = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
    for (size_t k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    cpts.push_back(c);
    at.push_back(i);
    i += n;
  }
  at.push_back(s.size());
}

enum class Custom { None, Gpt2, Llama3, Qwen2, Qwen35 };

Custom custom_of(const std::string& re) {
  if (re == kGpt2) return Custom::Gpt2;
  if (re == kLlama3 || re == kLlama3Orig) return Custom::Llama3;
  if (re == kQwen2) return Custom::Qwen2;
  if (re == kQwen35) return Custom::Qwen35;
  return Custom::None;
}

uint32_t ascii_lower(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

// One piece [ini, end) of the code points, split by a hand-written splitter; appends the
// lengths of the new pieces.
void split_custom(Custom kind, const std::vector<uint32_t>& cpts, size_t ini, size_t end, std::vector<size_t>& out) {
  const auto& table = flag_table();
  auto cp = [&](size_t p) -> uint32_t { return p >= ini && p < end ? cpts[p] : kOutside; };
  auto fl = [&](size_t p) -> uint16_t {
    return p >= ini && p < end ? (cpts[p] < 0x110000 ? table[cpts[p]] : kUndef) : 0;
  };
  const bool gpt2 = kind == Custom::Gpt2;
  const uint16_t word = kind == Custom::Qwen35 ? (kLetter | kMark) : kLetter;
  size_t last = ini;
  auto cut = [&](size_t e) -> size_t {
    size_t len = e - last;
    if (len > 0) out.push_back(len);
    last = e;
    return len;
  };
  size_t pos = ini;
  while (pos < end) {
    const uint32_t c = cp(pos);
    const uint16_t f = fl(pos);
    if (c == '\'' && pos + 1 < end) {  // contractions ('s 't 're 've 'm 'll 'd; any case but GPT-2's)
      uint32_t c1 = gpt2 ? cp(pos + 1) : ascii_lower(cp(pos + 1));
      if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
        pos += cut(pos + 2);
        continue;
      }
      if (pos + 2 < end) {
        uint32_t c2 = gpt2 ? cp(pos + 2) : ascii_lower(cp(pos + 2));
        if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
          pos += cut(pos + 3);
          continue;
        }
      }
    }
    if (gpt2) {
      uint16_t f2 = c == ' ' ? fl(pos + 1) : f;
      if (f2 & (kLetter | kNum)) {  // " ?\p{L}+" and " ?\p{N}+"
        const uint16_t cls = (f2 & kLetter) ? kLetter : kNum;
        pos += c == ' ';
        while (fl(pos) & cls) ++pos;
        cut(pos);
        continue;
      }
      if (!(f2 & (kWs | kLetter | kNum)) && f2) {  // " ?[^\s\p{L}\p{N}]+"
        pos += c == ' ';
        while (!(fl(pos) & (kWs | kLetter | kNum)) && fl(pos)) ++pos;
        cut(pos);
        continue;
      }
    } else {
      // "[^\r\n\p{L}\p{N}]?\p{L}+" (Qwen3.5: letters and marks)
      if (!(c == '\r' || c == '\n' || (f & kNum)) && ((f & word) || (fl(pos + 1) & word))) {
        ++pos;
        while (fl(pos) & word) ++pos;
        cut(pos);
        continue;
      }
      if (f & kNum) {  // "\p{N}{1,3}" (Llama 3) or "\p{N}"
        if (kind == Custom::Llama3) {
          size_t run = pos;
          while (fl(pos) & kNum) {
            if (++pos - run >= 3) {
              cut(pos);
              run = pos;
            }
          }
          cut(pos);
        } else {
          cut(++pos);
        }
        continue;
      }
      // " ?[^\s\p{L}\p{N}]+[\r\n]*" (tests the class of the first code point, not the second)
      const uint16_t other = kWs | word | kNum;
      uint16_t f2 = c == ' ' ? fl(pos + 1) : f;
      if (!(f2 & other) && f) {
        pos += c == ' ';
        while (!(fl(pos) & other) && fl(pos)) ++pos;
        while (cp(pos) == '\r' || cp(pos) == '\n') ++pos;
        cut(pos);
        continue;
      }
    }
    size_t n_ws = 0, after_rn = 0;
    while (fl(pos + n_ws) & kWs) {
      uint32_t w = cp(pos + n_ws);
      if (!gpt2 && (w == '\r' || w == '\n')) after_rn = pos + n_ws + 1;
      ++n_ws;
    }
    if (after_rn > 0) {  // "\s*[\r\n]+"
      pos = after_rn;
      cut(pos);
      continue;
    }
    if (n_ws > 1 && cp(pos + n_ws) != kOutside) {  // "\s+(?!\S)": all but the last space
      pos += n_ws - 1;
      cut(pos);
      continue;
    }
    if (n_ws > 0) {  // "\s+"
      pos += n_ws;
      cut(pos);
      continue;
    }
    cut(++pos);  // nothing matched: one code point alone
  }
}

// ---- std::regex, as llama.cpp runs a pattern without a hand-written splitter -------------
struct Category {
  const char* name;
  uint16_t flag;
};
const Category kCategories[] = {
    {"\\p{N}", kNum},     {"\\p{L}", kLetter},  {"\\p{P}", kPunct},   {"\\p{M}", kMark},   {"\\p{S}", kSym},
    {"\\p{Lu}", kLetter}, {"\\p{Ll}", kLetter}, {"\\p{Lt}", kLetter}, {"\\p{Lm}", kLetter}, {"\\p{Lo}", kLetter},
};

// The one byte standing for each class in the collapsed text, and the ASCII members of it.
char collapsed_code(uint16_t cls) {
  switch (cls) {
    case kNum: return static_cast<char>(0xD1);
    case kLetter: return static_cast<char>(0xD2);
    case kPunct: return static_cast<char>(0xD3);
    case kMark: return static_cast<char>(0xD4);
    case kSym: return static_cast<char>(0xD5);
    default: return static_cast<char>(0xD0);
  }
}
const char* ascii_members(uint16_t cls) {
  switch (cls) {
    case kNum: return "0-9";
    case kLetter: return "A-Za-z";
    case kPunct: return "!-#%-*,-/:-;?-@\\[-\\]_\\{\\}";
    case kSym: return "\\$\\+<->^`\\|\\~";
    default: return "";
  }
}

bool uses_categories(const std::string& re) {
  for (const Category& c : kCategories)
    if (re.find(c.name) != std::string::npos) return true;
  return false;
}

// The pattern over the collapsed text: each \p{X} becomes [code + ASCII members] (or just
// its contents inside a bracket expression).
std::string collapse_pattern(const std::string& re) {
  std::string out;
  bool inside = false;
  for (size_t i = 0; i < re.size(); ++i) {
    char ch = re[i];
    if (ch == '[' && (i == 0 || re[i - 1] != '\\')) {
      out += '[';
      inside = true;
      continue;
    }
    if (inside && ch == ']' && re[i - 1] != '\\') {
      out += ']';
      inside = false;
      continue;
    }
    if (ch == '\\' && i + 3 < re.size() && re[i + 1] == 'p' && re[i + 2] == '{') {
      size_t close = re.find('}', i + 3);
      if (close != std::string::npos && close <= i + 10) {
        std::string name = re.substr(i, close - i + 1);
        const Category* cat = nullptr;
        for (const Category& c : kCategories)
          if (name == c.name) cat = &c;
        if (cat) {
          if (!inside) out += '[';
          out += collapsed_code(cat->flag);
          out += ascii_members(cat->flag);
          if (!inside) out += ']';
          i = close;
          continue;
        }
      }
    }
    out += ch;
  }
  return out;
}

template <class CharT>
void split_std(const std::basic_string<CharT>& text, const std::basic_regex<CharT>& re,
               const std::vector<size_t>& pieces, std::vector<size_t>& out) {
  using It = typename std::basic_string<CharT>::const_iterator;
  size_t start = 0;
  for (size_t len : pieces) {
    std::regex_iterator<It> it(text.begin() + start, text.begin() + start + len, re), stop;
    size_t done = 0;
    for (; it != stop; ++it) {
      size_t p = static_cast<size_t>(it->position()), n = static_cast<size_t>(it->length());
      if (p > done) out.push_back(p - done);
      if (n > 0) out.push_back(n);
      done = p + n;
    }
    if (done < len) out.push_back(len - done);
    start += len;
  }
}

class LlamaPreSplitter : public PreSplitter {
 public:
  LlamaPreSplitter(const std::vector<std::string>& regexes, const std::string& source) {
    constexpr auto flags = std::regex_constants::optimize | std::regex_constants::nosubs;
    for (const std::string& re : regexes) {
      Stage st;
      st.custom = custom_of(re);
      if (st.custom == Custom::None) {
        try {
          st.collapsed = uses_categories(re);
          if (st.collapsed) {
            for (unsigned char ch : re)
              SQ_CHECK(ch < 0x80, "pre-tokenizer regex of " << source
                                      << " mixes Unicode categories and non-ASCII characters: " << re);
            st.narrow = std::regex(collapse_pattern(re), flags);
          } else {
            std::vector<uint32_t> cpts;
            std::vector<size_t> at;
            decode_utf8(re, cpts, at);
            st.wide = std::wregex(std::wstring(cpts.begin(), cpts.end()), flags);
          }
        } catch (const std::regex_error& e) {
          SQ_FAIL("cannot compile the pre-tokenizer regex of " << source << " (" << e.what() << "): " << re);
        }
      }
      stages_.push_back(std::move(st));
    }
  }

  void split(std::string_view text, std::vector<std::string_view>& words) const override {
    std::vector<uint32_t> cpts;
    std::vector<size_t> at;
    decode_utf8(text, cpts, at);
    const auto& table = flag_table();
    auto flags_of = [&](uint32_t c) -> uint16_t { return c < 0x110000 ? table[c] : kUndef; };
    std::string narrow;
    std::wstring wide;
    std::vector<size_t> pieces{cpts.size()}, next;
    for (const Stage& st : stages_) {
      next.clear();
      if (st.custom != Custom::None) {
        size_t start = 0;
        for (size_t len : pieces) {
          split_custom(st.custom, cpts, start, start + len, next);
          start += len;
        }
      } else if (st.collapsed) {
        if (narrow.empty() && !cpts.empty()) {
          narrow.resize(cpts.size());
          for (size_t i = 0; i < cpts.size(); ++i) {
            uint32_t c = cpts[i];
            uint16_t f = flags_of(c);
            narrow[i] = c < 0x80 ? static_cast<char>(c) : (f & kWs) ? '\x0B' : collapsed_code(f & 0xFF);
          }
        }
        split_std(narrow, st.narrow, pieces, next);
      } else {
        if (wide.empty() && !cpts.empty()) {
          wide.resize(cpts.size());
          for (size_t i = 0; i < cpts.size(); ++i)
            wide[i] = static_cast<wchar_t>(cpts[i] > 0x7F && (flags_of(cpts[i]) & kWs) ? 0x0B : cpts[i]);
        }
        split_std(wide, st.wide, pieces, next);
      }
      pieces.swap(next);
    }
    size_t start = 0;
    for (size_t len : pieces) {
      if (len > 0) words.push_back(text.substr(at[start], at[start + len] - at[start]));
      start += len;
    }
  }

 private:
  struct Stage {
    Custom custom = Custom::None;
    bool collapsed = false;
    std::regex narrow;
    std::wregex wide;
  };
  std::vector<Stage> stages_;
};

}  // namespace

uint16_t llama_cpt_flags(uint32_t cpt) { return cpt < 0x110000 ? flag_table()[cpt] : kUndef; }

bool llama_bpe_pre(const std::string& name, LlamaBpePre& out) {
  auto it = pre_names().find(name);
  if (it == pre_names().end()) return false;
  out = LlamaBpePre();
  std::vector<std::string>& r = out.regexes;
  const std::string ci = kContractionsCi;
  switch (it->second) {
    case kDefault:
      r = {"[\\p{P}\\$\\+<=>\\^~\\|]+", kGpt2, "\\p{N}+", "[0-9][0-9][0-9]"};
      break;
    case kLlama3Set:
      r = {kLlama3};
      out.ignore_merges = out.add_bos = true;
      break;
    case kLlama3Plain: r = {kLlama3}; break;
    case kChatglm:
      r = {kLlama3};
      out.bos_none = true;
      break;
    case kGlm4:
      r = {kLlama3};
      out.bos_none = out.ignore_merges = true;
      break;
    case kDeepseekLlm:
      r = {"[\r\n]",
           "\\s?[A-Za-z\u00B5\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u01BA\u01BC-\u01BF\u01C4-\u0293\u0295-\u02AF"
           "\u0370-\u0373\u0376\u0377\u037B-\u037D\u037F\u0386\u0388-\u038A\u038C\u038E-\u03A1\u03A3-\u03F5"
           "\u03F7-\u0481\u048A-\u052F\u0531-\u0556\u10A0-\u10C5\u13A0-\u13F5\u13F8-\u13FD\u1C90-\u1CBA"
           "\u1CBD-\u1CBF\u1D00-\u1D2B\u1D6B-\u1D77\u1D79-\u1D9A\u1E00-\u1F15\u1F18-\u1F1D\u1F20-\u1F45"
           "\u1F48-\u1F4D\u1F50-\u1F57\u1F59\u1F5B\u1F5D\u1F5F-\u1F7D\u1F80-\u1FB4\u1FB6-\u1FBC\u1FBE\u1FC2"
           "-\u1FC4\u1FC6-\u1FCC\u1FD0-\u1FD3\u1FD6-\u1FDB\u1FE0-\u1FEC\u1FF2-\u1FF4\u1FF6-\u1FFC\u2102"
           "\u2107\u210A-\u2113\u2115\u2119-\u211D\u2124\u2126\u2128\u212A-\u212D\u212F-\u2134\u2139\u213C"
           "-\u213F\u2145-\u2149\u214E\u2183\u2184\u2C00-\u2C7B\u2C7E-\u2CE4\u2CEB-\u2CEE\u2CF2\u2CF3\uA640"
           "-\uA66D\uA680-\uA69B\uA722-\uA76F\uA771-\uA787\uA78B-\uA78E\uAB70-\uABBF\uFB00-\uFB06\uFB13"
           "-\uFB17\uFF21-\uFF3A\uFF41-\uFF5A\U00010400-\U0001044F\U000104B0-\U000104D3\U000104D8-\U000104FB"
           "\U00010C80-\U00010CB2\U00010CC0-\U00010CF2\U000118A0-\U000118DF\U0001E900-\U0001E943]+",
           "\\s?[!-/:-~\uFF01-\uFF0F\uFF1A-\uFF5E\u2018-\u201F\u3000-\u3002]+", "\\s+$", "[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+", "\\p{N}+"};
      break;
    case kDeepseekCoder:
      r = {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+", "\\p{N}"};
      break;
    case kDeepseek3: r = {"\\p{N}{1,3}", "[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+", kDeepseek3Main}; break;
    case kFalcon:
      r = {"[\\p{P}\\$\\+<=>\\^~\\|`]+", kGpt2, "[0-9][0-9][0-9]"};
      break;
    case kStarcoder: r = {"\\p{N}", kGpt2}; break;
    case kGpt2Set: r = {kGpt2}; break;
    case kQwen2Set: r = {kQwen2}; break;
    case kQwen35Set: r = {kQwen35}; break;
    case kPoroSet: r = {kPoro}; break;
    case kViking: r = {kPoro, "\\p{N}"}; break;
    case kTekken:
      r = {"[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])([^a-z]))*((?=[\\p{L}])([^A-Z]))+|[^\\r\\n\\p{L}\\p{N}]?((?=[\\p{L}])(["
           "^a-z]))+((?=[\\p{L}])([^A-Z]))*|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"};
      out.ignore_merges = out.add_bos = true;
      break;
    case kChameleon:
      r = {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", "\\p{N}",
           "[\\p{P}!-/:-@\\[-`{-~]", kGpt2};
      out.add_bos = true;
      break;
    case kGpt4oSet: r = {kGpt4o}; break;
    case kSeedCoder:
      r = {ci + "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1}| ?[^\\s\\p{L}\\p{N}\\r\\n]+|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"};
      break;
    case kBailing:
      r = {"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
           "\\s*[\\r\\n]|\\s+(?!\\S)|\\s+"};
      break;
    case kGrok2: r = {kQwen2}; break;
    case kExaoneMoe:
      r = {ci + "|[^\\r\\n\\p{L}\\p{N}]?(?:\\p{L}\\p{M}*(?: \\p{L}\\p{M}*)*)+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]?|\\s*[\\r\\n]|"
                "\\s+(?!\\S)|\\s+"};
      break;
    case kMinicpm5:
      r = {"\\p{N}{1,3}",
           ci + "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}+| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"};
      out.ignore_merges = true;
      break;
    case kSuperbpe: r = {"\\p{N}+", "(?=(\\d{3})+(?!\\d))"}; break;
    case kUfakzeka:
      r = {"[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"};
      break;
  }
  return true;
}

std::shared_ptr<const PreSplitter> make_llama_pre_splitter(const std::vector<std::string>& regexes,
                                                           const std::string& source) {
  return std::make_shared<LlamaPreSplitter>(regexes, source);
}

}  // namespace sq
