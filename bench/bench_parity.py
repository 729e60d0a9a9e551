#!/usr/bin/env python3
"""Evaluator parity at benchmark size: sliderquant's perplexity against transformers (same
token windows) and its zero-shot scores against lm-eval 0.4.13 (local task files), on
SmolLM2-135M and stories260K, side by side in one run. The ctests EvalParity.* run the same
checks on the fixture slices; this runs them on ../shared/data with larger limits.

    .venv/bin/python bench/bench_parity.py --data-dir ../shared/data [--windows 20] [--limit 500]
        [--models smollm2,stories260k] [--skip-ppl] [--skip-zeroshot] [--out bench_parity.json]

Perplexity: WikiText-2 test ("\\n\\n".join, GPTQ protocol), the first --windows windows of
2048 tokens for SmolLM2 (of 512 for stories260K, its context), float32 and bfloat16; the
tolerance is 0.1% in float32 and 0.3% in bfloat16 (see tests/parity/test_ppl_parity.py). Zero-shot: the 7 tasks with --limit documents each; the tolerance is one
item per task. Prints both tables (markdown) and writes everything to --out; exit status 1
when a check fails.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {"smollm2": os.path.join(ROOT, "models", "smollm2-135m"),
          "stories260k": os.path.join(ROOT, "tests", "fixtures", "stories260K", "hf")}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "sliderquant"))
    ap.add_argument("--data-dir", default=os.environ.get("SQ_DATA_DIR", os.path.join(ROOT, "..", "shared", "data")))
    ap.add_argument("--models", default="smollm2,stories260k")
    ap.add_argument("--windows", type=int, default=20, help="perplexity windows per model (0 = all)")
    ap.add_argument("--limit", type=int, default=500, help="zero-shot documents per task")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skip-ppl", action="store_true")
    ap.add_argument("--skip-zeroshot", action="store_true")
    ap.add_argument("--out", default="bench_parity.json")
    a = ap.parse_args()
    py = sys.executable
    wiki = os.path.join(a.data_dir, "eval", "wikitext2", "wikitext2_test_gptq_join.txt")
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads))
    out = {"bench": "parity", "data_dir": a.data_dir, "windows": a.windows, "limit": a.limit, "threads": a.threads,
           "machine": platform.machine(), "cpus": os.cpu_count(), "ppl": {}, "zeroshot": {}, "failed": []}
    with tempfile.TemporaryDirectory() as td:
        for name in a.models.split(","):
            model = MODELS[name]
            if not a.skip_ppl:
                j = os.path.join(td, f"ppl-{name}.json")
                cmd = [py, os.path.join(ROOT, "tests", "parity", "test_ppl_parity.py"), "--cli", a.cli, "--model", model,
                       "--text", wiki, "--windows", str(a.windows), "--threads", str(a.threads), "--json", j]
                t0 = time.time()
                p = subprocess.run(cmd, env=env, capture_output=True, text=True)
                print(f"## perplexity parity, {name} ({time.time() - t0:.0f} s)\n")
                print("\n".join(l for l in p.stdout.splitlines() if l.startswith(("|", "FAIL", "ppl parity"))), flush=True)
                if p.returncode != 0:
                    out["failed"].append(f"ppl {name}: " + (p.stdout + p.stderr)[-800:])
                if os.path.exists(j):
                    out["ppl"][name] = json.load(open(j))
            if not a.skip_zeroshot:
                j = os.path.join(td, f"zs-{name}.json")
                cmd = [py, os.path.join(ROOT, "tests", "lmeval", "test_zeroshot_parity.py"), "--cli", a.cli, "--model",
                       model, "--limit", str(a.limit), "--data-dir", a.data_dir, "--work", os.path.join(td, "zs-" + name),
                       "--json", j]
                t0 = time.time()
                p = subprocess.run(cmd, env=env, capture_output=True, text=True)
                print(f"\n## zero-shot parity, {name}, limit {a.limit} ({time.time() - t0:.0f} s)\n")
                print("\n".join(l for l in p.stdout.splitlines() if l.startswith(("|", "FAIL"))), flush=True)
                if p.returncode != 0:
                    out["failed"].append(f"zeroshot {name}: " + (p.stdout + p.stderr)[-800:])
                if os.path.exists(j):
                    out["zeroshot"][name] = json.load(open(j))
    with open(a.out, "w") as f:
        json.dump(out, f, indent=2)
    print("\nwrote", a.out, "; failed:", len(out["failed"]))
    return 1 if out["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
