// Tests of Hadamard matrices of orders that are not powers of two: Paley factors over prime
// and prime-power fields (H·Hᵀ = m·I in integers), the automatic factorisation n = 2^k·m,
// the dense matrix and its Kronecker convention, seeded random signs, and the fast
// transform against the dense product (moderate n) and at the Llama/Mistral MLP widths.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include "sliderquant/core/error.h"
#include "sliderquant/transform/hadamard.h"
#include "test_util.h"

using namespace sq;
using sq::testing::error_of;

namespace {

double max_diff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

at::Tensor randn64(at::IntArrayRef shape, uint64_t seed) {
  return at::randn(shape, at::detail::createCPUGenerator(seed), at::TensorOptions().dtype(at::kDouble));
}

// The ±1 Sylvester matrix of order p (float64).
at::Tensor sylvester_pm1(int64_t p) { return hadamard_matrix(p, at::kDouble).mul(std::sqrt(double(p))).round(); }

}  // namespace

// ---- Paley factors ---------------------------------------------------------------------------

TEST(HadamardPaley, IntegerOrthogonalForPrimeAndPrimePowerFields) {
  // (q, construction, order): prime fields, GF(3^3) (28 both ways), GF(5^2), GF(7^2), GF(7^3).
  const std::vector<std::tuple<int64_t, int, int64_t>> cases = {
      {3, 1, 4},   {7, 1, 8},   {11, 1, 12}, {19, 1, 20},  {27, 1, 28},  {43, 1, 44},  {343, 1, 344},
      {5, 2, 12},  {13, 2, 28}, {17, 2, 36}, {25, 2, 52},  {37, 2, 76},  {49, 2, 100}};
  for (const auto& [q, kind, m] : cases) {
    at::Tensor h = paley_hadamard(q, kind);
    ASSERT_EQ(h.sizes(), (std::vector<int64_t>{m, m})) << q;
    EXPECT_EQ(h.scalar_type(), at::kLong);
    EXPECT_TRUE(at::equal(h.abs(), at::ones({m, m}, at::kLong))) << q << " entries are ±1";
    EXPECT_TRUE(at::equal(at::matmul(h, h.t()), at::eye(m, at::kLong) * m)) << "q = " << q << " kind " << kind;
    if (kind == 1) {  // I + S with S skew-symmetric
      at::Tensor s = h - at::eye(m, at::kLong);
      EXPECT_TRUE(at::equal(s, -s.t())) << q;
    } else {  // S ⊗ A + I ⊗ B with S, A, B symmetric
      EXPECT_TRUE(at::equal(h, h.t())) << q;
    }
  }
  EXPECT_NE(error_of([] { paley_hadamard(9, 1); }).find("q = 9 is not a prime power ≡ 3 mod 4 (Paley I)"),
            std::string::npos);
  EXPECT_NE(error_of([] { paley_hadamard(21, 2); }).find("q = 21 is not a prime power ≡ 1 mod 4 (Paley II)"),
            std::string::npos);
  EXPECT_NE(error_of([] { paley_hadamard(11, 3); }).find("construction 3 is not 1 or 2"), std::string::npos);
}

// ---- plans -----------------------------------------------------------------------------------

