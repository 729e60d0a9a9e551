// quant/ratio_iqp: exact solver of the block-diagonal quadratic integer program of the
// layer-wise high-impact ratio search (arXiv 2511.17801; docs/METHODS.md section 3.1 step 3,
// whose "enumerate each block, then a knapsack over blocks" inference this implements
// without discretising the budget: Pareto frontiers with integer costs).
//
// Frontier convention: points sorted by cost ascending with objective strictly descending;
// a point is kept only when its objective is below every cheaper (or equally cheap,
// earlier sorted) point's, so dominated points (cost >= and objective >= some kept point)
// never survive and exact ties keep the first in (cost, objective, index) order.
#include "sliderquant/quant/ratio_iqp.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iomanip>
#include <limits>
#include <sstream>
#include <string>

#include "sliderquant/core/error.h"

namespace sq {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// The layers [first, last) of each block and the block count.
struct BlockLayout {
  std::vector<int64_t> first, last;
  int64_t blocks() const { return static_cast<int64_t>(first.size()); }
};

BlockLayout layout_of(const std::vector<int64_t>& block_of) {
  const int64_t n = static_cast<int64_t>(block_of.size());
  SQ_CHECK(n > 0, "ratio IQP: no layers");
  SQ_CHECK(block_of[0] == 0, "ratio IQP: layer 0 has block id " << block_of[0] << ", expected 0");
  BlockLayout bl;
  bl.first.push_back(0);
  for (int64_t l = 1; l < n; ++l) {
    const int64_t step = block_of[l] - block_of[l - 1];
    SQ_CHECK(step == 0 || step == 1, "ratio IQP: layer " << l << " has block id " << block_of[l] << " after layer "
                                                         << l - 1 << "'s " << block_of[l - 1]
                                                         << " (blocks must be runs of consecutive layers with ids "
                                                            "0, 1, 2, ... in order)");
    if (step == 1) {
      bl.last.push_back(l);
      bl.first.push_back(l);
    }
  }
  bl.last.push_back(n);
  return bl;
}

// The combination count of block B, or LIMIT + 1 once it exceeds LIMIT (no overflow).
int64_t combinations_of(const RatioIqpProblem& p, const BlockLayout& bl, int64_t b, int64_t limit) {
  int64_t prod = 1;
  for (int64_t l = bl.first[b]; l < bl.last[b]; ++l) {
    const int64_t k = static_cast<int64_t>(p.cost[l].size());
    if (prod > (limit + k) / k) return limit + 1;
    prod *= k;
    if (prod > limit) return limit + 1;
  }
  return prod;
}

std::string counts_of(const RatioIqpProblem& p, const BlockLayout& bl, int64_t b) {
  std::ostringstream os;
  for (int64_t l = bl.first[b]; l < bl.last[b]; ++l) os << (l > bl.first[b] ? " x " : "") << p.cost[l].size();
  return os.str();
}

// A point in (cost, objective) with a tag that says where it came from: for a block's
// point its combination id (mixed radix, the block's first layer most significant, so ids
// follow lexicographic order of the choices); for a point of the merged frontier of
// blocks 0..b, (index of the stage b-1 point) << 32 | (index of block b's point).
struct Point {
  int64_t cost;
  double obj;
  int64_t tag;
};

bool point_less(const Point& a, const Point& b) {
  if (a.cost != b.cost) return a.cost < b.cost;
  if (a.obj != b.obj) return a.obj < b.obj;
  return a.tag < b.tag;
}

// Keeps the Pareto points of PTS (sorted in place by cost, objective, tag).
std::vector<Point> pareto(std::vector<Point>& pts) {
  std::sort(pts.begin(), pts.end(), point_less);
  std::vector<Point> front;
  double best = std::numeric_limits<double>::infinity();
  for (const Point& q : pts) {
    if (q.obj < best) {
      front.push_back(q);
      best = q.obj;
    }
  }
  return front;
}

// Enumerates every combination of block B depth-first; the objective of a partial choice
// grows by M(i,i) + sum over fixed j of (M(i,j) + M(j,i)) when a layer fixes index i.
std::vector<Point> block_frontier(const RatioIqpProblem& p, const BlockLayout& bl, int64_t b, int64_t* enumerated) {
  const int64_t l0 = bl.first[b], m = bl.last[b] - bl.first[b];
  const Eigen::MatrixXd& M = p.M[b];
  std::vector<int64_t> offset(m), count(m);
  for (int64_t k = 0, off = 0; k < m; ++k) {
    offset[k] = off;
    count[k] = static_cast<int64_t>(p.cost[l0 + k].size());
    off += count[k];
  }
  std::vector<Point> all;
  all.reserve(static_cast<size_t>(combinations_of(p, bl, b, p.max_block_combinations)));
  std::vector<int64_t> sel(m, 0), idx(m);  // candidate and matrix index per fixed layer
  std::vector<double> obj(m + 1, 0.0);     // obj[k]: objective of layers 0..k-1
  std::vector<int64_t> cost(m + 1, 0);
  int64_t k = 0, id = 0;
  while (k >= 0) {
    if (sel[k] == count[k]) {  // this layer's candidates are exhausted: back up
      sel[k] = 0;
      if (--k >= 0) ++sel[k];
      continue;
    }
    const int64_t i = offset[k] + sel[k];
    double o = obj[k] + M(i, i);
    for (int64_t j = 0; j < k; ++j) o += M(i, idx[j]) + M(idx[j], i);
    idx[k] = i;
    obj[k + 1] = o;
    cost[k + 1] = cost[k] + p.cost[l0 + k][sel[k]];
    if (k + 1 < m) {
      ++k;
    } else {
      all.push_back({cost[m], obj[m], id++});
      ++sel[k];
    }
  }
  *enumerated += id;
  return pareto(all);
}

// Writes the choices of block B's combination ID into CHOICE.
void decode(const RatioIqpProblem& p, const BlockLayout& bl, int64_t b, int64_t id, std::vector<int>& choice) {
  for (int64_t l = bl.last[b] - 1; l >= bl.first[b]; --l) {
    const int64_t k = static_cast<int64_t>(p.cost[l].size());
    choice[l] = static_cast<int>(id % k);
    id /= k;
  }
}

std::string bits_and_bpw(int64_t lo, int64_t hi, int64_t weights) {
  std::ostringstream os;
  os << "[" << lo << ", " << hi << "] bits";
  if (weights > 0)
    os << std::fixed << std::setprecision(4) << " ([" << double(lo) / double(weights) << ", "
       << double(hi) / double(weights) << "] bits/weight over " << weights << " weights)";
  return os.str();
}

}  // namespace

