// core/progress: a progress line for long work ("label  i/N  elapsed  ETA  extra").
// On a terminal it redraws one line; otherwise it prints at most every few seconds,
// so batch logs stay readable. Silent when the log level is Quiet.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace sq {

class Progress {
 public:
  Progress(std::string label, int64_t total);
  ~Progress();
  void update(int64_t done, const std::string& extra = "");
  void finish(const std::string& extra = "");

 private:
  std::string label_;
  int64_t total_;
  bool tty_;
  bool finished_ = false;
  int64_t last_done_ = -1;
  std::chrono::steady_clock::time_point start_, last_print_;
};

std::string format_duration(double seconds);

}  // namespace sq
