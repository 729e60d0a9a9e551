#!/usr/bin/env python3
"""Reference logits from transformers (and the quantization libraries it delegates to), on CPU.

Usage: hf_logits.py MODEL_DIR IDS_JSON OUT_NPY [--dtype float32|float16|bfloat16] [--json REPORT]

Writes float32 logits [N, vocab] of the ids (one window, no cache) to OUT_NPY. The model
directory's config.json decides the loader:
  no quantization_config          AutoModelForCausalLM, weights as stored, computed in --dtype.
  quant_method gptq               transformers' GPTQ integration (optimum.gptq -> GPTQModel),
                                  backend forced to GPTQModel's torch kernel (BACKEND.TORCH,
                                  class TorchLinear), dequantize computed eagerly (no
                                  torch.compile), model loaded with dtype --dtype. TorchLinear
                                  keeps its scales and bias in fp16 (SUPPORTS_DTYPES fp16/bf16)
                                  and dequantizes scale * (q - zero) in fp16, then casts to the
                                  activations' dtype: that is OUT_NPY. With --dtype float32 the
                                  same modules then get float32 scales and the checkpoint's
                                  float32 biases and write OUT.f32scales.npy: the dequantization
                                  in float32, the arithmetic of sliderquant.
  quant_method compressed-tensors transformers' CompressedTensorsHfQuantizer, computed in --dtype:
                                  weight-only schemes with dequantize=True (transformers'
                                  CompressedTensorsDequantize calls compressed-tensors'
                                  compressor.decompress on each Linear's tensors while loading);
                                  schemes with input_activations (W8A8) with dequantize=False
                                  (compressed modules; compressed-tensors decompresses them at the
                                  first forward and quantizes each Linear's input dynamically:
                                  the dense path would silently skip activation quantization).
                                  --ct-compressed forces the second path.
Prints one line: the loader, the quantized Linear class(es) that ran and the dtype the
logits were computed in (also written to --json). Any failure exits non-zero.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TORCH_COMPILE_DISABLE", "1")  # GPTQModel compiles dequantize: not on 2 cores
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def quant_method(model_dir):
    cfg = json.load(open(os.path.join(model_dir, "config.json")))
    qc = cfg.get("quantization_config") or cfg.get("compression_config")
    return (qc or {}).get("quant_method"), qc


def linear_classes(model):
    seen = {}
    for name, m in model.named_modules():
        cls = type(m)
        if name.endswith(("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")):
            key = f"{cls.__module__}.{cls.__name__}"
            seen[key] = seen.get(key, 0) + 1
    return seen


def load_plain(model_dir, dtype):
    import torch
    from transformers import AutoModelForCausalLM
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype), device_map="cpu")


def load_gptq(model_dir, dtype, qc):
    import torch
    from transformers import AutoModelForCausalLM, GPTQConfig
    from gptqmodel import BACKEND
    cfg = GPTQConfig(bits=qc["bits"], backend=BACKEND.TORCH.value)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype), device_map="cpu",
                                                 quantization_config=cfg)
    return model


def load_ct(model_dir, dtype, dequantize=True):
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils.quantization_config import CompressedTensorsConfig
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype), device_map="cpu",
                                                quantization_config=CompressedTensorsConfig(dequantize=dequantize))


def checkpoint_tensors(model_dir, names):
    """The named tensors as stored in the directory's safetensors files (sharded or not)."""
    from safetensors import safe_open
    idx = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(idx):
        wm = json.load(open(idx))["weight_map"]
    else:
        wm = {n: "model.safetensors" for n in names}
    out = {}
    for n in names:
        with safe_open(os.path.join(model_dir, wm[n]), "pt") as f:
            out[n] = f.get_tensor(n)
    return out


def forward(model, ids):
    import torch
    out = model(input_ids=torch.tensor([ids], dtype=torch.long), use_cache=False)
    return out.logits[0].float().numpy(), str(out.logits.dtype).replace("torch.", "")


def float_dtypes(model):
    return sorted({str(t.dtype).replace("torch.", "") for t in list(model.buffers()) + list(model.parameters())
                   if t.is_floating_point()})


