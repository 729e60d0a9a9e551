// pipeline/pass: what a quantization method registers (src/passes/<method>.cpp, listed in
// src/passes/registry.cpp): its name, whether it needs calibration data, how it validates
// and fills in its options, and how it runs on a Session.
#pragma once
#include <nlohmann/json_fwd.hpp>

#include <string>
#include <vector>

namespace sq {

struct Session;

struct PassInfo {
  std::string name;
  std::string description;
  bool needs_calibration = false;
  // Throws Error naming WHERE and the key for unknown keys or bad values.
  void (*validate)(const nlohmann::json& options, const std::string& where) = nullptr;
  // The options with every default written out (stored in the resolved recipe).
  nlohmann::json (*resolve)(const nlohmann::json& options) = nullptr;
  void (*run)(Session& session, const nlohmann::json& options) = nullptr;
};

const std::vector<const PassInfo*>& pass_registry();
const PassInfo& find_pass(const std::string& name);  // throws Error listing the known passes

}  // namespace sq
