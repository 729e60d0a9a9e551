// passes/adaptive/options: the adaptive pass's option table and its registry entry.
#include "../options.h"
#include "adaptive.h"

namespace sq::passes {
namespace adaptive {

const std::vector<OptionSpec>& options() {
  static const std::vector<OptionSpec> t = {
      option("mode", &Opts::mode, "adaptive", one_of({"adaptive", "rotation", "affine"}),
             "per-layer choice, or one kind at every point"),
      option("select", &Opts::select, "kurtosis", one_of({"kurtosis", "search"}),
             "adaptive choice: the kurtosis selector or a learned search"),
      option("beta_attn", &Opts::beta_attn, 0.0, "kurtosis selector threshold shift at the attention inputs"),
      option("beta_ffn", &Opts::beta_ffn, 0.0, "kurtosis selector threshold shift at the MLP inputs"),
      option("heavy_tail", &Opts::heavy_tail, "rotation", one_of({"rotation", "affine"}),
             "what the kurtosis selector gives heavy-tailed inputs"),
      option("epochs", &Opts::epochs, 15, at_least(0), "training epochs per block with the chosen transforms"),
      option("search_epochs", &Opts::search_epochs, 5, at_least(0), "epochs of the transform search (select search)"),
      option("batch", &Opts::batch, 4, at_least(1), "calibration samples per optimizer step"),
      option("lr", &Opts::lr, 5e-3, at_least(0), "learning rate of the transforms"),
      option("lwc_lr", &Opts::lwc_lr, 5e-2, at_least(0), "learning rate of the weight and activation clipping"),
      option("choice_lr", &Opts::choice_lr, 5e-2, at_least(0), "learning rate of the search's choice logits"),
      option("lwc_init", &Opts::lwc_init, 4.0, "initial weight clipping logit"),
      option("lac", &Opts::lac, true, "learnable activation clipping"),
      option("lac_init", &Opts::lac_init, 4.0, "initial activation clipping logit"),
      option("weights", &Opts::weights, "rtn",
             one_of({"rtn", "none"}, "\"rtn\" (learned clipping) or \"none\" (left for the next pass, e.g. gptq)"),
             "harden the weights by RTN with learned clipping, or leave them for the next pass"),
      option("abits", &Opts::abits, 4, act_bits(), "bits of the per-token activation quantizers"),
      option("k_bits", &Opts::k_bits, 4, act_bits(), "bits of the K cache"),
      option("v_bits", &Opts::v_bits, 4, act_bits(), "bits of the V cache"),
      option("kv_group", &Opts::kv_group, 0, at_least(0, " (0 = per head)"), "K/V cache quantization group size"),
      option("fp_inputs", &Opts::fp_inputs, true, "train each block on the full-precision stream (FlatQuant)"),
      option("seed", &Opts::seed, 0, "seed of the rotations' signs and the search's noise")};
  return t;
}

}  // namespace adaptive

const PassInfo& adaptive_pass() {
  static const PassInfo info{"adaptive",
                             "Adaptive layer-wise transforms: per-point rotation (Hadamard) or learnable Kronecker affine "
                             "transforms applied online, block-wise training with learned weight and activation "
                             "clipping, W/A/KV quantization",
                             true, adaptive::options(), nullptr, adaptive::run,
                             [](const nlohmann::json& o) {  // transforms and activation quantizers stay
                               return PassEffects{o.value("weights", std::string("rtn")) == "rtn", true, false};
                             }};
  return info;
}

}  // namespace sq::passes
