#!/usr/bin/env python3
"""Zero-shot speed on CPU: items/s per task for `sliderquant eval --tasks` on a model
(default: the bundled stories260K), with --limit items per task. Prints a table and writes a
JSON file. Standard library only.

    python3 bench/bench_zeroshot.py --data-dir ../shared/data --limit 200 [--tasks all]
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
ALL = ["piqa", "arc_easy", "arc_challenge", "hellaswag", "winogrande", "boolq", "lambada_openai"]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "sliderquant"))
    ap.add_argument("--model", default=os.path.join(ROOT, "tests", "fixtures", "stories260K", "hf"))
    ap.add_argument("--data-dir", default=os.environ.get("SQ_DATA_DIR", os.path.join(ROOT, "..", "shared", "data")))
    ap.add_argument("--tasks", default="all")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=32, help="--zs-batch-size")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="bench_zeroshot.json")
    a = ap.parse_args()
    tasks = ALL if a.tasks == "all" else a.tasks.split(",")
    rows = []
    for task in tasks:  # one process per task: per-task wall time includes nothing else
        with tempfile.TemporaryDirectory() as td:
            rep = os.path.join(td, "r.json")
            cmd = [a.cli, "eval", a.model, "--tasks", task, "--limit", str(a.limit), "--data-dir", a.data_dir,
                   "--zs-batch-size", str(a.batch_size), "--device", a.device, "--quiet", "--json", rep]
            if a.threads:
                cmd += ["--threads", str(a.threads)]
            t0 = time.time()
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            wall = time.time() - t0
            if p.returncode != 0:
                sys.exit("failed: %s\n%s" % (" ".join(cmd), p.stdout))
            j = json.load(open(rep))
        z = j["zeroshot"][task]
        rows.append({"task": task, "n": z["n"], "requests": z["requests"], "seconds": z["seconds"],
                     "items_per_second": z["items_per_second"], "process_seconds": wall,
                     "acc": z["acc"], "acc_norm": z["acc_norm"], "scorer": j.get("zeroshot_scorer")})
    print("%-15s %6s %9s %9s %10s %10s %8s" % ("task", "n", "requests", "seconds", "items/s", "process_s", "acc"))
    for r in rows:
        print("%-15s %6d %9d %9.2f %10.1f %10.2f %8.4f" % (r["task"], r["n"], r["requests"], r["seconds"],
                                                             r["items_per_second"], r["process_seconds"], r["acc"]))
    out = {"bench": "zeroshot", "model": a.model, "limit": a.limit, "batch_size": a.batch_size, "device": a.device,
           "threads": a.threads, "machine": platform.machine(), "cpus": os.cpu_count(), "results": rows}
    with open(a.out, "w") as f:
        json.dump(out, f, indent=2)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
