// data/bpe_tokenizer: the byte-level BPE Tokenizer (GPT-2 / Llama 3 / Qwen): added-token
// matching, NFC (utf8proc), regex pre-tokenization (PCRE2, UTF + UCP, JIT when available),
// merges by rank with a per-call cache of repeated pre-tokens, and decoding. Parsing the
// files lives in bpe_load.cpp. Follows Hugging Face tokenizers' BPE model semantics
// (lowest-rank pair first, leftmost on ties; ignore_merges as in Llama 3).
#define PCRE2_CODE_UNIT_WIDTH 8
#include "bpe_tokenizer.h"

#include <pcre2.h>
#include <utf8proc.h>

#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <queue>

#include "sliderquant/core/error.h"

namespace sq {

const char* const kGpt2SplitRegex =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

namespace {

// GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes
// to U+0100.. in byte order. Returns byte -> code point.
std::array<int32_t, 256> byte_to_codepoint() {
  std::array<int32_t, 256> cp{};
  int32_t next = 256;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    cp[b] = printable ? b : next++;
  }
  return cp;
}

// Byte-level token text ("Ġworld") -> raw bytes (" world"). False if a code point is not in
// the byte alphabet (then the token cannot come out of byte merges; kept as its UTF-8).
bool byte_level_to_bytes(const std::string& token, std::string& out) {
  static const std::array<int16_t, 512> inverse = [] {
    std::array<int16_t, 512> inv;
    inv.fill(-1);
    std::array<int32_t, 256> cp = byte_to_codepoint();
    for (int b = 0; b < 256; ++b) inv[cp[b]] = static_cast<int16_t>(b);
    return inv;
  }();
  out.clear();
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(token.data());
  utf8proc_ssize_t left = static_cast<utf8proc_ssize_t>(token.size());
  while (left > 0) {
    utf8proc_int32_t c;
    utf8proc_ssize_t n = utf8proc_iterate(p, left, &c);
    if (n <= 0 || c < 0 || c >= 512 || inverse[c] < 0) return false;
    out.push_back(static_cast<char>(inverse[c]));
    p += n;
    left -= n;
  }
  return true;
}

// Byte offset of the first invalid UTF-8 sequence, or npos.
size_t invalid_utf8_at(std::string_view s) {
  const auto* p = reinterpret_cast<const utf8proc_uint8_t*>(s.data());
  size_t i = 0;
  while (i < s.size()) {
    if (p[i] < 0x80) {
      ++i;
      continue;
    }
    utf8proc_int32_t c;
    utf8proc_ssize_t n = utf8proc_iterate(p + i, static_cast<utf8proc_ssize_t>(s.size() - i), &c);
    if (n <= 0) return i;
    i += static_cast<size_t>(n);
  }
  return std::string_view::npos;
}

bool is_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

constexpr size_t kHeapFrom = 48;     // pre-tokens at least this long use the heap merge loop
constexpr size_t kCacheMaxLen = 128;  // longer pre-tokens are not cached

}  // namespace

// One compiled pattern. Matching state (match data, JIT stack) lives in Scratch, per call.
class BpeRegex {
 public:
  BpeRegex(const std::string& pattern, const std::string& source) {
    int err = 0;
    PCRE2_SIZE err_off = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP,
                          &err, &err_off, nullptr);
    if (!code_) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      SQ_FAIL("cannot compile the pre-tokenizer regex of " << source << " at offset " << err_off << ": "
                                                           << reinterpret_cast<const char*>(msg));
    }
    jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
  }
  ~BpeRegex() { pcre2_code_free(code_); }
  BpeRegex(const BpeRegex&) = delete;
  BpeRegex& operator=(const BpeRegex&) = delete;

  // Isolated split: calls emit(piece) for every match and every gap between matches, in order.
  // The text must be valid UTF-8 (checked once by the caller).
  template <class F>
  void split(std::string_view s, pcre2_match_data* md, pcre2_match_context* mctx, F&& emit) const {
    const auto* subj = reinterpret_cast<PCRE2_SPTR>(s.data());
    size_t n = s.size(), prev = 0, off = 0;
    while (off < n) {
      int rc = jit_ ? pcre2_jit_match(code_, subj, n, off, 0, md, mctx)
                    : pcre2_match(code_, subj, n, off, PCRE2_NO_UTF_CHECK, md, mctx);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      SQ_CHECK(rc >= 0, "pre-tokenizer regex failed (PCRE2 error " << rc << ") on a text of " << n << " bytes");
      const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      size_t b = ov[0], e = ov[1];
      if (b > prev) emit(s.substr(prev, b - prev));
      if (e > b) emit(s.substr(b, e - b));
      prev = e;
      if (e > b) {
        off = e;
      } else {  // empty match: step over one UTF-8 character
        off = e + 1;
        while (off < n && (static_cast<unsigned char>(s[off]) & 0xC0) == 0x80) ++off;
      }
    }
    if (prev < n) emit(s.substr(prev));
  }

  pcre2_code* code() const { return code_; }

 private:
  pcre2_code* code_ = nullptr;
  bool jit_ = false;
};

