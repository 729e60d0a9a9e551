#!/usr/bin/env python3
"""Quantize a (tiny) Hugging Face checkpoint with GPTQModel itself, on CPU, and save it.

Usage: gptqmodel_quantize.py SRC_DIR OUT_DIR --bits B --group G [--sym|--asym]
                             [--desc-act|--no-desc-act] [--format gptq|gptq_v2]
                             [--samples N] [--seqlen L] [--calib-ids FILE]

Calibration: N windows of L tokens cut from tests/fixtures/text/wikitext2_head.txt, tokenized
by the model's own tokenizer (transformers' AutoTokenizer on the copied tokenizer.model); or, with
--calib-ids, the token-id windows in FILE (a JSON list of lists, as `sliderquant quantize
--save-calibration` writes them), so that GPTQModel sees exactly sliderquant's calibration tokens.
G = -1 is per-channel. Writes OUT_DIR (config.json with quantization_config,
quantize_config.json, model.safetensors) and prints the quantization_config written.
Runs offline. Any failure exits non-zero.
"""
import argparse
import json
import os
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TORCH_COMPILE_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GPTQMODEL_OFFLINE", "1")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
# GPTQModel asks for a 2-worker loader pool under a cpu pool of (cores + 1) // 2 workers: 1 on 2 cores
os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WIKI = os.path.join(ROOT, "tests", "fixtures", "text", "wikitext2_head.txt")


def calibration(src, samples, seqlen, calib_ids=None):
    import torch
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(src)
    if calib_ids:
        with open(calib_ids) as f:
            windows = json.load(f)
        return [{"input_ids": torch.tensor([w], dtype=torch.long),
                 "attention_mask": torch.ones(1, len(w), dtype=torch.long)} for w in windows], tok
    ids = tok(open(WIKI, encoding="utf-8").read())["input_ids"]
    if len(ids) < samples * seqlen:
        raise SystemExit(f"gptqmodel_quantize: {WIKI} has {len(ids)} tokens, fewer than {samples} x {seqlen}")
    out = []
    for i in range(samples):
        w = ids[i * seqlen:(i + 1) * seqlen]
        out.append({"input_ids": torch.tensor([w], dtype=torch.long),
                    "attention_mask": torch.ones(1, len(w), dtype=torch.long)})
    return out, tok


def quantize(src, out, bits, group, sym, desc_act, fmt="gptq", samples=8, seqlen=128, calib_ids=None):
    import torch
    from gptqmodel import GPTQModel, QuantizeConfig
    from gptqmodel.quantization import FORMAT
    data, tok = calibration(src, samples, seqlen, calib_ids)
    extra = {}
    if group == -1 or desc_act:
        extra["act_group_aware"] = False  # GPTQModel refuses it per-channel, and drops it with desc_act
    qc = QuantizeConfig(bits=bits, group_size=group, sym=sym, desc_act=desc_act, **extra,
                        format=FORMAT.GPTQ_V2 if fmt == "gptq_v2" else FORMAT.GPTQ,
                        device="cpu", offload_to_disk=False,
                        pack_impl="original")  # the pure-Python packer: no C++ extension JIT-built (~45 s) at first use
    model = GPTQModel.load(src, qc, dtype=torch.float32)
    model.quantize(data, batch_size=1, tokenizer=tok)
    if os.path.isdir(out):
        shutil.rmtree(out)
    model.save(out)
    # The tokenizer files are the source's: GPTQModel (Tokenicer) re-saves the tokenizer as a
    # tokenizer.json and, for model_type qwen2/qwen3, adds a 513th token <|endoftext|> as its
    # pad token, which a 512-row embedding cannot take. The tokenizer is not under test.
    for f in ("tokenizer.json", "special_tokens_map.json", "added_tokens.json", "tokenizer.model",
              "tokenizer_config.json"):
        if os.path.exists(os.path.join(out, f)):
            os.remove(os.path.join(out, f))
        if os.path.exists(os.path.join(src, f)):
            shutil.copy(os.path.join(src, f), os.path.join(out, f))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("out")
    ap.add_argument("--bits", type=int, required=True)
    ap.add_argument("--group", type=int, required=True)
    ap.add_argument("--sym", dest="sym", action="store_true", default=True)
    ap.add_argument("--asym", dest="sym", action="store_false")
    ap.add_argument("--desc-act", dest="desc_act", action="store_true", default=False)
    ap.add_argument("--no-desc-act", dest="desc_act", action="store_false")
    ap.add_argument("--format", default="gptq", choices=["gptq", "gptq_v2"])
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--seqlen", type=int, default=128)
    ap.add_argument("--calib-ids", default=None, help="JSON list of token-id windows (replaces --samples/--seqlen)")
    a = ap.parse_args()
    quantize(a.src, a.out, a.bits, a.group, a.sym, a.desc_act, a.format, a.samples, a.seqlen, a.calib_ids)
    cfg = json.load(open(os.path.join(a.out, "config.json")))
    print(json.dumps(cfg.get("quantization_config"), indent=1))


if __name__ == "__main__":
    sys.exit(main())
