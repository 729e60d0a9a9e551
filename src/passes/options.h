// passes/options (private): validation helpers for pass options objects in recipes.
#pragma once
#include <nlohmann/json.hpp>

#include <initializer_list>
#include <string>

#include "sliderquant/core/error.h"

namespace sq::passes {

inline void check_keys(const nlohmann::json& o, std::initializer_list<const char*> keys, const std::string& where) {
  for (auto it = o.begin(); it != o.end(); ++it) {
    bool ok = false;
    for (const char* k : keys) ok = ok || it.key() == k;
    if (!ok) {
      std::string known;
      for (const char* k : keys) known += (known.empty() ? "" : ", ") + std::string(k);
      SQ_FAIL(where << ": unknown key '" << it.key() << "' (known: " << (known.empty() ? "none" : known) << ")");
    }
  }
}

template <class T>
T get_or(const nlohmann::json& o, const char* key, T dflt, const std::string& where) {
  if (!o.contains(key)) return dflt;
  try {
    return o.at(key).get<T>();
  } catch (const nlohmann::json::exception&) {
    SQ_FAIL(where << ": key '" << key << "' has the wrong type");
  }
}

}  // namespace sq::passes