struct BpeTokenizer::Scratch {
  pcre2_match_context* mctx = nullptr;
  pcre2_jit_stack* stack = nullptr;
  std::vector<pcre2_match_data*> md;
  std::string normalized;

  explicit Scratch(const std::vector<std::unique_ptr<BpeRegex>>& regexes) {
    if (regexes.empty()) return;
    mctx = pcre2_match_context_create(nullptr);
    stack = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
    pcre2_jit_stack_assign(mctx, nullptr, stack);
    for (const auto& r : regexes) md.push_back(pcre2_match_data_create_from_pattern(r->code(), nullptr));
  }
  ~Scratch() {
    for (auto* m : md) pcre2_match_data_free(m);
    if (stack) pcre2_jit_stack_free(stack);
    if (mctx) pcre2_match_context_free(mctx);
  }
};

BpeTokenizer::~BpeTokenizer() = default;

BpeTokenizer::BpeTokenizer(const BpeConfig& cfg)
    : source_(cfg.source),
      ignore_merges_(cfg.ignore_merges),
      nfc_(cfg.nfc),
      add_prefix_space_(cfg.add_prefix_space),
      template_bos_(cfg.template_bos),
      template_eos_(cfg.template_eos) {
  pre_splitter_ = cfg.pre_splitter;
  added_in_list_order_ = cfg.added_in_list_order;
  int64_t size = 0;
  for (const auto& v : cfg.vocab) size = std::max(size, v.second + 1);
  for (const auto& a : cfg.added) size = std::max(size, a.id + 1);
  SQ_CHECK(size > 0 && size < INT32_MAX, "empty or oversized vocabulary in " << source_);
  // Ids are dense in real tokenizers (gaps of a few reserved ids at most): an id far beyond
  // the number of tokens listed is damage, not a vocabulary to allocate.
  const int64_t listed = int64_t(cfg.vocab.size() + cfg.added.size());
  SQ_CHECK(size <= 2 * listed + 4096, source_ << ": token id " << size - 1 << " is far beyond the " << listed
                                              << " tokens listed (a damaged vocabulary?)");
  id_to_bytes_.assign(static_cast<size_t>(size), std::string());
  has_id_.assign(static_cast<size_t>(size), false);

  bytes_to_id_.reserve(cfg.vocab.size() * 2);
  std::string bytes;
  for (const auto& [token, id] : cfg.vocab) {
    SQ_CHECK(id >= 0, "negative token id " << id << " for \"" << token << "\" in " << source_);
    if (!byte_level_to_bytes(token, bytes)) bytes = token;
    bytes_to_id_.emplace(bytes, static_cast<int32_t>(id));
    id_to_bytes_[id] = bytes;
    has_id_[id] = true;
  }
  for (int b = 0; b < 256; ++b) {
    auto it = bytes_to_id_.find(std::string(1, static_cast<char>(b)));
    SQ_CHECK(it != bytes_to_id_.end() || cfg.missing_bytes_ok,
             "the vocabulary of " << source_ << " lacks byte 0x" << std::hex << b << ": not a byte-level BPE");
    byte_id_[b] = it == bytes_to_id_.end() ? -1 : it->second;
  }

  merges_.reserve(cfg.merges.size() * 2);
  std::string a, b;
  for (size_t rank = 0; rank < cfg.merges.size(); ++rank) {
    const auto& m = cfg.merges[rank];
    if (!byte_level_to_bytes(m.first, a) || !byte_level_to_bytes(m.second, b)) continue;
    auto ia = bytes_to_id_.find(a), ib = bytes_to_id_.find(b), im = bytes_to_id_.find(a + b);
    SQ_CHECK(ia != bytes_to_id_.end() && ib != bytes_to_id_.end() && im != bytes_to_id_.end(),
             "merge " << rank << " (\"" << m.first << "\" \"" << m.second << "\") of " << source_
                      << " names a token that is not in the vocabulary");
    merges_.emplace(pair_key(ia->second, ib->second), Merge{static_cast<int32_t>(rank), im->second});
  }

  added_ = cfg.added;
  for (size_t i = 0; i < added_.size(); ++i) {
    const auto& t = added_[i];
    SQ_CHECK(t.id >= 0 && !t.content.empty(), "added token " << i << " of " << source_ << " has no id or content");
    id_to_bytes_[t.id] = t.content;
    has_id_[t.id] = true;
    added_by_first_byte_[static_cast<unsigned char>(t.content[0])].push_back(static_cast<int32_t>(i));
  }
  for (auto& list : added_by_first_byte_)
    std::stable_sort(list.begin(), list.end(),
                     [&](int32_t x, int32_t y) { return added_[x].content.size() > added_[y].content.size(); });

  if (!pre_splitter_)
    for (const auto& p : cfg.split_regexes) regexes_.push_back(std::make_unique<BpeRegex>(p, source_));
}

