// transform/hadamard: Sylvester Hadamard matrices, QuaRot's randomised Hadamard (Ashkboos
// et al. 2024), D²Quant's block-diagonal (groupwise) variant and the fast Walsh-Hadamard
// transform; Hadamard matrices of other orders from Paley's constructions over GF(p^e) times a
// Sylvester factor, and their fast transform. Matrices are built exactly (±1) and scaled in
// the requested dtype; random signs come from an explicitly seeded CPU generator (no global
// RNG state).
#include "sliderquant/transform/hadamard.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <utility>
#include <vector>

#include "sliderquant/core/error.h"

namespace sq {

namespace {

void check_power_of_two(int64_t n, const char* what) {
  SQ_CHECK(is_power_of_two(n), what << ": size " << n
                                    << " is not a power of two (use a power-of-two block size; hadamard_any "
                                       "and hadamard_transform take other orders)");
}

// n random signs ±1 (float64) from a generator seeded with `seed`.
at::Tensor random_signs(int64_t n, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::Tensor bits = at::randint(2, {n}, gen, at::TensorOptions().dtype(at::kLong));
  return bits.to(at::kDouble).mul_(2).sub_(1);  // {0,1} -> {-1,+1}
}

// ---- prime powers and GF(p^e) ---------------------------------------------------------------

// (p, e) with q = p^e and p prime, or (0, 0) when q is not a prime power.
std::pair<int64_t, int> prime_power(int64_t q) {
  if (q < 2) return {0, 0};
  int64_t p = q;
  for (int64_t d = 2; d * d <= q; ++d) {
    if (q % d == 0) {
      p = d;
      break;
    }
  }
  int e = 0;
  while (q % p == 0) {
    q /= p;
    ++e;
  }
  return q == 1 ? std::make_pair(p, e) : std::make_pair(int64_t(0), 0);
}

// Polynomials over GF(p) as coefficient vectors, lowest degree first.
using Poly = std::vector<int64_t>;

// The remainder of a modulo the monic g (both over GF(p)).
Poly poly_mod(Poly a, const Poly& g, int64_t p) {
  const size_t dg = g.size() - 1;
  for (size_t d = a.size(); d-- > dg;) {
    const int64_t c = a[d];
    if (c == 0) continue;
    for (size_t i = 0; i <= dg; ++i) a[d - dg + i] = ((a[d - dg + i] - c * g[i]) % p + p) % p;
  }
  a.resize(dg);
  return a;
}

// The monic polynomial of degree `deg` whose lower coefficients are the base-p digits of `code`.
Poly monic_from_code(int64_t code, int deg, int64_t p) {
  Poly f(deg + 1, 0);
  for (int i = 0; i < deg; ++i, code /= p) f[i] = code % p;
  f[deg] = 1;
  return f;
}

int64_t int_pow(int64_t b, int e) {
  int64_t r = 1;
  while (e-- > 0) r *= b;
  return r;
}

// True when the monic f of degree e has no monic factor of degree 1..e/2.
bool irreducible(const Poly& f, int64_t p) {
  const int e = int(f.size()) - 1;
  for (int d = 1; d <= e / 2; ++d) {
    for (int64_t code = 0; code < int_pow(p, d); ++code) {
      Poly r = poly_mod(f, monic_from_code(code, d, p), p);
      bool zero = true;
      for (int64_t c : r) zero = zero && c == 0;
      if (zero) return false;
    }
  }
  return true;
}

// GF(p^e): element x in [0, p^e) stands for Σ c_i t^i with c_i the base-p digits of x,
// arithmetic modulo the first monic irreducible of degree e (in order of its digit code).
class GaloisField {
 public:
  GaloisField(int64_t p, int e) : p_(p), e_(e), q_(int_pow(p, e)) {
    for (int64_t code = 0;; ++code) {
      modulus_ = monic_from_code(code, e, p);
      if (irreducible(modulus_, p)) break;
    }
  }
  int64_t size() const { return q_; }
  int64_t sub(int64_t a, int64_t b) const {
    int64_t r = 0;
    for (int64_t i = 0, w = 1; i < e_; ++i, w *= p_, a /= p_, b /= p_) r += ((a % p_ - b % p_ + p_) % p_) * w;
    return r;
  }
  int64_t mul(int64_t a, int64_t b) const {
    Poly pa = digits(a), pb = digits(b), prod(2 * e_ - 1, 0);
    for (int i = 0; i < e_; ++i) {
      for (int j = 0; j < e_; ++j) prod[i + j] = (prod[i + j] + pa[i] * pb[j]) % p_;
    }
    Poly r = poly_mod(prod, modulus_, p_);
    int64_t x = 0;
    for (int i = e_; i-- > 0;) x = x * p_ + r[i];
    return x;
  }
  // χ(x) for every element: 0 for 0, +1 for a non-zero square, -1 otherwise.
  std::vector<int> quadratic_character() const {
    std::vector<int> chi(q_, -1);
    chi[0] = 0;
    for (int64_t y = 1; y < q_; ++y) chi[mul(y, y)] = 1;
    return chi;
  }

