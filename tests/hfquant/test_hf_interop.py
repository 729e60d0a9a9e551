#!/usr/bin/env python3
"""GPTQ and compressed-tensors interop, proven by the reference tools themselves.

Usage: test_hf_interop.py --cli BUILD/sliderquant --case CASE [--work DIR]
Cases (each a ctest of its own, see tests/CMakeLists.txt):
  gptq        tiny llama / qwen2 / qwen3 (made by transformers, make_tiny_hf.py) quantized by
              sliderquant (RTN and GPTQ natural / act_order / group_preserving; 2/3/4/8 bits;
              groups 32, 128, per-channel; sym and asym; see MATRIX) and exported with
              `export --format gptq`: transformers + GPTQModel's torch kernel (TorchLinear) on
              the export give our logits of the native directory; `sliderquant eval` of the
              export equals the native directory's; `inspect --json` reports the same
              per-linear formats for both.
  gptqmodel   checkpoints written by GPTQModel 7.7.0 itself on the CPU (4-bit g32 sym
              desc_act, 4-bit g128 asym gptq_v2, 3-bit g32 asym desc_act, 8-bit g128 sym,
              2-bit per-channel asym, qwen3 4-bit asym desc_act) read by sliderquant: our
              logits equal transformers + GPTQModel's on the same directory; inspect --json
              names the format.
  ct          as gptq, with `export --format compressed-tensors`, read back by transformers +
              compressed-tensors 0.20.1. The act_order rows of MATRIX are quantized with
              group_preserving here: compressed-tensors 0.19 removed actorder "group"
              (weight_g_idx) and transformers 5.25 drops weight_g_idx, so sliderquant refuses to
              write a g_idx (checked: the act_order export exits 1 naming actorder).
  ctwritten   checkpoints written with compressed-tensors' API the way llm-compressor writes
              them (ct_quantize.py: W4A16 / W4A16_ASYM / W8A16 / W2A16 / W3A16, pack-quantized
              and naive-quantized, float32 and bfloat16; W8A8 with asymmetric per-token
              activations) read by sliderquant: our logits equal transformers'. W8A8's
              symmetric per-token activations (the preset), which sliderquant does not
              compute, are refused with one error line.
  ragged      SmolLM2-135M (models/, scripts/get_models.sh) at w4g128: 576 columns are 4.5
              groups, so a short last group of 64 (GPTQ's g_idx = j // 128); RTN and GPTQ
              (act-order) exported as GPTQ give our logits in transformers + GPTQModel;
              the compressed-tensors export is refused in one line (its decompressor needs
              whole groups).
  moe         mixture-of-experts GPTQ exports (tiny Qwen3-MoE with every layer routed, the Qwen2-MoE
              fixture with its shared expert; GPTQ w4g16 sym as v1, RTN w4g16 asym as gptq_v2)
              loaded by GPTQModel.load: every expert linear a TorchLinear, routers plain, our
              logits (float32 scales: TOL_F32; float16 as shipped: TOL_F16). Mixtral, a dense
              layer among MoE layers, and compressed-tensors MoE exports are refused in one line.
  bad         corrupt GPTQ / compressed-tensors directories (qweight rows, g_idx out of range,
              unknown quant_method, bits 9, a missing shard, weight_shape, num_bits 9): exit 1
              and one error line naming the tensor / key / file; export onto an existing
              directory or under a regular file leaves nothing behind.
Tolerances, on the logits of one 64-token window (max |logit| about 4; the float32 tiny
models agree with transformers to 3e-6):
  TOL_EXACT   1e-5  our logits of an exported directory vs the native one (same codes, scales).
  TOL_F32     5e-5  GPTQModel's TorchLinear with float32 scales and biases: its dequantization
                    scale * (q - zero) is then sliderquant's float32 arithmetic and only the
                    summation order differs (measured <= 3.3e-6).
  TOL_F16     1e-2  GPTQModel as shipped: TorchLinear keeps scales and bias in fp16 and
                    computes scale * (q - zero) in fp16, a rounding of up to 2^-11 of each weight
                    that sliderquant (fp16 scale, float32 product) does not make (measured
                    <= 2.4e-3).
  TOL_CT      5e-5  compressed-tensors decompresses into the scales' dtype (float32) as we do.
  TOL_ACT     2e-2  W8A8: per-token activation rounding; a tie may fall the other way (one code).
  TOL_CT_BF16 5e-2  bfloat16 checkpoints: compressed-tensors rounds scale * q to bf16, we do not.
Every failed check prints FAIL and the case exits 1 after printing its tables; nothing is
skipped. Prints the measured numbers as markdown tables.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TORCH_COMPILE_DISABLE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
WIKI = os.path.join(ROOT, "tests", "fixtures", "text", "wikitext2_head.txt")
sys.path.insert(0, HERE)

TOL_EXACT = 1e-5
TOL_F32 = 5e-5
TOL_F16 = 1e-2
TOL_CT = 5e-5
SEQLEN = 64

CLI = None
WORK = None


def run(args, expect=0):
    p = subprocess.run(args, capture_output=True, text=True)
    if expect is not None and p.returncode != expect:
        raise AssertionError(f"{' '.join(args)} exited {p.returncode} (expected {expect}):\n{p.stderr[-3000:]}")
    return p


def sq(*args, expect=0):
    return run([CLI, *args, "-q"] if expect == 0 else [CLI, *args], expect=expect)


def path(*names):
    return os.path.join(WORK, *names)


FAILED = []


def check(cond, msg):
    """A failed check is printed and counted; the case goes on to print its whole table, then fails."""
    if not cond:
        FAILED.append(msg)
        print("FAIL:", msg, flush=True)
        return False
    print("ok:", msg, flush=True)
    return True


def maxdiff(a, b):
    import numpy as np
    if a.shape != b.shape:
        raise AssertionError(f"logits shapes differ: {a.shape} vs {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise AssertionError("non-finite logits")
    return float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())


def table(title, header, rows):
    print(f"\n{title}")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")
    print(flush=True)


# ---- models and logits --------------------------------------------------------------------

_TINY = {}


def tiny(family, dtype="float32"):
    key = (family, dtype)
    if key not in _TINY:
        import make_tiny_hf
        d = path(f"tiny-{family}-{dtype}")
        make_tiny_hf.build(d, family, dtype=dtype, seed=0)
        _TINY[key] = d
    return _TINY[key]


def our_logits(model, tag):
    import numpy as np
    out = path(f"{tag}.ours.npy")
    sq("eval", model, "--ppl", WIKI, "--seqlen", str(SEQLEN), "--max-windows", "1", "--save-logits", out)
    ids = json.load(open(out + ".ids.json"))
    return np.load(out), ids


def hf(model, ids):
    import hf_logits
    return hf_logits.hf_logits(model, ids, "float32")


def inspect_formats(model):
    """{linear: format} from `sliderquant inspect --json` (whatever the reader reports per linear)."""
    rep = path("inspect.json")
    sq("inspect", model, "--json", rep)
    d = json.load(open(rep))
    t = d.get("linears")
    if isinstance(t, dict) and t:
        return {k: v.get("format") for k, v in t.items()}, d
    return {"(inspect --json reports no per-linear formats)": None}, d


def all_tensors(d):
    from safetensors.numpy import load_file
    out = {}
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            out.update(load_file(os.path.join(d, f)))
    return out


def same_checkpoint(a, b):
    """Same tensors (names, dtypes, shapes, bytes) and the same quantization_config."""
    ta, tb = all_tensors(a), all_tensors(b)
    if sorted(ta) != sorted(tb):
        return False, f"tensor names differ: {sorted(set(ta) ^ set(tb))[:5]}"
    for k in ta:
        if ta[k].dtype != tb[k].dtype or ta[k].shape != tb[k].shape or ta[k].tobytes() != tb[k].tobytes():
            return False, f"tensor {k} differs"
    qa = json.load(open(os.path.join(a, "config.json")))["quantization_config"]
    qb = json.load(open(os.path.join(b, "config.json")))["quantization_config"]
    ma, mb = qa.pop("meta", {}) or {}, qb.pop("meta", {}) or {}  # provenance (the recipe's name) may differ
    if qa != qb:
        return False, "quantization_config differs"
    note = "" if ma == mb else f"; meta differs in {sorted(k for k in set(ma) | set(mb) if ma.get(k) != mb.get(k))}"
    return True, f"{len(ta)} tensors, same quantization_config{note}"


def recipe(name, fmt, method, order="natural"):
    p = path("recipes", name + ".json")
    os.makedirs(os.path.dirname(p), exist_ok=True)
    r = {"name": name, "description": "test_hf_interop", "format": fmt}
    if method == "rtn":
        r["pipeline"] = [{"pass": "rtn", "options": {"mse": False}}]
    else:
        r["calibration"] = {"dataset": WIKI, "samples": 8, "seqlen": SEQLEN, "seed": 0}
        r["pipeline"] = [{"pass": "gptq", "options": {"damp": 0.01, "block_size": 128, "order": order}}]
    json.dump(r, open(p, "w"), indent=1)
    return p


def fmt_name(bits, group, sym):
    return f"w{bits}" + (f"g{group}" if group else "") + ("s" if sym else "")


# (family, bits, group (0 = per-channel), method, order, sym): every bits value, every group
# kind, sym and asym, act_order / natural / group_preserving, RTN and GPTQ, all three families.
MATRIX = [
    ("llama", 4, 128, "rtn", "-", False),
    ("llama", 4, 32, "gptq", "act_order", True),
    ("llama", 8, 128, "gptq", "natural", False),
    ("llama", 2, 32, "rtn", "-", False),
    ("llama", 3, 0, "gptq", "act_order", False),
    ("qwen2", 4, 0, "rtn", "-", True),
    ("qwen2", 3, 32, "gptq", "act_order", True),
    ("qwen2", 8, 0, "rtn", "-", True),
    ("qwen2", 2, 128, "gptq", "act_order", False),
    ("qwen2", 4, 128, "gptq", "act_order", False),
    ("qwen3", 4, 32, "gptq", "group_preserving", False),
    ("qwen3", 3, 128, "rtn", "-", True),
]


def quantize_native(family, bits, group, method, order, sym):
    fmt = fmt_name(bits, group, sym)
    tag = f"{family}-{fmt}-{method}" + ("" if method == "rtn" else f"-{order}")
    q = path(tag)
    sq("quantize", tiny(family), "--recipe", recipe(tag, fmt, method, None if method == "rtn" else order),
       "--out", q, "--force")
    return tag, q, fmt


def case_gptq():
    rows = []
    worst = {"exact": 0.0, "f32": 0.0, "f16": 0.0}
    for family, bits, group, method, order, sym in MATRIX:
        tag, q, fmt = quantize_native(family, bits, group, method, order, sym)
        g = q + ".gptq"
        sq("export", q, "--format", "gptq", "--out", g, "--force")
        qc = json.load(open(os.path.join(g, "config.json")))["quantization_config"]
        check(qc["quant_method"] == "gptq" and qc["bits"] == bits and qc["group_size"] == (group or -1)
              and qc["sym"] == sym, f"{tag}: config.json quantization_config says gptq, bits {bits}, "
              f"group_size {group or -1}, sym {sym} (checkpoint_format {qc.get('checkpoint_format')}, "
              f"desc_act {qc.get('desc_act')})")
        ours, ids = our_logits(q, tag)
        ours_g, ids_g = our_logits(g, tag + ".gptq")
        check(ids == ids_g, f"{tag}: the exported directory's tokenizer gives the same ids")
        d_exact = maxdiff(ours, ours_g)
        fa, _ = inspect_formats(q)
        fb, _ = inspect_formats(g)
        check(fa == fb, f"{tag}: inspect --json reports the same formats for native and gptq "
                        f"({sorted(set(fa.values()))} vs {sorted(set(fb.values()))})")
        ref16, info, extra = hf(g, ids)
        d16 = maxdiff(ours, ref16)
        d32 = maxdiff(ours, extra["f32scales"])
        rows.append((family, bits, group or "channel", method if method == "rtn" else f"gptq {order}",
                     "sym" if sym else "asym", qc.get("checkpoint_format"), f"{d_exact:.2g}", f"{d32:.2g}",
                     f"{d16:.2g}"))
        worst["exact"] = max(worst["exact"], d_exact)
        worst["f32"] = max(worst["f32"], d32)
        worst["f16"] = max(worst["f16"], d16)
        check(d_exact <= TOL_EXACT, f"{tag}: our logits of the export equal the native ones (max |d| {d_exact:.3g})")
        check(d32 <= TOL_F32, f"{tag}: GPTQModel TorchLinear (float32 scales) vs ours: max |d| {d32:.3g} <= {TOL_F32}")
        check(d16 <= TOL_F16, f"{tag}: GPTQModel TorchLinear (fp16 scales, as shipped) vs ours: max |d| {d16:.3g} "
                              f"<= {TOL_F16} ({info['linear_classes']})")
    table("sliderquant -> export --format gptq -> transformers + GPTQModel (TorchLinear), max |dlogit| over "
          f"{SEQLEN} tokens x 512 vocab",
          ["family", "bits", "group", "method", "sym", "checkpoint_format", "ours native vs ours gptq",
           "GPTQModel f32 scales", "GPTQModel fp16 (shipped)"], rows)
    print(f"worst: exact {worst['exact']:.3g}, f32 scales {worst['f32']:.3g}, fp16 {worst['f16']:.3g}")

    # quantize --format gptq writes what quantize + export write
    family, bits, group, method, order, sym = MATRIX[1]
    tag, q, fmt = quantize_native(family, bits, group, method, order, sym)
    one = path(tag + ".onestep.gptq")
    sq("quantize", tiny(family), "--recipe", path("recipes", tag + ".json"), "--out", one, "--format", "gptq", "--force")
    ok, why = same_checkpoint(one, q + ".gptq")
    check(ok, f"{tag}: quantize --format gptq writes the checkpoint quantize + export write ({why})")

    # checkpoint_format gptq_v2, asked for and forced by a zero of 0 (which v1 cannot store)
    z = zero_model("llama")
    rows = []
    for name, src, extra in (("gptq_v2 asked", tiny("llama"), ["--gptq-format", "gptq_v2"]),
                             ("a zero of 0 (default)", z, [])):
        tag = "v2-" + ("asked" if extra else "zero0")
        q = path(tag)
        sq("quantize", src, "--recipe", recipe(tag, "w4g32", "rtn"), "--out", q, "--force")
        g = q + ".gptq"
        sq("export", q, "--format", "gptq", "--out", g, "--force", *extra)
        qc = json.load(open(os.path.join(g, "config.json")))["quantization_config"]
        check(qc.get("checkpoint_format") == "gptq_v2", f"{tag}: {name}: checkpoint_format gptq_v2 written")
        ours, ids = our_logits(q, tag)
        ours_g, _ = our_logits(g, tag + ".gptq")
        ref16, info, extra_l = hf(g, ids)
        d_exact, d32, d16 = maxdiff(ours, ours_g), maxdiff(ours, extra_l["f32scales"]), maxdiff(ours, ref16)
        rows.append((name, qc.get("checkpoint_format"), f"{d_exact:.2g}", f"{d32:.2g}", f"{d16:.2g}"))
        check(d_exact <= TOL_EXACT and d32 <= TOL_F32 and d16 <= TOL_F16,
              f"{tag}: GPTQModel reads gptq_v2: ours vs ours {d_exact:.3g}, vs f32 scales {d32:.3g}, vs fp16 {d16:.3g}")
        if not extra:
            r = run([CLI, "export", q, "--format", "gptq", "--gptq-format", "gptq", "--out", g + "1"], expect=None)
            lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
            check(r.returncode == 1 and len(lines) == 1 and "gptq_v2" in lines[0] and not os.path.exists(g + "1"),
                  f"{tag}: --gptq-format gptq (v1) with a zero of 0 is refused, nothing written: {lines}")
    table("checkpoint_format gptq_v2 (llama w4g32 asym RTN), max |dlogit|",
          ["why", "checkpoint_format", "ours native vs ours gptq", "GPTQModel f32 scales", "GPTQModel fp16"], rows)


SMOLLM2 = os.path.join(ROOT, "models", "smollm2-135m")


def case_ragged():
    """Ragged groups on a real width: SmolLM2-135M's hidden size 576 is 4.5 groups of 128, so
    q/k/v/o/gate/up get four groups of 128 and a short last group of 64 (GPTQ's g_idx =
    j // 128); down_proj (1536) has whole groups. RTN and GPTQ act-order
    at w4g128, exported with --format gptq: transformers + GPTQModel's TorchLinear
    (which pads the short group itself) give our logits. compressed-tensors 0.20 refuses a
    short last group when it decompresses, so that export exits 1 with one line naming it."""
    check(os.path.isdir(SMOLLM2), f"{SMOLLM2} exists (scripts/get_models.sh)")
    if not os.path.isdir(SMOLLM2):
        return
    rows = []
    # RTN and GPTQ act-order: the two g_idx layouts (j // 128, and a permutation of it). GPTQ in
    # natural order writes RTN's layout with other values, which the tiny models' MATRIX covers.
    for method, order in (("rtn", "-"), ("gptq", "act_order")):
        tag = f"smollm2-w4g128-{method}" + ("" if method == "rtn" else f"-{order}")
        q = path(tag)
        sq("quantize", SMOLLM2, "--recipe", recipe(tag, "w4g128", method, None if method == "rtn" else order),
           "--out", q, "--force")
        fa, info = inspect_formats(q)
        g = q + ".gptq"
        sq("export", q, "--format", "gptq", "--out", g, "--force")
        t = all_tensors(g)
        sc = t["model.layers.0.self_attn.q_proj.scales"]
        gi = t["model.layers.0.self_attn.q_proj.g_idx"]
        check(sc.shape == (5, 576) and int(gi.max()) == 4 and int((gi == gi.max()).sum()) == 64
              if order != "act_order" else sc.shape == (5, 576) and sorted(set(gi.tolist())) == [0, 1, 2, 3, 4],
              f"{tag}: q_proj stores 5 groups over 576 columns (g_idx max {int(gi.max())}, scales {sc.shape})")
        ours, ids = our_logits(q, tag)
        ours_g, _ = our_logits(g, tag + ".gptq")
        ref16, linfo, extra = hf(g, ids)
        d_exact, d32, d16 = maxdiff(ours, ours_g), maxdiff(ours, extra["f32scales"]), maxdiff(ours, ref16)
        scale = float(abs(ours).max())
        rows.append((tag, f"{d_exact:.2g}", f"{d32:.2g}", f"{d16:.2g}", f"{scale:.3g}", linfo["linear_classes"]))
        check(d_exact <= TOL_EXACT, f"{tag}: our logits of the gptq export equal the native ones ({d_exact:.3g})")
        # SmolLM2's logits reach about 33 (the tiny models': 4): the tolerances scaled by max|logit| / 4
        # (measured: f32 scales 6.6e-5, fp16 as shipped 0.058 at max |logit| 33.5).
        check(d32 <= TOL_F32 * scale / 4, f"{tag}: GPTQModel TorchLinear (float32 scales) vs ours: {d32:.3g} "
                                          f"<= {TOL_F32 * scale / 4:.3g}")
        check(d16 <= TOL_F16 * scale / 4, f"{tag}: GPTQModel TorchLinear (fp16, as shipped) vs ours: {d16:.3g} "
                                          f"<= {TOL_F16 * scale / 4:.3g}")
        if method == "rtn":
            r = run([CLI, "export", q, "--format", "compressed-tensors", "--out", q + ".ct"], expect=None)
            lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
            check(r.returncode == 1 and len(lines) == 1 and "group size 128" in lines[0]
                  and not os.path.exists(q + ".ct"),
                  f"{tag}: compressed-tensors export of a short last group is refused in one line: {lines}")
    table("SmolLM2-135M w4g128 (576 = 4 x 128 + 64) -> export --format gptq -> transformers + GPTQModel, "
          f"max |dlogit| over {SEQLEN} tokens x 49152 vocab",
          ["model", "ours native vs ours gptq", "GPTQModel f32 scales", "GPTQModel fp16 (shipped)", "max |logit|",
           "linear classes"], rows)


def zero_model(family):
    """The tiny model with |w| in the first 32 columns of 4 rows of layer 0's q_proj: asymmetric
    groups of 32 there have min >= 0, so their zero point is 0."""
    d = path(f"tiny-{family}-zero0")
    if not os.path.isdir(d):
        import numpy as np
        from safetensors.numpy import load_file, save_file
        shutil.copytree(tiny(family), d)
        f = os.path.join(d, "model.safetensors")
        t = load_file(f)
        k = "model.layers.0.self_attn.q_proj.weight"
        w = t[k].copy()
        w[0:4, 0:32] = np.abs(w[0:4, 0:32])
        t[k] = w
        save_file(t, f, metadata={"format": "pt"})
    return d


# GPTQModel-written checkpoints: (family, bits, group, sym, desc_act, format)
GPTQMODEL = [
    ("llama", 4, 32, True, True, "gptq"),
    ("llama", 4, 128, False, False, "gptq_v2"),
    ("qwen2", 3, 32, False, True, "gptq"),
    ("llama", 8, 128, True, False, "gptq"),
    ("qwen2", 2, -1, False, False, "gptq"),
    ("qwen3", 4, 128, False, True, "gptq"),
]


def case_gptqmodel():
    import gptqmodel_quantize
    rows = []
    for family, bits, group, sym, desc_act, fmt in GPTQMODEL:
        tag = f"gptqmodel-{family}-{bits}b-g{group}-{'sym' if sym else 'asym'}-{'desc' if desc_act else 'nodesc'}-{fmt}"
        d = path(tag)
        t0 = time.time()
        gptqmodel_quantize.quantize(tiny(family), d, bits, group, sym, desc_act, fmt, samples=8, seqlen=SEQLEN)
        tq = time.time() - t0
        qc = json.load(open(os.path.join(d, "config.json")))["quantization_config"]
        ours, ids = our_logits(d, tag)
        _, ids_src = our_logits(tiny(family), f"{tag}.src")
        check(ids == ids_src, f"{tag}: our tokenization of GPTQModel's directory equals the source's")
        ref16, info, extra = hf(d, ids)
        d16 = maxdiff(ours, ref16)
        d32 = maxdiff(ours, extra["f32scales"])
        fa, _ = inspect_formats(d)
        want = fmt_name(bits, max(group, 0), sym)
        check(set(fa.values()) == {want}, f"{tag}: inspect --json reports every linear as {want} ({sorted(set(fa.values()), key=str)})")
        rows.append((family, bits, group, "sym" if sym else "asym", desc_act, qc.get("checkpoint_format"),
                     sorted(set(fa.values())), f"{d32:.2g}", f"{d16:.2g}", f"{tq:.1f}s"))
        check(d32 <= TOL_F32, f"{tag}: ours vs GPTQModel TorchLinear (float32 scales): max |d| {d32:.3g} <= {TOL_F32}")
        check(d16 <= TOL_F16, f"{tag}: ours vs GPTQModel TorchLinear (fp16, as shipped): max |d| {d16:.3g} <= {TOL_F16}")
    table("GPTQModel 7.7.0 writes (CPU, 8 x 64 tokens of wikitext2_head) -> sliderquant eval vs transformers + "
          "GPTQModel TorchLinear, max |dlogit|",
          ["family", "bits", "group", "sym", "desc_act", "checkpoint_format", "inspect formats",
           "vs f32 scales", "vs fp16 (shipped)", "GPTQModel quantize"], rows)


# ---- compressed-tensors ------------------------------------------------------------------

def ct_info(d):
    qc = json.load(open(os.path.join(d, "config.json")))["quantization_config"]
    w = qc["config_groups"]["group_0"]["weights"]
    return qc, w


def case_ct():
    rows = []
    # A g_idx (act_order) has no compressed-tensors form any more: refused, nothing written.
    tag, q, fmt = quantize_native(*MATRIX[1])
    refused = path(tag + ".refused.ct")
    p = sq("export", q, "--format", "compressed-tensors", "--out", refused, expect=1)
    check("actorder" in p.stderr and len(p.stderr.strip().splitlines()) == 1 and not os.path.exists(refused),
          f"{tag}: an act-order export to compressed-tensors is refused in one line naming actorder ({p.stderr.strip()})")
    for family, bits, group, method, order, sym in MATRIX:
        if order == "act_order":
            order = "group_preserving"
        tag, q, fmt = quantize_native(family, bits, group, method, order, sym)
        c = q + ".ct"
        sq("export", q, "--format", "compressed-tensors", "--out", c, "--force")
        qc, w = ct_info(c)
        check(qc["quant_method"] == "compressed-tensors" and w["num_bits"] == bits and w["symmetric"] == sym
              and (w["strategy"] == "channel" if not group else (w["strategy"] == "group" and w["group_size"] == group)),
              f"{tag}: quantization_config says compressed-tensors, {bits} bits, {w['strategy']} "
              f"{w.get('group_size')}, symmetric {sym}, format {qc.get('format')}, actorder {w.get('actorder')}")
        ours, ids = our_logits(q, tag)
        ours_c, ids_c = our_logits(c, tag + ".ct")
        check(ids == ids_c, f"{tag}: the exported directory's tokenizer gives the same ids")
        d_exact = maxdiff(ours, ours_c)
        fa, _ = inspect_formats(q)
        fb, _ = inspect_formats(c)
        check(fa == fb, f"{tag}: inspect --json reports the same formats for native and compressed-tensors "
                        f"({sorted(set(fa.values()))} vs {sorted(set(fb.values()))})")
        ref, info, _ = hf(c, ids)
        reader = info["loader"]
        d = maxdiff(ours, ref)
        rows.append((family, bits, group or "channel", method if method == "rtn" else f"gptq {order}",
                     "sym" if sym else "asym", qc.get("format"), reader, f"{d_exact:.2g}", f"{d:.2g}"))
        check(d_exact <= TOL_EXACT, f"{tag}: our logits of the export equal the native ones (max |d| {d_exact:.3g})")
        check(d <= TOL_CT, f"{tag}: {reader} vs ours: max |d| {d:.3g} <= {TOL_CT}")
    family, bits, group, method, order, sym = MATRIX[1]
    tag = f"{family}-{fmt_name(bits, group, sym)}-{method}-group_preserving"
    one = path(tag + ".onestep.ct")
    sq("quantize", tiny(family), "--recipe", path("recipes", tag + ".json"), "--out", one, "--format",
       "compressed-tensors", "--force")
    ok, why = same_checkpoint(one, path(tag) + ".ct")
    check(ok, f"{tag}: quantize --format compressed-tensors writes the checkpoint quantize + export write ({why})")
    table("sliderquant -> export --format compressed-tensors -> transformers + compressed-tensors, max |dlogit|",
          ["family", "bits", "group", "method", "sym", "format", "reference reader", "ours native vs ours ct",
           "reference vs ours"], rows)


# llm-compressor-style checkpoints: (family, scheme, group, sym, format, dtype, activations symmetric)
CTWRITTEN = [
    ("llama", "W4A16", 32, None, None, "float32", None),
    ("llama", "W4A16_ASYM", 128, None, None, "float32", None),
    ("qwen2", "W8A16", -1, None, None, "float32", None),
    ("qwen2", "W4A16", 128, False, None, "bfloat16", None),
    ("qwen3", "W8A16", 128, False, None, "float32", None),
    ("llama", "W2A16", 32, False, "naive-quantized", "float32", None),
    ("qwen2", "W3A16", 128, True, "naive-quantized", "float32", None),
    ("llama", "W3A16", 32, True, None, "float32", None),
    ("qwen2", "W2A16", 128, True, None, "float32", None),
    ("llama", "W8A8", None, None, None, "float32", False),
    ("qwen2", "W8A8", None, None, None, "float32", None),
]
# activations quantized per token (W8A8): a rounding tie of one activation may fall the other
# way in another summation order, and one flipped 8-bit code moves the logits by a step times a
# weight row; measured 5e-5 on an Intel Xeon (Sapphire Rapids), 8.5e-3 on an AMD EPYC (Zen 4,
# another BLAS kernel set). A wrong activation scheme (sym vs asym, per-tensor) is 0.1-1.
TOL_ACT = 2e-2
# bfloat16: both sides compute in float32 from the same bf16-rounded weights and scales, but
# compressed-tensors dequantizes in bf16 (the scale's dtype) and rounds the product to bf16.
TOL_CT_BF16 = 5e-2


def case_ctwritten():
    import ct_quantize
    rows = []
    for family, scheme, group, sym, fmt, dtype, act_sym in CTWRITTEN:
        tag = f"ct-{family}-{scheme}-g{group}-{sym}-{fmt}-{dtype}-a{act_sym}"
        d = path(tag)
        ct_quantize.quantize(tiny(family, dtype), d, scheme, group, sym, fmt, dtype, act_sym)
        qc, w = ct_info(d)
        a = qc["config_groups"]["group_0"].get("input_activations")
        acts = "-" if not a else f"int{a['num_bits']} {a['strategy']} {'sym' if a['symmetric'] else 'asym'}"
        desc = (f"{scheme}: {w['num_bits']} bits {w['strategy']} {w.get('group_size') or ''} "
                f"{'sym' if w['symmetric'] else 'asym'}, activations {acts}, {qc['format']}, {dtype}")
        row = [family, scheme, w["num_bits"], w["strategy"], w.get("group_size") or "-",
               "sym" if w["symmetric"] else "asym", acts, qc["format"], dtype]
        if a and a["symmetric"]:
            # sliderquant computes asymmetric dynamic per-token activations only: refused, loudly
            r = run([CLI, "eval", d, "--ppl", WIKI, "--seqlen", str(SEQLEN), "--max-windows", "1"], expect=None)
            lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
            check(r.returncode == 1 and len(lines) == 1 and "input_activations" in lines[0],
                  f"{tag} ({desc}): refused with one line naming input_activations: {lines}")
            rows.append(row + ["refused (exit 1)"])
            continue
        ours, ids = our_logits(d, tag)
        ref, info, _ = hf(d, ids)
        dd = maxdiff(ours, ref)
        tol = TOL_CT_BF16 if dtype != "float32" else TOL_ACT if a else TOL_CT
        rows.append(row + [f"{dd:.2g}"])
        check(dd <= tol, f"{tag} ({desc}): ours vs {info['loader']}: max |d| {dd:.3g} <= {tol}")
    table("compressed-tensors checkpoints written as llm-compressor writes them -> sliderquant eval vs transformers, "
          "max |dlogit|", ["family", "scheme", "bits", "strategy", "group", "sym", "activations", "format", "dtype",
                           "max |d|"], rows)


# ---- corrupt inputs ------------------------------------------------------------------------

def one_error(model, expect_in, what, cmd=("inspect",)):
    r = run([CLI, *cmd, model] + (["--ppl", WIKI, "--max-windows", "1", "--seqlen", "16"] if cmd[0] == "eval" else []),
            expect=None)
    lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
    ok = r.returncode == 1 and len(lines) == 1 and all(s in lines[0] for s in expect_in)
    check(ok, f"{what}: `{cmd[0]}` exits 1 (got {r.returncode}) with one line naming {expect_in}: "
              f"{lines if len(lines) != 1 else lines[0]}")


def copy_dir(src, name):
    d = path(name)
    if os.path.exists(d):
        shutil.rmtree(d)
    shutil.copytree(src, d)
    return d


def edit_tensors(d, fn):
    from safetensors.numpy import load_file, save_file
    f = os.path.join(d, "model.safetensors")
    t = load_file(f)
    fn(t)
    save_file(t, f, metadata={"format": "pt"})


def edit_config(d, fn):
    f = os.path.join(d, "config.json")
    c = json.load(open(f))
    fn(c)
    json.dump(c, open(f, "w"), indent=2)


def case_bad():
    import numpy as np
    # a GPTQ export of an act-order model and a compressed-tensors export of a group-preserving one
    tag, q, fmt = quantize_native("llama", 4, 32, "gptq", "act_order", False)
    g = q + ".gptq"
    sq("export", q, "--format", "gptq", "--out", g, "--force")
    tag, q, fmt = quantize_native("llama", 4, 32, "gptq", "group_preserving", False)
    c = q + ".ct"
    sq("export", q, "--format", "compressed-tensors", "--out", c, "--force")
    lin = "model.layers.1.mlp.down_proj"

    d = copy_dir(g, "bad-qweight-shape")
    edit_tensors(d, lambda t: t.__setitem__(lin + ".qweight", t[lin + ".qweight"][:-1].copy()))
    one_error(d, [lin], "gptq qweight with one row too few for its scales", ("eval",))

    d = copy_dir(g, "bad-g-idx")
    def gidx(t):
        x = t[lin + ".g_idx"].copy()
        x[5] = 999
        t[lin + ".g_idx"] = x
    edit_tensors(d, gidx)
    one_error(d, [lin], "gptq g_idx entry 999 (out of range)", ("eval",))

    d = copy_dir(g, "bad-method")
    edit_config(d, lambda cf: cf["quantization_config"].__setitem__("quant_method", "gptqx"))
    for cmd in (("inspect",), ("eval",)):
        one_error(d, ["gptqx"], "unknown quant_method", cmd)

    d = copy_dir(g, "bad-bits")
    edit_config(d, lambda cf: cf["quantization_config"].__setitem__("bits", 9))
    one_error(d, ["bits"], "gptq bits 9")

    d = copy_dir(g, "bad-shard")
    from safetensors.numpy import load_file, save_file
    t = load_file(os.path.join(d, "model.safetensors"))
    os.remove(os.path.join(d, "model.safetensors"))
    names = sorted(t)
    half = len(names) // 2
    save_file({k: t[k] for k in names[:half]}, os.path.join(d, "model-00001-of-00002.safetensors"), metadata={"format": "pt"})
    wm = {k: ("model-00001-of-00002.safetensors" if i < half else "model-00002-of-00002.safetensors")
          for i, k in enumerate(names)}
    json.dump({"metadata": {}, "weight_map": wm}, open(os.path.join(d, "model.safetensors.index.json"), "w"))
    for cmd in (("inspect",), ("eval",)):
        one_error(d, ["model-00002-of-00002.safetensors"], "a shard listed in the index is missing", cmd)

    d = copy_dir(c, "bad-ct-shape")
    cl = lin
    def ctshape(t):
        t[cl + ".weight_shape"] = np.array([512, 999], dtype=np.int64)
    edit_tensors(d, ctshape)
    one_error(d, [cl], "compressed-tensors weight_shape inconsistent with weight_packed", ("eval",))

    d = copy_dir(c, "bad-ct-scheme")
    edit_config(d, lambda cf: cf["quantization_config"]["config_groups"]["group_0"]["weights"].__setitem__("num_bits", 9))
    one_error(d, ["num_bits"], "compressed-tensors num_bits 9")

    # export onto an existing output (no --force) and onto an unwritable place
    for f in ("gptq", "compressed-tensors"):
        out = path(f"exists-{f}")
        os.makedirs(out, exist_ok=True)
        open(os.path.join(out, "keep.txt"), "w").write("x")
        r = run([CLI, "export", q, "--format", f, "--out", out], expect=None)
        # exit 2: the CLI's code for a refused invocation (an existing output without --force)
        check(r.returncode in (1, 2) and os.listdir(out) == ["keep.txt"],
              f"export --format {f} onto an existing directory exits {r.returncode} and leaves it as it was: "
              f"{r.stderr.strip()}")
        parent = path(f"ro-{f}")
        os.makedirs(parent, exist_ok=True)
        blocker = os.path.join(parent, "file")
        open(blocker, "w").write("x")
        out = os.path.join(blocker, "out")  # a path under a regular file: cannot be created
        r = run([CLI, "export", q, "--format", f, "--out", out], expect=None)
        check(r.returncode == 1 and os.listdir(parent) == ["file"],
              f"export --format {f} to an unwritable path exits 1 and leaves nothing partial: {r.stderr.strip()}")


MOE_FIXTURES = os.path.join(ROOT, "tests", "fixtures", "moe")


def tiny_qwen3_moe_all_layers():
    """A tiny Qwen3-MoE whose every layer routes (the fixture's layer 1 is dense, which GPTQModel's
    loader leaves unquantized, so sliderquant refuses to export it as GPTQ), written by
    transformers with the fixtures' widths and tokenizer."""
    d = path("tiny-qwen3_moe-all")
    if os.path.isdir(d):
        return d
    import torch
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM
    sys.path.insert(0, os.path.join(ROOT, "tests", "moe"))
    import make_moe_fixtures as mk
    kw = dict(mk.FAMILIES["qwen3_moe"][2], mlp_only_layers=[], num_hidden_layers=2)
    torch.manual_seed(0)
    model = Qwen3MoeForCausalLM(Qwen3MoeConfig(**mk.COMMON, **kw)).eval()
    with torch.no_grad():
        for _, mlp in mk.routers(model):
            mlp.gate.weight.mul_(3.0)
    model.save_pretrained(d)
    for f in ("tokenizer.model", "tokenizer_config.json"):
        shutil.copy(os.path.join(mk.TOKENIZER, f), os.path.join(d, f))
    return d


def case_moe():
    """Mixture-of-experts GPTQ exports, loaded by GPTQModel's own loader (transformers 5 fuses the
    experts and leaves per-expert quantized linears unloaded): Qwen3-MoE (every layer routed)
    and Qwen2-MoE (shared expert with its sigmoid gate), GPTQ w4g16 symmetric (v1) and RTN w4g16
    asymmetric (written as gptq_v2, which GPTQModel.load requires for asymmetric checkpoints it
    did not write). Every expert, shared-expert and attention linear must load as TorchLinear,
    the routers and the shared-expert gate stay plain; logits equal ours. The families and layouts
    GPTQModel does not load (Mixtral's w1/w2/w3, a dense layer among MoE layers) and the
    compressed-tensors export of any MoE model are refused in one line, nothing written."""
    import hf_logits
    models = {"qwen3_moe": tiny_qwen3_moe_all_layers(), "qwen2_moe": os.path.join(MOE_FIXTURES, "qwen2_moe")}
    rows = []
    for family, src in models.items():
        for method, sym in (("gptq", True), ("rtn", False)):
            fmt = fmt_name(4, 16, sym)
            tag = f"moe-{family}-{fmt}-{method}"
            q = path(tag)
            sq("quantize", src, "--recipe", recipe(tag, fmt, method), "--out", q, "--force")
            g = q + ".gptq"
            sq("export", q, "--format", "gptq", "--out", g, "--force")
            qc = json.load(open(os.path.join(g, "config.json")))["quantization_config"]
            want_cf = "gptq" if sym else "gptq_v2"
            check(qc.get("checkpoint_format") == want_cf,
                  f"{tag}: checkpoint_format {qc.get('checkpoint_format')} (want {want_cf})")
            ours, ids = our_logits(q, tag)
            ours_g, ids_g = our_logits(g, tag + ".gptq")
            check(ids == ids_g, f"{tag}: the exported directory's tokenizer gives the same ids")
            d_exact = maxdiff(ours, ours_g)
            check(d_exact <= TOL_EXACT, f"{tag}: our logits of the export equal the native ones (max |d| {d_exact:.3g})")
            want = sorted(gptq_modules(g))
            l16, l32, info = hf_logits.gptqmodel_load_logits(g, ids)
            got = info["torch_linears"]
            n_exp = sum(".experts." in n for n in got)
            check(got == want, f"{tag}: GPTQModel.load made every quantized linear a TorchLinear ({len(got)} of "
                               f"{len(want)}, {n_exp} expert linears; missing {sorted(set(want) - set(got))[:3]})")
            plain = [n for n in want if n.endswith(("mlp.gate", "shared_expert_gate"))]
            check(not plain and n_exp > 0, f"{tag}: experts quantized, no router or shared-expert gate ({plain})")
            d16, d32 = maxdiff(ours, l16), maxdiff(ours, l32)
            check(d32 <= TOL_F32, f"{tag}: GPTQModel.load, float32 scales, vs ours: max |d| {d32:.3g} <= {TOL_F32}")
            check(d16 <= TOL_F16, f"{tag}: GPTQModel.load in float16 (as shipped) vs ours: max |d| {d16:.3g} <= {TOL_F16}")
            rows.append((family, fmt, method, qc.get("checkpoint_format"), len(got), n_exp, f"{d_exact:.2g}",
                         f"{d32:.2g}", f"{d16:.2g}", f"{float(abs(ours).max()):.2f}"))
    table("MoE -> export --format gptq -> GPTQModel.load (TorchLinear), max |dlogit| over "
          f"{SEQLEN} tokens x 512 vocab",
          ["family", "format", "method", "checkpoint_format", "TorchLinears", "of them experts",
           "ours native vs ours gptq", "GPTQModel f32 scales", "GPTQModel fp16"], rows)

    # Refused, in one line, nothing written.
    refusals = [
        ("mixtral", os.path.join(MOE_FIXTURES, "mixtral"), "gptq", "does not load its per-expert"),
        ("qwen3_moe with a dense layer", os.path.join(MOE_FIXTURES, "qwen3_moe"), "gptq", "dense MLP"),
        ("qwen2_moe", os.path.join(MOE_FIXTURES, "qwen2_moe"), "compressed-tensors", "fused"),
    ]
    for name, src, f, why in refusals:
        tag = "moe-refused-" + name.split()[0] + "-" + f
        q = path(tag)
        sq("quantize", src, "--recipe", recipe(tag, "w4g16s", "rtn"), "--out", q, "--force")
        out = q + "." + f
        r = run([CLI, "export", q, "--format", f, "--out", out], expect=None)
        lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
        check(r.returncode == 1 and len(lines) == 1 and why in lines[0] and not os.path.exists(out),
              f"{name}: export --format {f} is refused in one line naming why, nothing written: {lines}")


def gptq_modules(d):
    """{module: its qweight tensor's name} of every quantized linear of a GPTQ directory (the modules with a qweight)."""
    from safetensors import safe_open
    names = []
    for f in sorted(os.listdir(d)):
        if f.endswith(".safetensors"):
            with safe_open(os.path.join(d, f), "np") as st:
                names += [k for k in st.keys() if k.endswith(".qweight")]
    return {k[:-len(".qweight")]: k for k in names}


CASES = {"ragged": case_ragged, "gptq": case_gptq, "gptqmodel": case_gptqmodel, "ct": case_ct, "ctwritten": case_ctwritten, "bad": case_bad,
         "moe": case_moe}


def main():
    global CLI, WORK
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--case", required=True, choices=sorted(CASES))
    ap.add_argument("--work", default="")
    a = ap.parse_args()
    CLI = os.path.abspath(a.cli)
    WORK = a.work or tempfile.mkdtemp(prefix=f"sq_hf_{a.case}_")
    os.makedirs(WORK, exist_ok=True)
    # GPTQModel's JIT extension cache (none is built with pack_impl="original"; kept out of ~/.cache)
    os.environ.setdefault("GPTQMODEL_CACHE_DIR", os.path.join(WORK, "gptqmodel-cache"))
    try:
        import numpy  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
        import gptqmodel  # noqa: F401
        import optimum.gptq  # noqa: F401
        import compressed_tensors  # noqa: F401
        import safetensors  # noqa: F401
    except ImportError as e:
        if not a.work:
            shutil.rmtree(WORK, ignore_errors=True)
        sys.exit(f"test_hf_interop: {e}; the test Python ({sys.executable}) needs requirements-test.txt "
                 "(scripts/install_python.sh)")
    t0 = time.time()
    try:
        CASES[a.case]()
    finally:
        if not a.work:
            shutil.rmtree(WORK, ignore_errors=True)
    if FAILED:
        print(f"\nFAILED {a.case}: {len(FAILED)} check(s):\n  " + "\n  ".join(FAILED))
        sys.exit(1)
    print(f"PASS {a.case} ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
