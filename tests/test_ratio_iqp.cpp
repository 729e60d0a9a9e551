// Tests of quant/ratio_iqp: the exact block-frontier solver against brute force over every
// assignment on random small problems (real and integer matrices, the latter full of ties),
// the infeasible-budget error, the unconstrained optimum, problem checks, the polarization
// helper, and solver statistics on a Llama-2-7B-sized problem (32 blocks x 7 linears x 5
// ratios).
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <limits>
#include <map>
#include <random>
#include <tuple>
#include <vector>

#include "sliderquant/core/error.h"
#include "sliderquant/quant/mixed.h"
#include "sliderquant/quant/ratio_iqp.h"
#include "test_util.h"

using namespace sq;
using sq::testing::error_of;

namespace {

// A random problem with its dense [N, N] matrix (N = all candidates of all layers, zero
// between blocks), from which the block matrices are cut.
struct Dense {
  RatioIqpProblem p;
  Eigen::MatrixXd full;
  std::vector<int64_t> offset;  // [layers] row of each layer's first candidate in FULL
};

Dense random_problem(uint64_t seed, bool integer) {
  std::mt19937_64 rng(seed);
  auto uni = [&](int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng); };
  Dense d;
  const int64_t layers = 6, blocks = uni(2, 3);
  // Block sizes: random split of 6 layers into BLOCKS non-empty runs.
  std::vector<int64_t> cuts = {0, layers};
  while (static_cast<int64_t>(cuts.size()) < blocks + 1) {
    int64_t c = uni(1, layers - 1);
    if (std::find(cuts.begin(), cuts.end(), c) == cuts.end()) cuts.push_back(c);
  }
  std::sort(cuts.begin(), cuts.end());
  int64_t N = 0;
  for (int64_t b = 0; b < blocks; ++b) {
    for (int64_t l = cuts[b]; l < cuts[b + 1]; ++l) {
      d.p.block_of.push_back(b);
      d.offset.push_back(N);
      const int64_t k = uni(3, 5);
      std::vector<int64_t> cost;
      for (int64_t c = 0; c < k; ++c) cost.push_back(integer ? uni(1, 3) : uni(100, 1000));
      d.p.cost.push_back(cost);
      N += k;
    }
  }
  d.full = Eigen::MatrixXd::Zero(N, N);
  std::normal_distribution<double> g(0.0, 1.0);
  for (int64_t l = 0; l < layers; ++l)
    for (int64_t l2 = l; l2 < layers; ++l2) {
      if (d.p.block_of[l] != d.p.block_of[l2]) continue;
      for (size_t c = 0; c < d.p.cost[l].size(); ++c)
        for (size_t c2 = 0; c2 < d.p.cost[l2].size(); ++c2) {
          if (l == l2 && c != c2) continue;  // never both active: leave 0
          const double v = integer ? double(uni(-2, 2)) : g(rng);
          d.full(d.offset[l] + c, d.offset[l2] + c2) = v;
          d.full(d.offset[l2] + c2, d.offset[l] + c) = v;
        }
    }
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t r0 = d.offset[cuts[b]];
    const int64_t r1 = cuts[b + 1] < layers ? d.offset[cuts[b + 1]] : N;
    d.p.M.push_back(d.full.block(r0, r0, r1 - r0, r1 - r0));
  }
  return d;
}

struct Brute {
  double best = std::numeric_limits<double>::infinity();
  int64_t best_cost = 0;  // cheapest among the (exactly) best
  bool feasible = false;
};

// Every assignment within BUDGET, with delta^T FULL delta from the dense matrix.
Brute brute_force(const Dense& d, int64_t budget) {
  const size_t n = d.p.cost.size();
  std::vector<int> ch(n, 0);
  Brute r;
  while (true) {
    int64_t cost = 0;
    for (size_t l = 0; l < n; ++l) cost += d.p.cost[l][ch[l]];
    if (cost <= budget) {
      Eigen::VectorXd delta = Eigen::VectorXd::Zero(d.full.rows());
      for (size_t l = 0; l < n; ++l) delta(d.offset[l] + ch[l]) = 1;
      const double obj = delta.dot(d.full * delta);
      if (!r.feasible || obj < r.best || (obj == r.best && cost < r.best_cost)) {
        r.best = obj;
        r.best_cost = cost;
        r.feasible = true;
      }
    }
    size_t l = n;
    while (l > 0 && ++ch[l - 1] == int(d.p.cost[l - 1].size())) ch[--l] = 0;
    if (l == 0) break;
  }
  return r;
}

