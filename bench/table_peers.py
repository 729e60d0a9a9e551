#!/usr/bin/env python3
"""The peers' quantizers for bench/bench_table.py, one process per row (run with .venv/bin/python).

  table_peers.py llamacpp IN.gguf OUT.gguf --type Q4_K_M [--threads N]
      llama.cpp's own llama_model_quantize (the library call behind llama-quantize, through
      llama-cpp-python) from an F32 GGUF, no importance matrix. The type is llama.cpp's file
      type name (Q4_0, Q4_K_M, Q3_K_M, Q2_K, ...), so the per-tensor mix is llama.cpp's own.
  table_peers.py autoround SRC_DIR OUT_DIR --bits B --group G --calib-ids FILE [--iters N]
      AutoRound (Intel's auto-round) on the CPU: sign-gradient rounding and clipping per block,
      sym (its default), on the token-id windows in FILE (as `sliderquant quantize
      --save-calibration` writes them: the same tokens as every other row), batch 8 (its default)
      or fewer when there are fewer windows; saved in the auto_gptq format (a GPTQ checkpoint,
      which sliderquant reads).
Prints one JSON line with what was run. Any failure exits non-zero with the error.
"""
import argparse
import ctypes
import json
import os
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def llamacpp(a):
    import llama_cpp
    name = "LLAMA_FTYPE_MOSTLY_" + a.type.upper()
    if not hasattr(llama_cpp, name):
        raise SystemExit("table_peers: llama.cpp has no file type %s" % a.type)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, name)
    params.nthread = a.threads
    tmp = a.out + ".tmp"
    rc = llama_cpp.llama_model_quantize(a.inp.encode(), tmp.encode(), ctypes.byref(params))
    if rc != 0:
        raise SystemExit("table_peers: llama_model_quantize(%s, %s) returned %d" % (a.inp, a.type, rc))
    os.replace(tmp, a.out)
    print(json.dumps({"tool": "llama.cpp", "llama_cpp_python": llama_cpp.__version__, "type": a.type,
                      "imatrix": None, "out": a.out}))


def autoround(a):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from auto_round import AutoRound
    import auto_round
    with open(a.calib_ids) as f:
        windows = json.load(f)
    data = [torch.tensor([w], dtype=torch.long) for w in windows]
    tok = AutoTokenizer.from_pretrained(a.src)
    model = AutoModelForCausalLM.from_pretrained(a.src, dtype=torch.float32)
    ar = AutoRound(model, tok, bits=a.bits, group_size=a.group, sym=True, iters=a.iters, nsamples=len(data),
                   seqlen=len(windows[0]), batch_size=min(8, len(data)), dataset=data, device_map="cpu",
                   enable_torch_compile=False)
    tmp = a.out + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    ar.quantize_and_save(tmp, format="auto_gptq")
    # auto_round may write into a subfolder; the checkpoint is where config.json is
    root = tmp
    for d, _, files in os.walk(tmp):
        if "config.json" in files and any(f.endswith(".safetensors") for f in files):
            root = d
            break
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model"):
        if os.path.exists(os.path.join(a.src, f)):
            shutil.copy(os.path.join(a.src, f), os.path.join(root, f))
    shutil.rmtree(a.out, ignore_errors=True)
    os.replace(root, a.out)
    shutil.rmtree(tmp, ignore_errors=True)
    print(json.dumps({"tool": "auto-round", "version": auto_round.__version__, "bits": a.bits, "group": a.group,
                      "iters": a.iters, "samples": len(data), "seqlen": len(windows[0]), "out": a.out}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    lc = sub.add_parser("llamacpp")
    lc.add_argument("inp")
    lc.add_argument("out")
    lc.add_argument("--type", required=True)
    lc.add_argument("--threads", type=int, default=0)
    ar = sub.add_parser("autoround")
    ar.add_argument("src")
    ar.add_argument("out")
    ar.add_argument("--bits", type=int, required=True)
    ar.add_argument("--group", type=int, required=True)
    ar.add_argument("--calib-ids", required=True)
    ar.add_argument("--iters", type=int, default=200)
    a = ap.parse_args()
    {"llamacpp": llamacpp, "autoround": autoround}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
