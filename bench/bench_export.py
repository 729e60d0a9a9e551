#!/usr/bin/env python3
"""Export cost on a 7B-shaped checkpoint: native -> gptq / compressed-tensors / gguf, and back.

One run, a table plus JSON. A synthetic Llama-2-7B-shaped model (`sliderquant synth --preset
llama2-7b --layers N`, bfloat16, seeded random weights: the widths and tensor count per layer
of the real model; --layers 32 is the whole model) is quantized by RTN onto w4g128s (no
calibration: the bench measures the writers, not the quantizer), then each row times one
command as a separate process with /usr/bin/time (wall seconds and peak RSS):
  export native -> gptq, native -> compressed-tensors, native -> gguf (--gguf-type q4_0:
  re-quantized, since g128 has no GGUF block), and the readers: `inspect` and loading the
  gptq / compressed-tensors exports back (`export --format native`).
Sizes on disk are reported per output. Timings include libtorch start-up (~0.5 s) and the
page cache state of the machine; the first row pays the source's first read.

Usage: .venv/bin/python bench/bench_export.py [--layers 32] [--formats gptq,compressed-tensors,gguf]
         [--work out/bench_export]
         [--out out/bench_export.json] [--keep]
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def timed(args):
    """Runs ARGS under /usr/bin/time; returns (wall seconds, peak RSS bytes)."""
    p = subprocess.run(["/usr/bin/time", "-f", "SQTIME %e %M"] + args, capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({p.returncode}): {p.stderr.strip()[-2000:]}")
    line = [l for l in p.stderr.splitlines() if l.startswith("SQTIME ")][-1].split()
    return float(line[1]), int(line[2]) * 1024


def du(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "sliderquant"))
    ap.add_argument("--layers", type=int, default=32, help="decoder layers of the 7B shape (32 = the whole model)")
    ap.add_argument("--work", default=os.path.join(ROOT, "out", "bench_export"))
    ap.add_argument("--out", default=os.path.join(ROOT, "out", "bench_export.json"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--formats", default="gptq,compressed-tensors,gguf", help="export targets, comma-separated")
    a = ap.parse_args()
    cli = a.cli
    os.makedirs(a.work, exist_ok=True)
    src, q = os.path.join(a.work, "src"), os.path.join(a.work, "q")
    rows = []
    t0 = time.time()
    if not os.path.exists(src):
        subprocess.run([cli, "synth", src, "--preset", "llama2-7b", "--layers", str(a.layers), "--dtype", "bfloat16",
                        "--tokenizer", os.path.join(ROOT, "tests", "fixtures", "llama2_tokenizer"), "-q"], check=True)
    recipe = os.path.join(a.work, "rtn-w4g128s.json")
    json.dump({"name": "bench-rtn-w4g128s", "description": "bench_export: RTN onto w4g128s", "format": "w4g128s",
               "pipeline": [{"pass": "rtn", "options": {"mse": False}}]}, open(recipe, "w"))
    if not os.path.exists(q):
        s, rss = timed([cli, "quantize", src, "--recipe", recipe, "--out", q, "-q"])
        rows.append({"step": "quantize rtn w4g128s (native)", "seconds": s, "peak_rss": rss, "bytes": du(q)})
    outs = {"gptq": os.path.join(a.work, "gptq"), "compressed-tensors": os.path.join(a.work, "ct"),
            "gguf": os.path.join(a.work, "m.gguf")}
    targets = a.formats.split(",")
    for fmt, out in outs.items():
        if fmt not in targets:
            continue
        args = [cli, "export", q, "--format", fmt, "--out", out, "--force", "-q"]
        if fmt == "gguf":
            args += ["--gguf-type", "q4_0"]
        s, rss = timed(args)
        rows.append({"step": f"export native -> {fmt}", "seconds": s, "peak_rss": rss, "bytes": du(out)})
    for fmt in [f for f in ("gptq", "compressed-tensors") if f in targets]:
        back = os.path.join(a.work, "back_" + fmt)
        s, rss = timed([cli, "export", outs[fmt], "--format", "native", "--out", back, "--force", "-q"])
        rows.append({"step": f"read {fmt} -> native", "seconds": s, "peak_rss": rss, "bytes": du(back)})
        shutil.rmtree(back, ignore_errors=True)
    if "gptq" in targets:
        s, rss = timed([cli, "inspect", outs["gptq"]])
        rows.append({"step": "inspect gptq", "seconds": s, "peak_rss": rss, "bytes": 0})
    info = {"layers": a.layers, "shape": "llama2-7b", "source_bytes": du(src), "rows": rows,
            "cpu_threads": os.cpu_count(), "total_seconds": time.time() - t0}
    print(f"llama2-7b shape, {a.layers} layers, source {du(src) / 2**30:.2f} GiB (bfloat16)")
    print(f"{'step':36s} {'seconds':>9s} {'peak RSS':>10s} {'size':>10s}")
    for r in rows:
        print(f"{r['step']:36s} {r['seconds']:9.1f} {r['peak_rss'] / 2**30:8.2f}Gi {r['bytes'] / 2**30:8.2f}Gi")
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    json.dump(info, open(a.out, "w"), indent=2)
    print("wrote", a.out)
    if not a.keep:
        shutil.rmtree(a.work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
