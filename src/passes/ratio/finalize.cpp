// passes/ratio/finalize: 4. final quantization block by block on the quantized stream
// (pipeline/sequencer): mixed GPTQ (the high part first, its error compensated into the low
// columns) or mixed RTN at the chosen channel counts.
#include "ratio.h"
#include "sliderquant/pipeline/sequencer.h"
#include "sliderquant/quant/importance.h"

namespace sq::passes::ratio {

MixedQTensor gptq_mixed(const at::Tensor& W, const at::Tensor& H, const at::Tensor& hi_cols, const Layer& L,
                        const GptqOptions& g) {
  MixedQTensor m;
  m.in = L.in;
  m.hi_cols = checked_hi_cols(hi_cols, L.in, L.name + " hi_cols");
  const at::Tensor hc = m.hi_cols.to(W.device(), at::kLong), lc = m.lo_cols().to(W.device());
  const at::Tensor Hhh = H.index_select(0, hc).index_select(1, hc);
  const at::Tensor Hll = H.index_select(0, lc).index_select(1, lc);
  const at::Tensor Hlh = H.index_select(0, lc).index_select(1, hc);
  at::Tensor Wh = W.index_select(1, hc), Wl = W.index_select(1, lc);
  m.hi = gptq_quantize(Wh, Hhh, L.hi, g).q;
  // The low columns' least-squares answer to the high part's error E = Wh - Qh:
  // minimising tr([E, D] H [E, D]^T) over D gives D = -E H_hl H_ll^-1, i.e. target Wl + E H_hl H_ll^-1.
  const at::Tensor E = Wh - m.hi.dequantize().to(W.device());
  at::Tensor Hd = Hll.clone();
  double md = Hd.diagonal().mean().item<double>();
  Hd.diagonal().add_(md > 0 ? g.percdamp * md + 1e-8 : 1.0);
  at::Tensor Xt = at::linalg_solve(Hd, Hlh);  // H_ll^-1 H_lh [nl, k]
  Wl = Wl + at::matmul(E, Xt.t());
  m.lo = gptq_quantize(Wl, Hll, L.lo, g).q;
  m.hi = m.hi.to(at::kCPU);
  m.lo = m.lo.to(at::kCPU);
  m.hi_cols = m.hi_cols.to(at::kCPU);
  return m;
}

void quantize_final(Session& s, const Opts& o, const std::vector<Layer>& layers, const std::vector<int>& choice) {
  std::map<std::string, size_t> index;
  for (size_t l = 0; l < layers.size(); ++l) index[layers[l].name] = l;
  GptqOptions g;
  g.percdamp = o.damp;
  g.block_size = o.block_size;
  SequencerOptions so;
  so.hessians = o.quantizer == "gptq";
  run_block_sequential(s, so, [&](Session& ss, const GroupInputs& in) {
    for (const std::string& name : in.linears) {
      const Layer& L = layers[index.at(name)];
      const int64_t k = L.k[size_t(choice[index.at(name)])];
      const at::Tensor cols = top_k_channels(L.score, k);
      at::Tensor W = ss.linear(name).weight.to(s.runner.device, at::kFloat);
      MixedQTensor m;
      if (o.quantizer == "gptq") {
        m = gptq_mixed(W.to(in.H.device()), in.H, cols, L, g);
      } else {
        m = MixedQTensor::rtn(W, cols, L.hi, L.lo);
        m.hi = m.hi.to(at::kCPU), m.lo = m.lo.to(at::kCPU), m.hi_cols = m.hi_cols.to(at::kCPU);
      }
      ss.set_quantized(name, std::move(m));
    }
  });
}

}  // namespace sq::passes::ratio
