// core/progress: "label  i/N  elapsed  ETA" lines on stderr; redraws in place on a tty.
#include "sliderquant/core/progress.h"

#include <cstdio>
#include <unistd.h>

#include "sliderquant/core/log.h"

namespace sq {

std::string format_duration(double s) {
  char buf[64];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%.1fs", s);
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%dm%02ds", int(s) / 60, int(s) % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%dh%02dm", int(s) / 3600, (int(s) % 3600) / 60);
  }
  return buf;
}

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)), total_(total), tty_(isatty(STDERR_FILENO) != 0),
      start_(std::chrono::steady_clock::now()), last_print_(start_) {}

Progress::~Progress() {
  if (!finished_ && tty_ && log_level() != LogLevel::Quiet) std::fprintf(stderr, "\n");
}

void Progress::update(int64_t done, const std::string& extra) {
  if (log_level() == LogLevel::Quiet) return;
  auto now = std::chrono::steady_clock::now();
  double since_print = std::chrono::duration<double>(now - last_print_).count();
  bool last = done >= total_;
  if (done == last_done_ && extra.empty()) return;  // nothing new to say
  if (!last && since_print < (tty_ ? 0.2 : 10.0)) return;
  last_done_ = done;
  last_print_ = now;
  double el = std::chrono::duration<double>(now - start_).count();
  double eta = done > 0 ? el * double(total_ - done) / double(done) : 0.0;
  int width = 24;
  int filled = total_ > 0 ? int(double(width) * double(done) / double(total_)) : 0;
  std::string bar(size_t(filled), '#');
  bar.resize(size_t(width), '.');
  std::fprintf(stderr, "%s%s [%s] %lld/%lld  %s elapsed  ETA %s  %s%s", tty_ ? "\r" : "",
               label_.c_str(), bar.c_str(), (long long)done, (long long)total_,
               format_duration(el).c_str(), format_duration(eta).c_str(), extra.c_str(),
               tty_ ? "\033[K" : "\n");
  std::fflush(stderr);
}

void Progress::finish(const std::string& extra) {
  if (finished_) return;
  if (last_done_ != total_ || !extra.empty()) update(total_, extra);
  if (tty_ && log_level() != LogLevel::Quiet) std::fprintf(stderr, "\n");
  finished_ = true;
}

}  // namespace sq
