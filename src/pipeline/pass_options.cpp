// pipeline/pass_options: the one check of a recipe's pass options against the pass's option
// table, and the table as text for `recipe explain`.
#include <algorithm>
#include <array>
#include <sstream>

#include "sliderquant/core/error.h"
#include "sliderquant/core/json.h"
#include "sliderquant/pipeline/pass.h"

namespace sq {

const char* option_type_name(OptionType t) {
  switch (t) {
    case OptionType::Bool: return "bool";
    case OptionType::Int: return "int";
    case OptionType::Unsigned: return "uint";
    case OptionType::Number: return "number";
    case OptionType::String: return "string";
    case OptionType::NumberList: return "number list";
    case OptionType::StringList: return "string list";
  }
  return "?";
}

nlohmann::json resolve_options(const PassInfo& info, const nlohmann::json& options, const std::string& where) {
  std::vector<std::string> names;
  for (const OptionSpec& s : info.options) names.push_back(s.name);
  if (!options.is_null()) check_keys(options, names, where, "pass " + info.name);
  nlohmann::json resolved = nlohmann::json::object();
  for (const OptionSpec& s : info.options) {
    auto it = options.find(s.name);
    if (it == options.end()) {
      if (!s.default_value.is_null()) resolved[s.name] = s.default_value;
      continue;
    }
    nlohmann::json v;
    try {
      v = s.convert(*it);
    } catch (const std::exception&) {  // nlohmann's type errors, and out-of-range numbers
      SQ_FAIL(where << ": key '" << s.name << "' must be of type " << option_type_name(s.type) << " (got " << it->dump() << ")");
    }
    if (s.check) {
      const std::string bad = s.check(v);
      SQ_CHECK(bad.empty(), where << ": " << s.name << bad);
    }
    resolved[s.name] = std::move(v);
  }
  if (info.finish) info.finish(resolved, where);
  return resolved;
}

std::string format_option_table(const PassInfo& info, const nlohmann::json* resolved) {
  auto shown = [](const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); };
  std::vector<std::array<std::string, 6>> rows;
  rows.push_back({"option", "type", resolved ? "value" : "default", resolved ? "default" : "", "range", "help"});
  for (const OptionSpec& s : info.options) {
    const std::string dflt = !s.default_text.empty() ? s.default_text : shown(s.default_value);
    std::string value = dflt;
    if (resolved) {
      auto it = resolved->find(s.name);
      value = it == resolved->end() ? "-" : shown(*it);
    }
    rows.push_back({s.name, option_type_name(s.type), value, resolved ? dflt : "", s.range.empty() ? "any" : s.range,
                    s.help});
  }
  size_t width[5] = {0, 0, 0, 0, 0};
  for (const auto& r : rows)
    for (size_t c = 0; c < 5; ++c) width[c] = std::max(width[c], r[c].size());
  std::ostringstream out;
  for (const auto& r : rows) {
    out << "  ";
    for (size_t c = 0; c < 5; ++c) {
      if (c == 3 && !resolved) continue;
      out << r[c] << std::string(width[c] - r[c].size() + 2, ' ');
    }
    out << r[5] << "\n";
  }
  return out.str();
}

}  // namespace sq
