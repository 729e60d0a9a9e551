#!/usr/bin/env python3
"""GGUF interop, proven by llama.cpp itself (llama-cpp-python) and gguf-py.

Usage: test_gguf_interop.py --cli BUILD/sliderquant --case CASE [--work DIR]
Cases (each a ctest of its own, see tests/CMakeLists.txt):
  smollm2      SmolLM2-135M's own GGUF (made by llama.cpp): token ids identical to llama.cpp's
               on a multilingual text and on WikiText-2; our perplexity within 1% of
               llama.cpp's on the same token windows; convert -> HF dir gives the same logits.
  f32          stories260K and synthetic llama / llama3-style / qwen2 / qwen3 / mistral models
               exported as F32 GGUF: llama.cpp's logits equal ours (max |diff| <= 2e-3,
               printed), the exported file read back by us equals the source exactly.
  quantized    stories260K quantized onto the Q4_0 / Q8_0 / Q4_1 / Q5_1 grids (RTN and GPTQ,
               groups of 32) and exported exactly: llama.cpp's perplexity within 0.5% of
               ours on the same file; the export adds no error beyond fp16 rounding of Q4_1's
               minimum; a group-128 model is refused without --gguf-type and re-quantized
               with it.
  kquant       a synthetic 256-wide llama (stories260K's tokenizer) quantized by GPTQ onto
               every k-quant grid and Q4_1 / Q5_1 with fp16 minimums (the ggml grid formats):
               the export is bit-exact (max error 0) and llama.cpp's perplexity is within 0.5%
               of ours on the same file.
  ggufpy       gguf-py reads every file the other cases wrote (re-made here) and agrees with
               `sliderquant inspect --json` on every key and tensor type and shape.
  corrupt      truncated / corrupt GGUF files: one error line naming the file, exit 1.
Every failure raises; nothing is skipped. Prints the measured numbers (the closing notes
quote them).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
FIX = os.path.join(ROOT, "tests", "fixtures")
STORIES = os.path.join(FIX, "stories260K", "hf")
WIKI = os.path.join(FIX, "text", "wikitext2_head.txt")
MULTI = os.path.join(FIX, "text", "multilingual.txt")
SMOL_GGUF = os.path.join(ROOT, "models", "gguf", "SmolLM2-135M-Instruct.Q4_1.gguf")
HARNESS = os.path.join(HERE, "llama_cpp_harness.py")

CLI = None
WORK = None


def run(args, expect=0, quiet=True):
    p = subprocess.run(args, capture_output=True, text=True)
    if expect is not None and p.returncode != expect:
        raise AssertionError(f"{' '.join(args)} exited {p.returncode} (expected {expect}):\n{p.stderr[-3000:]}")
    return p


def sq(*args, expect=0):
    return run([CLI, *args, "-q"] if expect == 0 else [CLI, *args], expect=expect)


def harness(*args):
    return run([sys.executable, HARNESS, *args]).stdout


def path(name):
    return os.path.join(WORK, name)


def our_ids(model, text_file):
    with open(text_file, encoding="utf-8") as f:
        p = subprocess.run([CLI, "tokenize", model, "--json", "-q"], stdin=f, capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"sliderquant tokenize {model} failed: {p.stderr}")
    return json.loads(p.stdout)["ids"]


def our_logits(model, text_file, seqlen):
    import numpy as np
    out = path(os.path.basename(model.rstrip("/")) + ".ours.npy")
    sq("eval", model, "--ppl", text_file, "--seqlen", str(seqlen), "--max-windows", "1", "--save-logits", out)
    ids = json.load(open(out + ".ids.json"))
    return np.load(out), ids, out + ".ids.json"


def llama_logits(gguf, ids_json):
    import numpy as np
    out = path(os.path.basename(gguf) + ".llama.npy")
    harness("logits", gguf, ids_json, out)
    return np.load(out)


def our_ppl(model, text_file, seqlen, windows):
    rep = path("ppl.json")
    sq("eval", model, "--ppl", text_file, "--seqlen", str(seqlen), "--max-windows", str(windows), "--json", rep)
    r = json.load(open(rep))["perplexity"][0]
    return r


def write_ids(ids, name):
    p = path(name)
    json.dump(ids, open(p, "w"))
    return p


def llama_ppl(gguf, ids, seqlen, windows, threads=1):
    return json.loads(harness("ppl", gguf, write_ids(ids, "ids_ppl.json"), "--seqlen", str(seqlen),
                              "--max-windows", str(windows), "--threads", str(threads)))


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)
    print("ok:", msg)


# ---- cases --------------------------------------------------------------------------------

def case_smollm2():
    check(os.path.isfile(SMOL_GGUF), f"{SMOL_GGUF} exists (made by scripts/get_models.sh)")
    for text in (MULTI, WIKI):
        ours = our_ids(SMOL_GGUF, text)
        ref = json.loads(harness("tokenize", SMOL_GGUF, text, "--add-bos"))
        first = next((i for i, (a, b) in enumerate(zip(ours, ref)) if a != b), min(len(ours), len(ref)))
        check(ours == ref, f"SmolLM2 token ids equal llama.cpp's on {os.path.basename(text)} ({len(ref)} tokens"
                           + ("" if ours == ref else f"; first difference at {first}: ours {ours[first:first+5]} "
                                                    f"llama.cpp {ref[first:first+5]}") + ")")
    seqlen, windows = 512, 4
    r = our_ppl(SMOL_GGUF, WIKI, seqlen, windows)
    ids = our_ids(SMOL_GGUF, WIKI)
    l = llama_ppl(SMOL_GGUF, ids, seqlen, windows)
    gap = abs(r["ppl"] - l["ppl"]) / l["ppl"]
    print(f"SmolLM2-135M Q4_1, {windows} x {seqlen} tokens of wikitext2_head: ours {r['ppl']:.4f} "
          f"({r.get('tokens_per_second', 0):.0f} tok/s), llama.cpp {l['ppl']:.4f} ({l['tokens_per_second']:.0f} tok/s), "
          f"gap {100 * gap:.3f}%")
    check(gap < 0.01, "SmolLM2 perplexity within 1% of llama.cpp's")
    # convert -> HF directory: same logits as reading the GGUF directly.
    hf = path("smollm2-hf")
    sq("convert", SMOL_GGUF, "--out", hf, "--force")
    a, ids_a, _ = our_logits(SMOL_GGUF, WIKI, 64)
    b, ids_b, _ = our_logits(hf, WIKI, 64)
    check(ids_a == ids_b, "the converted directory's tokenizer gives the GGUF's ids")
    check(float(abs(a - b).max()) == 0.0, "the converted float32 directory gives the GGUF's logits exactly")


def synth(family, out):
    sq("synth", out, "--family", family, "--preset", "tiny", "--dtype", "float32", "--seed", "3",
       "--tokenizer", STORIES, "--force")
    return out


def f32_models():
    models = [("stories260K", STORIES)]
    for fam in ("llama", "qwen2", "qwen3", "mistral"):
        models.append((f"synthetic-{fam}", synth(fam, path(f"synth-{fam}"))))
    # Llama 3.1-style RoPE rescaling: written by us as rope_freqs, read by llama.cpp.
    d = synth("llama", path("synth-llama3"))
    cfg = json.load(open(os.path.join(d, "config.json")))
    cfg["rope_scaling"] = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                           "original_max_position_embeddings": 8192}
    cfg["rope_theta"] = 500000.0
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2)
    models.append(("synthetic-llama3.1-rope", d))
    return models


def case_f32():
    import numpy as np
    for name, d in f32_models():
        g = path(f"{name}.f32.gguf")
        sq("export", d, "--format", "gguf", "--out", g, "--force")
        ours_src, ids, ids_json = our_logits(d, WIKI, 128)
        ours_gguf, ids2, _ = our_logits(g, WIKI, 128)
        check(ids == ids2, f"{name}: the GGUF's tokenizer gives the source's ids")
        check(float(np.abs(ours_src - ours_gguf).max()) == 0.0, f"{name}: our logits from the F32 GGUF equal the source's exactly")
        ref = llama_logits(g, ids_json)
        diff = float(np.abs(ref - ours_src).max())
        scale = float(np.abs(ours_src).max())
        print(f"{name}: llama.cpp vs sliderquant logits over {len(ids)} tokens: max |diff| {diff:.3g} (max |logit| {scale:.3g})")
        check(diff <= 2e-3, f"{name}: llama.cpp's logits equal ours within 2e-3")


QUANT_RECIPES = [("stories-rtn-q4_0", "q4_0"), ("stories-gptq-q8_0", "q8_0"), ("stories-gptq-q4_1", "q4_1"),
                 ("stories-gptq-q5_1", "q5_1")]


def case_quantized():
    calib = WIKI
    for recipe, t in QUANT_RECIPES:
        q = path(recipe)
        sq("quantize", STORIES, "--recipe", recipe, "--out", q, "--calib", calib, "--force")
        g = path(recipe + ".gguf")
        rep = path(recipe + ".export.json")
        sq("export", q, "--format", "gguf", "--out", g, "--json", rep, "--force")
        r = json.load(open(rep))
        types = r["types"]
        check(types.get(t, 0) == 5 * 6, f"{recipe}: 30 linears stored as {t} ({types})")
        check(r["requantized"] == 0, f"{recipe}: nothing re-quantized")
        exact_err = r["max_abs_error_exact"]
        print(f"{recipe}: largest error the export added to a quantized weight: {exact_err:.3g}")
        if t in ("q4_0", "q8_0"):
            check(exact_err == 0.0, f"{recipe}: symmetric grids export bit-exactly")
        ours_dir = our_ppl(q, WIKI, 256, 8)["ppl"]
        ours_g = our_ppl(g, WIKI, 256, 8)["ppl"]
        ids = our_ids(g, WIKI)
        l = llama_ppl(g, ids, 256, 8)["ppl"]
        print(f"{recipe} ({t}): ppl ours (directory) {ours_dir:.4f}, ours (GGUF) {ours_g:.4f}, llama.cpp {l:.4f}")
        check(abs(ours_g - ours_dir) / ours_dir < 1e-4 if t in ("q4_0", "q8_0") else abs(ours_g - ours_dir) / ours_dir < 1e-3,
              f"{recipe}: our perplexity of the GGUF equals that of the quantized directory")
        check(abs(l - ours_g) / ours_g < 0.005, f"{recipe}: llama.cpp's perplexity within 0.5% of ours")
    # quantize --format gguf writes the same file in one step.
    one = path("one-step.gguf")
    sq("quantize", STORIES, "--recipe", "stories-rtn-q4_0", "--out", one, "--calib", calib, "--format", "gguf", "--force")
    import gguf
    ta = {t.name: (t.tensor_type, bytes(t.data)) for t in gguf.GGUFReader(one).tensors}
    tb = {t.name: (t.tensor_type, bytes(t.data)) for t in gguf.GGUFReader(path("stories-rtn-q4_0.gguf")).tensors}
    check(ta == tb, "quantize --format gguf writes the same tensors as quantize + export")
    # A grid GGUF cannot hold (per-channel): refused, then re-quantized when asked.
    q = path("stories-gptq-w4-pc")
    sq("quantize", STORIES, "--recipe", "stories-gptq-w4-pc", "--out", q, "--calib", calib, "--force")
    p = sq("export", q, "--format", "gguf", "--out", path("refused.gguf"), expect=1)
    check("cannot store" in p.stderr and not os.path.exists(path("refused.gguf")),
          "a per-channel model is refused without --gguf-type, nothing written: " + p.stderr.strip())
    rep = path("requant.json")
    sq("export", q, "--format", "gguf", "--out", path("requant.gguf"), "--gguf-type", "q8_0", "--json", rep, "--force")
    r = json.load(open(rep))
    check(r["requantized"] > 0, f"--gguf-type q8_0 re-quantizes ({r['requantized']} linears, types {r['types']})")


KQUANT_TYPES = ["q2_k", "q3_k", "q4_k", "q5_k", "q6_k", "q4_1", "q5_1"]


def case_kquant():
    m = path("synth-tiny256")
    sq("synth", m, "--family", "llama", "--preset", "tiny256", "--dtype", "float32", "--seed", "3",
       "--tokenizer", STORIES, "--force")
    for t in KQUANT_TYPES:
        rec = path(f"gptq-{t}.json")
        json.dump({"name": f"gptq-{t}", "calibration": {"dataset": "c4-2k", "samples": 16, "seqlen": 256, "seed": 0},
                   "format": t, "pipeline": [{"pass": "gptq", "options": {"order": "group_preserving"}}]},
                  open(rec, "w"))
        q = path(f"kq-{t}")
        sq("quantize", m, "--recipe", rec, "--out", q, "--calib", WIKI, "--force")
        g = path(f"kq-{t}.gguf")
        rep = path(f"kq-{t}.export.json")
        sq("export", q, "--format", "gguf", "--out", g, "--json", rep, "--force")
        r = json.load(open(rep))
        gt = t[:-1] + "K" if t.endswith("k") else t
        check(r["types"].get(gt, 0) == 2 * 7, f"{t}: 14 linears stored as {gt} ({r['types']})")
        check(r["requantized"] == 0 and r["max_abs_error_exact"] == 0.0, f"{t}: exported bit-exactly")
        ours_dir = our_ppl(q, WIKI, 256, 8)["ppl"]
        ours_g = our_ppl(g, WIKI, 256, 8)["ppl"]
        ids = our_ids(g, WIKI)
        l = llama_ppl(g, ids, 256, 8)["ppl"]
        print(f"{t}: ppl ours (directory) {ours_dir:.4f}, ours (GGUF) {ours_g:.4f}, llama.cpp {l:.4f}")
        check(abs(ours_g - ours_dir) / ours_dir < 1e-5, f"{t}: the GGUF's perplexity equals the directory's")
        check(abs(l - ours_g) / ours_g < 0.005, f"{t}: llama.cpp's perplexity within 0.5% of ours")


def gguf_py_agrees(g):
    import gguf
    reader = gguf.GGUFReader(g)
    rep = path("inspect.json")
    sq("inspect", g, "--json", rep)
    ours = json.load(open(rep))
    meta = ours["quantization"]
    keys = {k for k in reader.fields if not k.startswith("GGUF.")}
    check(keys == set(meta.keys()), f"{os.path.basename(g)}: gguf-py and sliderquant see the same {len(keys)} keys")
    for k in keys:
        f = reader.fields[k]
        v = f.contents()
        m = meta[k]
        if isinstance(v, list):
            assert m.startswith(f"[{len(v)} "), (k, m, len(v))
        elif isinstance(v, float):
            assert abs(v - m) <= 1e-6 * max(1.0, abs(v)), (k, v, m)
        elif isinstance(v, str):
            assert v[:200] == m[:200], (k, v[:50], m[:50])
        else:
            assert v == m, (k, v, m)
    ts = {t.name: (t.tensor_type.name.lower(), [int(x) for x in reversed(t.shape)]) for t in reader.tensors}
    mine = {t["name"]: (t["dtype"].lower(), t["shape"]) for t in ours["tensors"]}
    check(ts == mine, f"{os.path.basename(g)}: gguf-py agrees on all {len(ts)} tensor types and shapes")


def case_ggufpy():
    files = [SMOL_GGUF]
    for name, d in f32_models()[:3]:
        g = path(f"{name}.f32.gguf")
        sq("export", d, "--format", "gguf", "--out", g, "--force")
        files.append(g)
    q = path("q4_1")
    sq("quantize", STORIES, "--recipe", "stories-gptq-q4_1", "--out", q, "--calib", WIKI, "--force")
    sq("export", q, "--format", "gguf", "--out", path("q4_1.gguf"), "--force")
    files.append(path("q4_1.gguf"))
    for g in files:
        gguf_py_agrees(g)


def case_corrupt():
    g = path("good.gguf")
    sq("export", STORIES, "--format", "gguf", "--out", g, "--force")
    data = open(g, "rb").read()
    bad = {
        "truncated.gguf": data[: len(data) // 2],
        "header_only.gguf": data[:40],
        "bad_magic.gguf": b"GGUX" + data[4:],
        "bad_version.gguf": data[:4] + (7).to_bytes(4, "little") + data[8:],
        "huge_count.gguf": data[:8] + (1 << 60).to_bytes(8, "little") + data[16:],
    }
    # An unknown value type in the first key's type field (right after its name).
    n = int.from_bytes(data[24:32], "little")
    bad["bad_value_type.gguf"] = data[: 32 + n] + (99).to_bytes(4, "little") + data[36 + n:]
    for name, blob in bad.items():
        p = path(name)
        open(p, "wb").write(blob)
        for cmd in (["inspect", p], ["eval", p, "--ppl", WIKI, "--max-windows", "1"]):
            r = run([CLI, *cmd], expect=None)
            lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
            check(r.returncode in (1, 2) and len(lines) == 1 and (name in lines[0] or "GGUF" in lines[0]),
                  f"{name}: `{cmd[0]}` fails with one line: {lines[-1] if lines else '(nothing)'}")
        out = path(name + ".hf")
        r = run([CLI, "convert", p, "--out", out], expect=None)
        check(r.returncode == 1 and not os.path.exists(out), f"{name}: convert exits 1 and writes nothing")


MOE_FAMILIES = ("qwen3_moe", "qwen2_moe", "mixtral")


def moe_model(family):
    d = synth(family, path(f"synth-{family}"))
    if family == "qwen2_moe":  # as released (and as llama.cpp's qwen2moe runs it): no renormalisation
        cfg = json.load(open(os.path.join(d, "config.json")))
        cfg["norm_topk_prob"] = False
        json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=2)
    return d


def case_moe():
    """MoE families: stacked expert tensors written and read back; llama.cpp computes our logits
    (float32) and our perplexity (Q4_0 experts, exported bit for bit)."""
    import numpy as np
    recipe = path("moe-rtn-q4_0.json")
    json.dump({"name": "moe-rtn-q4_0", "format": "w4g32s", "pipeline": [{"pass": "rtn", "options": {"mse": False}}]},
              open(recipe, "w"))
    for fam in MOE_FAMILIES:
        d = moe_model(fam)
        g = path(f"{fam}.f32.gguf")
        sq("export", d, "--format", "gguf", "--out", g, "--force")
        ours_src, ids, ids_json = our_logits(d, WIKI, 128)
        ours_gguf, ids2, _ = our_logits(g, WIKI, 128)
        check(ids == ids2, f"{fam}: the GGUF's tokenizer gives the source's ids")
        check(float(np.abs(ours_src - ours_gguf).max()) == 0.0,
              f"{fam}: our logits from the F32 GGUF (experts stacked and split again) equal the source's exactly")
        ref = llama_logits(g, ids_json)
        diff = float(np.abs(ref - ours_src).max())
        scale = float(np.abs(ours_src).max())
        print(f"{fam}: llama.cpp vs sliderquant logits over {len(ids)} tokens: max |diff| {diff:.3g} "
              f"(max |logit| {scale:.3g})")
        check(diff <= 2e-3, f"{fam}: llama.cpp's logits equal ours within 2e-3")
        q = path(f"{fam}-q4_0")
        sq("quantize", d, "--recipe", recipe, "--out", q, "--force")
        gq = path(f"{fam}-q4_0.gguf")
        rep = path(f"{fam}-q4_0.export.json")
        sq("export", q, "--format", "gguf", "--out", gq, "--json", rep, "--force")
        r = json.load(open(rep))
        exps = [t for t in r["tensors"] if t["name"].endswith("_exps.weight")]
        check(len(exps) == 3 * 2 and all(t["type"] == "q4_0" and t["shape"][0] == 4 for t in exps),
              f"{fam}: 6 stacked expert tensors [4, rows, cols] in Q4_0 ({[t['shape'] for t in exps[:3]]})")
        check(r["max_abs_error_exact"] == 0.0 and r["requantized"] == 0, f"{fam}: the Q4_0 export is bit-exact")
        routers = [t for t in r["tensors"] if "ffn_gate_inp" in t["name"]]
        check(all(t["type"] == "f32" for t in routers), f"{fam}: routers (and shared-expert gates) stored as F32")
        ours_dir = our_ppl(q, WIKI, 128, 8)["ppl"]
        ours_g = our_ppl(gq, WIKI, 128, 8)["ppl"]
        l = llama_ppl(gq, our_ids(gq, WIKI), 128, 8)["ppl"]
        print(f"{fam} q4_0: ppl ours (directory) {ours_dir:.4f}, ours (GGUF) {ours_g:.4f}, llama.cpp {l:.4f}")
        check(abs(ours_g - ours_dir) / ours_dir < 1e-4, f"{fam}: our perplexity of the GGUF equals the directory's")
        check(abs(l - ours_g) / ours_g < 0.005, f"{fam}: llama.cpp's perplexity within 0.5% of ours")
    # What llama.cpp cannot run as we do is refused, with nothing written.
    dense = os.path.join(FIX, "moe", "qwen3_moe")  # layer 1 is dense (mlp_only_layers)
    p = sq("export", dense, "--format", "gguf", "--out", path("dense.gguf"), expect=1)
    check("dense MLP" in p.stderr and not os.path.exists(path("dense.gguf")),
          "a Qwen3-MoE with a dense layer is refused: " + p.stderr.strip())
    cfg = json.load(open(os.path.join(path("synth-qwen2_moe"), "config.json")))
    cfg["norm_topk_prob"] = True
    json.dump(cfg, open(os.path.join(path("synth-qwen2_moe"), "config.json"), "w"), indent=2)
    p = sq("export", path("synth-qwen2_moe"), "--format", "gguf", "--out", path("renorm.gguf"), expect=1)
    check("norm_topk_prob" in p.stderr and not os.path.exists(path("renorm.gguf")),
          "a Qwen2-MoE that renormalises its routing weights is refused: " + p.stderr.strip())


CASES = {"smollm2": case_smollm2, "f32": case_f32, "quantized": case_quantized, "kquant": case_kquant,
         "ggufpy": case_ggufpy, "corrupt": case_corrupt, "moe": case_moe}


def main():
    global CLI, WORK
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", required=True)
    ap.add_argument("--case", required=True, choices=sorted(CASES))
    ap.add_argument("--work", default="")
    a = ap.parse_args()
    CLI = os.path.abspath(a.cli)
    try:
        import numpy  # noqa: F401
        import gguf  # noqa: F401
        import llama_cpp  # noqa: F401
    except ImportError as e:
        sys.exit(f"test_gguf_interop: {e}; the test Python ({sys.executable}) needs requirements-test.txt "
                 "(scripts/install_python.sh)")
    WORK = a.work or tempfile.mkdtemp(prefix=f"sq_gguf_{a.case}_")
    os.makedirs(WORK, exist_ok=True)
    try:
        CASES[a.case]()
    finally:
        if not a.work:
            shutil.rmtree(WORK, ignore_errors=True)
    print(f"PASS {a.case}")


if __name__ == "__main__":
    main()