TEST(HadamardPlan, ChoosesTheSmallestFactor) {
  struct Want {
    int64_t n, pow2, m;
    int paley;
    int64_t q;
  };
  for (const Want& w : std::vector<Want>{{11008, 32, 344, 1, 343},   // Llama-2-7B MLP
                                         {14336, 512, 28, 1, 27},    // Llama-3-8B, Mistral-7B MLP
                                         {13824, 128, 108, 1, 107},  // Llama-2-13B MLP
                                         {18944, 128, 148, 2, 73},   // Qwen2.5-7B MLP
                                         {12, 1, 12, 1, 11},
                                         {24, 2, 12, 1, 11},
                                         {40, 2, 20, 1, 19},
                                         {36, 1, 36, 2, 17},
                                         {4096, 4096, 1, 0, 0},
                                         {1, 1, 1, 0, 0}}) {
    HadamardPlan p = hadamard_plan(w.n);
    EXPECT_EQ(p.n, w.n);
    EXPECT_EQ(p.pow2, w.pow2) << w.n;
    EXPECT_EQ(p.m, w.m) << w.n;
    EXPECT_EQ(p.paley, w.paley) << w.n;
    EXPECT_EQ(p.q, w.q) << w.n;
  }
  EXPECT_EQ(hadamard_plan(11008).describe(), "11008 = 32 x 344 (Paley I, q = 343 = 7^3)");
  EXPECT_EQ(hadamard_plan(18944).describe(), "18944 = 128 x 148 (Paley II, q = 73)");
  EXPECT_EQ(hadamard_plan(4096).describe(), "4096 = 2^12 (Sylvester)");
  // Coverage of the multiples of 4 up to 20000 (cross-checked by an independent script).
  int supported = 0;
  for (int64_t n = 4; n <= 20000; n += 4) supported += hadamard_supported(n);
  EXPECT_EQ(supported, 2877);
  for (int64_t n : {92, 116, 156, 172, 184, 188}) EXPECT_FALSE(hadamard_supported(n)) << n;
  EXPECT_TRUE(hadamard_supported(344));
}

TEST(HadamardPlan, UnsupportedOrdersNameNAndTheSupportedOrders) {
  for (int64_t n : {172, 6, 7, 0, -4}) {
    EXPECT_FALSE(hadamard_supported(n));
    std::string e = error_of([n] { hadamard_plan(n); });
    EXPECT_NE(e.find("order n = " + std::to_string(n)), std::string::npos) << e;
    EXPECT_NE(e.find("Paley I"), std::string::npos) << e;
    EXPECT_NE(e.find("multiple of 4"), std::string::npos) << e;
  }
  EXPECT_NE(error_of([] { hadamard_any(172); }).find("n = 172"), std::string::npos);
  EXPECT_NE(error_of([] { random_hadamard_any(6, 0); }).find("n = 6"), std::string::npos);
  EXPECT_NE(error_of([] { hadamard_transform(at::zeros({2, 172})); }).find("n = 172"), std::string::npos);
  EXPECT_NE(error_of([] { hadamard_transform(at::zeros({2, 12}, at::kLong)); }).find("not floating point"),
            std::string::npos);
  EXPECT_NE(error_of([] { hadamard_any(12, at::kInt); }).find("not floating point"), std::string::npos);
}

// ---- dense matrices --------------------------------------------------------------------------

TEST(HadamardAny, OrthogonalWithEntriesOneOverSqrtN) {
  for (int64_t n : {12, 20, 24, 28, 40, 44, 52, 344, 688, 28 * 64}) {
    at::Tensor h = hadamard_any(n, at::kDouble);
    ASSERT_EQ(h.sizes(), (std::vector<int64_t>{n, n}));
    EXPECT_TRUE(at::equal(h.abs(), at::full({n, n}, 1.0 / std::sqrt(double(n)), at::kDouble))) << n;
    EXPECT_LT(max_diff(at::matmul(h, h.t()), at::eye(n, at::kDouble)), 1e-12) << n;
    at::Tensor hf = hadamard_any(n);
    EXPECT_EQ(hf.scalar_type(), at::kFloat);
    EXPECT_TRUE(at::equal(hf, h.to(at::kFloat))) << n;  // rounded once from the exact value
  }
  for (int64_t n = 1; n <= 256; n *= 2) EXPECT_TRUE(at::equal(hadamard_any(n), hadamard_matrix(n))) << n;
  EXPECT_EQ(hadamard_any(12, at::kBFloat16).scalar_type(), at::kBFloat16);
}

TEST(HadamardAny, KroneckerConventionFactorOnTheOuterIndex) {
  // H_n[a·p + b][c·p + d] = H_m[a][c]·S[b][d] / sqrt(n), i.e. H_m ⊗ S.
  for (auto [n, q, kind] : std::vector<std::tuple<int64_t, int64_t, int>>{{24, 11, 1}, {112, 27, 1}, {344, 343, 1}}) {
    HadamardPlan p = hadamard_plan(n);
    ASSERT_EQ(p.q, q);
    at::Tensor f = paley_hadamard(q, kind).to(at::kDouble);
    at::Tensor want = at::kron(f, sylvester_pm1(p.pow2));
    EXPECT_TRUE(at::equal(hadamard_any(n, at::kDouble).mul(std::sqrt(double(n))).round(), want)) << n;
  }
}

