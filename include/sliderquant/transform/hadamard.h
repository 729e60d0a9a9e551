// transform/hadamard: Walsh-Hadamard matrices and transforms for residual-stream rotations:
// the normalised Sylvester matrix, QuaRot's randomised Hadamard diag(s)·H (Ashkboos et al.
// 2024, "QuaRot", sec. 4 / fake_quant rotation_utils) and D²Quant's groupwise block-diagonal
// variant (sec. 2.2 step 1 of docs METHODS), plus a fast transform along the last dimension.
// Sizes must be powers of two (non-power-of-two Hadamards, had_K, are not implemented).
// Pure functions on tensors; knows nothing of models.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <cstdint>

namespace sq {

bool is_power_of_two(int64_t n);

// The Sylvester Hadamard matrix [n, n] scaled by 1/sqrt(n) (orthogonal and symmetric):
// H[i][j] = (-1)^popcount(i & j) / sqrt(n). n must be a power of two (1 included).
at::Tensor hadamard_matrix(int64_t n, c10::ScalarType dtype = c10::kFloat);

// QuaRot's random Hadamard Q = diag(s)·H [n, n], s a vector of random ±1 drawn from a
// generator seeded with `seed` (same seed, same matrix). Orthogonal: Q·Qᵀ = I.
at::Tensor random_hadamard(int64_t n, uint64_t seed, c10::ScalarType dtype = c10::kFloat);

// D²Quant's groupwise rotation [dim, dim]: blockdiag(Q_1, ..., Q_{dim/block}) where each
// Q_g = diag(s_g)·H_block has its own random signs (the signs of all blocks come from one
// generator seeded with `seed`, so block == dim gives random_hadamard(dim, seed)).
// dim must be a multiple of block, and block a power of two.
at::Tensor block_diag_random_hadamard(int64_t dim, int64_t block, uint64_t seed,
                                      c10::ScalarType dtype = c10::kFloat);

// Fast Walsh-Hadamard transform along the last dimension (size a power of two), normalised
// like hadamard_matrix: fwht(x) == x.matmul(hadamard_matrix(n)), in O(n log n) per row.
// x must be floating point; the result has x's shape, dtype and device.
at::Tensor fwht(const at::Tensor& x);

}  // namespace sq
