// tools/cmd_common: what every subcommand shares: --quiet, --verbose, --threads, small argument helpers.
#include <ATen/Parallel.h>

#include "commands.h"
#include "sliderquant/core/log.h"

namespace sq::cli {

std::vector<std::string> split_commas(const std::string& s) {
  std::vector<std::string> out;
  std::string item;
  for (char ch : s + ",") {
    if (ch != ',') {
      item += ch;
    } else if (!item.empty()) {
      out.push_back(item);
      item.clear();
    }
  }
  return out;
}

std::string short_name(const std::string& name_or_path) {
  return name_or_path.substr(name_or_path.find_last_of('/') + 1);
}

void apply_common(const CommonArgs& c) {
  set_log_level(c.quiet ? LogLevel::Quiet : c.verbose ? LogLevel::Debug : LogLevel::Info);
  if (c.threads > 0) at::set_num_threads(c.threads);
}

}  // namespace sq::cli
