#!/usr/bin/env python3
"""bench/bench_learned.py: the ratio and adaptive-transform passes side by side (standard library only).

Each row runs `sliderquant quantize MODEL --recipe R --json` with a recipe from configs/ whose
pass options are changed per row, and the table shows the stored bits per weight the output
really has (quantization_config.json), total seconds and every phase the report times (scores,
probes, solve, rounding / training, ...), peak RSS and GPU memory, and perplexity.

Suites (--suites, default both):
  ratio     perplexity vs bits per weight: the searched ratios at several budgets next to fixed
            ratios (configs/test/stories-ratio-w2.json on stories260K; ratio-w2g128 on the GPU
            preset, timing only).
  adaptive  W4A4KV4: homogeneous rotation, homogeneous affine, adaptive with the searched choice
            and with the kurtosis selector, the search without learned activation clipping,
            and the search with GPTQ weights (configs/test/stories-*-w4a4kv4.json; the full
            recipes on the GPU preset).
  step      (not in the default) seconds and peak memory of one adaptive training step on one
            7B-shaped layer: search vs affine vs rotation (--step-seqlen tokens, default cpu 128,
            cuda 2048).
Give stories260K's own samples with --calib/--eval for in-domain perplexity (the tests write
such files); the default evaluation text is the bundled WikiText-2 excerpt.
"""
import argparse
import json
import os
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import bench_eval as be  # noqa: E402
import bench_quantize as bq  # noqa: E402
from bench_sliderquant import variant  # noqa: E402

