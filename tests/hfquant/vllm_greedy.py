#!/usr/bin/env python3
"""Greedy continuation with vLLM on CPU (offline).

usage: vllm_greedy.py MODEL_DIR IDS_JSON N_NEW OUT_JSON [--dtype bfloat16] [--with-tokenizer] [--logprobs K]

IDS_JSON is a file holding a JSON list of prompt token ids (or the literal JSON
list itself).  OUT_JSON receives
  {"tokens": [...N_NEW greedy ids...], "quant_method": ..., "linear_method": ...,
   "kernel": ..., "use_w4a8": ..., "log_lines": [...], "vllm_version": ..., "seconds": {...},
   "logprobs": [[[id, logprob], ...K best...] per generated token]   (with --logprobs K)}
vLLM's logprobs are log_softmax of the raw logits (float32) at each step, so differences between
two of them at one step are logit differences, comparable with another runtime's logits.
quant_method / kernel come from vLLM's own log lines ("Using X for ...") and from
inspecting the loaded model's first attention qkv_proj layer.

Environment defaults set here (override by exporting them): HF_HUB_OFFLINE=1,
TRANSFORMERS_OFFLINE=1, VLLM_TARGET_DEVICE=cpu, VLLM_CPU_KVCACHE_SPACE=1 (GiB),
VLLM_ENABLE_V1_MULTIPROCESSING=0 (engine in-process so logs/model are visible).
VLLM_CPU_INT4_W4A8 (vLLM default 1) makes CPUs with AMX run 4-bit weights with
dynamically int8-quantized activations; export VLLM_CPU_INT4_W4A8=0 for W4A16.
"""
import json
import logging
import os
import sys
import time

for _k, _v in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "VLLM_TARGET_DEVICE": "cpu",
    "VLLM_CPU_KVCACHE_SPACE": "1",
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",
    "VLLM_NO_USAGE_STATS": "1",
    "DO_NOT_TRACK": "1",
}.items():
    os.environ.setdefault(_k, _v)


class _Grab:
    """Record every vllm.* log message.  vLLM re-runs logging.dictConfig when the
    engine starts (dropping added handlers), so hook the LogRecord factory,
    which vLLM wraps rather than replaces."""

    def __init__(self):
        self.lines = []
        self._prev = logging.getLogRecordFactory()
        logging.setLogRecordFactory(self._factory)

    def _factory(self, *a, **kw):
        rec = self._prev(*a, **kw)
        if rec.name.startswith("vllm"):
            try:
                self.lines.append(rec.getMessage())
            except Exception:
                pass
        return rec


def _inspect(model):
    info = {}
    for name, mod in model.named_modules():
        qm = getattr(mod, "quant_method", None)
        if qm is None or not name.endswith("qkv_proj"):
            continue
        info["layer"] = name
        info["linear_method"] = type(qm).__name__
        scheme = getattr(mod, "scheme", None)
        if scheme is not None:
            info["scheme"] = type(scheme).__name__
        for owner in (qm, scheme):
            k = getattr(owner, "kernel", None) if owner is not None else None
            if k is not None:
                info["kernel"] = type(k).__name__
        if hasattr(mod, "use_w4a8"):
            info["use_w4a8"] = bool(mod.use_w4a8)
        info["params"] = {n: [str(p.dtype), list(p.shape)] for n, p in mod.named_parameters(recurse=False)}
        break
    return info


def main(argv):
    import argparse

    ap = argparse.ArgumentParser(description="greedy continuation with vLLM on CPU")
    ap.add_argument("model_dir")
    ap.add_argument("ids_json", help="file with a JSON list of token ids, or the JSON list itself")
    ap.add_argument("n_new", type=int)
    ap.add_argument("out_json")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--with-tokenizer", action="store_true",
                    help="load the model's tokenizer (default: skip_tokenizer_init=True)")
    ap.add_argument("--logprobs", type=int, default=0, help="also record the K best logprobs of every step")
    a = ap.parse_args(argv)
    model_dir, ids_arg, n_new, out_json, dtype = a.model_dir, a.ids_json, a.n_new, a.out_json, a.dtype
    ids = json.load(open(ids_arg)) if os.path.exists(ids_arg) else json.loads(ids_arg)
    ids = [int(t) for t in ids]

    grab = _Grab()
    t0 = time.time()
    import torch
    import vllm
    from vllm import LLM, SamplingParams

    # vLLM 0.32 CPU W4A16 kernel (cpu_gemm_wna16) issues AMX tile instructions
    # without asking Linux for XTILEDATA permission -> SIGILL ("Illegal
    # instruction") on AMX CPUs.  Request it here (per process; the engine runs
    # in-process).  Set VLLM_GREEDY_NO_AMX_INIT=1 to skip.
    amx = None
    if os.environ.get("VLLM_GREEDY_NO_AMX_INIT") != "1" and torch.cpu._is_amx_tile_supported():
        amx = bool(torch.cpu._init_amx())

    t1 = time.time()
    llm = LLM(
        model=model_dir,
        dtype=dtype,
        max_model_len=256,
        enforce_eager=True,
        skip_tokenizer_init=not a.with_tokenizer,
        seed=0,
    )
    t2 = time.time()
    sp = SamplingParams(temperature=0.0, max_tokens=n_new, min_tokens=n_new, ignore_eos=True, detokenize=False,
                        logprobs=a.logprobs or None)
    outs = llm.generate([{"prompt_token_ids": ids}], sp, use_tqdm=False)
    t3 = time.time()
    toks = [int(t) for t in outs[0].outputs[0].token_ids]
    lps = None
    if a.logprobs:
        lps = [sorted(([int(t), float(lp.logprob)] for t, lp in step.items()), key=lambda x: -x[1])
               for step in outs[0].outputs[0].logprobs]

    try:
        info = llm.apply_model(_inspect)[0]
    except Exception as e:  # pragma: no cover - introspection is best effort
        info = {"inspect_error": repr(e)}
    keys = ("using ", "quantiz", "kernel", "w4a8", "gptq", "compressed", "amx", "isa")
    lines = [l[:300] for l in grab.lines
             if any(k in l.lower() for k in keys) and not l.startswith("Initializing a V1 LLM engine")]
    qcfg = getattr(llm.llm_engine.vllm_config.model_config, "quantization", None)
    kern = info.get("kernel")
    if kern is None:
        for l in lines:
            if l.startswith("Using ") and ("Kernel" in l or "kernel" in l):
                kern = l
                break
    res = {
        "tokens": toks,
        "prompt_ids": ids,
        "model_dir": os.path.abspath(model_dir),
        "dtype": dtype,
        "quant_method": qcfg,
        "linear_method": info.get("linear_method"),
        "scheme": info.get("scheme"),
        "kernel": kern,
        "use_w4a8": info.get("use_w4a8"),
        "layer_info": info,
        "log_lines": lines,
        "vllm_version": vllm.__version__,
        "amx_init": amx,
        "env": {k: os.environ.get(k) for k in ("VLLM_CPU_INT4_W4A8", "VLLM_CPU_KVCACHE_SPACE", "VLLM_TARGET_DEVICE")},
        "seconds": {"import": round(t1 - t0, 2), "load": round(t2 - t1, 2), "generate": round(t3 - t2, 3)},
    }
    if lps is not None:
        res["logprobs"] = lps
    with open(out_json, "w") as f:
        json.dump(res, f, indent=1)
    print(json.dumps({k: res[k] for k in ("tokens", "quant_method", "linear_method", "scheme", "kernel", "use_w4a8", "seconds")}))


if __name__ == "__main__":
    main(sys.argv[1:])
