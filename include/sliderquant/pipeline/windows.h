// pipeline/windows: SliderQuant's inter-layer sliding schedule (docs/METHODS.md 1.3 step 5):
// progressively expanding windows over the shallow layers (the first layer in every one),
// fixed-size windows with a stride over the middle, progressively contracting windows over
// the deep layers. A window is a contiguous range of decoder layers [first, last].
// Pure functions; knows nothing of models.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace sq {

struct LayerWindow {
  int64_t first = 0, last = 0;  // inclusive
  int64_t size() const { return last - first + 1; }
  bool operator==(const LayerWindow& o) const { return first == o.first && last == o.last; }
};

struct WindowParams {
  int64_t fill = 4;    // F: shallow windows [0], [0,1], ..., [0..F-1]; deep windows mirror them (0 = none)
  int64_t size = 2;    // s: middle window size
  int64_t stride = 1;  // i: middle stride
};

// For L layers (the official scheduler, with fill windows at both ends):
//   shallow: [0..k] for k = 0..F-1
//   middle:  [F-i + r*i, min(F-i + r*i + s, L) - 1] for r = 0..ceil((L - 2(F-i) - s) / i)
//   deep:    [L-F+k .. L-1] for k = 0..F-1
// L = 32, F = 4, s = 2, i = 1 gives 33 windows: [0] [0,1] [0..2] [0..3] [3,4] ... [27,28]
// [28..31] [29..31] [30,31] [31]. Throws Error when the parameters cannot cover L layers
// (L < 1, F > L, s < 1, i < 1, i > s, i > F when F > 0, or no middle window fits).
std::vector<LayerWindow> window_schedule(int64_t num_layers, const WindowParams& p);

// An explicit schedule "0-0,0-1,1-3,3" (comma-separated first-last or single layers).
// Throws Error naming the offending item unless: every window is non-empty and inside
// [0, L), window starts never decrease, and together the windows cover every layer (the
// last window ends at L-1, and a window never starts after the previous one's end + 1).
std::vector<LayerWindow> parse_window_schedule(const std::string& spec, int64_t num_layers);

std::string format_window_schedule(const std::vector<LayerWindow>& w);  // "0-0,0-1,..."

// Layers that leave the window set when moving from window k to k+1 (k+1's first minus
// k's first, 0 for the last window): how far both calibration streams advance.
int64_t window_advance(const std::vector<LayerWindow>& w, size_t k);

}  // namespace sq