# (suite, base recipe, row tag, option changes) for CPU (stories260K) and the GPU preset.
CPU_ROWS = [
    # searched at the stored bits of the fixed rows (the budget of the same-bits comparison)
    ("ratio", "stories-ratio-w2", "search@2.5733", {"target_bits": 2.5733}),
    ("ratio", "stories-ratio-w2", "search@2.6405", {"target_bits": 2.6405}),
    ("ratio", "stories-ratio-w2", "search@2.7057", {"target_bits": 2.7057}),
    ("ratio", "stories-ratio-w2", "search@2.7730", {"target_bits": 2.7730}),
    ("ratio", "stories-ratio-w2", "block@2.6405", {"target_bits": 2.6405, "probe_scale": "none", "probe_base_ratio": 0}),
    ("ratio", "stories-ratio-w2", "scaled@2.6405", {"target_bits": 2.6405, "probe_base_ratio": 0}),
    ("ratio", "stories-ratio-w2", "fixed0.05", {"fixed_ratio": 0.05}),
    ("ratio", "stories-ratio-w2", "fixed0.10", {"fixed_ratio": 0.10}),
    ("ratio", "stories-ratio-w2", "fixed0.15", {"fixed_ratio": 0.15}),
    ("ratio", "stories-ratio-w2", "fixed0.20", {"fixed_ratio": 0.20}),
    ("adaptive", "stories-rotate-w4a4kv4", "rotation", {}),
    ("adaptive", "stories-affine-w4a4kv4", "affine", {}),
    ("adaptive", "stories-adaptive-w4a4kv4", "search", {}),
    ("adaptive", "stories-adaptive-w4a4kv4", "kurtosis", {"select": "kurtosis"}),
    ("adaptive", "stories-adaptive-w4a4kv4", "search-nolac", {"lac": False}),
    ("adaptive", "stories-adaptive-w4a4kv4-gptq", "search-gptq", {}),
]
# One training step of the adaptive pass on one 7B-shaped layer (synth llama2-7b --layers 1;
# 4096 / 11008 wide, 1 calibration window, batch 1): the search step (both candidates, exact
# choice gradient) next to a plain affine and a plain rotation step.
STEP_ROWS = [
    ("step", "stories-adaptive-w4a4kv4", "search", {"select": "search", "search_epochs": 1, "epochs": 0, "batch": 1}),
    ("step", "stories-adaptive-w4a4kv4", "affine", {"mode": "affine", "epochs": 1, "batch": 1}),
    ("step", "stories-adaptive-w4a4kv4", "rotation", {"mode": "rotation", "epochs": 1, "batch": 1}),
]
GPU_ROWS = [
    ("ratio", "ratio-w2g128", "search", {}),
    ("adaptive", "rotate-w4a4kv4", "rotation", {}),
    ("adaptive", "adaptive-w4a4kv4", "search", {}),
    ("adaptive", "adaptive-w4a4kv4-gptq", "search-gptq", {}),
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(be.REPO, "build", "sliderquant"))
    ap.add_argument("--data-dir", default=os.path.join(be.REPO, "..", "shared", "data"))
    ap.add_argument("--device", type=be.device_arg, default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--preset", default=None, help="default: cpu stories260K, cuda llama2-7b")
    ap.add_argument("--suites", default="ratio,adaptive", help="ratio, adaptive, step")
    ap.add_argument("--step-seqlen", type=int, default=None)
    ap.add_argument("--calib", default=None, help="calibration text (default: the recipe's)")
    ap.add_argument("--samples", type=int, default=None, help="calibration windows (default: recipe's; "
                                                              "cuda 16, timing only)")
    ap.add_argument("--eval", default=None, help="perplexity datasets (default: cpu the WikiText-2 excerpt, "
                                                 "cuda none)")
    ap.add_argument("--synth-dtype", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--budget-s", type=float, default=0)
    args = ap.parse_args()
    cuda = args.device.startswith("cuda")
    args.preset = args.preset or ("llama2-7b" if cuda else "stories260K")
    args.synth_dtype = args.synth_dtype or ("bfloat16" if cuda else "float32")
    if cuda and args.samples is None:
        args.samples = 16
    bq.resolve_paths(args, "bench_learned")
    if args.eval is None:
        args.eval = "none" if cuda else bq.FIXTURE_TEXT
    evals = [] if args.eval == "none" else [e for e in args.eval.split(",") if e]
    suites = {s.strip() for s in args.suites.split(",") if s.strip()}
    t0 = time.monotonic()
    budget_end = t0 + args.budget_s if args.budget_s > 0 else float("inf")
    report = {"tool": "bench_learned", "created": be.now_iso(), "device": args.device,
              "machine": bq.machine_info(args, cuda), "rows": [], "failures": []}

    def save():
        with open(args.out + ".tmp", "w") as f:
            json.dump(report, f, indent=2)
        os.replace(args.out + ".tmp", args.out)

    plans = []
    if suites & {"ratio", "adaptive"}:
        plans += [(label, mdir, GPU_ROWS if cuda else CPU_ROWS, None)
                  for label, mdir, _ in be.prepare_models(args, budget_end)]
    if "step" in suites:
        sargs = argparse.Namespace(**vars(args))
        sargs.preset = "llama2-7b/1"
        step_calib = {"samples": 1, "seqlen": args.step_seqlen or (2048 if cuda else 128)}
        plans += [(label, mdir, STEP_ROWS, step_calib) for label, mdir, _ in be.prepare_models(sargs, budget_end)]
    for label, mdir, rows, row_calib in plans:
        for suite, base, tag, changes in rows:
            if suite not in suites:
                continue
            row_tag = "%s/%s/%s" % (label, base, tag)
            if time.monotonic() > budget_end - 15:
                report["failures"].append({"row": row_tag, "why": "time budget spent"})
                continue
            path, _ = variant(args.work, base, "-%s-%s" % (suite, tag.replace("@", "-")), changes,
                              calib=row_calib or ({"samples": args.samples} if args.samples else None))
            qout = os.path.join(args.work, "learned-%s-%s-%s-%s" % (label.replace("/", "-l"), suite, base,
                                                                    tag.replace("@", "-")))
            jpath = qout + ".json"
            for p in (qout, qout + ".work"):
                shutil.rmtree(p, ignore_errors=True)
            cmd = [args.bin, "quantize", mdir, "--recipe", path, "--out", qout, "--device", args.device,
                   "--data-dir", args.data_dir, "--json", jpath, "--force", "--quiet"]
            if args.calib:
                cmd += ["--calib", args.calib]
            if evals and suite != "step":
                cmd += ["--eval", ",".join(evals)]
            rc, wall, out = be.run(cmd, budget_end - time.monotonic(), tag="bench_learned", tail=6)
            qc = bq.output_qconfig(qout)
            shutil.rmtree(qout, ignore_errors=True)
            if rc != 0 or not os.path.exists(jpath):
                report["failures"].append({"row": row_tag, "why": "rc %d" % rc, "output_tail": out[-2000:]})
                save()
                continue
            with open(jpath) as f:
                qj = json.load(f)
            pp = qj.get("perplexity") or []
            report["rows"].append({
                "model": label, "suite": suite, "recipe": base, "row": tag, "changes": changes,
                "wall_seconds": round(wall, 2), "seconds_total": qj.get("seconds_total"),
                "timings_seconds": qj.get("timings_seconds"), "metrics": qj.get("metrics"),
                "bits_per_weight": qc.get("bits_per_weight_quantized_linears"),
                "peak_rss_bytes": qj.get("peak_rss_bytes"), "peak_gpu_bytes": qj.get("peak_gpu_bytes"),
                "ppl": pp[0].get("ppl") if pp else None, "perplexity": pp})
            save()

    report["total_seconds"] = round(time.monotonic() - t0, 2)
    save()
    head = ["model", "suite", "recipe", "row", "bits/w", "total s", "phases (s)", "step s", "peak RSS", "peak GPU",
            "ppl"]
    lines = []
    for r in report["rows"]:
        m = r["metrics"] or {}
        step = (m.get("adaptive-search window seconds") or m.get("adaptive window seconds") or [None])[0] \
            if r["suite"] == "step" else None
        ph = ", ".join("%s %.1f" % (k, v) for k, v in sorted((r["timings_seconds"] or {}).items(),
                                                             key=lambda kv: -kv[1])[:4])
        lines.append([r["model"], r["suite"], r["recipe"], r["row"],
                      "%.3f" % r["bits_per_weight"] if r["bits_per_weight"] else "-",
                      bq.fmt_s(r["seconds_total"]), ph, bq.fmt_s(step), be.fmt_bytes(r["peak_rss_bytes"]),
                      be.fmt_bytes(r["peak_gpu_bytes"]), bq.fmt_ppl(r["ppl"])])
    bq.print_table("=== bench_learned: device %s, %s ===" % (args.device, report["machine"].get("sliderquant", "")), head, lines)
    be.log("bits/w = stored bits per weight of the quantized linears in the written output (codes, scales, "
           "zeros, channel indices); phases = the four longest timed phases of the report; step s = the "
           "step suite's one training step (its window's seconds: targets, one forward and backward)")
    return bq.report_failures(report, args.out)


if __name__ == "__main__":
    sys.exit(main())
