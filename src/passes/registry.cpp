// passes/registry: the explicit table of quantization passes (no static self-registration).
// Add a method here.
#include "sliderquant/core/error.h"
#include "sliderquant/pipeline/pass.h"

namespace sq {
namespace passes {
const PassInfo& rtn_pass();
const PassInfo& gptq_pass();
const PassInfo& d2quant_pass();
const PassInfo& sliderquant_pass();
const PassInfo& adaptive_pass();
const PassInfo& ratio_pass();
}  // namespace passes

const std::vector<const PassInfo*>& pass_registry() {
  static const std::vector<const PassInfo*> all = {&passes::rtn_pass(), &passes::gptq_pass(),
                                                       &passes::d2quant_pass(), &passes::sliderquant_pass(),
                                                       &passes::adaptive_pass(), &passes::ratio_pass()};
  return all;
}

const PassInfo& find_pass(const std::string& name) {
  std::string known;
  for (const PassInfo* p : pass_registry()) {
    if (p->name == name) return *p;
    known += (known.empty() ? "" : ", ") + p->name;
  }
  SQ_FAIL("unknown pass '" << name << "' (known: " << known << ")");
}

}  // namespace sq
