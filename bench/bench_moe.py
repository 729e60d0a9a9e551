#!/usr/bin/env python3
"""bench/bench_moe.py: GPTQ on a Qwen3-30B-A3B-shaped MoE checkpoint (standard library only).

`sliderquant synth --preset qwen3-30b-a3b --layers N` writes a checkpoint with the real model's
widths (hidden 2048, 32 heads / 4 KV heads of 128, 128 experts of width 768, top 8, vocab
151936) and N decoder layers of seeded random bf16 weights, with the Qwen3 tokenizer. The
benchmark quantizes it with GPTQ w4g128 (routed per-expert calibration, docs/MOE.md) and prints a
table plus JSON: wall seconds per MoE block and per phase, peak RSS, routed calibration tokens per
expert (min / median / max, starved experts), and an extrapolation to the full 48-layer model:
CPU time (per-block seconds x 48) and the peak memory of a run on one GPU computed from the
shapes (the largest block's weights in bf16, the two calibration streams, all experts' Hessians
of one input at once, as the sequencer holds them).

    python3 bench/bench_moe.py [--layers 2] [--samples 16 --seqlen 512] [--data-dir ../shared/data]
                               [--work /tmp/sq-bench-moe] [--out bench_moe.json]

Random weights: the routing is near uniform, so no expert is starved; the timing and memory are
what the shapes cost, not a statement about accuracy.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE_TEXT = os.path.join(REPO, "tests", "fixtures", "text", "wikitext2_head.txt")
QWEN3_TOKENIZER = os.path.join(REPO, "tests", "fixtures", "tokenizers", "qwen3")
LAYERS_FULL = 48
HIDDEN, EXPERTS, EXPERT_WIDTH, TOP_K = 2048, 128, 768, 8
Q_DIM, KV_DIM = 32 * 128, 4 * 128


def run(cmd, log):
    t = time.time()
    with open(log, "w") as f:
        p = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT)
    if p.returncode != 0:
        sys.stderr.write(open(log).read()[-4000:])
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}")
    return time.time() - t


def gb(n):
    return f"{n / 1e9:.2f} GB"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "sliderquant"))
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--data-dir", default=os.path.join(REPO, "..", "shared", "data"))
    ap.add_argument("--work", default="/tmp/sq-bench-moe")
    ap.add_argument("--out", default="bench_moe.json")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads (0: libtorch's choice)")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    model = os.path.join(a.work, f"qwen3-30b-a3b-{a.layers}l")
    if not os.path.exists(os.path.join(model, "config.json")):
        t = run([a.bin, "synth", model, "--preset", "qwen3-30b-a3b", "--layers", str(a.layers), "--tokenizer",
                 QWEN3_TOKENIZER, "-q"], os.path.join(a.work, "synth.log"))
        print(f"synth: {t:.1f} s")
    c4 = os.path.join(a.data_dir, "eval", "c4", "c4_validation_2k.jsonl.xz")
    calib = "c4-2k" if os.path.exists(c4) else FIXTURE_TEXT
    recipe = os.path.join(a.work, "gptq-w4g128-moe.json")
    with open(recipe, "w") as f:
        json.dump({"name": "gptq-w4g128-moe", "format": "w4g128",
                   "calibration": {"dataset": "c4-2k", "samples": a.samples, "seqlen": a.seqlen, "seed": 0},
                   "pipeline": [{"pass": "gptq", "options": {"order": "group_preserving"}}]}, f)
    out, rep = os.path.join(a.work, "q"), os.path.join(a.work, "q.json")
    cmd = [a.bin, "quantize", model, "--recipe", recipe, "--out", out, "--force", "--json", rep, "--calib", calib,
           "--data-dir", a.data_dir]
    if a.threads:
        cmd += ["--threads", str(a.threads)]
    wall = run(cmd, os.path.join(a.work, "quantize.log"))
    r = json.load(open(rep))
    tim = r["timings_seconds"]
    tokens = [t for b in r["moe"]["expert_tokens"].values() for t in b]
    per_block = (r["seconds_total"] - tim.get("embed", 0)) / a.layers
    # Peak memory of one block on a GPU, from the shapes (bf16 weights, fp32 Hessians, bf16 streams).
    block_w = 2 * (HIDDEN * (Q_DIM + 2 * KV_DIM) + Q_DIM * HIDDEN + EXPERTS * HIDDEN +
                   EXPERTS * 3 * HIDDEN * EXPERT_WIDTH)
    hessians = 4 * EXPERTS * HIDDEN * HIDDEN
    streams = 2 * 2 * a.samples * a.seqlen * HIDDEN
    streams_paper = 2 * 2 * 128 * 2048 * HIDDEN
    embed_head = 2 * 2 * 151936 * HIDDEN
    row = {
        "model": f"qwen3-30b-a3b shape, {a.layers} layers (synthetic bf16)",
        "recipe": "gptq w4g128 (group_preserving), routed calibration",
        "calibration": f"{calib if calib == 'c4-2k' else 'wikitext2 excerpt'} {a.samples} x {a.seqlen}",
        "wall_seconds": wall, "report_seconds": r["seconds_total"], "phases_seconds": tim,
        "seconds_per_moe_block": per_block, "peak_rss_bytes": r.get("peak_rss_bytes"),
        "expert_tokens_min": min(tokens), "expert_tokens_median": statistics.median(tokens),
        "expert_tokens_max": max(tokens), "starved_experts": len(r["moe"]["starved_experts"]),
        "extrapolated_cpu_seconds_48_layers": per_block * LAYERS_FULL,
        "gpu_peak_estimate_bytes_this_calibration": block_w + hessians + streams + embed_head,
        "gpu_peak_estimate_bytes_128x2048": block_w + hessians + streams_paper + embed_head,
    }
    print()
    print(f"{'model':44s} {'wall s':>8s} {'s/block':>8s} {'calib+H s':>10s} {'solve s':>8s} {'peak RSS':>10s} "
          f"{'tok/expert min/med/max':>24s} {'starved':>7s}")
    print(f"{row['model']:44s} {wall:8.1f} {per_block:8.1f} {tim.get('calibration forwards + hessians', 0):10.1f} "
          f"{tim.get('quantize (solve)', 0):8.1f} {gb(row['peak_rss_bytes']):>10s} "
          f"{row['expert_tokens_min']:>8d}/{row['expert_tokens_median']:>6.0f}/{row['expert_tokens_max']:<8d} "
          f"{row['starved_experts']:7d}")
    print(f"\nfull model (48 layers): about {row['extrapolated_cpu_seconds_48_layers'] / 3600:.1f} h on this CPU; "
          f"on one 80 GB GPU the run holds about {gb(row['gpu_peak_estimate_bytes_128x2048'])} "
          f"(one block's bf16 weights {gb(block_w)}, 128 expert Hessians {gb(hessians)}, two 128 x 2048 streams "
          f"{gb(streams_paper)}, embeddings + head {gb(embed_head)}): "
          f"{'it fits' if row['gpu_peak_estimate_bytes_128x2048'] < 80e9 else 'it does not fit'}.")
    info = {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
            "command": " ".join(cmd)}
    with open(a.out, "w") as f:
        json.dump({"machine": info, "rows": [row]}, f, indent=2)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
