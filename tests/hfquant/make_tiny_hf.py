#!/usr/bin/env python3
"""A tiny Hugging Face checkpoint made by transformers itself (the reference writer).

Usage: make_tiny_hf.py OUTDIR --family llama|qwen2|qwen3 [--dtype float32|bfloat16] [--seed S]

hidden 256, intermediate 512, 2 layers, 4 query heads of 64, 2 KV heads, vocab 512,
max_position 512, rope_theta 10000. qwen2 keeps its q/k/v biases, qwen3 its q_norm/k_norm.
Weights are seeded normals (std 0.05 for linears and embeddings, norms 1 + N(0, 0.1), biases
N(0, 0.05)) so logits are far from flat. The tokenizer is stories260K's Llama-2 style
sentencepiece (512 tokens, bos 1, eos 2; pad_token_id 0 = <unk>: GPTQModel
(Tokenicer) otherwise picks a Qwen pad id outside the 512-token vocabulary), copied from tests/fixtures/stories260K/hf.
Runs offline; prints OUTDIR.
"""
import argparse
import os
import shutil
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
TOK = os.path.join(ROOT, "tests", "fixtures", "stories260K", "hf")

COMMON = dict(hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
              num_key_value_heads=2, head_dim=64, vocab_size=512, max_position_embeddings=512,
              rms_norm_eps=1e-5, rope_theta=10000.0, hidden_act="silu", tie_word_embeddings=False,
              bos_token_id=1, eos_token_id=2, pad_token_id=0, initializer_range=0.05)


def config_for(family):
    import transformers as T
    if family == "llama":
        return T.LlamaConfig(attention_bias=False, mlp_bias=False, **COMMON)
    if family == "qwen2":
        return T.Qwen2Config(use_sliding_window=False, **COMMON)  # q/k/v biases are built in
    if family == "qwen3":
        return T.Qwen3Config(attention_bias=False, use_sliding_window=False, **COMMON)
    raise SystemExit(f"make_tiny_hf: unknown family {family}")


def build(outdir, family, dtype="float32", seed=0):
    import torch
    import transformers as T
    torch.manual_seed(seed)
    cfg = config_for(family)
    model = T.AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith(".bias"):
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))
    model = model.to(getattr(torch, dtype))
    model.eval()
    if os.path.isdir(outdir):
        shutil.rmtree(outdir)
    model.save_pretrained(outdir, safe_serialization=True)
    for f in ("tokenizer.model", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOK, f), os.path.join(outdir, f))
    return outdir


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--family", required=True, choices=["llama", "qwen2", "qwen3"])
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(build(a.outdir, a.family, a.dtype, a.seed))


if __name__ == "__main__":
    sys.exit(main())
