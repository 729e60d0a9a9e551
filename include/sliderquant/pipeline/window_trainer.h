// pipeline/window_trainer: THE gradient-based reconstruction driver over windows of
// decoder layers, written once for every learned method (SliderQuant's sliding windows,
// block-wise LWC/AdaRound, learned transforms: a window of one layer is plain block-wise
// training). It keeps two calibration streams in host memory: the full-precision teacher
// stream X_fp and the quantized student stream X_q, both starting at the embeddings.
// For each window [a, b] it computes the targets F_fp(a..b, X_fp) with the full-precision
// weights, then trains the student's parameters of layers a..b to minimise
//   MSE(F_student(a..b, X_q), F_fp(a..b, X_fp))
// with AdamW (weight decay 0, a fresh optimizer per window, per-group learning rates,
// linear decay to 0 over the window, no warm-up), then advances both streams through the
// layers that leave the window. Parameters live in the student and persist across
// windows. Quantization stages (SliderQuant's intra-layer sliding) are either whole passes
// over the schedule, one per rate (the official code), or phases inside each window.
// Resumable: after each trained window the student's state and the position are saved in
// the work directory; a resumed run replays the stream forwards only and is bit-identical
// to an uninterrupted one (seeded shuffles).
#pragma once
#include <ATen/core/Tensor.h>

#include <string>
#include <vector>

#include "sliderquant/io/safetensors.h"
#include "sliderquant/model/forward.h"
#include "sliderquant/pipeline/session.h"
#include "sliderquant/pipeline/windows.h"

namespace sq {

struct ParamGroup {
  std::string name;                 // "lora", "lwc", "scale", ...
  std::vector<at::Tensor> params;   // float32 leaves requiring grad
  double lr = 0;
};

// What the driver trains. Layer indices are decoder layers.
class WindowStudent {
 public:
  virtual ~WindowStudent() = default;
  // Called when window [first, last] starts (the student may drop caches of other layers).
  virtual void focus(int64_t first, int64_t last) = 0;
  // Parameter groups of the layers in [first, last] for a fresh optimizer.
  virtual std::vector<ParamGroup> param_groups(int64_t first, int64_t last) = 0;
  // Layer's weights in the compute dtype at quantization rate `rate` (differentiable in
  // the parameters when grad mode is on).
  virtual BlockWeights block(int64_t layer, double rate) = 0;
  // An extra term added to the window's MSE in each training step (e.g. AdaRound's rounding
  // regulariser); PROGRESS = step / steps of the window in [0, 1). Undefined = none.
  virtual at::Tensor regularizer(int64_t /*first*/, int64_t /*last*/, double /*progress*/) { return {}; }
  // All learnable state for checkpoints (names are the student's), and its restore.
  virtual NamedTensors state() = 0;
  virtual void load_state(const SafetensorsFile& f) = 0;
};

struct WindowTrainOptions {
  std::vector<LayerWindow> windows;
  std::vector<double> rates = {1.0};  // quantization stages (intra-layer sliding)
  bool stages_per_window = false;     // false: whole schedule once per rate (official code)
  int64_t epochs = 1;                 // per window and stage
  int64_t batch = 1;                  // calibration samples per optimizer step
  double grad_clip = 0;               // max global gradient norm (0 = off)
  uint64_t seed = 0;                  // shuffling
  std::string label = "windows";      // progress label
  // Feed the student the full-precision stream X_fp instead of its own X_q, i.e. minimise
  // MSE(F_student(X_fp), F_fp(X_fp)) (FlatQuant's block-wise objective); the quantized
  // stream is then not computed. Off: SliderQuant's objective above.
  bool student_inputs_fp = false;
};

struct WindowLog {
  int64_t stage = 0;        // index into rates
  size_t window = 0;        // index into windows
  double first_epoch_loss = 0, last_epoch_loss = 0;  // mean MSE over the epoch
  bool resumed = false;     // restored from the work directory, not trained in this run
};

std::vector<WindowLog> train_windows(Session& s, WindowStudent& student, const WindowTrainOptions& o);

}  // namespace sq