std::pair<int64_t, int64_t> cost_range(const RatioIqpProblem& p) {
  int64_t lo = 0, hi = 0;
  for (const auto& c : p.cost) {
    lo += *std::min_element(c.begin(), c.end());
    hi += *std::max_element(c.begin(), c.end());
  }
  return {lo, hi};
}

void compare_with_brute_force(bool integer) {
  int checked = 0;
  for (uint64_t seed = 0; seed < 25; ++seed) {
    Dense d = random_problem(seed + (integer ? 1000 : 0), integer);
    auto [lo, hi] = cost_range(d.p);
    std::mt19937_64 rng(seed);
    std::vector<int64_t> budgets = {lo, hi, (lo + hi) / 2};
    for (int i = 0; i < 5; ++i) budgets.push_back(std::uniform_int_distribution<int64_t>(lo, hi)(rng));
    for (int64_t budget : budgets) {
      SCOPED_TRACE("seed " + std::to_string(seed) + " budget " + std::to_string(budget));
      Brute bf = brute_force(d, budget);
      ASSERT_TRUE(bf.feasible);
      RatioIqpResult r = solve_ratio_iqp(d.p, budget);
      EXPECT_LE(r.cost_bits, budget);
      EXPECT_EQ(r.cost_bits, ratio_iqp_cost(d.p, r.choice));
      if (integer) {
        // Integer entries: sums are exact, so the optimum and its cheapest cost must match.
        EXPECT_EQ(r.objective, bf.best);
        EXPECT_EQ(r.cost_bits, bf.best_cost);
      } else {
        EXPECT_NEAR(r.objective, bf.best, 1e-9 * (1 + std::abs(bf.best)));
      }
      EXPECT_EQ(r.stats.block_frontier.size(), d.p.M.size());
      ++checked;
    }
  }
  EXPECT_EQ(checked, 25 * 8);
}

}  // namespace

TEST(IqpSolver, MatchesBruteForceRandomReal) { compare_with_brute_force(false); }

TEST(IqpSolver, MatchesBruteForceWithTies) { compare_with_brute_force(true); }

TEST(IqpSolver, HandExample) {
  // Two blocks: {layer 0, layer 1} and {layer 2}. Costs 1 (low ratio) or 2 (high ratio).
  RatioIqpProblem p;
  p.block_of = {0, 0, 1};
  p.cost = {{1, 2}, {1, 2}, {1, 2}};
  Eigen::MatrixXd M0 = Eigen::MatrixXd::Zero(4, 4);
  M0(0, 0) = 10, M0(1, 1) = 4, M0(2, 2) = 8, M0(3, 3) = 5;  // singles
  M0(0, 2) = M0(2, 0) = 3;                                  // both low: +6 interaction
  M0(1, 3) = M0(3, 1) = -1;                                 // both high: -2
  Eigen::MatrixXd M1(2, 2);
  M1 << 6, 0, 0, 1;
  p.M = {M0, M1};
  p.weight_count = 2;
  // Objectives: block 0: (lo,lo) 24 @2, (hi,lo) 12 @3, (lo,hi) 15 @3 (dominated), (hi,hi) 7 @4;
  // block 1: lo 6 @1, hi 1 @2. Budget 5: (hi,lo)+hi = 13 and (hi,hi)+lo = 13, both @5 (a tie,
  // broken towards the earlier point of the merged frontier: (hi,lo)); (lo,lo)+hi = 25 @4.
  RatioIqpResult r = solve_ratio_iqp(p, 5);
  EXPECT_EQ(r.choice, (std::vector<int>{1, 0, 1}));
  EXPECT_EQ(r.objective, 13);
  EXPECT_EQ(r.cost_bits, 5);
  EXPECT_EQ(r.min_cost_bits, 3);
  EXPECT_EQ(r.unconstrained_cost_bits, 6);
  EXPECT_EQ(r.unconstrained_objective, 8);
  EXPECT_EQ(r.stats.combinations, 6);
  EXPECT_EQ(r.stats.block_frontier, (std::vector<int64_t>{3, 2}));
  r = solve_ratio_iqp(p, 4);
  EXPECT_EQ(r.objective, 18);  // (hi,lo) + lo
  EXPECT_EQ(r.choice, (std::vector<int>{1, 0, 0}));
}

