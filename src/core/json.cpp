// core/json: the JSON accessors shared by every file reader (see the header for the messages).
#include "sliderquant/core/json.h"

namespace sq {

bool has_value(const nlohmann::json& obj, const char* key) { return obj.contains(key) && !obj[key].is_null(); }

void check_keys(const nlohmann::json& obj, const std::vector<std::string>& known, const std::string& where,
                const std::string& what) {
  SQ_CHECK(obj.is_object(), where << ": " << (what.empty() ? std::string("expected a JSON object") : what + " must be an object"));
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    bool ok = false;
    for (const std::string& k : known) ok = ok || it.key() == k;
    if (ok) continue;
    std::string list;
    for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
    SQ_FAIL(where << ": unknown key '" << it.key() << "'" << (what.empty() ? "" : " in " + what)
                  << " (known: " << (list.empty() ? "none" : list) << ")");
  }
}

namespace {

const nlohmann::json& required(const nlohmann::json& obj, const char* key, const std::string& where) {
  SQ_CHECK(has_value(obj, key), where << ": missing required key '" << key << "'");
  return obj[key];
}

}  // namespace

int64_t req_int(const nlohmann::json& obj, const char* key, const std::string& where) {
  const nlohmann::json& v = required(obj, key, where);
  SQ_CHECK(v.is_number_integer(), where << ": key '" << key << "' must be an integer");
  return v.get<int64_t>();
}

double req_num(const nlohmann::json& obj, const char* key, const std::string& where) {
  const nlohmann::json& v = required(obj, key, where);
  SQ_CHECK(v.is_number(), where << ": key '" << key << "' must be a number");
  return v.get<double>();
}

std::string req_str(const nlohmann::json& obj, const char* key, const std::string& where) {
  const nlohmann::json& v = required(obj, key, where);
  SQ_CHECK(v.is_string(), where << ": key '" << key << "' must be a string");
  return v.get<std::string>();
}

int64_t opt_int(const nlohmann::json& obj, const char* key, int64_t dflt, const std::string& where) {
  return has_value(obj, key) ? req_int(obj, key, where) : dflt;
}

double opt_num(const nlohmann::json& obj, const char* key, double dflt, const std::string& where) {
  return has_value(obj, key) ? req_num(obj, key, where) : dflt;
}

bool opt_bool(const nlohmann::json& obj, const char* key, bool dflt, const std::string& where) {
  if (!has_value(obj, key)) return dflt;
  SQ_CHECK(obj[key].is_boolean(), where << ": key '" << key << "' must be true or false");
  return obj[key].get<bool>();
}

std::string opt_str(const nlohmann::json& obj, const char* key, const std::string& dflt, const std::string& where) {
  return has_value(obj, key) ? req_str(obj, key, where) : dflt;
}

}  // namespace sq
