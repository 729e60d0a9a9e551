#!/usr/bin/env python3
"""Writes the tiny mixture-of-experts checkpoints of tests/fixtures/moe/ with transformers itself
(Qwen3MoeForCausalLM, Qwen2MoeForCausalLM, MixtralForCausalLM; seeded random weights) and the
logits transformers computes for them, in fp32 and bf16, as the reference sliderquant's forward is
tested against (tests/test_moe.cpp). Test-only: run from the repository root with the project's
.venv (transformers, torch and safetensors pinned in requirements.txt):

    .venv/bin/python tests/moe/make_moe_fixtures.py [--out tests/fixtures/moe]

Each model directory holds config.json, model.safetensors (bf16 weights, so both tools compute
with the same numbers in either dtype), the stories260K SentencePiece tokenizer (vocab 512) and
reference.safetensors with, for each prompt P in {long, short}: P.ids [1, T] int64 and
P.logits_fp32 / P.logits_bf16 [T, 512] float32 (transformers' logits with the model in that dtype).
The long prompt routes every expert of every MoE layer at least once, the short one (2 tokens)
leaves experts unrouted; router weights are scaled up so no token's top-k choice sits near a tie
(the generator checks the margin in both dtypes and reseeds otherwise). In the bf16 reference the
router runs in fp32 on the bf16 hidden state (a pre-hook casts its input), as sliderquant runs it;
transformers' own bf16 router rounds its logits to bf16, which flips near-tied top-k choices.

`qwen3_moe_starved` is qwen3_moe with a constant residual channel (embedding column 0 = 1, the
rows 0 of o_proj and of every down projection zero) that router row 3 of each MoE layer
multiplies by -8, so expert 3 receives no token of any text: the starved-expert test's model.
"""
import argparse
import json
import os
import shutil

import torch
from safetensors.torch import save_file
from transformers import (MixtralConfig, MixtralForCausalLM, Qwen2MoeConfig, Qwen2MoeForCausalLM,
                          Qwen3MoeConfig, Qwen3MoeForCausalLM)

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZER = os.path.join(HERE, "..", "fixtures", "stories260K", "hf")
VOCAB = 512
COMMON = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_attention_heads=4,
              num_key_value_heads=2, max_position_embeddings=256, rms_norm_eps=1e-5,
              initializer_range=0.1, tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)

FAMILIES = {
    "qwen3_moe": (Qwen3MoeConfig, Qwen3MoeForCausalLM,
                  dict(num_hidden_layers=3, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=24,
                       decoder_sparse_step=1, mlp_only_layers=[1], norm_topk_prob=True, head_dim=16)),
    "qwen2_moe": (Qwen2MoeConfig, Qwen2MoeForCausalLM,
                  dict(num_hidden_layers=2, num_experts=4, num_experts_per_tok=2, moe_intermediate_size=24,
                       shared_expert_intermediate_size=40, decoder_sparse_step=1, norm_topk_prob=False)),
    "mixtral": (MixtralConfig, MixtralForCausalLM,
                dict(num_hidden_layers=2, num_local_experts=4, num_experts_per_tok=2)),
}


def routers(model):
    for i, layer in enumerate(model.model.layers):
        mlp = getattr(layer, "block_sparse_moe", None) or layer.mlp
        if hasattr(mlp, "experts"):
            yield i, mlp


def routing_report(model, ids, k):
    """Per MoE layer: experts hit by IDS and the smallest top-k logit margin (fp32 router on the layer input)."""
    seen, margins = {}, []
    hooks = []
    for i, mlp in routers(model):
        def hook(mod, args, i=i, mlp=mlp):
            h = args[0].reshape(-1, args[0].shape[-1]).float()
            top = (h @ mlp.gate.weight.float().t()).topk(k + 1, -1)  # logits: softmax keeps the order
            margins.append(float((top.values[:, k - 1] - top.values[:, k]).min()))
            seen[i] = set(top.indices[:, :k].flatten().tolist())
        hooks.append(mlp.register_forward_pre_hook(hook))
    with torch.no_grad():
        model(ids)
    for h in hooks:
        h.remove()
    return seen, min(margins)


