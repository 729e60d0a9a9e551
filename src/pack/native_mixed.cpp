// pack/native_mixed: a mixed-precision linear as two native QTensor layouts plus its
// channel list (docs/FORMAT.md, "Mixed-precision linears"). Layout only.
#include "sliderquant/pack/native_mixed.h"

#include <ATen/ATen.h>

#include "sliderquant/core/error.h"
#include "sliderquant/pack/native.h"

namespace sq {

std::vector<std::pair<std::string, at::Tensor>> pack_mixed(const std::string& name, const MixedQTensor& q) {
  std::vector<std::pair<std::string, at::Tensor>> res;
  res.emplace_back(name + ".hi_cols", checked_hi_cols(q.hi_cols, q.in, name + ".hi_cols"));
  const int64_t k = q.hi_cols.size(0);
  check_mixed_formats(q.hi.format, q.lo.format, q.hi.out_features(), q.in, k, name);
  SQ_CHECK(q.hi.in_features() == k && q.lo.in_features() == q.in - k && q.lo.out_features() == q.hi.out_features(),
           name << ": parts [" << q.hi.out_features() << ", " << q.hi.in_features() << "] and [" << q.lo.out_features()
                << ", " << q.lo.in_features() << "] do not match " << k << " of " << q.in << " channels");
  for (auto& t : pack_qtensor(name + ".hi", q.hi)) res.push_back(std::move(t));
  for (auto& t : pack_qtensor(name + ".lo", q.lo)) res.push_back(std::move(t));
  return res;
}

MixedQTensor unpack_mixed(const std::string& name, const QFormat& hi, const QFormat& lo, int64_t out, int64_t in,
                          const std::function<at::Tensor(const std::string&)>& get) {
  const std::string cname = name + ".hi_cols";
  at::Tensor cols = get(cname);
  SQ_CHECK(cols.defined(), cname << " is missing (a mixed-precision linear needs its channel list)");
  SQ_CHECK(cols.scalar_type() == at::kInt,
           cname << " has dtype " << c10::toString(cols.scalar_type()) << ", expected int32");
  MixedQTensor q;
  q.in = in;
  q.hi_cols = checked_hi_cols(cols, in, cname);
  const int64_t k = q.hi_cols.size(0);
  check_mixed_formats(hi, lo, out, in, k, name);
  q.hi = unpack_qtensor(name + ".hi", hi, out, k, get);
  q.lo = unpack_qtensor(name + ".lo", lo, out, in - k, get);
  return q;
}

}  // namespace sq
