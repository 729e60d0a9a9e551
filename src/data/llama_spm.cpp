// data/llama_spm: GGUF token attributes and the native SentencePiece-style tokenizer, both as
// llama.cpp's llama-vocab.cpp behaves (see llama_spm.h).
#include "llama_spm.h"

#include <algorithm>
#include <queue>
#include <set>

#include "sliderquant/core/error.h"

namespace sq {
namespace {

// Token texts llama.cpp treats as control tokens whatever their stored type (end-of-turn,
// end-of-generation and fill-in-the-middle markers).
const std::set<std::string>& control_looking() {
  static const std::set<std::string> s = {
      "<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>", "<EOT>",
      "_<EOT>", "[EOT]", "<｜end▁of▁sentence｜>", "<end_of_utterance>", "<|eom_id|>", "<|fim_prefix|>",
      "<fim-prefix>", "<fim_prefix>", "<｜fim▁begin｜>", "<PRE>", "▁<PRE>", "<|code_prefix|>", "<|prefix|>",
      "<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<｜fim▁hole｜>", "<SUF>", "▁<SUF>", "<|code_suffix|>",
      "<|suffix|>", "<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<｜fim▁end｜>", "<MID>", "▁<MID>",
      "<|code_middle|>", "<|middle|>", "<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]",
      "<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>", "<|file_sep|>", "<|return|>",
      "<|call|>", "<|flush|>", "<|calls|>", "</s>", "[EOS]", "<eos>", "<turn|>", "<|tool_response>", "[e~[",
  };
  return s;
}

size_t utf8_len(unsigned char lead) {
  static const size_t lookup[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return lookup[lead >> 4];
}

}  // namespace

std::vector<int32_t> llama_raw_matched_tokens(const std::vector<std::string>& tokens,
                                              const std::vector<int32_t>& types) {
  const size_t n = tokens.size();
  std::vector<int32_t> type(n, kTokNormal);
  for (size_t i = 0; i < n && i < types.size(); ++i) type[i] = types[i];
  std::vector<bool> control(n), user(n);
  std::set<std::string> present(tokens.begin(), tokens.end());
  for (size_t i = 0; i < n; ++i) {
    control[i] = type[i] == kTokControl || type[i] == kTokUnknown || control_looking().count(tokens[i]);
    user[i] = type[i] == kTokUserDefined;
    // gpt-oss's markers are always user-defined; so is <|end|> beside <|return|> and <|call|>
    // (or <|calls|> and <|flush|>).
    const std::string& t = tokens[i];
    if (t == "<|channel|>" || t == "<|message|>" || t == "<|start|>" || t == "<|constrain|>" ||
        (t == "<|end|>" && ((present.count("<|return|>") && present.count("<|call|>")) ||
                            (present.count("<|calls|>") && present.count("<|flush|>"))))) {
      control[i] = false;
      user[i] = true;
    }
  }
  // llama.cpp's special-token cache: control, user-defined and unknown tokens by id, then
  // sorted longest text first (std::sort, as there, so ties fall the same way).
  std::vector<int32_t> cache;
  for (size_t i = 0; i < n; ++i)
    if (control[i] || user[i] || type[i] == kTokUnknown) cache.push_back(static_cast<int32_t>(i));
  std::sort(cache.begin(), cache.end(),
            [&](int32_t a, int32_t b) { return tokens[a].size() > tokens[b].size(); });
  std::vector<int32_t> out;
  for (int32_t id : cache)
    if (user[id] && !control[id] && !tokens[id].empty()) out.push_back(id);
  return out;
}

LlamaSpmTokenizer::LlamaSpmTokenizer(LlamaSpmConfig cfg) : cfg_(std::move(cfg)) {
  const size_t n = cfg_.tokens.size();
  SQ_CHECK(n > 0, "empty vocabulary in " << cfg_.source);
  SQ_CHECK(cfg_.scores.empty() || cfg_.scores.size() >= n, "fewer scores than tokens in " << cfg_.source);
  SQ_CHECK(cfg_.types.empty() || cfg_.types.size() >= n, "fewer token types than tokens in " << cfg_.source);
  cfg_.scores.resize(n, 0.0f);
  for (size_t i = 0; i < n; ++i) {
    if (cfg_.tokens[i].empty()) cfg_.tokens[i] = "[EMPTY_" + std::to_string(i) + "]";
    to_id_[cfg_.tokens[i]] = static_cast<int32_t>(i);
  }
  matched_ = llama_raw_matched_tokens(cfg_.tokens, cfg_.types);
}

int32_t LlamaSpmTokenizer::byte_token(unsigned char b) const {
  static const char* hex = "0123456789ABCDEF";
  const char name[7] = {'<', '0', 'x', hex[b >> 4], hex[b & 15], '>', 0};
  int32_t id = find(name);
  if (id < 0) id = find(std::string(1, static_cast<char>(b)));
  SQ_CHECK(id >= 0, "the vocabulary of " << cfg_.source << " has no token for byte 0x" << hex[b >> 4] << hex[b & 15]);
  return id;
}

// One raw fragment (spaces already escaped): symbols are UTF-8 characters; the adjacent pair
// whose concatenation is the best-scoring vocabulary token merges first (leftmost on ties).
void LlamaSpmTokenizer::encode_piece(const std::string& text, std::vector<int64_t>& out) const {
  struct Sym {
    int prev, next;
    size_t off, n;
  };
  std::vector<Sym> syms;
  for (size_t off = 0; off < text.size();) {
    size_t n = std::min(utf8_len(static_cast<unsigned char>(text[off])), text.size() - off);
    int idx = static_cast<int>(syms.size());
    syms.push_back({idx - 1, off + n == text.size() ? -1 : idx + 1, off, n});
    off += n;
  }
  struct Bigram {
    int left, right;
    float score;
    size_t size;
  };
  auto worse = [](const Bigram& a, const Bigram& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> queue(worse);
  auto try_add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    size_t size = syms[l].n + syms[r].n;
    int32_t id = find(text.substr(syms[l].off, size));
    if (id < 0) return;
    queue.push({l, r, cfg_.scores[id], size});
  };
  for (int i = 1; i < static_cast<int>(syms.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    Bigram bg = queue.top();
    queue.pop();
    Sym& l = syms[bg.left];
    Sym& r = syms[bg.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != bg.size) continue;  // stale
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = bg.left;
    try_add(l.prev, bg.left);
    try_add(bg.left, l.next);
  }
  if (syms.empty()) return;
  for (int i = 0; i != -1; i = syms[i].next) {
    const Sym& s = syms[i];
    int32_t id = find(text.substr(s.off, s.n));
    if (id >= 0) {
      out.push_back(id);
    } else {
      for (size_t k = 0; k < s.n; ++k) out.push_back(byte_token(static_cast<unsigned char>(text[s.off + k])));
    }
  }
}

std::vector<int64_t> LlamaSpmTokenizer::encode(const std::string& text) const {
  struct Frag {
    size_t b, e;
    int32_t id;
  };
  std::vector<Frag> frags, next;
  if (!text.empty()) frags.push_back({0, text.size(), -1});
  for (int32_t id : matched_) {
    const std::string& t = cfg_.tokens[id];
    next.clear();
    for (const Frag& f : frags) {
      if (f.id >= 0) {
        next.push_back(f);
        continue;
      }
      size_t b = f.b;
      while (b < f.e) {
        size_t m = std::string_view(text.data(), f.e).find(t, b);
        if (m == std::string_view::npos) break;
        if (m > b) next.push_back({b, m, -1});
        next.push_back({m, m + t.size(), id});
        b = m + t.size();
      }
      if (b < f.e) next.push_back({b, f.e, -1});
    }
    frags.swap(next);
  }
  std::vector<int64_t> out;
  bool prev_special = true;  // the first fragment gets the space prefix too
  for (const Frag& f : frags) {
    if (f.id >= 0) {
      out.push_back(f.id);
      prev_special = true;
      continue;
    }
    std::string piece = cfg_.add_space_prefix && prev_special ? " " : "";
    piece.append(text, f.b, f.e - f.b);
    std::string escaped;
    for (char c : piece) {
      if (c == ' ')
        escaped += "\xE2\x96\x81";
      else
        escaped += c;
    }
    encode_piece(escaped, out);
    prev_special = false;
  }
  return out;
}

std::string LlamaSpmTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  for (int64_t id : ids) {
    SQ_CHECK(id >= 0 && id < vocab_size(), "cannot decode token id " << id << ": not in the vocabulary of "
                                                                     << cfg_.source);
    int32_t type = static_cast<size_t>(id) < cfg_.types.size() ? cfg_.types[id] : kTokNormal;
    const std::string& t = cfg_.tokens[id];
    if (type == kTokControl || type == kTokUnknown || type == kTokUnused) continue;
    if (type == kTokByte && t.size() == 6 && t.compare(0, 3, "<0x") == 0) {
      out += static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16));
    } else if (type == kTokUserDefined) {
      out += t;
    } else {
      for (size_t i = 0; i < t.size(); ++i) {
        if (t.compare(i, 3, "\xE2\x96\x81") == 0) {
          out += ' ';
          i += 2;
        } else {
          out += t[i];
        }
      }
    }
  }
  if (cfg_.add_space_prefix && !out.empty() && out[0] == ' ') out.erase(0, 1);
  return out;
}

}  // namespace sq