TEST(IqpSolver, InfeasibleBudgetStatesTheRange) {
  Dense d = random_problem(7, false);
  const auto range = cost_range(d.p);  // not a structured binding: C++17 lambdas cannot capture one (clang)
  const auto lo = range.first, hi = range.second;
  RatioIqpResult full = solve_ratio_iqp(d.p, hi);
  EXPECT_EQ(full.min_cost_bits, lo);
  std::string e = error_of([&] { solve_ratio_iqp(d.p, lo - 1); });
  EXPECT_NE(e.find("below the cheapest assignment"), std::string::npos) << e;
  EXPECT_NE(e.find("[" + std::to_string(lo) + ", " + std::to_string(full.unconstrained_cost_bits) + "] bits"),
            std::string::npos)
      << e;
  EXPECT_EQ(e.find("bits/weight"), std::string::npos) << e;  // no weight count given
  d.p.weight_count = 1000;
  e = error_of([&] { solve_ratio_iqp(d.p, lo - 1); });
  EXPECT_NE(e.find("bits/weight over 1000 weights"), std::string::npos) << e;
  char buf[64];
  std::snprintf(buf, sizeof buf, "[%.4f, ", double(lo) / 1000);
  EXPECT_NE(e.find(buf), std::string::npos) << e;
  EXPECT_NO_THROW(solve_ratio_iqp(d.p, lo));
}

TEST(IqpSolver, LargeBudgetGivesUnconstrainedOptimum) {
  for (uint64_t seed = 0; seed < 10; ++seed) {
    Dense d = random_problem(100 + seed, seed % 2 == 0);
    Brute bf = brute_force(d, std::numeric_limits<int64_t>::max());
    for (int64_t budget : {cost_range(d.p).second, std::numeric_limits<int64_t>::max()}) {
      RatioIqpResult r = solve_ratio_iqp(d.p, budget);
      EXPECT_NEAR(r.objective, bf.best, 1e-9 * (1 + std::abs(bf.best)));
      EXPECT_NEAR(r.unconstrained_objective, bf.best, 1e-9 * (1 + std::abs(bf.best)));
      EXPECT_EQ(r.cost_bits, r.unconstrained_cost_bits);
      // The unconstrained cost is itself a budget that reaches the optimum.
      RatioIqpResult at = solve_ratio_iqp(d.p, r.unconstrained_cost_bits);
      EXPECT_EQ(at.choice, r.choice);
    }
  }
}

TEST(IqpSolver, RejectsBadProblems) {
  Dense d = random_problem(3, false);
  RatioIqpProblem p = d.p;
  p.block_of[1] = 2;
  EXPECT_NE(error_of([&] { solve_ratio_iqp(p, 1 << 20); }).find("runs of consecutive layers"), std::string::npos);
  p = d.p;
  p.M[0] = Eigen::MatrixXd::Zero(2, 2);
  EXPECT_NE(error_of([&] { solve_ratio_iqp(p, 1 << 20); }).find("block 0 (layers 0.."), std::string::npos);
  p = d.p;
  p.cost[2][0] = -1;
  EXPECT_NE(error_of([&] { solve_ratio_iqp(p, 1 << 20); }).find("layer 2 candidate 0 has negative cost"),
            std::string::npos);
  p = d.p;
  p.M[1](0, 0) = std::nan("");
  EXPECT_NE(error_of([&] { solve_ratio_iqp(p, 1 << 20); }).find("NaN"), std::string::npos);
  // 10 layers x 5 candidates in one block: 9,765,625 combinations > 2e6.
  RatioIqpProblem big;
  big.block_of.assign(10, 0);
  big.cost.assign(10, {1, 2, 3, 4, 5});
  big.M = {Eigen::MatrixXd::Zero(50, 50)};
  std::string e = error_of([&] { solve_ratio_iqp(big, 30); });
  EXPECT_NE(e.find("block 0 (layers 0..9, candidates 5 x 5 x 5 x 5 x 5 x 5 x 5 x 5 x 5 x 5) has more than 2000000"),
            std::string::npos)
      << e;
  EXPECT_NE(error_of([&] { ratio_iqp_objective(d.p, {0, 0}); }).find("2 entries for 6 layers"), std::string::npos);
}

