// pipeline/pass: what a quantization method registers (src/passes/<method>.cpp, listed in
// src/passes/registry.cpp): its name, whether it needs calibration data, its options as ONE
// table (name, type, default, range, help), an optional check across options, and how it
// runs on a Session. resolve_options() is the one routine that checks a recipe's options
// against the table and writes out every default; read_options() fills the pass's typed
// options struct from that resolved form.
#pragma once
#include <nlohmann/json.hpp>

#include <functional>
#include <string>
#include <vector>

namespace sq {

struct Session;

enum class OptionType { Bool, Int, Unsigned, Number, String, NumberList, StringList };
const char* option_type_name(OptionType t);  // "bool", "int", "uint", "number", "string", ...

// One option of a pass. Passes build these with the typed helpers of src/passes/options.h.
struct OptionSpec {
  std::string name;
  OptionType type = OptionType::Bool;
  nlohmann::json default_value;  // as the resolved recipe writes it; null: no default (the pass's check fills it)
  std::string default_text;      // shown instead of the default when set ("= abits")
  std::string range;             // for people: ">= 1", "[0, 1)", "rtn | gptq"; "" = any value of the type
  std::string help;              // one line
  // The recipe's value converted to the option's C++ type, as JSON; throws
  // nlohmann::json::exception when the value has the wrong type.
  std::function<nlohmann::json(const nlohmann::json&)> convert;
  // On a converted value: "" when allowed, else the words that follow the key in the error
  // (" must be positive").
  std::function<std::string(const nlohmann::json&)> check;
  // Writes a converted value into the pass's options struct (read_options).
  std::function<void(void* options, const nlohmann::json&)> store;
};

struct LinearPlan;

// What a pass leaves for the passes after it, for the checks across a recipe's passes
// (check_recipe_passes): a pass whose codes a later pass replaces did its work for nothing.
struct PassEffects {
  bool sets_codes = true;          // writes the quantized codes of the linears it plans
  bool other_effects = false;      // also leaves something later passes use (transforms absorbed
                                   // into the weights, activation quantizers, corrections)
  bool needs_unquantized = false;  // refuses linears an earlier pass has quantized
};

struct PassInfo {
  std::string name;
  std::string description;
  bool needs_calibration = false;
  std::vector<OptionSpec> options;
  // Checks across options on the resolved form, after the table's own checks; may also
  // complete it (a default taken from another option) or drop options the others make moot.
  // Throws Error naming WHERE. Null: none.
  void (*finish)(nlohmann::json& resolved, const std::string& where) = nullptr;
  // Runs on the resolved options (read them with read_options).
  void (*run)(Session& session, const nlohmann::json& options) = nullptr;
  // What the pass leaves (null: codes only, as RTN or GPTQ).
  PassEffects (*effects)(const nlohmann::json& resolved) = nullptr;
  // Checks against the model's plan (shapes, formats) that would otherwise fail after the
  // calibration: throws Error naming WHERE; may add warnings. Null: none.
  void (*check_plan)(const nlohmann::json& resolved, const std::vector<LinearPlan>& plan, const std::string& where,
                     std::vector<std::string>& warnings) = nullptr;
};

// A recipe's options object for pass INFO checked against its table (an unknown key, a
// wrong type or a value out of range throws Error naming WHERE, the pass and the key), with
// every default written out and every value in its option's type, then the pass's finish
// check: the resolved form a recipe stores and hashes.
nlohmann::json resolve_options(const PassInfo& info, const nlohmann::json& options, const std::string& where);

// The typed options struct O of a pass filled from resolved options (absent ones from the
// table's defaults).
template <class O>
O read_options(const std::vector<OptionSpec>& table, const nlohmann::json& resolved) {
  O o{};
  for (const OptionSpec& s : table) {
    auto it = resolved.find(s.name);
    if (it != resolved.end()) s.store(&o, *it);
    else if (!s.default_value.is_null()) s.store(&o, s.default_value);
  }
  return o;
}

// The option table of INFO as text, one option a line: name, type, value (from RESOLVED when
// given, else the default), default, range, help.
std::string format_option_table(const PassInfo& info, const nlohmann::json* resolved = nullptr);

const std::vector<const PassInfo*>& pass_registry();
const PassInfo& find_pass(const std::string& name);  // throws Error listing the known passes

struct Recipe;
// The checks across a recipe's passes and against PLAN (recipe check --model, and quantize
// before any work): a pass that needs unquantized linears after one that quantized them, a
// codes-only pass whose codes a later pass replaces (errors); a pass whose codes are replaced
// while its other effects stay, a recipe whose last quantizing pass leaves the weights in full
// precision (warnings, returned); then each pass's check_plan. An empty PLAN (no model at hand)
// runs the order checks only.
std::vector<std::string> check_recipe_passes(const Recipe& recipe, const std::vector<LinearPlan>& plan);

}  // namespace sq
