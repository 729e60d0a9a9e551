// core/json: the one set of accessors for reading JSON files (config.json, recipes, pass
// options, family quirks). Every error is an Error that names WHERE (the file, optionally
// followed by the place inside it), the key and what was expected:
//   "<where>: missing required key 'k'"
//   "<where>: key 'k' must be an integer" | "... must be a number" | "... must be true or false"
//   | "... must be a string"
//   "<where>: unknown key 'x' [in <what>] (known: a, b)"
// A key whose value is null counts as absent (has_value) for req_* / opt_*.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "sliderquant/core/error.h"

namespace sq {

// True when OBJ holds KEY with a non-null value.
bool has_value(const nlohmann::json& obj, const char* key);

// Throws Error unless OBJ is an object whose keys are all in KNOWN. WHAT names the object
// inside the file ("the recipe", "'calibration'"); when given, the object check and the
// unknown-key message mention it.
void check_keys(const nlohmann::json& obj, const std::vector<std::string>& known, const std::string& where,
                const std::string& what = "");

// Required keys: missing (or null) or of the wrong type -> Error.
int64_t req_int(const nlohmann::json& obj, const char* key, const std::string& where);
double req_num(const nlohmann::json& obj, const char* key, const std::string& where);
std::string req_str(const nlohmann::json& obj, const char* key, const std::string& where);

// Optional keys: DFLT when missing or null; the wrong type -> Error.
int64_t opt_int(const nlohmann::json& obj, const char* key, int64_t dflt, const std::string& where);
double opt_num(const nlohmann::json& obj, const char* key, double dflt, const std::string& where);
bool opt_bool(const nlohmann::json& obj, const char* key, bool dflt, const std::string& where);
std::string opt_str(const nlohmann::json& obj, const char* key, const std::string& dflt, const std::string& where);

// Any type T nlohmann can convert to (lists, unsigned, ...): DFLT when KEY is absent; a
// present value (null included) that does not convert -> "<where>: key 'k' has the wrong
// type". nlohmann's conversions apply as they are (a number converts to an integer type
// by truncation), so prefer the typed accessors above where the type matters.
template <class T>
T get_or(const nlohmann::json& obj, const char* key, T dflt, const std::string& where) {
  if (!obj.contains(key)) return dflt;
  try {
    return obj.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    SQ_FAIL(where << ": key '" << key << "' has the wrong type");
  }
}

}  // namespace sq
