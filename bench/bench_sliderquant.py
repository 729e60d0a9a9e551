#!/usr/bin/env python3
"""bench/bench_sliderquant.py: SliderQuant's time and memory, per window and in total (standard library only).

It runs `sliderquant quantize MODEL --recipe R --json` for SliderQuant settings side by side and
prints one table: the report's total seconds and phases (targets, training, stream forwards),
seconds per window stage (mean and max), peak GPU memory (over the run and the largest per-window
peak), peak RSS, and the extrapolated full run. All rows and each raw quantize JSON go to --out.

A full official run (128 x 2048 calibration tokens, 60 epochs for W2A16, 20 for W4A4) is hours of
training, so rows may run a stated fraction of it: --samples N of the recipe's calibration windows
and --epochs E of its epochs. The full-run figure is then extrapolated linearly, and labelled so:
  full_s = (targets_s + stream_s + rest_phases_s) * samples_full / samples_run
           + train_s * (samples_full / samples_run) * (epochs_full / epochs_run)
(training steps scale with samples x epochs; target and stream forwards with samples only).

CPU (default): stories260K with the official recipes' settings at small calibration (32 x 256)
and few epochs, plus the two intra-layer stage variants (the official whole-schedule passes vs
per-window phases) with perplexity on the bundled WikiText-2 excerpt and on stories260K's own
samples when given (--eval). CUDA: a synthetic llama2-7b bf16 checkpoint (shared cache with
bench_eval.py), sliderquant-w2a16 and sliderquant-w4a4 at --samples 12 --epochs 2 by default,
extrapolated to the official 128 samples and 60 / 20 epochs. Target on one H100: a full W2A16
run of a 7B-shaped model in under 1 hour with under 40 GB of GPU memory.
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

REPO = be.REPO
TARGET_SECONDS = 3600.0
TARGET_GPU_BYTES = 40e9
FIXTURE_TEXT = bq.FIXTURE_TEXT

PHASES = [("window targets", "targets s"), ("window training", "train s"), ("stream forwards", "stream s")]


def variant(work, base_name, tag, changes, calib=None):
    """Writes configs/BASE_NAME.json with pass-option CHANGES (and calibration) into work/recipes."""
    src = os.path.join(REPO, "configs", base_name + ".json")
    if not os.path.exists(src):
        src = os.path.join(REPO, "configs", "test", base_name + ".json")
    with open(src) as f:
        rec = json.load(f)
    rec["name"] = "%s%s" % (base_name, tag)
    rec["pipeline"][0]["options"].update(changes)
    if calib:
        rec["calibration"].update(calib)
    path = os.path.join(work, "recipes", rec["name"] + ".json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(rec, f, indent=2)
    return path, rec


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "sliderquant"))
    ap.add_argument("--data-dir", default=os.path.join(REPO, "..", "shared", "data"))
    ap.add_argument("--device", type=be.device_arg, default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--preset", default=None, help="synth preset or stories260K (default: cpu stories260K, "
                                                    "cuda llama2-7b)")
    ap.add_argument("--settings", default="w2a16,w4a4", help="comma list of sliderquant-<setting> recipes")
    ap.add_argument("--samples", type=int, default=None, help="calibration windows run (default: cpu 32, cuda 12)")
    ap.add_argument("--seqlen", type=int, default=None, help="tokens per window (default: cpu 256, cuda 2048)")
    ap.add_argument("--epochs", type=int, default=None, help="epochs run (default: cpu 4, cuda 2)")
    ap.add_argument("--stage-variants", action="store_true", default=None,
                    help="also run each setting with per-window stages (default: on for cpu)")
    ap.add_argument("--calib", default=None, help="calibration text (default: c4-2k, else the fixture text)")
    ap.add_argument("--eval", default=None, help="perplexity datasets (default: cpu the WikiText-2 excerpt, "
                                                 "cuda none)")
    ap.add_argument("--dtype", default=None, help="quantize --dtype (default: the CLI's)")
    ap.add_argument("--synth-dtype", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--budget-s", type=float, default=0, help="stop starting rows after this many seconds")
    args = ap.parse_args()

    cuda = args.device.startswith("cuda")
    args.preset = args.preset or ("llama2-7b" if cuda else "stories260K")
    args.samples = args.samples or (12 if cuda else 32)
    args.seqlen = args.seqlen or (2048 if cuda else 256)
    args.epochs = args.epochs or (2 if cuda else 4)
    if args.stage_variants is None:
        args.stage_variants = not cuda
    args.synth_dtype = args.synth_dtype or ("bfloat16" if cuda else "float32")
    bq.resolve_paths(args, "bench_sliderquant")
    if args.calib is None:
        args.calib = "c4-2k" if os.path.exists(os.path.join(args.data_dir, bq.C4_REL)) else FIXTURE_TEXT
    if args.eval is None:
        args.eval = "none" if cuda else FIXTURE_TEXT
    evals = [] if args.eval == "none" else [e for e in args.eval.split(",") if e]

    t_start = time.monotonic()
    budget_end = t_start + args.budget_s if args.budget_s > 0 else float("inf")
    report = {"tool": "bench_sliderquant", "created": be.now_iso(), "device": args.device,
              "machine": bq.machine_info(args, cuda), "calibration": args.calib,
              "run_fraction": {"samples": args.samples, "seqlen": args.seqlen, "epochs": args.epochs},
              "target": {"what": "full W2A16 run, 7B-shaped, one H100", "seconds": TARGET_SECONDS,
                         "gpu_bytes": TARGET_GPU_BYTES} if cuda else None,
              "rows": [], "failures": []}

    def save():
        tmp = args.out + ".tmp"
        with open(tmp, "w") as f:
            json.dump(report, f, indent=2)
        os.replace(tmp, args.out)

    models = be.prepare_models(args, budget_end)
    for label, mdir, _ in models:
        small = label == "stories260K"
        for setting in [s.strip() for s in args.settings.split(",") if s.strip()]:
            base = "sliderquant-" + setting
            variants = [("global", {})]
            if args.stage_variants:
                variants.append(("window", {"stages": "window"}))
            for stage_tag, extra in variants:
                with open(os.path.join(REPO, "configs", base + ".json")) as f:
                    full = json.load(f)
                changes = dict(extra, epochs=args.epochs)
                path, rec = variant(args.work, base, "-bench-%s" % stage_tag, changes,
                                    calib={"samples": args.samples, "seqlen": args.seqlen})
                tag = "%s/%s/%s" % (label, base, stage_tag)
                if time.monotonic() > budget_end - 15:
                    report["failures"].append({"row": tag, "why": "time budget spent"})
                    continue
                qout = os.path.join(args.work, "sq-%s-%s-%s" % (label, setting, stage_tag))
                jpath = qout + ".json"
                for p in (qout, qout + ".work"):
                    shutil.rmtree(p, ignore_errors=True)
                cmd = [args.bin, "quantize", mdir, "--recipe", path, "--out", qout, "--device", args.device,
                       "--calib", args.calib, "--data-dir", args.data_dir, "--json", jpath, "--force", "--quiet"]
                if args.dtype:
                    cmd += ["--dtype", args.dtype]
                if evals:
                    cmd += ["--eval", ",".join(evals)]
                rc, wall, out = be.run(cmd, budget_end - time.monotonic(), tag="bench_sliderquant", tail=8)
                shutil.rmtree(qout, ignore_errors=True)
                if rc != 0 or not os.path.exists(jpath):
                    report["failures"].append({"row": tag, "why": "rc %d" % rc, "output_tail": out[-2000:]})
                    save()
                    continue
                with open(jpath) as f:
                    qj = json.load(f)
                ts = qj.get("timings_seconds") or {}
                mt = qj.get("metrics") or {}
                win_s = mt.get("sliderquant window seconds") or []
                win_gpu = mt.get("sliderquant window peak GPU bytes") or []
                total = qj.get("seconds_total") or 0
                train = ts.get("window training", 0)
                other = total - train
                sam_full = full["calibration"]["samples"]
                ep_full = full["pipeline"][0]["options"]["epochs"]
                f_s = sam_full / float(args.samples)
                f_e = ep_full / float(args.epochs)
                extrap = other * f_s + train * f_s * f_e
                pp = qj.get("perplexity") or []
                row = {"model": label, "setting": base, "stages": stage_tag, "wall_seconds": round(wall, 2),
                       "seconds_total": total, "phases": {k: ts.get(k) for k, _ in PHASES},
                       "window_stages": len(win_s),
                       "window_seconds_mean": sum(win_s) / len(win_s) if win_s else None,
                       "window_seconds_max": max(win_s) if win_s else None,
                       "window_peak_gpu_bytes_max": max(win_gpu) if win_gpu else None,
                       "peak_gpu_bytes": qj.get("peak_gpu_bytes"), "peak_rss_bytes": qj.get("peak_rss_bytes"),
                       "samples_run": args.samples, "epochs_run": args.epochs, "samples_full": sam_full,
                       "epochs_full": ep_full, "extrapolated_full_seconds": extrap,
                       "ppl": pp[0].get("ppl") if pp else None, "perplexity": pp,
                       "window_losses_last": mt.get("sliderquant window last-epoch loss"), "quantize_json": qj}
                if cuda and setting == "w2a16" and not small:
                    row["target_met"] = {"seconds": extrap < TARGET_SECONDS,
                                         "gpu_bytes": (qj.get("peak_gpu_bytes") or 0) < TARGET_GPU_BYTES}
                report["rows"].append(row)
                save()

    report["total_seconds"] = round(time.monotonic() - t_start, 2)
    save()
    head = ["model", "setting", "stages", "total s", "targets s", "train s", "stream s", "win s mean", "win s max",
            "peak GPU", "peak RSS", "run", "full s (extrap.)", "ppl"]
    lines = []
    for r in report["rows"]:
        ph = r["phases"]
        lines.append([r["model"], r["setting"], r["stages"], bq.fmt_s(r["seconds_total"])] +
                     [bq.fmt_s(ph.get(k)) for k, _ in PHASES] +
                     [bq.fmt_s(r["window_seconds_mean"]), bq.fmt_s(r["window_seconds_max"]),
                      be.fmt_bytes(r["peak_gpu_bytes"]), be.fmt_bytes(r["peak_rss_bytes"]),
                      "%dx%d e%d" % (r["samples_run"], args.seqlen, r["epochs_run"]),
                      "%.0f" % r["extrapolated_full_seconds"], bq.fmt_ppl(r["ppl"])])
    bq.print_table("=== bench_sliderquant: device %s, %s ===" % (args.device, report["machine"].get("sliderquant", "")), head, lines)
    be.log("full s = extrapolated to the recipe's calibration samples and epochs (see the module docstring); "
           "win s = seconds per trained window stage (targets + training)")
    for r in report["rows"]:
        if "target_met" in r:
            be.log("target (W2A16 7B < 1 h, < 40 GB): %s in %.0f s extrapolated, peak GPU %s -> %s" % (
                r["setting"], r["extrapolated_full_seconds"], be.fmt_bytes(r["peak_gpu_bytes"]),
                "MET" if all(r["target_met"].values()) else "MISSED"))
    return bq.report_failures(report, args.out)


if __name__ == "__main__":
    sys.exit(main())
