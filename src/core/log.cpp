// core/log: stderr logging with a process-wide level set once by the CLI.
#include "sliderquant/core/log.h"

#include <atomic>
#include <cstdio>

namespace sq {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::Info)};
}

void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }
void log_line(LogLevel, const std::string& line) {
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

}  // namespace sq