TEST(IqpPolarization, ReproducesPairMeasurements) {
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const std::vector<int64_t> block_of = {0, 0, 0, 1, 1};
  std::vector<std::vector<double>> single(5);
  for (auto& s : single)
    for (int c = 0; c < 4; ++c) s.push_back(u(rng));
  std::map<std::tuple<int64_t, int, int64_t, int>, double> pairs;
  int calls = 0;
  auto pair = [&](int64_t l, int c, int64_t l2, int c2) {
    EXPECT_LT(l, l2);
    EXPECT_EQ(block_of[l], block_of[l2]);
    ++calls;
    double v = single[l][c] + single[l2][c2] + (u(rng) - 0.5);
    pairs[{l, c, l2, c2}] = v;
    return v;
  };
  std::vector<Eigen::MatrixXd> M = ratio_iqp_matrix_from_losses(block_of, single, pair);
  EXPECT_EQ(calls, (3 + 1) * 16);  // layer pairs (0,1) (0,2) (1,2) and (3,4), 4x4 candidates each
  ASSERT_EQ(M.size(), 2u);
  EXPECT_EQ(M[0].rows(), 12);
  EXPECT_EQ(M[1].rows(), 8);
  auto entry = [&](int64_t l, int c, int64_t l2, int c2) {
    const int64_t b = block_of[l], first = b == 0 ? 0 : 3;
    return M[b]((l - first) * 4 + c, (l2 - first) * 4 + c2);
  };
  for (int64_t l = 0; l < 5; ++l)
    for (int c = 0; c < 4; ++c) EXPECT_EQ(entry(l, c, l, c), single[l][c]);
  for (const auto& [key, v] : pairs) {
    auto [l, c, l2, c2] = key;
    EXPECT_NEAR(entry(l, c, l, c) + entry(l2, c2, l2, c2) + 2 * entry(l, c, l2, c2), v, 1e-15);
    EXPECT_EQ(entry(l, c, l2, c2), entry(l2, c2, l, c));
  }
  // Candidates of one layer are never both chosen: no term between them.
  Eigen::MatrixXd own = M[0].block(0, 0, 4, 4);
  own.diagonal().setZero();
  EXPECT_EQ(own.norm(), 0);
}

TEST(IqpPolarization, ExactForAQuadraticLoss) {
  // A loss that is exactly quadratic in the layers' perturbations, L(d) = d^T Q d with
  // d = sum_l e_(l, c_l) (a vector per layer and candidate) and Q coupling only layers of
  // the same block: the helper's M reproduces L for every assignment, not just pairs.
  std::mt19937_64 rng(9);
  std::normal_distribution<double> g(0.0, 1.0);
  const std::vector<int64_t> block_of = {0, 0, 0, 1, 1};
  const int K = 3, D = 4;  // candidates per layer, perturbation dims per layer
  std::vector<std::vector<Eigen::VectorXd>> e(5, std::vector<Eigen::VectorXd>(K));
  for (auto& v : e)
    for (auto& x : v) x = Eigen::VectorXd::NullaryExpr(D, [&] { return g(rng); });
  Eigen::MatrixXd Q = Eigen::MatrixXd::Zero(5 * D, 5 * D);
  for (int l = 0; l < 5; ++l)
    for (int l2 = 0; l2 < 5; ++l2)
      if (block_of[l] == block_of[l2])
        Q.block(l * D, l2 * D, D, D) = Eigen::MatrixXd::NullaryExpr(D, D, [&] { return g(rng); });
  Q = (Q + Q.transpose()).eval();
  auto loss = [&](const std::vector<int>& ch) {  // ch[l] = -1: layer unchanged
    Eigen::VectorXd d = Eigen::VectorXd::Zero(5 * D);
    for (int l = 0; l < 5; ++l)
      if (ch[l] >= 0) d.segment(l * D, D) = e[l][ch[l]];
    return d.dot(Q * d);
  };
  std::vector<std::vector<double>> single(5, std::vector<double>(K));
  for (int l = 0; l < 5; ++l)
    for (int c = 0; c < K; ++c) {
      std::vector<int> ch(5, -1);
      ch[l] = c;
      single[l][c] = loss(ch);
    }
  auto pair = [&](int64_t l, int c, int64_t l2, int c2) {
    std::vector<int> ch(5, -1);
    ch[l] = c;
    ch[l2] = c2;
    return loss(ch);
  };
  RatioIqpProblem p;
  p.block_of = block_of;
  p.cost.assign(5, std::vector<int64_t>(K, 1));
  p.M = ratio_iqp_matrix_from_losses(block_of, single, pair);
  std::vector<int> ch(5, 0);
  for (int i = 0; i < 243; ++i) {
    for (int l = 0, v = i; l < 5; ++l, v /= K) ch[l] = v % K;
    EXPECT_NEAR(ratio_iqp_objective(p, ch), loss(ch), 1e-9 * (1 + std::abs(loss(ch))));
  }
}

