// arch/arch_common (private): JSON accessors shared by the family files. Each throws an
// Error naming the key and the config file when a key is missing or has the wrong type.
#pragma once
#include <nlohmann/json.hpp>

#include <string>

#include "sliderquant/core/error.h"
#include "sliderquant/model/arch.h"

namespace sq::arch {

inline bool has_value(const nlohmann::json& j, const char* key) {
  return j.contains(key) && !j[key].is_null();
}

inline int64_t req_int(const nlohmann::json& j, const char* key, const std::string& where) {
  SQ_CHECK(has_value(j, key), where << ": missing required key '" << key << "'");
  SQ_CHECK(j[key].is_number_integer(), where << ": key '" << key << "' must be an integer");
  return j[key].get<int64_t>();
}

inline int64_t opt_int(const nlohmann::json& j, const char* key, int64_t dflt, const std::string& where) {
  if (!has_value(j, key)) return dflt;
  SQ_CHECK(j[key].is_number_integer(), where << ": key '" << key << "' must be an integer");
  return j[key].get<int64_t>();
}

inline double opt_num(const nlohmann::json& j, const char* key, double dflt, const std::string& where) {
  if (!has_value(j, key)) return dflt;
  SQ_CHECK(j[key].is_number(), where << ": key '" << key << "' must be a number");
  return j[key].get<double>();
}

inline bool opt_bool(const nlohmann::json& j, const char* key, bool dflt, const std::string& where) {
  if (!has_value(j, key)) return dflt;
  SQ_CHECK(j[key].is_boolean(), where << ": key '" << key << "' must be true or false");
  return j[key].get<bool>();
}

// Families without sliding-window attention support in this tool refuse configs that enable it.
inline void refuse_sliding_window(const nlohmann::json& j, const std::string& where) {
  SQ_CHECK(!opt_bool(j, "use_sliding_window", false, where),
           where << ": use_sliding_window=true is not supported (set it to false to run "
                    "full causal attention, which is exact for sequences within the window)");
}

}  // namespace sq::arch