int64_t BpeTokenizer::token_id(const std::string& token) const {
  for (const auto& t : added_)
    if (t.content == token) return t.id;
  std::string bytes;
  if (byte_level_to_bytes(token, bytes)) {
    auto it = bytes_to_id_.find(bytes);
    if (it != bytes_to_id_.end()) return it->second;
  }
  auto it = bytes_to_id_.find(token);
  return it == bytes_to_id_.end() ? -1 : it->second;
}

const BpeTokenizer::Merge* BpeTokenizer::find_merge(int32_t a, int32_t b) const {
  auto it = merges_.find(pair_key(a, b));
  return it == merges_.end() ? nullptr : &it->second;
}

std::vector<int32_t> BpeTokenizer::merge_word(std::string_view bytes, bool use_heap) const {
  std::vector<int32_t> syms;
  syms.reserve(bytes.size());
  for (unsigned char c : bytes) syms.push_back(byte_id_[c]);
  if (!use_heap) {  // lowest rank first, leftmost on ties
    while (syms.size() > 1) {
      int32_t best_rank = INT32_MAX, best_id = -1;
      size_t best_i = 0;
      for (size_t i = 0; i + 1 < syms.size(); ++i) {
        const Merge* m = find_merge(syms[i], syms[i + 1]);
        if (m && m->rank < best_rank) best_rank = m->rank, best_id = m->id, best_i = i;
      }
      if (best_id < 0) break;
      syms[best_i] = best_id;
      syms.erase(syms.begin() + static_cast<std::ptrdiff_t>(best_i) + 1);
    }
    return syms;
  }
  // Heap of candidate pairs ordered by (rank, position); stale entries are skipped on pop.
  struct Cand {
    int32_t rank, pos, left, right;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  const int32_t n = static_cast<int32_t>(syms.size());
  std::vector<int32_t> prev(n), next(n);
  for (int32_t i = 0; i < n; ++i) prev[i] = i - 1, next[i] = i + 1 < n ? i + 1 : -1;
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int32_t i) {
    if (i < 0 || next[i] < 0) return;
    if (const Merge* m = find_merge(syms[i], syms[next[i]])) heap.push({m->rank, i, syms[i], syms[next[i]]});
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    int32_t j = next[c.pos];
    if (syms[c.pos] != c.left || j < 0 || syms[j] != c.right) continue;  // stale
    syms[c.pos] = find_merge(c.left, c.right)->id;
    syms[j] = -1;
    next[c.pos] = next[j];
    if (next[j] >= 0) prev[next[j]] = c.pos;
    push(prev[c.pos]);
    push(c.pos);
  }
  std::vector<int32_t> out;
  for (int32_t i = 0; i >= 0; i = next[i]) out.push_back(syms[i]);
  return out;
}

void BpeTokenizer::encode_piece(std::string_view piece, Cache& cache, std::vector<int64_t>& out) const {
  if (piece.size() == 1) {
    int32_t id = byte_id_[static_cast<unsigned char>(piece[0])];
    if (id >= 0) out.push_back(id);
    return;
  }
  bool cacheable = piece.size() <= kCacheMaxLen;
  std::string key;
  if (cacheable) {
    key.assign(piece);
    auto it = cache.find(key);
    if (it != cache.end()) {
      for (int32_t id : it->second)
        if (id >= 0) out.push_back(id);
      return;
    }
  }
  std::vector<int32_t> ids;
  if (ignore_merges_) {
    auto it = bytes_to_id_.find(cacheable ? key : std::string(piece));
    if (it != bytes_to_id_.end()) ids.push_back(it->second);
  }
  if (ids.empty()) ids = merge_word(piece, piece.size() >= kHeapFrom);
  for (int32_t id : ids)
    if (id >= 0) out.push_back(id);
  if (cacheable) cache.emplace(std::move(key), std::move(ids));
}

