// tools/cmd_common: what every subcommand shares: --quiet, --verbose, --threads, small argument helpers.
#include <ATen/Parallel.h>

#include <fnmatch.h>

#include "commands.h"
#include "sliderquant/core/error.h"
#include "sliderquant/core/fs.h"
#include "sliderquant/core/log.h"
#include "sliderquant/core/util.h"
#include "sliderquant/pipeline/recipe.h"

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

std::vector<std::string> split_dataset_list(const std::string& s) {
  const std::vector<std::string> parts = split_commas(s);
  std::vector<std::string> out;
  for (size_t i = 0; i < parts.size();) {
    // The longest run of items from i that, joined by commas again, names an existing file.
    size_t take = 1;
    std::string joined = parts[i];
    for (size_t j = i + 1; j < parts.size(); ++j) {
      joined += "," + parts[j];
      if (path_exists(joined) && !is_directory(joined)) take = j - i + 1;
    }
    std::string item = parts[i];
    for (size_t j = i + 1; j < i + take; ++j) item += "," + parts[j];
    out.push_back(item);
    i += take;
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

int warn_unmatched_overrides(const Recipe& recipe, const std::vector<LinearPlan>& plan) {
  int n = 0;
  for (size_t i = 0; i < recipe.overrides.size(); ++i) {
    bool hit = false;
    for (const LinearPlan& p : plan) hit = hit || fnmatch(recipe.overrides[i].match.c_str(), p.name.c_str(), 0) == 0;
    if (!hit) {
      ++n;
      SQ_INFO("warning: " << (recipe.path.empty() ? recipe.name : recipe.path) << ": overrides[" << i << "] ("
                          << recipe.overrides[i].match << ") matches no linear of this model; it does nothing");
    }
  }
  return n;
}

void check_apart_from_source(const std::string& path, const std::string& what, const std::string& src) {
  if (same_or_inside(path, src))
    throw UsageError(what + " " + path + " is the source model " + src + " or lies inside it; write elsewhere");
  if (same_or_inside(src, path))
    throw UsageError("the source model " + src + " lies inside " + what + " " + path +
                     ", which the run replaces or removes; write elsewhere");
}

}  // namespace sq::cli
