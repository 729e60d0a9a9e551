// arch/arch_common (private): what the family files share. The JSON accessors are core's
// (core/json.h; each names the key and the config file in its errors), made visible here
// by name; the sliding-window refusal is the families' own.
#pragma once
#include <nlohmann/json.hpp>

#include <initializer_list>
#include <string>

#include "sliderquant/core/error.h"
#include "sliderquant/core/json.h"
#include "sliderquant/model/arch.h"

namespace sq::arch {

using ::sq::has_value;
using ::sq::opt_bool;
using ::sq::opt_int;
using ::sq::opt_num;
using ::sq::opt_str;
using ::sq::req_int;

// Families without sliding-window attention support in this tool refuse configs that enable it.
inline void refuse_sliding_window(const nlohmann::json& j, const std::string& where) {
  SQ_CHECK(!opt_bool(j, "use_sliding_window", false, where),
           where << ": use_sliding_window=true is not supported (set it to false to run "
                    "full causal attention, which is exact for sequences within the window)");
}

// The MoE keys the Qwen MoE families and Mixtral share: EXPERTS_KEYS are the spellings of the
// expert count (the first present wins); checks each value's range against the others.
void parse_moe(const nlohmann::json& j, ModelConfig& c, const std::string& where,
               std::initializer_list<const char*> experts_keys, bool qwen_sparse_layers);
// Writes the keys parse_moe reads (synthetic checkpoints), spelling the expert count EXPERTS_KEY.
void emit_moe(const ModelConfig& c, nlohmann::json& j, const char* experts_key, bool qwen_sparse_layers);

}  // namespace sq::arch
