// arch/registry: the explicit table of supported model families (no static
// self-registration: it silently vanishes from static libraries). Add a family here.
#include "sliderquant/core/error.h"
#include "sliderquant/model/arch.h"

namespace sq {
namespace arch {
const ArchSpec& llama_spec();
const ArchSpec& mistral_spec();
const ArchSpec& qwen2_spec();
const ArchSpec& qwen3_spec();
const ArchSpec& qwen3_moe_spec();
const ArchSpec& qwen2_moe_spec();
const ArchSpec& mixtral_spec();
}  // namespace arch

const std::vector<const ArchSpec*>& arch_registry() {
  static const std::vector<const ArchSpec*> all = {&arch::llama_spec(), &arch::mistral_spec(),
                                                   &arch::qwen2_spec(), &arch::qwen3_spec(),
                                                   &arch::qwen3_moe_spec(), &arch::qwen2_moe_spec(),
                                                   &arch::mixtral_spec()};
  return all;
}

const BlockLayout& block_layout(const ArchSpec& spec, const ModelConfig& c, int64_t i) {
  if (spec.moe && c.moe_layer(i)) return moe_layout(*spec.moe, int(c.num_experts));
  SQ_CHECK(spec.layout, "family " << spec.family << " has no block layout");
  return *spec.layout;
}

std::string supported_architectures() {
  std::string s;
  for (const ArchSpec* a : arch_registry())
    for (const std::string& n : a->architectures) s += (s.empty() ? "" : ", ") + n;
  return s;
}

const ArchSpec& find_arch(const std::string& hf_architecture) {
  for (const ArchSpec* a : arch_registry())
    for (const std::string& n : a->architectures)
      if (n == hf_architecture) return *a;
  SQ_FAIL("unsupported architecture '" << hf_architecture
                                       << "' (supported: " << supported_architectures() << ")");
}

const ArchSpec& find_family(const std::string& family) {
  std::string names;
  for (const ArchSpec* a : arch_registry()) {
    if (a->family == family) return *a;
    names += (names.empty() ? "" : ", ") + a->family;
  }
  SQ_FAIL("unknown model family '" << family << "' (known: " << names << ")");
}

}  // namespace sq
