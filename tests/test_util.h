// Helpers shared by the test files: running the CLI, per-process temporary paths (so
// concurrent test runs on one machine do not collide), fixture paths, and in-domain text
// sampled from stories260K itself.
#pragma once
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "sliderquant/core/error.h"
#include "sliderquant/core/util.h"
#include "sliderquant/data/tokenizer.h"
#include "sliderquant/model/forward.h"
#include "sliderquant/model/model.h"

namespace sq::testing {

inline const std::string kStoriesModel = std::string(SQ_FIXTURES_DIR) + "/stories260K/hf";
inline const std::string kWikiText = std::string(SQ_FIXTURES_DIR) + "/text/wikitext2_head.txt";

struct CliResult {
  int code;
  std::string out;  // stdout + stderr
};

// Runs the sliderquant executable with ARGS (a shell fragment), capturing its output;
// ENV ("NAME=value ...") is set for that process only.
inline CliResult run_cli(const std::string& args, const std::string& env = "") {
  FILE* p = popen((env + " " + std::string(SQ_CLI_PATH) + " " + args + " 2>&1").c_str(), "r");
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int st = pclose(p);
  return {WIFEXITED(st) ? WEXITSTATUS(st) : -1, out};
}

// Every path fresh_path handed out in this process (tests/test_util.cpp removes them when the
// process's tests all passed; a failure keeps them for a look, as does SQ_KEEP_TEST_DIRS=1).
inline std::vector<std::string>& fresh_paths() {
  static std::vector<std::string> paths;
  return paths;
}

// A fresh path under the test temp dir, unique to this process; removed if it exists.
// With MAKE, created as an empty directory.
inline std::string fresh_path(const std::string& name, bool make = false) {
  std::string d = ::testing::TempDir() + "sq" + std::to_string(::getpid()) + "_" + name;
  std::error_code ec;
  std::filesystem::remove_all(d, ec);
  EXPECT_FALSE(ec) << "removing " << d << ": " << ec.message();
  if (make) {
    std::filesystem::create_directories(d, ec);
    EXPECT_FALSE(ec) << "creating " << d << ": " << ec.message();
  }
  fresh_paths().push_back(d);
  return d;
}

// The message of the sq::Error F throws, or "<no error>".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "<no error>";
}

// Standard normal values from an explicitly seeded generator (no global RNG state).
inline at::Tensor seeded_randn(at::IntArrayRef shape, uint64_t seed) {
  return at::randn(shape, at::detail::createCPUGenerator(seed), at::kFloat);
}

// Inputs with correlated features and uneven scales: X = (Z A) * colscale. [n, in]
inline at::Tensor correlated_inputs(int64_t n, int64_t in, uint64_t seed) {
  at::Tensor Z = seeded_randn({n, in}, seed);
  at::Tensor A = seeded_randn({in, in}, seed + 1).div(std::sqrt(double(in))).add(at::eye(in));
  at::Tensor colscale = seeded_randn({in}, seed + 2).mul(0.5).exp();
  return Z.mm(A).mul(colscale);
}

// In-domain text for a TinyStories model: N stories of LEN tokens sampled from the
// full-precision stories260K itself (temperature 1, seeded). On out-of-domain text
// (WikiText-2) a 260K-parameter model's perplexity is so high that quantization noise can
// lower it; on its own samples the full-precision model is the reference every quantized
// model must fall short of.
//
// generate_stories samples them (one full forward per token, no KV cache: about 135 s for
// 32 x 300 tokens, paid by every test that used it); sampled_stories reads the
// samples the generator wrote into tests/fixtures/text/stories260k_sampled_s<seed>_n<n>_l<len>.txt
// (tests/fixtures/PROVENANCE.md). SQ_REGENERATE_STORIES=1 writes that file from the generator
// first; a missing file is an error naming it.
inline std::string generate_stories(uint64_t seed, int n, int len) {
  Model m = load_model(kStoriesModel);
  auto tok = load_tokenizer(kStoriesModel);
  Runner r(m, {});
  auto gen = at::detail::createCPUGenerator(seed);
  at::Tensor x = at::full({n, 1}, tok->bos_id, at::kLong);
  for (int t = 0; t < len; ++t) {
    at::Tensor p = at::softmax(r.logits(x).select(1, x.size(1) - 1), -1);
    x = at::cat({x, at::multinomial(p, 1, false, gen)}, 1);
  }
  std::string text;
  for (int i = 0; i < n; ++i) {
    at::Tensor row = x[i].narrow(0, 1, len).contiguous();
    text += tok->decode(std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + len)) + "\n";
  }
  return text;
}

inline std::string sampled_stories(uint64_t seed, int n, int len) {
  const std::string path = std::string(SQ_FIXTURES_DIR) + "/text/stories260k_sampled_s" + std::to_string(seed) + "_n" +
                           std::to_string(n) + "_l" + std::to_string(len) + ".txt";
  const char* regen = std::getenv("SQ_REGENERATE_STORIES");
  if (regen != nullptr && std::string(regen) == "1") write_file_atomic(path, generate_stories(seed, n, len));
  if (!path_exists(path))
    throw std::runtime_error(path + " is missing: rerun the test with SQ_REGENERATE_STORIES=1 to sample it");
  return read_file(path);
}

// Quantizes stories260K with recipes on one in-domain calibration and evaluation text
// (sampled_stories seeds 1 and 2) in a fresh directory named TAG.
struct StoriesLadder {
  std::string dir;
  explicit StoriesLadder(const std::string& tag) : dir(fresh_path(tag, true)) {
    write_file_atomic(dir + "/calib.txt", sampled_stories(1, 16, 200));
    write_file_atomic(dir + "/eval.txt", sampled_stories(2, 16, 200));
  }
  // Quantizes with RECIPE (name or path) into dir/TAG; returns the --json report.
  nlohmann::json run(const std::string& recipe, const std::string& tag) const {
    CliResult r = run_cli("quantize " + kStoriesModel + " --recipe " + recipe + " --out " + dir + "/" + tag +
                          " --calib " + dir + "/calib.txt --eval " + dir + "/eval.txt -q --json " + dir + "/" + tag +
                          ".json");
    EXPECT_EQ(r.code, 0) << recipe << "\n" << r.out;
    return nlohmann::json::parse(read_file(dir + "/" + tag + ".json"));
  }
  static double ppl(const nlohmann::json& rep) { return rep["perplexity"][0]["ppl"].get<double>(); }
};

}  // namespace sq::testing
