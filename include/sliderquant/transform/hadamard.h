// transform/hadamard: Walsh-Hadamard matrices and transforms for residual-stream rotations:
// the normalised Sylvester matrix, QuaRot's randomised Hadamard diag(s)·H (Ashkboos et al.
// 2024, "QuaRot", sec. 4 / fake_quant rotation_utils) and D²Quant's groupwise block-diagonal
// variant (docs/METHODS.md 2.2 step 1), plus a fast transform along the last dimension.
// The Sylvester functions take powers of two only; hadamard_any and hadamard_transform
// build true Hadamard matrices of other orders (n = 2^k·m with a Paley factor m, below).
// Pure functions on tensors; knows nothing of models.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/core/ScalarType.h>

#include <cstdint>
#include <string>

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
// generator seeded with `seed`, so block == dim gives random_hadamard(dim, seed)). Blocks of
// any order hadamard_any builds; when dim is not a multiple of block, the last block is
// shorter (dim % block, the short last group of a ragged format) with a Hadamard of its own
// order (SmolLM2's 576 in blocks of 128: four of 128 and one of 64). Throws when an order
// has no Hadamard matrix.
at::Tensor block_diag_random_hadamard(int64_t dim, int64_t block, uint64_t seed,
                                      c10::ScalarType dtype = c10::kFloat);

// Fast Walsh-Hadamard transform along the last dimension (size a power of two), normalised
// like hadamard_matrix: fwht(x) == x.matmul(hadamard_matrix(n)), in O(n log n) per row.
// x must be floating point; the result has x's shape, dtype and device.
at::Tensor fwht(const at::Tensor& x);

// ---- Hadamard matrices of orders that are not powers of two --------------------------------
//
// QuaRot's online Hadamard before down_proj needs the MLP width: 11008 = 2^8·43 (Llama-2-7B),
// 14336 = 2^11·7 (Llama-3-8B, Mistral-7B). QuaRot (Ashkboos et al. 2024, fake_quant
// hadamard_utils) ships hard-coded ±1 factors had_K (K = 12, 20, 28, 40, 172, ...) and uses
// H_K ⊗ H_{2^k}; here the factor is constructed instead:
//   - Paley construction I (R. E. A. C. Paley, "On orthogonal matrices", J. Math. Phys. 12,
//     1933): q a prime power, q ≡ 3 (mod 4), order m = q + 1. With χ the quadratic character
//     of GF(q) (χ(0) = 0, χ(x) = +1 for a non-zero square, -1 otherwise) and the Jacobsthal
//     matrix Q[a][b] = χ(a - b) (skew-symmetric, Q·Qᵀ = qI - J), H = I + [[0, 1ᵀ], [-1, Q]].
//   - Paley construction II (same paper): q a prime power, q ≡ 1 (mod 4), order m = 2(q + 1).
//     Q is symmetric; with S = [[0, 1ᵀ], [1, Q]] (S² = qI),
//     H = S ⊗ [[1, 1], [1, -1]] + I ⊗ [[1, -1], [-1, -1]].
//   Prime powers q = p^e use GF(p^e) arithmetic (polynomials over GF(p) modulo a monic
//   irreducible of degree e found by search): e.g. 344 = 7^3 + 1 needs GF(343).
// Rows and columns of a Paley factor are indexed [∞, 0, 1, ..., q-1] with field element
// x = Σ c_i p^i ↔ Σ c_i t^i (Paley II interleaves the 2x2 blocks: index 2r + s).
//
// The order n = 2^k · m is factored automatically: m = 1 when n is a power of two (the
// Sylvester matrix; m = 2 is covered by it), else the smallest m = (odd part of n)·2^j,
// j = 0..k, with a Paley factor, trying construction I before II for the same m (28 comes
// from Paley I with q = 27 = 3^3, although Paley II with q = 13 would also give it).
// Coverage: a Hadamard matrix of order n > 2 exists only for n ≡ 0 (mod 4). Of the 5000
// multiples of 4 up to 20000, 2877 have a plan; the others (the smallest: 92, 116, 156, 172,
// 184, 188) are refused. Every MLP/hidden width of the supported model families tried has
// one: 11008 (32 x 344), 13824 (128 x 108), 14336 and 28672 (x 28), 18944 (128 x 148,
// Paley II), 12288 (x 12), 2816 (x 44), 3584 and 4096 and 5120 (x 28, 1, 20).

// How hadamard_any builds order n: n = pow2 · m, with the factor named by `paley`.
struct HadamardPlan {
  int64_t n = 0;
  int64_t pow2 = 1;  // 2^k, the Sylvester part
  int64_t m = 1;     // the other factor's order (1: n is a power of two)
  int paley = 0;     // 0 (m = 1), 1 (Paley I, m = q + 1) or 2 (Paley II, m = 2(q + 1))
  int64_t q = 0;     // the Paley prime power (0 when paley == 0)
  // e.g. "11008 = 32 x 344 (Paley I, q = 343 = 7^3)" or "4096 = 2^12 (Sylvester)".
  std::string describe() const;
};

// The plan for order n; throws sq::Error naming n and the supported orders when no
// construction applies.
HadamardPlan hadamard_plan(int64_t n);
bool hadamard_supported(int64_t n);

// The unnormalised ±1 Paley Hadamard matrix [m, m] (int64) of construction `kind` (1 or 2)
// for the prime power q: m = q + 1 (kind 1, q ≡ 3 mod 4) or 2(q + 1) (kind 2, q ≡ 1 mod 4).
// H·Hᵀ = m·I exactly. Throws sq::Error when q is not a fitting prime power.
at::Tensor paley_hadamard(int64_t q, int kind);

// A normalised Hadamard matrix [n, n] (entries ±1/sqrt(n), H·Hᵀ = I) for any n with a plan:
//   H_n = (H_m ⊗ S_{2^k}) / sqrt(n),  H_n[a·2^k + b][c·2^k + d] = H_m[a][c]·S[b][d] / sqrt(n)
// with H_m the ±1 Paley factor and S the ±1 Sylvester matrix of hadamard_matrix: the factor
// acts on the slow (outer) index. Equals hadamard_matrix(n) when n is a power of two. Not
// symmetric in general (Paley I factors are not). Dense: n² elements of `dtype`.
at::Tensor hadamard_any(int64_t n, c10::ScalarType dtype = c10::kFloat);

// diag(s)·hadamard_any(n) with s random ±1 drawn exactly as random_hadamard draws them, so
// random_hadamard_any(n, seed) == random_hadamard(n, seed) when n is a power of two.
at::Tensor random_hadamard_any(int64_t n, uint64_t seed, c10::ScalarType dtype = c10::kFloat);

// x.matmul(hadamard_any(n)) along the last dimension (size n, any supported order) without
// the dense matrix: x viewed as [..., m, 2^k], fwht over the 2^k axis, then H_mᵀ/sqrt(m)
// applied over the m axis, O(n·(log n + m)) per row. x must be floating point; the result
// has x's shape, dtype and device.
at::Tensor hadamard_transform(const at::Tensor& x);

}  // namespace sq
