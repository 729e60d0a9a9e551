// passes/adaptive/finish: the per-point choices (set, read back from the search, described)
// and the hardening of the trained transforms and clipping into the model.
#include "adaptive.h"

namespace sq::passes::adaptive {

void AdaptiveStudent::set_kinds(const Kinds& kinds) {
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer& L = ensure(int64_t(l));
    for (int p = 0; p < kPoints; ++p) {
      const TransformKind k = kinds[l][size_t(p < 4 ? p : kHeadChoice)];
      L.pt[p].kind = (k == TransformKind::Rotation && !L.pt[p].rotation_ok) ? TransformKind::Affine : k;
    }
  }
}

Kinds AdaptiveStudent::searched() {
  Kinds r(layers_.size());
  for (size_t l = 0; l < layers_.size(); ++l)
    for (int p = 0; p < 4; ++p) {
      const Point& P = ensure(int64_t(l)).pt[p];
      r[l][size_t(p)] = !P.rotation_ok || P.alpha.item<double>() > 0 ? TransformKind::Affine : TransformKind::Rotation;
    }
  return r;
}

std::vector<std::pair<std::string, int64_t>> AdaptiveStudent::forced_affine() {
  std::vector<std::pair<std::string, int64_t>> r;
  for (int p = 0; p < kPoints; ++p)
    if (!ensure(0).pt[size_t(p)].rotation_ok) r.emplace_back(kPointName[p], ensure(0).pt[size_t(p)].n);
  return r;
}

std::string AdaptiveStudent::describe() {
  std::string r;
  for (size_t l = 0; l < layers_.size(); ++l) {
    r += (l ? "; " : "") + std::to_string(l) + ":";
    for (int p = 0; p < kPoints; ++p) r += std::string(" ") + (ensure(int64_t(l)).pt[p].kind == TransformKind::Rotation ? "R" : "A");
  }
  return r;
}

void AdaptiveStudent::finish() {
  at::NoGradGuard ng;
  fp_.clear();
  auto host = [](const at::Tensor& x) { return x.defined() ? x.detach().to(at::kCPU, at::kFloat).contiguous() : x; };
  for (size_t l = 0; l < layers_.size(); ++l) {
    Layer& L = ensure(int64_t(l));
    Block& b = s_.model.blocks[l];
    std::array<OnlineTransform, kPoints> T;
    BlockTensors t = transformed(L, block_tensors(b, s_.runner.device), T);
    std::vector<Linear*> lin = b.linears();
    for (int i = 0; i < int(L.lwc.size()); ++i) {
      Linear& li = *lin[size_t(i)];
      li.weight = host(weight_of(t, i));
      if (li.bias.defined()) li.bias = host(bias_of(t, i));
      if (L.lwc[size_t(i)] && o_.weights == "rtn")
        s_.set_quantized(li.name, L.lwc[size_t(i)]->quantize(weight_of(t, i)).to(c10::Device(c10::kCPU)));
    }
    if (L.lac.defined()) b.act_clip = host(at::sigmoid(L.lac));
    for (int p = 0; p < kOnlinePoints; ++p) {
      b.online[p] = {host(T[size_t(p)].scale), host(T[size_t(p)].p1), host(T[size_t(p)].p2)};
      b.online_kind[p] = transform_kind_name(L.pt[size_t(p)].kind);
    }
  }
  s_.model.act = act();
}

}  // namespace sq::passes::adaptive
