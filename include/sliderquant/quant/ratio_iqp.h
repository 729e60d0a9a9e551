// quant/ratio_iqp: the exact solver of the layer-wise high-impact ratio search (docs/METHODS.md
// section 3.1 step 3, arXiv 2511.17801): every layer l picks one candidate c (e.g. a
// ratio of high-precision channels from {0.02, 0.05, 0.10, 0.15, 0.20}), candidate (l, c)
// stores cost[l][c] bits, and the choice minimises
//     delta^T M delta   subject to   sum_l cost[l][c_l] <= budget_bits,
// delta the one-hot vector over all (layer, candidate) pairs. M is block-diagonal over
// blocks of consecutive layers (a transformer block's linears): no term couples layers of
// different blocks. Host-side, no tensors.
//
// Exact algorithm: each block enumerates all its combinations (the product of its layers'
// candidate counts; more than max_block_combinations is refused) and keeps its Pareto
// frontier in (cost, objective); the blocks' frontiers are then merged one block at a time
// (the frontier of all sums, pruned after each block, integer costs so no discretisation),
// the best point within the budget is taken and each layer's choice is backtracked.
//
// Scale convention: the paper writes dL ~ 1/2 delta^T M' delta with M'_(l,c),(l,c) =
// 2 [L(theta + D_(l,c)) - L(theta)]; here M = M'/2, so delta^T M delta estimates the loss
// increase itself and the diagonal is the measured loss increase (same minimiser).
#pragma once
#include <Eigen/Core>
#include <cstdint>
#include <functional>
#include <vector>

namespace sq {

struct RatioIqpProblem {
  // [layers] block id of each layer: 0 for the first layer, then equal to or one more than
  // the previous layer's (blocks are runs of consecutive layers, ids 0..B-1 in order).
  std::vector<int64_t> block_of;
  // [layers][candidates of that layer] stored bits of layer l at candidate c (>= 0).
  std::vector<std::vector<int64_t>> cost;
  // [B] one matrix per block, [K_b, K_b] with K_b = the candidate count summed over the
  // block's layers; row/column index = (candidates of the block's earlier layers) + c.
  // Only the symmetric part matters (delta^T M delta is what is minimised).
  std::vector<Eigen::MatrixXd> M;
  // Weights the costs cover (for bits per weight in messages); 0 = not given.
  int64_t weight_count = 0;
  // A block with more combinations than this is refused (Error naming the block).
  int64_t max_block_combinations = 2000000;
};

struct RatioIqpStats {
  int64_t combinations = 0;              // enumerated, all blocks
  std::vector<int64_t> block_frontier;   // [B] Pareto points of each block alone
  std::vector<int64_t> merged_frontier;  // [B] after merging blocks 0..b (budget-pruned)
  int64_t pairs_examined = 0;            // (merged point, block point) sums formed
  double enumerate_seconds = 0, merge_seconds = 0;
};

struct RatioIqpResult {
  std::vector<int> choice;              // [layers] chosen candidate of each layer
  int64_t cost_bits = 0;                // sum of the chosen costs (<= budget)
  double objective = 0;                 // delta^T M delta of the choice
  int64_t min_cost_bits = 0;            // cheapest assignment (smaller budgets are infeasible)
  int64_t unconstrained_cost_bits = 0;  // cheapest assignment reaching the unconstrained optimum
  double unconstrained_objective = 0;   // (any budget >= unconstrained_cost_bits gives it)
  RatioIqpStats stats;
};

// Checks the problem (shapes, block ids, costs >= 0 and summable, finite M, combination
// limit): throws Error naming the layer or block.
void check_ratio_iqp(const RatioIqpProblem& p);

// The exact minimiser within BUDGET_BITS. Among assignments of (exactly) equal objective
// the cheaper one wins; ties in both are broken deterministically (the cheaper choice of
// the earlier blocks, then the lexicographically first combination within a block).
// A budget below the cheapest assignment throws Error stating the feasible range
// [min cost, unconstrained-optimum cost] in bits (and bits per weight when weight_count > 0).
RatioIqpResult solve_ratio_iqp(const RatioIqpProblem& p, int64_t budget_bits);

// delta^T M delta and the total cost of an assignment (checked), for callers and tests.
double ratio_iqp_objective(const RatioIqpProblem& p, const std::vector<int>& choice);
int64_t ratio_iqp_cost(const RatioIqpProblem& p, const std::vector<int>& choice);

// Builds the block matrices of M from measured loss increases (relative to the model in
// which no layer is changed):
//   single[l][c]        increase with only layer l changed to candidate c,
//   pair(l, c, l2, c2)  increase with layers l and l2 (l < l2, same block) changed together
//                       (called once per pair of candidates of every such layer pair).
// Diagonal M[(l,c),(l,c)] = single[l][c]; by the polarization identity each pair term is
//   M[(l,c),(l2,c2)] = M[(l2,c2),(l,c)] = (pair(l,c,l2,c2) - single[l][c] - single[l2][c2]) / 2
// so the quadratic form restricted to the two layers, M_ll + M_l2l2 + 2 M_ll2, reproduces the
// pair measurement exactly; terms between blocks are 0 (the paper's approximation). Throws
// Error on shape mismatches or non-finite measurements.
std::vector<Eigen::MatrixXd> ratio_iqp_matrix_from_losses(
    const std::vector<int64_t>& block_of, const std::vector<std::vector<double>>& single,
    const std::function<double(int64_t l, int c, int64_t l2, int c2)>& pair);

}  // namespace sq
