// The CPU speed work's guarantees: the BLAS kernels the CLI and the test binary run
// (tools/blas_kernels.cpp), the blocked eager attention (core/torch_compat), and quantize
// --save-calibration (the token ids handed to peer tools in bench/bench_speed.py).
#include <strings.h>
#include <cstdlib>
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "sliderquant/core/torch_compat.h"
#include "sliderquant/core/util.h"
#include "test_util.h"
#include "../tools/commands.h"

using namespace sq;

namespace {

// What tools/blas_kernels.cpp must have chosen on this CPU when OpenBLAS did not know it:
// the widest kernels the CPU runs ("" when it has neither AVX-512 nor AVX2 + FMA).
std::string widest_kernels() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512cd"))
    return "SkylakeX";
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
  return "";
}

// OpenBLAS's names for the cores whose kernels are at least as wide as WANT's.
bool at_least(const std::string& core, const std::string& want) {
  static const char* avx512[] = {"SkylakeX", "Cooperlake", "SapphireRapids"};
  static const char* avx2[] = {"Haswell", "Zen", "SkylakeX", "Cooperlake", "SapphireRapids"};
  if (want.empty()) return true;
  for (const char* c : want == "SkylakeX" ? std::vector<const char*>(std::begin(avx512), std::end(avx512))
                                          : std::vector<const char*>(std::begin(avx2), std::end(avx2)))
    if (strcasecmp(core.c_str(), c) == 0) return true;
  return false;
}

}  // namespace

// Debian's OpenBLAS 0.3.21 takes unknown new Intel cores for Prescott (SSE3): 1.5-2x slower
// float32 matmuls than the kernels the CPU can run, and a strsm kernel that crashes. Both the
// CLI (its report's "blas") and this test process must run the widest kernels the CPU has.
TEST(CpuKernels, TheCliAndTheTestsRunTheWidestOpenBlasKernelsTheCpuHas) {
  const std::string here = sq::cli::blas_kernels();  // this process (tools/blas_kernels.cpp is linked in)
  if (here.empty()) GTEST_SKIP() << "libtorch does not call OpenBLAS here (another BLAS)";
  const std::string want = widest_kernels();
  // A machine whose environment sets OPENBLAS_CORETYPE (some images do, e.g. Haswell on an
  // AMD EPYC with AVX-512) has chosen for every process, this one included: the choice is
  // kept, not widened. The CLI below runs without it.
  const char* given = std::getenv("OPENBLAS_CORETYPE");
  if (given != nullptr && *given != '\0')
    EXPECT_EQ(strcasecmp(here.c_str(), given), 0) << "OPENBLAS_CORETYPE=" << given << " but this process runs " << here;
  else
    EXPECT_TRUE(at_least(here, want)) << "test process runs OpenBLAS " << here << ", CPU can run " << want;

  const std::string json = sq::testing::fresh_path("kernels_eval.json");
  auto r = sq::testing::run_cli("eval " + sq::testing::kStoriesModel + " --ppl " + sq::testing::kWikiText +
                                    " --seqlen 64 --max-windows 1 --quiet --json " + json,
                                "env -u OPENBLAS_CORETYPE");
  ASSERT_EQ(r.code, 0) << r.out;
  const std::string cli = nlohmann::json::parse(read_file(json)).value("blas", "");
  EXPECT_TRUE(at_least(cli, want)) << "the CLI runs OpenBLAS " << cli << ", CPU can run " << want;

  // OPENBLAS_CORETYPE set by the user wins.
  auto u = sq::testing::run_cli("eval " + sq::testing::kStoriesModel + " --ppl " + sq::testing::kWikiText +
                                    " --seqlen 64 --max-windows 1 --quiet --json " + json,
                                "OPENBLAS_CORETYPE=Prescott");
  ASSERT_EQ(u.code, 0) << u.out;
  EXPECT_EQ(nlohmann::json::parse(read_file(json)).value("blas", ""), "Prescott");
}