void check_ratio_iqp(const RatioIqpProblem& p) {
  const BlockLayout bl = layout_of(p.block_of);
  const int64_t n = static_cast<int64_t>(p.block_of.size());
  SQ_CHECK(static_cast<int64_t>(p.cost.size()) == n,
           "ratio IQP: " << p.cost.size() << " cost lists for " << n << " layers");
  SQ_CHECK(static_cast<int64_t>(p.M.size()) == bl.blocks(),
           "ratio IQP: " << p.M.size() << " block matrices for " << bl.blocks() << " blocks");
  SQ_CHECK(p.max_block_combinations > 0 && p.max_block_combinations < (int64_t(1) << 40),
           "ratio IQP: max_block_combinations " << p.max_block_combinations << " must be in [1, 2^40)");
  int64_t max_total = 0;
  for (int64_t l = 0; l < n; ++l) {
    SQ_CHECK(!p.cost[l].empty(), "ratio IQP: layer " << l << " has no candidates");
    SQ_CHECK(p.cost[l].size() < (size_t(1) << 30), "ratio IQP: layer " << l << " has too many candidates");
    int64_t mx = 0;
    for (size_t c = 0; c < p.cost[l].size(); ++c) {
      SQ_CHECK(p.cost[l][c] >= 0,
               "ratio IQP: layer " << l << " candidate " << c << " has negative cost " << p.cost[l][c] << " bits");
      mx = std::max(mx, p.cost[l][c]);
    }
    SQ_CHECK(!__builtin_add_overflow(max_total, mx, &max_total),
             "ratio IQP: total cost overflows 64 bits at layer " << l);
  }
  for (int64_t b = 0; b < bl.blocks(); ++b) {
    int64_t K = 0;
    for (int64_t l = bl.first[b]; l < bl.last[b]; ++l) K += static_cast<int64_t>(p.cost[l].size());
    SQ_CHECK(p.M[b].rows() == K && p.M[b].cols() == K,
             "ratio IQP: block " << b << " (layers " << bl.first[b] << ".." << bl.last[b] - 1 << ") has a "
                                 << p.M[b].rows() << "x" << p.M[b].cols() << " matrix, expected " << K << "x" << K
                                 << " (one row per candidate of its layers)");
    SQ_CHECK(p.M[b].allFinite(), "ratio IQP: block " << b << "'s matrix has NaN or Inf entries");
    const int64_t combos = combinations_of(p, bl, b, p.max_block_combinations);
    SQ_CHECK(combos <= p.max_block_combinations,
             "ratio IQP: block " << b << " (layers " << bl.first[b] << ".." << bl.last[b] - 1 << ", candidates "
                                 << counts_of(p, bl, b) << ") has more than " << p.max_block_combinations
                                 << " combinations to enumerate; use fewer candidates or smaller blocks");
  }
}