TEST(HadamardAny, RandomSignsSeededAndEqualToRandomHadamardForPowersOfTwo) {
  for (int64_t n = 1; n <= 512; n *= 2) {
    EXPECT_TRUE(at::equal(random_hadamard_any(n, 7), random_hadamard(n, 7))) << n;
    EXPECT_TRUE(at::equal(random_hadamard_any(n, 7, at::kDouble), random_hadamard(n, 7, at::kDouble))) << n;
  }
  for (int64_t n : {12, 28, 344}) {
    at::Tensor q = random_hadamard_any(n, 3, at::kDouble);
    EXPECT_LT(max_diff(at::matmul(q, q.t()), at::eye(n, at::kDouble)), 1e-12) << n;
    at::Tensor ratio = q / hadamard_any(n, at::kDouble);  // constant ±1 along each row
    EXPECT_TRUE(at::equal(ratio, ratio.select(1, 0).unsqueeze(1).expand({n, n}))) << n;
    EXPECT_TRUE(at::equal(ratio.abs(), at::ones({n, n}, at::kDouble))) << n;
    EXPECT_GT(ratio.select(1, 0).lt(0).sum().item<int64_t>(), 0) << n;  // some rows flipped
    EXPECT_TRUE(at::equal(random_hadamard_any(n, 3), random_hadamard_any(n, 3))) << n;
    EXPECT_FALSE(at::equal(random_hadamard_any(n, 3), random_hadamard_any(n, 4))) << n;
  }
}

// ---- the fast transform ----------------------------------------------------------------------

TEST(HadamardTransform, EqualsDenseMatmul) {
  for (int64_t n : {12, 20, 24, 28, 40, 64, 344, 688, 28 * 64}) {
    at::Tensor x = randn64({3, 5, n}, 100 + n);
    at::Tensor y = hadamard_transform(x);
    EXPECT_EQ(y.sizes(), x.sizes());
    EXPECT_EQ(y.scalar_type(), at::kDouble);
    EXPECT_LT(max_diff(y, at::matmul(x, hadamard_any(n, at::kDouble))), 1e-12) << n;
    at::Tensor xf = x.to(at::kFloat);
    EXPECT_LT(max_diff(hadamard_transform(xf), at::matmul(xf, hadamard_any(n))), 1e-5) << n;
  }
  at::Tensor strided = randn64({12, 7}, 1).t();  // non-contiguous [7, 12]
  EXPECT_LT(max_diff(hadamard_transform(strided), at::matmul(strided, hadamard_any(12, at::kDouble))), 1e-12);
  at::Tensor v = randn64({40}, 2);  // one dimension
  EXPECT_LT(max_diff(hadamard_transform(v), at::matmul(v, hadamard_any(40, at::kDouble))), 1e-12);
}

TEST(HadamardTransform, PreservesNormsAndInnerProductsAtMlpWidths) {
  for (int64_t n : {11008, 14336}) {
    at::Tensor x = randn64({6, n}, n);
    at::Tensor y = hadamard_transform(x);
    at::Tensor gx = at::matmul(x, x.t()), gy = at::matmul(y, y.t());  // norms² and inner products
    EXPECT_LT(max_diff(gy, gx), 1e-6) << n;
    // A few output coordinates against columns of the dense matrix, built from the factors:
    // column c·p + d of H_m ⊗ S is H_m[:, c] ⊗ S[:, d].
    HadamardPlan p = hadamard_plan(n);
    at::Tensor f = paley_hadamard(p.q, p.paley).to(at::kDouble), s = sylvester_pm1(p.pow2);
    for (int64_t j : {int64_t(0), int64_t(1), p.pow2 + 3, n / 2 + 5, n - 1}) {
      at::Tensor col = at::kron(f.select(1, j / p.pow2), s.select(1, j % p.pow2)) / std::sqrt(double(n));
      EXPECT_LT(max_diff(y.select(1, j), at::matmul(x, col)), 1e-10) << n << " column " << j;
    }
  }
}
