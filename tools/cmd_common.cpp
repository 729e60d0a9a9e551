// tools/cmd_common: options every subcommand shares (--quiet, --threads).
#include <ATen/Parallel.h>

#include "commands.h"
#include "sliderquant/core/log.h"

namespace sq::cli {

void apply_common(const CommonArgs& c) {
  set_log_level(c.quiet ? LogLevel::Quiet : LogLevel::Info);
  if (c.threads > 0) at::set_num_threads(c.threads);
}

}  // namespace sq::cli
