// bench/bench_tokenizer: load time and single-thread encode speed of a tokenizer on a text
// file (default use: the Llama 3 tokenizer on WikiText-2 test, see bench_tokenizer.sh).
// Prints a table row and a JSON line (with the sha256 of the ids as little-endian int32, to
// compare with tests/fixtures/tokenizers/reference_bpe.py --file); checks decode(encode(x)) == x.
#include <chrono>
#include <cstdio>
#include <string>

#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/data/tokenizer.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: bench_tokenizer TOKENIZER_DIR TEXT_FILE [REPEATS]\n");
    return 2;
  }
  using clock = std::chrono::steady_clock;
  auto secs = [](clock::time_point a, clock::time_point b) { return std::chrono::duration<double>(b - a).count(); };
  int repeats = argc > 3 ? std::stoi(argv[3]) : 3;
  try {
    auto t0 = clock::now();
    auto tok = sq::load_tokenizer(argv[1]);
    auto t1 = clock::now();
    std::string text = sq::read_file(argv[2]);
    double best = 1e30;
    std::vector<int64_t> ids;
    for (int r = 0; r < repeats; ++r) {
      auto a = clock::now();
      ids = tok->encode(text);
      best = std::min(best, secs(a, clock::now()));
    }
    auto d0 = clock::now();
    bool round_trip = tok->decode(ids) == text;
    double decode_s = secs(d0, clock::now());
    std::vector<int32_t> ids32(ids.begin(), ids.end());  // hashed as little-endian int32
    std::string ids_sha = sq::sha256_hex(ids32.data(), ids32.size() * sizeof(int32_t));
    std::printf("%-10s %-40s %10s %10s %10s %12s %10s %s\n", "kind", "tokenizer", "load_s", "encode_s", "MB/s",
                "tokens", "decode_s", "round_trip");
    std::printf("%-10s %-40s %10.3f %10.3f %10.2f %12zu %10.3f %s\n", tok->kind().c_str(), argv[1], secs(t0, t1),
                best, text.size() / 1e6 / best, ids.size(), decode_s, round_trip ? "ok" : "FAILED");
    std::printf("{\"tokenizer\": \"%s\", \"kind\": \"%s\", \"text\": \"%s\", \"bytes\": %zu, \"load_s\": %.4f, "
                "\"encode_s\": %.4f, \"tokens\": %zu, \"decode_s\": %.4f, \"round_trip\": %s, "
                "\"ids_sha256\": \"%s\"}\n",
                argv[1], tok->kind().c_str(), argv[2], text.size(), secs(t0, t1), best, ids.size(), decode_s,
                round_trip ? "true" : "false", ids_sha.c_str());
    return round_trip ? 0 : 1;
  } catch (const sq::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