namespace {

// Llama-2-7B's shape: 32 blocks of q, k, v, o [4096, 4096], gate, up [11008, 4096] and
// down [4096, 11008]; ratios {0.02, 0.05, 0.10, 0.15, 0.20} of input channels at 3 bits,
// the rest at 2 bits, costs from quant/mixed (channel counts rounded up by mixed_hi_count);
// synthetic measurements: single-layer losses decreasing with the ratio, pair terms a few
// percent of them. Prints the solver statistics for no budget (every merged point kept:
// the largest frontiers) and two budgets in the feasible range.
void realistic_size_statistics(const QFormat& hi, const QFormat& lo) {
  const std::vector<double> ratios = {0.02, 0.05, 0.10, 0.15, 0.20};
  const int64_t shapes[7][2] = {{4096, 4096},  {4096, 4096},  {4096, 4096}, {4096, 4096},
                                {11008, 4096}, {11008, 4096}, {4096, 11008}};
  std::mt19937_64 rng(42);
  std::lognormal_distribution<double> scale(0.0, 1.0);
  std::normal_distribution<double> g(0.0, 1.0);
  RatioIqpProblem p;
  std::vector<std::vector<double>> single;
  for (int64_t b = 0; b < 32; ++b) {
    for (int i = 0; i < 7; ++i) {
      const int64_t out = shapes[i][0], in = shapes[i][1];
      p.block_of.push_back(b);
      std::vector<int64_t> cost;
      std::vector<double> s;
      const double a = scale(rng), kappa = 5 + 5 * std::abs(g(rng));
      for (double rho : ratios) {
        const int64_t k = mixed_hi_count(rho, in, hi, lo);
        cost.push_back(std::llround(mixed_bits_per_weight(hi, lo, out, in, k) * double(out * in)));
        s.push_back(a * std::exp(-kappa * double(k) / double(in)));
      }
      p.cost.push_back(cost);
      single.push_back(s);
      p.weight_count += out * in;
    }
  }
  p.M = ratio_iqp_matrix_from_losses(p.block_of, single, [&](int64_t l, int c, int64_t l2, int c2) {
    return single[l][c] + single[l2][c2] + 0.05 * g(rng) * std::sqrt(single[l][c] * single[l2][c2]);
  });
  auto t0 = std::chrono::steady_clock::now();
  const RatioIqpResult free = solve_ratio_iqp(p, std::numeric_limits<int64_t>::max());
  const double free_secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int64_t lo_bits = free.min_cost_bits, hi_bits = free.unconstrained_cost_bits;
  for (double f : {-1.0, 0.1, 0.5}) {
    const int64_t budget =
        f < 0 ? std::numeric_limits<int64_t>::max() : lo_bits + int64_t(f * double(hi_bits - lo_bits));
    t0 = std::chrono::steady_clock::now();
    const RatioIqpResult r = f < 0 ? free : solve_ratio_iqp(p, budget);
    const double secs =
        f < 0 ? free_secs : std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LE(r.cost_bits, budget);
    EXPECT_EQ(r.stats.combinations, 32 * 78125);
    const auto& bf = r.stats.block_frontier;
    const auto& mf = r.stats.merged_frontier;
    std::cout << "[ratio IQP 32x7x5 " << hi.name() << "/" << lo.name() << "] budget ";
    if (f < 0)
      std::cout << "none";
    else
      std::cout << double(budget) / double(p.weight_count) << " bits/weight";
    std::cout << ": " << secs << " s (enumerate " << r.stats.enumerate_seconds << " s, merge " << r.stats.merge_seconds
              << " s), combinations " << r.stats.combinations << ", block frontier min/max "
              << *std::min_element(bf.begin(), bf.end()) << "/" << *std::max_element(bf.begin(), bf.end())
              << ", merged frontier max " << *std::max_element(mf.begin(), mf.end()) << " (final " << mf.back()
              << "), pairs " << r.stats.pairs_examined << "; chose " << double(r.cost_bits) / double(p.weight_count)
              << " bits/weight, objective " << r.objective << " (feasible from "
              << double(lo_bits) / double(p.weight_count) << "; unconstrained " << r.unconstrained_objective << " at "
              << double(hi_bits) / double(p.weight_count) << ")\n";
  }
}

}  // namespace

// A suite of its own so that scripts/sanitize.sh can leave it out (63 s under ASan, 9 s here).
TEST(IqpSolverAtScale, RealisticSizeStatistics) {
  realistic_size_statistics(QFormat::parse("w3g128"), QFormat::parse("w2g128"));
  realistic_size_statistics(QFormat::parse("w3"), QFormat::parse("w2"));  // exact ceil(ratio * in) counts
}