 private:
  Poly digits(int64_t x) const {
    Poly d(e_);
    for (int i = 0; i < e_; ++i, x /= p_) d[i] = x % p_;
    return d;
  }
  int64_t p_;
  int e_;
  int64_t q_;
  Poly modulus_;
};

// ---- Paley factors ---------------------------------------------------------------------------

// Paley's construction of `kind` (1 or 2) applies to q.
bool paley_fits(int64_t q, int kind) {
  return prime_power(q).first != 0 && q % 4 == (kind == 1 ? 3 : 1);
}

int64_t paley_order(int64_t q, int kind) { return kind == 1 ? q + 1 : 2 * (q + 1); }

// The ±1 matrix [m, m] (row-major) of Paley construction `kind` for q (which fits).
std::vector<int64_t> paley_entries(int64_t q, int kind) {
  const auto [p, e] = prime_power(q);
  const GaloisField gf(p, e);
  const std::vector<int> chi = gf.quadratic_character();
  // S (kind 1: skew, [[0, 1ᵀ], [-1, Q]]; kind 2: symmetric, [[0, 1ᵀ], [1, Q]]), indices [∞, 0..q-1].
  const int64_t s = q + 1;
  auto S = [&](int64_t i, int64_t j) -> int64_t {
    if (i == 0) return j == 0 ? 0 : 1;
    if (j == 0) return kind == 1 ? -1 : 1;
    return chi[gf.sub(i - 1, j - 1)];
  };
  const int64_t m = paley_order(q, kind);
  std::vector<int64_t> h(m * m);
  for (int64_t i = 0; i < s; ++i) {
    for (int64_t j = 0; j < s; ++j) {
      const int64_t sij = S(i, j);
      if (kind == 1) {
        h[i * m + j] = sij + (i == j ? 1 : 0);  // I + S
        continue;
      }
      // S ⊗ [[1, 1], [1, -1]] + I ⊗ [[1, -1], [-1, -1]] (S has a zero diagonal).
      const int64_t a[2][2] = {{1, 1}, {1, -1}}, b[2][2] = {{1, -1}, {-1, -1}};
      for (int r = 0; r < 2; ++r) {
        for (int c = 0; c < 2; ++c) h[(2 * i + r) * m + 2 * j + c] = i == j ? b[r][c] : sij * a[r][c];
      }
    }
  }
  return h;
}

at::Tensor long_matrix(const std::vector<int64_t>& v, int64_t m) {
  return at::tensor(at::ArrayRef<int64_t>(v), at::kLong).view({m, m});
}

// The ±1 factor of a plan as a [m, m] tensor of `dtype`.
at::Tensor plan_factor(const HadamardPlan& plan, c10::ScalarType dtype) {
  if (plan.paley == 0) return at::ones({1, 1}, dtype);
  return long_matrix(paley_entries(plan.q, plan.paley), plan.m).to(dtype);
}

// A 0-dim tensor holding 1/sqrt(n) rounded once from float64 to `dtype`.
at::Tensor inv_sqrt(int64_t n, c10::ScalarType dtype) {
  return at::scalar_tensor(1.0 / std::sqrt(double(n)), at::kDouble).to(dtype);
}

// The plan for order n (the smallest Paley factor, construction I before II), or one with
// n == 0 when there is none.
HadamardPlan find_plan(int64_t n) {
  HadamardPlan plan;
  if (n <= 0) return plan;
  if (is_power_of_two(n)) {
    plan.n = plan.pow2 = n;
    return plan;
  }
  int64_t odd = n;
  while (odd % 2 == 0) odd /= 2;
  for (int64_t m = odd; m <= n; m *= 2) {
    for (int kind : {1, 2}) {
      const int64_t q = kind == 1 ? m - 1 : m / 2 - 1;
      if (m % 4 == 0 && paley_order(q, kind) == m && paley_fits(q, kind)) {
        plan.n = n;
        plan.pow2 = n / m;
        plan.m = m;
        plan.paley = kind;
        plan.q = q;
        return plan;
      }
    }
  }
  return plan;
}

std::string supported_orders() {
  return "supported orders: n = 2^k * m with m = 1 (powers of two), m = q + 1 for a prime power q ≡ 3 mod 4 "
         "(Paley I) or m = 2(q + 1) for a prime power q ≡ 1 mod 4 (Paley II)";
}

}  // namespace

bool is_power_of_two(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

at::Tensor hadamard_matrix(int64_t n, c10::ScalarType dtype) {
  check_power_of_two(n, "hadamard_matrix");
  SQ_CHECK(c10::isFloatingType(dtype), "hadamard_matrix: dtype " << dtype << " is not floating point");
  at::Tensor h = at::ones({1, 1}, at::kDouble);
  while (h.size(0) < n) {  // Sylvester: H_2m = [[H_m, H_m], [H_m, -H_m]]
    h = at::cat({at::cat({h, h}, 1), at::cat({h, -h}, 1)}, 0);
  }
  return h.div_(std::sqrt(double(n))).to(dtype);
}

at::Tensor random_hadamard(int64_t n, uint64_t seed, c10::ScalarType dtype) {
  check_power_of_two(n, "random_hadamard");
  at::Tensor h = hadamard_matrix(n, at::kDouble);
  return (random_signs(n, seed).unsqueeze(1) * h).to(dtype);  // diag(s)·H
}

at::Tensor block_diag_random_hadamard(int64_t dim, int64_t block, uint64_t seed, c10::ScalarType dtype) {
  SQ_CHECK(block > 0 && dim > 0, "block_diag_random_hadamard: dim " << dim << " and block " << block
                                                                    << " must be positive");
  SQ_CHECK(hadamard_supported(block), "block_diag_random_hadamard: block " << block
                                                                       << " has no Hadamard matrix (not 1, 2 or a "
                                                                          "supported multiple of 4)");
  const int64_t rest = dim % block;  // a short last block (ragged groups), with a Hadamard of its own order
  SQ_CHECK(rest == 0 || hadamard_supported(rest),
           "block_diag_random_hadamard: dim " << dim << " is not a multiple of block " << block
                                              << " and its last block of " << rest
                                              << " has no Hadamard matrix (" << rest
                                              << " is not 1, 2 or a supported multiple of 4)");
  at::Tensor h = hadamard_any(block, at::kDouble);
  at::Tensor h_rest = rest > 0 ? hadamard_any(rest, at::kDouble) : at::Tensor();
  at::Tensor s = random_signs(dim, seed);
  at::Tensor q = at::zeros({dim, dim}, at::kDouble);  // [dim, dim]
  for (int64_t g0 = 0; g0 < dim; g0 += block) {
    const int64_t b = std::min(block, dim - g0);
    q.narrow(0, g0, b).narrow(1, g0, b).copy_(s.narrow(0, g0, b).unsqueeze(1) * (b == block ? h : h_rest));
  }
  return q.to(dtype);
}

at::Tensor fwht(const at::Tensor& x) {
  SQ_CHECK(x.dim() >= 1, "fwht: input must have at least one dimension");
  SQ_CHECK(at::isFloatingType(x.scalar_type()), "fwht: input dtype " << x.scalar_type() << " is not floating point");
  const int64_t n = x.size(-1);
  check_power_of_two(n, "fwht");
  const int64_t rows = x.numel() / n;
  at::Tensor y = x.reshape({rows, n});  // [rows, n]
  for (int64_t h = 1; h < n; h *= 2) {   // butterflies on pairs (j, j + h) within blocks of 2h
    at::Tensor v = y.reshape({rows, n / (2 * h), 2, h});
    at::Tensor a = v.select(2, 0), b = v.select(2, 1);
    y = at::stack({a + b, a - b}, 2).reshape({rows, n});
  }
  return (y / std::sqrt(double(n))).reshape(x.sizes());
}

// ---- orders that are not powers of two ---------------------------------------------------------

std::string HadamardPlan::describe() const {
  std::ostringstream os;
  if (paley == 0) {
    int k = 0;
    while ((int64_t(1) << k) < n) ++k;
    os << n << " = 2^" << k << " (Sylvester)";
    return os.str();
  }
  const auto [p, e] = prime_power(q);
  os << n << " = " << pow2 << " x " << m << " (Paley " << (paley == 1 ? "I" : "II") << ", q = " << q;
  if (e > 1) os << " = " << p << "^" << e;
  os << ")";
  return os.str();
}

bool hadamard_supported(int64_t n) { return find_plan(n).n != 0; }

HadamardPlan hadamard_plan(int64_t n) {
  HadamardPlan plan = find_plan(n);
  SQ_CHECK(plan.n != 0, "hadamard: no Hadamard matrix construction for order n = "
                            << n << " (" << supported_orders() << "; a Hadamard matrix of order n > 2 "
                            << "needs n to be a multiple of 4)");
  return plan;
}

at::Tensor paley_hadamard(int64_t q, int kind) {
  SQ_CHECK(kind == 1 || kind == 2, "paley_hadamard: construction " << kind << " is not 1 or 2");
  SQ_CHECK(paley_fits(q, kind), "paley_hadamard: q = " << q << " is not a prime power ≡ " << (kind == 1 ? 3 : 1)
                                                       << " mod 4 (Paley " << (kind == 1 ? "I" : "II") << ")");
  return long_matrix(paley_entries(q, kind), paley_order(q, kind));
}

at::Tensor hadamard_any(int64_t n, c10::ScalarType dtype) {
  const HadamardPlan plan = hadamard_plan(n);
  if (plan.paley == 0) return hadamard_matrix(n, dtype);
  SQ_CHECK(c10::isFloatingType(dtype), "hadamard_any: dtype " << dtype << " is not floating point");
  const int64_t m = plan.m, p = plan.pow2;
  at::Tensor f = plan_factor(plan, dtype);                                      // [m, m] ±1
  at::Tensor s = hadamard_matrix(p, at::kDouble).mul_(std::sqrt(double(p))).to(dtype);  // [p, p] ±1
  at::Tensor h = (f.view({m, 1, m, 1}) * s.view({1, p, 1, p})).reshape({n, n});  // f ⊗ s, exact
  return h.mul_(inv_sqrt(n, dtype));
}

at::Tensor random_hadamard_any(int64_t n, uint64_t seed, c10::ScalarType dtype) {
  if (is_power_of_two(n)) return random_hadamard(n, seed, dtype);
  at::Tensor h = hadamard_any(n, dtype);
  return h.mul_(random_signs(n, seed).to(dtype).unsqueeze(1));  // diag(s)·H
}

at::Tensor hadamard_transform(const at::Tensor& x) {
  SQ_CHECK(x.dim() >= 1, "hadamard_transform: input must have at least one dimension");
  SQ_CHECK(at::isFloatingType(x.scalar_type()),
           "hadamard_transform: input dtype " << x.scalar_type() << " is not floating point");
  const HadamardPlan plan = hadamard_plan(x.size(-1));
  if (plan.paley == 0) return fwht(x);
  const int64_t m = plan.m, p = plan.pow2, rows = x.numel() / plan.n;
  at::Tensor y = x.reshape({rows, m, p});  // [rows, m, p]: element a·p + b at [a][b]
  if (p > 1) y = fwht(y);                  // y·S/sqrt(p) over b
  // Y[c][d] = Σ_a H_m[a][c]·Z[a][d]: H_mᵀ/sqrt(m) on the m axis.
  at::Tensor f = plan_factor(plan, x.scalar_type()).to(x.device()).mul_(inv_sqrt(m, x.scalar_type()).to(x.device()));
  return at::matmul(f.t(), y).reshape(x.sizes());
}

}  // namespace sq