void BpeTokenizer::encode_segment(std::string_view text, Scratch& sc, Cache& cache,
                                  std::vector<int64_t>& out) const {
  if (text.empty()) return;
  if (nfc_ && !is_ascii(text)) {
    utf8proc_uint8_t* nfc = nullptr;
    utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()),
                                      static_cast<utf8proc_ssize_t>(text.size()), &nfc,
                                      static_cast<utf8proc_option_t>(UTF8PROC_STABLE | UTF8PROC_COMPOSE));
    SQ_CHECK(n >= 0, "NFC normalization failed: " << utf8proc_errmsg(n));
    sc.normalized.assign(reinterpret_cast<const char*>(nfc), static_cast<size_t>(n));
    std::free(nfc);
    text = sc.normalized;
  }
  if (add_prefix_space_ && text[0] != ' ') {
    std::string spaced = " " + std::string(text);
    sc.normalized.swap(spaced);
    text = sc.normalized;
  }
  if (pre_splitter_) {
    std::vector<std::string_view> words;
    pre_splitter_->split(text, words);
    for (std::string_view w : words)
      if (!w.empty()) encode_piece(w, cache, out);
    return;
  }
  // Each regex stage splits the pieces of the previous one; the last stage's pieces are BPE'd.
  auto run = [&](auto& self, size_t stage, std::string_view piece) -> void {
    if (stage == regexes_.size()) {
      encode_piece(piece, cache, out);
      return;
    }
    regexes_[stage]->split(piece, sc.md[stage], sc.mctx,
                           [&](std::string_view sub) { self(self, stage + 1, sub); });
  };
  run(run, 0, text);
}

bool BpeTokenizer::match_added(const std::string& text, size_t pos, size_t seg_begin, size_t& begin,
                               size_t& end, int64_t& id) const {
  for (int32_t i : added_by_first_byte_[static_cast<unsigned char>(text[pos])]) {
    const BpeAddedToken& t = added_[i];
    if (text.compare(pos, t.content.size(), t.content) != 0) continue;
    begin = pos;
    end = pos + t.content.size();
    if (t.lstrip)
      while (begin > seg_begin && is_space(text[begin - 1])) --begin;
    if (t.rstrip)
      while (end < text.size() && is_space(text[end])) ++end;
    id = t.id;
    return true;
  }
  return false;
}

std::vector<int64_t> BpeTokenizer::encode_partitioned(const std::string& text) const {
  struct Frag {
    size_t b, e;
    int64_t id;  // -1: raw text
  };
  std::vector<Frag> frags{{0, text.size(), -1}}, next;
  for (const BpeAddedToken& t : added_) {
    next.clear();
    for (const Frag& f : frags) {
      if (f.id >= 0) {
        next.push_back(f);
        continue;
      }
      size_t b = f.b;
      while (b < f.e) {
        size_t m = std::string_view(text.data(), f.e).find(t.content, b);
        if (m == std::string_view::npos) break;
        size_t le = m;
        if (t.lstrip)
          while (le > b && is_space(text[le - 1])) --le;
        if (le > b) next.push_back({b, le, -1});
        next.push_back({m, m + t.content.size(), t.id});
        b = m + t.content.size();
        if (t.rstrip)
          while (b < f.e && is_space(text[b])) ++b;
      }
      if (b < f.e) next.push_back({b, f.e, -1});
    }
    frags.swap(next);
  }
  std::vector<int64_t> out;
  out.reserve(text.size() / 3 + 4);
  Scratch sc(regexes_);
  Cache cache;
  for (const Frag& f : frags) {
    if (f.id >= 0)
      out.push_back(f.id);
    else
      encode_segment(std::string_view(text).substr(f.b, f.e - f.b), sc, cache, out);
  }
  return out;
}

std::vector<int64_t> BpeTokenizer::encode(const std::string& text) const {
  size_t bad = invalid_utf8_at(text);
  SQ_CHECK(bad == std::string::npos, "cannot tokenize: the text is not valid UTF-8 at byte " << bad);
  if (added_in_list_order_) return encode_partitioned(text);
  std::vector<int64_t> out;
  out.reserve(text.size() / 3 + 4);
  Scratch sc(regexes_);
  Cache cache;
  size_t seg = 0;
  for (size_t pos = 0; pos < text.size(); ++pos) {
    if (added_by_first_byte_[static_cast<unsigned char>(text[pos])].empty()) continue;
    size_t begin, end;
    int64_t id;
    if (!match_added(text, pos, seg, begin, end, id)) continue;
    encode_segment(std::string_view(text).substr(seg, begin - seg), sc, cache, out);
    out.push_back(id);
    seg = end;
    pos = end - 1;
  }
  encode_segment(std::string_view(text).substr(seg), sc, cache, out);
  return out;
}

std::string BpeTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::string out;
  for (int64_t id : ids) {
    SQ_CHECK(id >= 0 && id < vocab_size() && has_id_[id],
             "cannot decode token id " << id << ": not in the vocabulary of " << source_);
    out += id_to_bytes_[id];
  }
  return out;
}

}  // namespace sq
