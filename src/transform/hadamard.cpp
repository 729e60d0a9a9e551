// transform/hadamard: Sylvester Hadamard matrices, QuaRot's randomised Hadamard (Ashkboos
// et al. 2024), D²Quant's block-diagonal (groupwise) variant and the fast Walsh-Hadamard
// transform. Matrices are built in float64 and cast to the requested dtype; random signs
// come from an explicitly seeded CPU generator (no global RNG state).
#include "sliderquant/transform/hadamard.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "sliderquant/core/error.h"

namespace sq {

namespace {

void check_power_of_two(int64_t n, const char* what) {
  SQ_CHECK(is_power_of_two(n), what << ": size " << n
                                    << " is not a power of two (non-power-of-two Hadamard sizes are not "
                                       "supported; use a power-of-two block size)");
}

// n random signs ±1 (float64) from a generator seeded with `seed`.
at::Tensor random_signs(int64_t n, uint64_t seed) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  at::Tensor bits = at::randint(2, {n}, gen, at::TensorOptions().dtype(at::kLong));
  return bits.to(at::kDouble).mul_(2).sub_(1);  // {0,1} -> {-1,+1}
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
  SQ_CHECK(block > 0 && dim > 0 && dim % block == 0,
           "block_diag_random_hadamard: dim " << dim << " is not a multiple of block " << block);
  check_power_of_two(block, "block_diag_random_hadamard");
  at::Tensor h = hadamard_matrix(block, at::kDouble);
  at::Tensor s = random_signs(dim, seed);
  at::Tensor q = at::zeros({dim, dim}, at::kDouble);  // [dim, dim]
  for (int64_t g = 0; g < dim / block; ++g) {
    q.narrow(0, g * block, block).narrow(1, g * block, block).copy_(s.narrow(0, g * block, block).unsqueeze(1) * h);
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

}  // namespace sq
