// pack/native_mixed: the packed layout of a mixed-precision linear (quant/mixed), as
// docs/FORMAT.md "Mixed-precision linears" describes it; each part goes through the
// native layout of pack/native unchanged, under the prefixes NAME.hi and NAME.lo:
//   NAME.hi_cols                  int32 [k]   the hi channels, strictly increasing
//   NAME.hi.qweight / .scales / .qzeros / .g_idx   pack_qtensor of the hi part [out, k]
//   NAME.lo.qweight / .scales / .qzeros / .g_idx   pack_qtensor of the lo part [out, in - k]
// (.qzeros only for asymmetric formats, .g_idx only when the part has one). Layout only.
#pragma once
#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "sliderquant/quant/mixed.h"

namespace sq {

std::vector<std::pair<std::string, at::Tensor>> pack_mixed(const std::string& name, const MixedQTensor& q);
// The inverse: k is read from NAME.hi_cols; throws Error naming the tensor on any mismatch
// (missing or malformed hi_cols, a part that does not fit its format).
MixedQTensor unpack_mixed(const std::string& name, const QFormat& hi, const QFormat& lo, int64_t out, int64_t in,
                          const std::function<at::Tensor(const std::string&)>& get);

}  // namespace sq
