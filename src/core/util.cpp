// core/util: files (atomic writes), SHA-256 (FIPS 180-4), dtype names, memory figures.
#include "sliderquant/core/util.h"

#include <sys/resource.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "sliderquant/core/error.h"
#include "sliderquant/core/fs.h"

namespace sq {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  SQ_CHECK(f.good(), "cannot open " << path << ": " << std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  SQ_CHECK(!f.bad(), "error reading " << path);
  return ss.str();
}

void write_file_atomic(const std::string& path, const std::string& contents) {
  remove_stale_temps(path);
  std::string tmp = temp_sibling(path);
  FILE* f = std::fopen(tmp.c_str(), "wb");
  SQ_CHECK(f, "cannot write " << path << ": " << std::strerror(errno));
  size_t n = std::fwrite(contents.data(), 1, contents.size(), f);
  bool ok = n == contents.size() && std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
  ok = (std::fclose(f) == 0) && ok;
  if (!ok) {
    std::remove(tmp.c_str());
    SQ_FAIL("cannot write " << path << ": " << std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    std::remove(tmp.c_str());
    SQ_FAIL("cannot rename " << tmp << " to " << path << ": " << std::strerror(e));
  }
}

void check_writable_file(const std::string& path, const std::string& what) {
  std::string dir = parent_dir(path);
  SQ_CHECK(is_directory(dir), what << " " << path << ": directory " << dir << " does not exist");
  SQ_CHECK(::access(dir.c_str(), W_OK) == 0, what << " " << path << ": directory " << dir << " is not writable");
  SQ_CHECK(!is_directory(path), what << " " << path << " is a directory");
}

bool path_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

bool is_directory(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string path_join(const std::string& a, const std::string& b) {
  if (a.empty() || (!b.empty() && b[0] == '/')) return b;
  return a.back() == '/' ? a + b : a + "/" + b;
}

std::string parent_dir(const std::string& path) {
  auto p = path.find_last_of('/');
  if (p == std::string::npos) return ".";
  if (p == 0) return "/";
  return path.substr(0, p);
}

// ---- SHA-256 -------------------------------------------------------------------------
namespace {
constexpr std::array<uint32_t, 64> kK = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

inline uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

struct Sha256 {
  std::array<uint32_t, 8> h = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  uint8_t buf[64];
  size_t buf_len = 0;
  uint64_t total = 0;

  void block(const uint8_t* p) {
    uint32_t w[64];
    for (int i = 0; i < 16; ++i)
      w[i] = uint32_t(p[4 * i]) << 24 | uint32_t(p[4 * i + 1]) << 16 | uint32_t(p[4 * i + 2]) << 8 |
             uint32_t(p[4 * i + 3]);
    for (int i = 16; i < 64; ++i) {
      uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
      uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
    for (int i = 0; i < 64; ++i) {
      uint32_t S1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
      uint32_t ch = (e & f) ^ (~e & g);
      uint32_t t1 = hh + S1 + ch + kK[size_t(i)] + w[i];
      uint32_t S0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
      uint32_t mj = (a & b) ^ (a & c) ^ (b & c);
      uint32_t t2 = S0 + mj;
      hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
  void update(const uint8_t* p, size_t n) {
    total += n;
    while (n > 0) {
      if (buf_len == 0 && n >= 64) { block(p); p += 64; n -= 64; continue; }
      size_t k = std::min(n, 64 - buf_len);
      std::memcpy(buf + buf_len, p, k);
      buf_len += k; p += k; n -= k;
      if (buf_len == 64) { block(buf); buf_len = 0; }
    }
  }
  std::string hex() {
    uint64_t bits = total * 8;
    uint8_t pad = 0x80;
    update(&pad, 1);
    uint8_t zero = 0;
    while (buf_len != 56) update(&zero, 1);
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = uint8_t(bits >> (56 - 8 * i));
    update(len, 8);
    char out[65];
    for (int i = 0; i < 8; ++i) std::snprintf(out + 8 * i, 9, "%08x", h[size_t(i)]);
    return std::string(out, 64);
  }
};
}  // namespace

std::string sha256_hex(const void* data, size_t n) {
  Sha256 s;
  s.update(static_cast<const uint8_t*>(data), n);
  return s.hex();
}

std::string sha256_file(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  SQ_CHECK(f, "cannot open " << path << ": " << std::strerror(errno));
  Sha256 s;
  std::vector<uint8_t> buf(1 << 20);
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) s.update(buf.data(), n);
  std::fclose(f);
  return s.hex();
}

// ---- dtypes, memory ------------------------------------------------------------------
c10::ScalarType parse_dtype(const std::string& name) {
  if (name == "float32" || name == "fp32" || name == "f32" || name == "float") return c10::kFloat;
  if (name == "bfloat16" || name == "bf16") return c10::kBFloat16;
  if (name == "float16" || name == "fp16" || name == "f16" || name == "half") return c10::kHalf;
  throw UsageError("unknown dtype '" + name + "' (use float32, bfloat16 or float16)");
}

std::string dtype_name(c10::ScalarType t) {
  switch (t) {
    case c10::kFloat: return "float32";
    case c10::kBFloat16: return "bfloat16";
    case c10::kHalf: return "float16";
    case c10::kDouble: return "float64";
    default: return c10::toString(t);
  }
}

int64_t peak_rss_bytes() {
  struct rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  return int64_t(ru.ru_maxrss) * 1024;
}

// Measured on stories260K (64 wide, so most activations are 128 KiB - 1 MiB, just above
// glibc's initial 128 KiB mmap threshold), one thread, `quantize` then `eval` in one run:
// the searched-ratio W2 recipe of RatioCli.W2Ladder... took 81.4 s (25.0 s of it in the kernel,
// 18.5 million page faults) with glibc's defaults and 58.7 s (0.2 s kernel, 37 thousand faults)
// with these thresholds, same perplexity to every printed digit, peak RSS 253 -> 259 MiB.
// Either threshold alone is not enough (43.6 s and 48.0 s on the mixed-GPTQ recipe, 28 s with
// both). Blocks of 32 MiB and more (a real model's logits, GPTQ's Hessians) stay mmap'ed.
bool tune_allocator() {
#if defined(__GLIBC__)
  const char* tun = std::getenv("GLIBC_TUNABLES");
  if ((tun && std::strstr(tun, "glibc.malloc.")) || std::getenv("MALLOC_MMAP_THRESHOLD_") ||
      std::getenv("MALLOC_TRIM_THRESHOLD_"))
    return false;
  const bool a = ::mallopt(M_MMAP_THRESHOLD, 32 << 20) == 1;
  const bool b = ::mallopt(M_TRIM_THRESHOLD, 128 << 20) == 1;
  return a && b;
#else
  return false;
#endif
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024.0 && u < 4) { b /= 1024.0; ++u; }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", b, units[u]);
  return buf;
}

bool stderr_is_tty() { return ::isatty(STDERR_FILENO) != 0; }

}  // namespace sq