RatioIqpResult solve_ratio_iqp(const RatioIqpProblem& p, int64_t budget_bits) {
  check_ratio_iqp(p);
  const BlockLayout bl = layout_of(p.block_of);
  const int64_t B = bl.blocks();
  RatioIqpResult res;

  // 1. Each block's Pareto frontier.
  auto t0 = Clock::now();
  std::vector<std::vector<Point>> front(B);
  for (int64_t b = 0; b < B; ++b) {
    front[b] = block_frontier(p, bl, b, &res.stats.combinations);
    res.stats.block_frontier.push_back(static_cast<int64_t>(front[b].size()));
    SQ_CHECK(front[b].size() < (size_t(1) << 31), "ratio IQP: block " << b << "'s frontier is too large");
  }
  res.stats.enumerate_seconds = seconds_since(t0);

  // 2. The feasible range: every block at its cheapest point (the first of its frontier),
  // and every block at its best objective (the last, the cheapest among equal objectives).
  std::vector<int64_t> rest_min(B + 1, 0);  // rest_min[b]: cheapest cost of blocks b..B-1
  for (int64_t b = B - 1; b >= 0; --b) rest_min[b] = rest_min[b + 1] + front[b].front().cost;
  res.min_cost_bits = rest_min[0];
  for (int64_t b = 0; b < B; ++b) {
    res.unconstrained_cost_bits += front[b].back().cost;
    res.unconstrained_objective += front[b].back().obj;
  }
  if (budget_bits < res.min_cost_bits) {
    std::ostringstream os;
    os << "ratio IQP: budget " << budget_bits << " bits";
    if (p.weight_count > 0)
      os << std::fixed << std::setprecision(4) << " (" << double(budget_bits) / double(p.weight_count)
         << " bits/weight)";
    os << " is below the cheapest assignment; feasible budgets are "
       << bits_and_bpw(res.min_cost_bits, res.unconstrained_cost_bits, p.weight_count)
       << ": the lower end puts every layer at its cheapest candidate, and from the upper end on the "
          "unconstrained optimum is reached";
    SQ_FAIL(os.str());
  }

  // 3. Merge the blocks' frontiers. A point that cannot be completed within the budget
  // (its cost plus the cheapest cost of the remaining blocks exceeds it) is dropped.
  t0 = Clock::now();
  std::vector<std::vector<Point>> stage(B);
  std::vector<Point> pairs;
  for (int64_t b = 0; b < B; ++b) {
    pairs.clear();
    const int64_t limit = budget_bits - rest_min[b + 1];  // >= cost of every kept point
    if (b == 0) {
      for (size_t j = 0; j < front[0].size(); ++j)
        if (front[0][j].cost <= limit) pairs.push_back({front[0][j].cost, front[0][j].obj, int64_t(j)});
    } else {
      const std::vector<Point>& F = stage[b - 1];
      for (size_t i = 0; i < F.size(); ++i) {
        for (size_t j = 0; j < front[b].size(); ++j) {
          const int64_t c = F[i].cost + front[b][j].cost;
          if (c > limit) break;  // the block's points are sorted by cost
          pairs.push_back({c, F[i].obj + front[b][j].obj, int64_t(i) << 32 | int64_t(j)});
        }
      }
    }
    res.stats.pairs_examined += static_cast<int64_t>(pairs.size());
    stage[b] = pareto(pairs);
    SQ_CHECK(!stage[b].empty() && stage[b].size() < (size_t(1) << 31),
             "ratio IQP: internal error: merged frontier of block " << b << " has " << stage[b].size() << " points");
    res.stats.merged_frontier.push_back(static_cast<int64_t>(stage[b].size()));
  }
  res.stats.merge_seconds = seconds_since(t0);

  // 4. The last point is the best within the budget; backtrack each block's combination.
  res.choice.assign(p.block_of.size(), 0);
  int64_t at = static_cast<int64_t>(stage[B - 1].size()) - 1;
  for (int64_t b = B - 1; b >= 0; --b) {
    const int64_t tag = stage[b][at].tag;
    decode(p, bl, b, front[b][tag & 0xffffffff].tag, res.choice);
    at = tag >> 32;
  }
  res.cost_bits = ratio_iqp_cost(p, res.choice);
  res.objective = ratio_iqp_objective(p, res.choice);
  SQ_CHECK(res.cost_bits == stage[B - 1].back().cost && res.cost_bits <= budget_bits,
           "ratio IQP: internal error: backtracked cost " << res.cost_bits << " != frontier cost "
                                                          << stage[B - 1].back().cost);
  return res;
}

