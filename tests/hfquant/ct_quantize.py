#!/usr/bin/env python3
"""Write a compressed-tensors checkpoint the way llm-compressor does, on CPU.

Usage: ct_quantize.py SRC_DIR OUT_DIR --scheme W4A16|W4A16_ASYM|W8A16|W8A8|W2A16|W3A16
                      [--group G] [--asym|--sym] [--format pack-quantized|naive-quantized|int-quantized]
                      [--dtype float32|bfloat16]

llm-compressor itself cannot be installed beside the test pins: llmcompressor 0.14.0.1 (the
newest) requires torch<=2.14.0, transformers<=5.17.0 and compressed-tensors==0.19.0. So this
script runs the steps its QuantizationModifier (RTN, scheme preset, targets "Linear",
ignore ["lm_head"]) and its save_pretrained wrapper run, with compressed-tensors' own API:
  1. preset_name_to_scheme(SCHEME, ["Linear"]) (group_size / symmetric / strategy overridden
     by --group / --asym / --sym; --group -1 is per-channel), QuantizationConfig with
     ignore=["lm_head"], apply_quantization_config(model, config);
  2. weight observer = llm-compressor's "memoryless_minmax": min / max of each group (or
     row), then compressed-tensors' calculate_qparams (the function llm-compressor's
     Observer.get_qparams calls) gives weight_scale / weight_zero_point; status FROZEN;
  3. ModelCompressor.from_pretrained_model(model, quantization_format=--format or inferred),
     compress_model, model.save_pretrained, compressor.update_config (llm-compressor's
     save_pretrained_wrapper, in that order).
Scales are stored in the model dtype (--dtype), as llm-compressor does. W8A8 adds dynamic
per-token int8 input activations (the preset: symmetric; --act-asym: asymmetric); the weights
are stored int-quantized.
Prints the quantization_config written. Runs offline. Any failure exits non-zero.
"""
import argparse
import json
import os
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def minmax_qparams(weight, args):
    """llm-compressor's MemorylessMinMaxObserver + calculate_qparams for a weight [rows, cols]."""
    import torch
    from compressed_tensors.quantization import QuantizationStrategy
    from compressed_tensors.quantization.utils import calculate_qparams
    if args.strategy == QuantizationStrategy.GROUP:
        g = args.group_size
        x = weight.reshape(weight.shape[0], weight.shape[1] // g, g)  # (rows, groups, g)
    elif args.strategy == QuantizationStrategy.CHANNEL:
        x = weight.unsqueeze(-2)  # (rows, 1, cols)
    elif args.strategy == QuantizationStrategy.TENSOR:
        x = weight.reshape(1, 1, -1)
    else:
        raise SystemExit(f"ct_quantize: weight strategy {args.strategy} not handled")
    mn, mx = torch.amin(x, dim=-1), torch.amax(x, dim=-1)
    return calculate_qparams(min_vals=mn, max_vals=mx, quantization_args=args)


def quantize(src, out, scheme_name, group=None, sym=None, fmt=None, dtype="float32", act_sym=None):
    import torch
    from transformers import AutoModelForCausalLM
    from compressed_tensors.compressors import ModelCompressor
    from compressed_tensors.quantization import (QuantizationConfig, QuantizationStatus, QuantizationStrategy,
                                                 apply_quantization_config, preset_name_to_scheme)
    torch.set_grad_enabled(False)
    model = AutoModelForCausalLM.from_pretrained(src, dtype=getattr(torch, dtype), device_map="cpu")
    scheme = preset_name_to_scheme(scheme_name, ["Linear"])
    w = scheme.weights
    upd = {}
    if group is not None:
        if group == -1:
            upd.update(strategy=QuantizationStrategy.CHANNEL, group_size=None)
        else:
            upd.update(strategy=QuantizationStrategy.GROUP, group_size=group)
    if sym is not None:
        upd["symmetric"] = sym
    if upd:
        d = w.model_dump()
        d.update(upd)
        scheme.weights = type(w)(**d)
    if act_sym is not None:
        if scheme.input_activations is None:
            raise SystemExit(f"ct_quantize: {scheme_name} quantizes no input activations")
        d = scheme.input_activations.model_dump()
        d["symmetric"] = act_sym
        scheme.input_activations = type(scheme.input_activations)(**d)
    config = QuantizationConfig(config_groups={"group_0": scheme}, ignore=["lm_head"],
                                quantization_status=QuantizationStatus.INITIALIZED)
    apply_quantization_config(model, config)
    n = 0
    for name, m in model.named_modules():
        s = getattr(m, "quantization_scheme", None)
        if s is None or s.weights is None:
            continue
        scale, zp = minmax_qparams(m.weight.data, s.weights)
        m.weight_scale.data.copy_(scale.to(m.weight_scale.dtype).reshape(m.weight_scale.shape))
        if hasattr(m, "weight_zero_point"):
            m.weight_zero_point.data.copy_(zp.to(m.weight_zero_point.dtype).reshape(m.weight_zero_point.shape))
        m.quantization_status = QuantizationStatus.FROZEN
        n += 1
    if n == 0:
        raise SystemExit("ct_quantize: no Linear was quantized")
    compressor = ModelCompressor.from_pretrained_model(model, quantization_format=fmt)
    compressor.compress_model(model, skip_compressed=True)
    if os.path.isdir(out):
        shutil.rmtree(out)
    model.save_pretrained(out)
    compressor.update_config(out)
    for f in ("tokenizer.model", "tokenizer_config.json"):
        if os.path.exists(os.path.join(src, f)):
            shutil.copy(os.path.join(src, f), os.path.join(out, f))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--scheme", required=True,
                    choices=["W4A16", "W4A16_ASYM", "W8A16", "W8A8", "W2A16", "W3A16"])
    ap.add_argument("--group", type=int, default=None, help="group size; -1 = per-channel (default: the preset's)")
    ap.add_argument("--sym", dest="sym", action="store_true", default=None)
    ap.add_argument("--asym", dest="sym", action="store_false")
    ap.add_argument("--format", default=None, choices=["pack-quantized", "naive-quantized", "int-quantized"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--act-asym", action="store_true", help="W8A8: asymmetric dynamic per-token activations")
    a = ap.parse_args()
    quantize(a.src, a.out, a.scheme, a.group, a.sym, a.format, a.dtype, False if a.act_asym else None)
    cfg = json.load(open(os.path.join(a.out, "config.json")))
    print(json.dumps(cfg.get("quantization_config"), indent=1))


if __name__ == "__main__":
    sys.exit(main())