// --save-calibration writes the exact windows the run calibrated on: their count and length as
// asked, ids inside the vocabulary, and the same sha256 the report gives the calibration set.
TEST(QuantizeCli, SaveCalibrationWritesTheWindowsTheReportHashes) {
  const std::string out = sq::testing::fresh_path("savecal_out");
  const std::string ids = sq::testing::fresh_path("savecal_ids.json");
  const std::string rep = sq::testing::fresh_path("savecal_report.json");
  auto r = sq::testing::run_cli("quantize " + sq::testing::kStoriesModel + " --recipe gptq-w4g128 --calib " +
                                sq::testing::kWikiText + " --samples 3 --seqlen 40 --seed 7 --out " + out +
                                " --save-calibration " + ids + " --json " + rep + " --quiet");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto windows = nlohmann::json::parse(read_file(ids));
  ASSERT_TRUE(windows.is_array());
  ASSERT_EQ(windows.size(), 3u);
  std::vector<int64_t> flat;
  for (const auto& w : windows) {
    ASSERT_EQ(w.size(), 40u);
    for (const auto& t : w) {
      const int64_t id = t.get<int64_t>();
      EXPECT_GE(id, 0);
      EXPECT_LT(id, 512);  // stories260K's vocabulary
      flat.push_back(id);
    }
  }
  EXPECT_NE(windows[0], windows[1]);  // sampled windows, not one repeated
  const auto report = nlohmann::json::parse(read_file(rep));
  EXPECT_EQ(report["calibration"]["sha256"], sha256_hex(flat.data(), flat.size() * sizeof(int64_t)));
  EXPECT_EQ(report["calibration"]["samples"], 3);
  EXPECT_EQ(report["calibration"]["seqlen"], 40);
  // --dry-run writes the same windows without quantizing (no output, no work directory), and
  // refuses a recipe that takes no calibration.
  const std::string dry_out = sq::testing::fresh_path("savecal_dry_out");
  const std::string dry_ids = sq::testing::fresh_path("savecal_dry_ids.json");
  auto d = sq::testing::run_cli("quantize " + sq::testing::kStoriesModel + " --recipe gptq-w4g128 --calib " +
                                sq::testing::kWikiText + " --samples 3 --seqlen 40 --seed 7 --out " + dry_out +
                                " --dry-run --save-calibration " + dry_ids + " --quiet");
  ASSERT_EQ(d.code, 0) << d.out;
  EXPECT_EQ(nlohmann::json::parse(read_file(dry_ids)), windows);
  EXPECT_FALSE(std::filesystem::exists(dry_out));
  EXPECT_FALSE(std::filesystem::exists(dry_out + ".work"));
  auto n = sq::testing::run_cli("quantize " + sq::testing::kStoriesModel + " --recipe rtn-w4g128 --out " + dry_out +
                                " --dry-run --save-calibration " + dry_ids);
  EXPECT_EQ(n.code, 1) << n.out;
  EXPECT_NE(n.out.find("uses no calibration"), std::string::npos) << n.out;
}

// The eager attention works through blocks of 256 queries against only the keys each block may
// see; it must equal the full masked T x S softmax (causal, sliding window, a K/V cache longer
// than the queries) for lengths that leave a short last block.
TEST(CausalAttention, QueryBlocksEqualTheFullMaskedSoftmax) {
  auto reference = [](const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale, int64_t window) {
    const int64_t T = q.size(2), S = k.size(2);
    at::Tensor scores = at::matmul(q.to(at::kDouble), k.to(at::kDouble).transpose(-2, -1)) * scale;
    at::Tensor qi = at::arange(S - T, S, at::kLong).unsqueeze(1), kj = at::arange(0, S, at::kLong).unsqueeze(0);
    at::Tensor masked = kj > qi;
    if (window > 0) masked = masked.logical_or(kj <= qi - window);
    return at::matmul(at::softmax(scores.masked_fill(masked, -INFINITY), -1), v.to(at::kDouble));
  };
  for (int64_t T : {7, 256, 600}) {
    for (int64_t extra : {0, 40}) {  // S = T + extra: queries after cached keys
      for (int64_t window : {0, 100}) {
        const int64_t S = T + extra;
        at::Tensor q = sq::testing::seeded_randn({2, 3, T, 16}, 11 + T);
        at::Tensor k = sq::testing::seeded_randn({2, 3, S, 16}, 12 + T);
        at::Tensor v = sq::testing::seeded_randn({2, 3, S, 16}, 13 + T);
        at::Tensor got = causal_attention(q, k, v, 0.25, window);
        ASSERT_EQ(got.sizes(), q.sizes());
        const double err = (got.to(at::kDouble) - reference(q, k, v, 0.25, window)).abs().max().item<double>();
        EXPECT_LT(err, 2e-5) << "T " << T << " S " << S << " window " << window;
      }
    }
  }
}
