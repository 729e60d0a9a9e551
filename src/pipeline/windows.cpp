// pipeline/windows: the window schedule (see the header).
#include "sliderquant/pipeline/windows.h"

#include <sstream>

#include "sliderquant/core/error.h"

namespace sq {

namespace {

// Throws unless the windows are non-empty, inside [0, L), start at 0, never move back,
// never skip a layer, and end at L-1. WHAT names the schedule in the message.
void check_cover(const std::vector<LayerWindow>& w, int64_t L, const std::string& what) {
  SQ_CHECK(!w.empty(), what << " is empty");
  SQ_CHECK(w.front().first == 0, what << ": the first window must start at layer 0");
  for (size_t k = 0; k < w.size(); ++k) {
    const LayerWindow& x = w[k];
    const std::string name = std::to_string(x.first) + "-" + std::to_string(x.last);
    SQ_CHECK(x.first <= x.last && x.first >= 0 && x.last < L,
             what << ": window " << name << " is empty or outside layers 0-" << L - 1);
    if (k == 0) continue;
    SQ_CHECK(x.first >= w[k - 1].first, what << ": window " << name << " starts before the previous window");
    int64_t reach = -1;
    for (size_t j = 0; j < k; ++j) reach = std::max(reach, w[j].last);
    SQ_CHECK(x.first <= reach + 1, what << ": window " << name << " skips layers after " << reach);
  }
  SQ_CHECK(w.back().last == L - 1, what << ": the last window must end at layer " << L - 1);
}

}  // namespace

std::vector<LayerWindow> window_schedule(int64_t L, const WindowParams& p) {
  SQ_CHECK(L >= 1, "window schedule: " << L << " layers");
  SQ_CHECK(p.size >= 1 && p.stride >= 1 && p.stride <= p.size,
           "window schedule: middle window size " << p.size << " and stride " << p.stride
                                                  << " need 1 <= stride <= size");
  SQ_CHECK(p.fill >= 0, "window schedule: negative fill size " << p.fill);
  const int64_t F = std::min(p.fill, L);  // fill windows never reach past the last layer
  SQ_CHECK(F == 0 || p.stride <= F, "window schedule: stride " << p.stride << " exceeds the fill size " << F);
  std::vector<LayerWindow> w;
  for (int64_t k = 0; k < F; ++k) w.push_back({0, k});
  const int64_t edge = F > 0 ? F - p.stride : 0;  // where the middle starts (overlapping the fill by one stride)
  const int64_t mid_len = L - 2 * edge;
  // ceil((mid_len - s) / i) + 1 rounds, none when the fill windows already meet.
  const int64_t excess = mid_len - p.size;
  const int64_t rounds = excess >= 0 ? (excess + p.stride - 1) / p.stride + 1 : (F > 0 ? 0 : 1);
  for (int64_t r = 0; r < rounds; ++r) {
    const int64_t first = edge + r * p.stride;
    w.push_back({first, std::min(first + p.size, L) - 1});
  }
  for (int64_t k = 0; k < F; ++k) w.push_back({L - F + k, L - 1});
  check_cover(w, L, "window schedule (fill " + std::to_string(p.fill) + ", size " + std::to_string(p.size) +
                        ", stride " + std::to_string(p.stride) + ", " + std::to_string(L) + " layers)");
  return w;
}

std::vector<LayerWindow> parse_window_schedule(const std::string& spec, int64_t L) {
  std::vector<LayerWindow> w;
  std::stringstream ss(spec);
  std::string item;
  auto number = [&](const std::string& s) -> int64_t {
    SQ_CHECK(!s.empty() && s.size() < 10 && s.find_first_not_of("0123456789") == std::string::npos,
             "window schedule '" << spec << "': '" << item << "' is not a layer or a first-last range");
    return std::stoll(s);
  };
  while (std::getline(ss, item, ',')) {
    const size_t dash = item.find('-');
    LayerWindow x;
    x.first = number(item.substr(0, dash));
    x.last = dash == std::string::npos ? x.first : number(item.substr(dash + 1));
    w.push_back(x);
  }
  SQ_CHECK(spec.empty() || spec.back() != ',', "window schedule '" << spec << "' ends with a comma");
  check_cover(w, L, "window schedule '" + spec + "'");
  return w;
}

std::string format_window_schedule(const std::vector<LayerWindow>& w) {
  std::string s;
  for (const LayerWindow& x : w) s += (s.empty() ? "" : ",") + std::to_string(x.first) + "-" + std::to_string(x.last);
  return s;
}

int64_t window_advance(const std::vector<LayerWindow>& w, size_t k) {
  return k + 1 < w.size() ? w[k + 1].first - w[k].first : 0;
}

}  // namespace sq