namespace {

void check_choice(const RatioIqpProblem& p, const std::vector<int>& choice) {
  SQ_CHECK(choice.size() == p.cost.size(),
           "ratio IQP: choice has " << choice.size() << " entries for " << p.cost.size() << " layers");
  for (size_t l = 0; l < choice.size(); ++l)
    SQ_CHECK(choice[l] >= 0 && size_t(choice[l]) < p.cost[l].size(),
             "ratio IQP: layer " << l << " chooses candidate " << choice[l] << " of " << p.cost[l].size());
}

}  // namespace

int64_t ratio_iqp_cost(const RatioIqpProblem& p, const std::vector<int>& choice) {
  check_choice(p, choice);
  int64_t total = 0;
  for (size_t l = 0; l < choice.size(); ++l) total += p.cost[l][choice[l]];
  return total;
}

double ratio_iqp_objective(const RatioIqpProblem& p, const std::vector<int>& choice) {
  check_choice(p, choice);
  const BlockLayout bl = layout_of(p.block_of);
  SQ_CHECK(static_cast<int64_t>(p.M.size()) == bl.blocks(),
           "ratio IQP: " << p.M.size() << " block matrices for " << bl.blocks() << " blocks");
  double total = 0;
  for (int64_t b = 0; b < bl.blocks(); ++b) {
    std::vector<int64_t> idx;
    for (int64_t l = bl.first[b], off = 0; l < bl.last[b]; off += static_cast<int64_t>(p.cost[l].size()), ++l)
      idx.push_back(off + choice[l]);
    for (int64_t i : idx) {
      SQ_CHECK(i < p.M[b].rows() && p.M[b].rows() == p.M[b].cols(),
               "ratio IQP: block " << b << "'s matrix is " << p.M[b].rows() << "x" << p.M[b].cols()
                                   << ", too small for its candidates");
      for (int64_t j : idx) total += p.M[b](i, j);
    }
  }
  return total;
}

std::vector<Eigen::MatrixXd> ratio_iqp_matrix_from_losses(
    const std::vector<int64_t>& block_of, const std::vector<std::vector<double>>& single,
    const std::function<double(int64_t l, int c, int64_t l2, int c2)>& pair) {
  const BlockLayout bl = layout_of(block_of);
  SQ_CHECK(single.size() == block_of.size(),
           "ratio IQP: " << single.size() << " single-layer loss lists for " << block_of.size() << " layers");
  std::vector<Eigen::MatrixXd> M(bl.blocks());
  for (int64_t b = 0; b < bl.blocks(); ++b) {
    std::vector<int64_t> off;  // matrix offset of each layer of the block
    int64_t K = 0;
    for (int64_t l = bl.first[b]; l < bl.last[b]; ++l) {
      SQ_CHECK(!single[l].empty(), "ratio IQP: layer " << l << " has no single-layer losses");
      off.push_back(K);
      K += static_cast<int64_t>(single[l].size());
    }
    M[b] = Eigen::MatrixXd::Zero(K, K);
    for (int64_t l = bl.first[b]; l < bl.last[b]; ++l) {
      const int64_t a = off[l - bl.first[b]];
      for (size_t c = 0; c < single[l].size(); ++c) {
        SQ_CHECK(std::isfinite(single[l][c]),
                 "ratio IQP: single-layer loss of layer " << l << " candidate " << c << " is " << single[l][c]);
        M[b](a + c, a + c) = single[l][c];
      }
      for (int64_t l2 = l + 1; l2 < bl.last[b]; ++l2) {
        const int64_t a2 = off[l2 - bl.first[b]];
        for (size_t c = 0; c < single[l].size(); ++c) {
          for (size_t c2 = 0; c2 < single[l2].size(); ++c2) {
            const double both = pair(l, int(c), l2, int(c2));
            SQ_CHECK(std::isfinite(both), "ratio IQP: pair loss of layers " << l << " (candidate " << c << ") and "
                                                                            << l2 << " (candidate " << c2 << ") is "
                                                                            << both);
            const double v = (both - single[l][c] - single[l2][c2]) / 2;
            M[b](a + c, a2 + c2) = v;
            M[b](a2 + c2, a + c) = v;
          }
        }
      }
    }
  }
  return M;
}

}  // namespace sq