def hf_logits(model_dir, ids, dtype="float32", ct_dequantize=None):
    """-> (logits, info, extra): extra maps a variant name to more logits (gptq: "f32scales")."""
    import torch
    torch.set_grad_enabled(False)
    method, qc = quant_method(model_dir)
    if method is None:
        model, loader = load_plain(model_dir, dtype), "transformers"
    elif method == "gptq":
        model, loader = load_gptq(model_dir, dtype, qc), "transformers+optimum.gptq+gptqmodel"
    elif method == "compressed-tensors":
        import compressed_tensors
        if ct_dequantize is None:
            # transformers' dequantize-on-load leaves the model dense: no input-activation
            # quantization. Schemes that quantize activations run as compressed modules, whose
            # forward (compressed-tensors) quantizes the inputs dynamically.
            ct_dequantize = not any(g.get("input_activations") for g in qc.get("config_groups", {}).values())
        model = load_ct(model_dir, dtype, ct_dequantize)
        loader = (f"transformers+compressed-tensors {compressed_tensors.__version__} "
                  + ("(dequantize on load)" if ct_dequantize else "(compressed modules, decompressed at first forward)"))
    else:
        raise SystemExit(f"hf_logits: {model_dir}: quant_method {method!r} not handled")
    model.eval()
    classes = linear_classes(model)
    info = {"loader": loader, "quant_method": method, "linear_classes": classes, "tensor_dtypes": float_dtypes(model)}
    extra = {}
    if method == "gptq":
        from gptqmodel.nn_modules.qlinear.torch import TorchLinear
        qlin = {n: m for n, m in model.named_modules() if n.endswith("_proj")}
        bad = [n for n, m in qlin.items() if not isinstance(m, TorchLinear)]
        if bad:
            raise SystemExit(f"hf_logits: {model_dir}: not GPTQModel's TorchLinear: {bad[:3]} ({classes})")
        info["scales_dtype"] = str(next(iter(qlin.values())).scales.dtype).replace("torch.", "")
    logits, info["compute_dtype"] = forward(model, ids)
    if method == "gptq" and dtype == "float32":
        # The same modules with float32 scales: TorchLinear's scale * (q - zero) then runs in
        # float32, the arithmetic of sliderquant's float32 dequantization.
        # GPTQModel also keeps a Linear's bias in the fp16 of its buffers: the float32 biases
        # are read back from the checkpoint.
        biases = checkpoint_tensors(model_dir, [n + ".bias" for n, m in qlin.items() if m.bias is not None])
        for n, m in qlin.items():
            m.scales.data = m.scales.data.float()
            if m.bias is not None:
                m.bias.data = biases[n + ".bias"].float()
        extra["f32scales"], _ = forward(model, ids)
    return logits, info, extra


def gptqmodel_load_logits(model_dir, ids):
    """GPTQModel's own loader (GPTQModel.load, BACKEND.TORCH), the one that takes mixture-of-experts
    GPTQ checkpoints with per-expert linears (transformers 5 fuses experts and leaves them
    unloaded). -> (logits as shipped, logits with float32 scales, info).

    As shipped: the model in float16 (TorchLinear's only dtypes are fp16 / bf16; float16 is the
    closer to float32), so every weight, scale and activation is rounded to fp16. Float32
    scales: the same loaded modules, then the model cast to float32, every non-quantized
    tensor read back from the checkpoint in float32 and each TorchLinear's scales too: the
    dequantization scale * (q - zero) and the forward then run in sliderquant's float32."""
    import torch
    from gptqmodel import BACKEND, GPTQModel
    from gptqmodel.nn_modules.qlinear.torch import TorchLinear
    from safetensors.torch import load_file
    torch.set_grad_enabled(False)
    model = GPTQModel.load(model_dir, device="cpu", backend=BACKEND.TORCH, dtype=torch.float16).model
    model.eval()
    qlin = {n: m for n, m in model.named_modules() if isinstance(m, TorchLinear)}
    info = {"loader": "GPTQModel.load (BACKEND.TORCH)", "model_class": type(model).__name__,
            "torch_linears": sorted(qlin), "linear_classes": linear_classes(model)}
    logits16, info["compute_dtype"] = forward(model, ids)
    ck = {}
    for f in sorted(os.listdir(model_dir)):
        if f.endswith(".safetensors"):
            ck.update(load_file(os.path.join(model_dir, f)))
    model.float()
    unread = []
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        if not t.is_floating_point():
            continue
        if name in ck:
            t.data = ck[name].float()
        elif "inv_freq" not in name:  # RoPE tables are computed, not stored
            unread.append(name)
    if unread:
        raise SystemExit(f"gptqmodel_load_logits: {model_dir}: tensors not in the checkpoint: {unread[:5]}")
    logits32, _ = forward(model, ids)
    return logits16, logits32, info


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("ids_json")
    ap.add_argument("out_npy")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--json", default="")
    ap.add_argument("--ct-compressed", action="store_true",
                    help="compressed-tensors: load the compressed modules (dequantize=False); compressed-tensors "
                         "decompresses them at the first forward (the path that reads weight_g_idx)")
    a = ap.parse_args()
    import numpy as np
    ids = json.load(open(a.ids_json))
    logits, info, extra = hf_logits(a.model, ids, a.dtype, ct_dequantize=False if a.ct_compressed else None)
    np.save(a.out_npy, logits.astype(np.float32))
    for k, v in extra.items():
        p = a.out_npy[:-4] + "." + k + ".npy" if a.out_npy.endswith(".npy") else a.out_npy + "." + k + ".npy"
        np.save(p, v.astype(np.float32))
        info.setdefault("extra", {})[k] = p
    if a.json:
        json.dump(info, open(a.json, "w"))
    print(json.dumps(info))


if __name__ == "__main__":
    sys.exit(main())
