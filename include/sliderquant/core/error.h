// core/error: the project's exception types and the SQ_CHECK macro.
// Every error is one readable line naming what failed and where (tensor, file, key).
// The CLI maps Error -> exit 1 and UsageError -> exit 2. No other layer prints errors.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace sq {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// A bad command line or an option value that cannot be used (exit code 2).
struct UsageError : Error {
  using Error::Error;
};

}  // namespace sq

// SQ_CHECK(cond, "tensor " << name << " has shape " << ...): throws sq::Error.
#define SQ_CHECK(cond, msg)                    \
  do {                                         \
    if (!(cond)) {                             \
      std::ostringstream sq_check_os_;         \
      sq_check_os_ << msg;                     \
      throw ::sq::Error(sq_check_os_.str());   \
    }                                          \
  } while (0)

#define SQ_FAIL(msg)                           \
  do {                                         \
    std::ostringstream sq_check_os_;           \
    sq_check_os_ << msg;                       \
    throw ::sq::Error(sq_check_os_.str());     \
  } while (0)