def starve(model):
    """Expert 3 of every MoE layer gets no token (see the module docstring)."""
    with torch.no_grad():
        model.model.embed_tokens.weight[:, 0] = 1.0
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0, :] = 0
            mlp = layer.mlp
            if hasattr(mlp, "experts"):
                mlp.experts.down_proj[:, 0, :] = 0
                mlp.gate.weight[3, 0] = -8.0
                mlp.gate.weight[:3, 0] = 0.0
            else:
                mlp.down_proj.weight[0, :] = 0


def make(name, out, seed):
    C, M, kw = FAMILIES["qwen3_moe" if name == "qwen3_moe_starved" else name]
    cfg = C(**COMMON, **kw)
    k = cfg.num_experts_per_tok
    n_exp = getattr(cfg, "num_experts", None) or cfg.num_local_experts
    for attempt in range(50):
        torch.manual_seed(seed + attempt)
        model = M(cfg).eval()
        with torch.no_grad():
            for _, mlp in routers(model):
                mlp.gate.weight.mul_(3.0)  # well-separated routing
            for p in model.parameters():  # bf16 weights for both dtypes' references
                p.copy_(p.to(torch.bfloat16).float())
        if name == "qwen3_moe_starved":
            starve(model)
        g = torch.Generator().manual_seed(seed + 1000 + attempt)
        long_ids = torch.randint(3, VOCAB, (1, 48), generator=g)
        short_ids = torch.tensor([[1, int(torch.randint(3, VOCAB, (1,), generator=g))]])
        seen_long, m1 = routing_report(model, long_ids, k)
        seen_short, m2 = routing_report(model, short_ids, k)
        bf = M(cfg).eval()
        bf.load_state_dict(model.state_dict())
        bf = bf.to(torch.bfloat16)
        for bname, buf in model.named_buffers():  # RoPE tables stay fp32, as from_pretrained keeps them
            if "inv_freq" in bname:
                mod = bf.get_submodule(bname.rsplit(".", 1)[0])
                setattr(mod, bname.rsplit(".", 1)[1], buf.clone())
        for _, mlp in routers(bf):  # the router in fp32, as sliderquant runs it
            mlp.gate.float()
            mlp.gate.register_forward_pre_hook(lambda mod, args: (args[0].float(),) + tuple(args[1:]))
        _, m3 = routing_report(bf, long_ids, k)
        _, m4 = routing_report(bf, short_ids, k)
        every = all(len(s) == n_exp for s in seen_long.values())
        if name == "qwen3_moe_starved":
            every = all(s == {0, 1, 2} for s in seen_long.values())
        some_never = all(len(s) < n_exp for s in seen_short.values())
        if every and some_never and min(m1, m2, m3, m4) > 1e-3:
            break
        print(f"{name}: seed {seed + attempt} rejected: every {every} some_never {some_never} "
              f"margins {m1:.3g} {m2:.3g} {m3:.3g} {m4:.3g}")
    else:
        raise SystemExit(f"{name}: no seed gave well-separated routing")
    d = os.path.join(out, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    bf.save_pretrained(d)  # bf16 weights, transformers' own names and config keys
    for f in ("tokenizer.model", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOKENIZER, f), os.path.join(d, f))
    ref = {}
    with torch.no_grad():
        for pname, ids in (("long", long_ids), ("short", short_ids)):
            ref[pname + ".ids"] = ids.contiguous()
            ref[pname + ".logits_fp32"] = model(ids).logits[0].float().contiguous()
            ref[pname + ".logits_bf16"] = bf(ids).logits[0].float().contiguous()
    save_file(ref, os.path.join(d, "reference.safetensors"),
              metadata={"transformers": __import__("transformers").__version__, "torch": torch.__version__,
                        "seed": str(seed + attempt),
                        "routing_margin": json.dumps([m1, m2, m3, m4])})
    print(f"{name}: seed {seed + attempt}, smallest top-k margin {min(m1, m2, m3, m4):.3g}, "
          f"long prompt routes {sorted((i, sorted(s)) for i, s in seen_long.items())}, "
          f"short {sorted((i, sorted(s)) for i, s in seen_short.items())}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "..", "fixtures", "moe"))
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    torch.set_num_threads(1)
    for name in ("qwen3_moe", "qwen2_moe", "mixtral", "qwen3_moe_starved"):
        make(name, a.out, a.seed)


if __name__ == "__main__":
    main()
