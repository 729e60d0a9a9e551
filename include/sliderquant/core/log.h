// core/log: leveled messages on stderr (stdout is reserved for results and tables).
#pragma once
#include <sstream>
#include <string>

namespace sq {

enum class LogLevel { Quiet = 0, Info = 1, Debug = 2 };

void set_log_level(LogLevel level);
LogLevel log_level();
void log_line(LogLevel level, const std::string& line);

}  // namespace sq

#define SQ_LOG(level, msg)                                        \
  do {                                                            \
    if (static_cast<int>(::sq::log_level()) >= static_cast<int>(level)) { \
      std::ostringstream sq_log_os_;                              \
      sq_log_os_ << msg;                                          \
      ::sq::log_line(level, sq_log_os_.str());                    \
    }                                                             \
  } while (0)
#define SQ_INFO(msg) SQ_LOG(::sq::LogLevel::Info, msg)
#define SQ_DEBUG(msg) SQ_LOG(::sq::LogLevel::Debug, msg)
