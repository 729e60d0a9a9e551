#!/usr/bin/env python3
"""bench/bench_quantize.py: the quantization benchmark (standard library only).

It runs `sliderquant quantize MODEL --recipe R --json` for several recipes side by side (RTN vs
GPTQ, per-channel vs grouped) and prints one table: process wall seconds, the report's total and
per-phase seconds, peak RSS, peak GPU memory, planned bits/weight and, with --eval, perplexity
(plus an unquantized baseline row per model). All rows (and each raw quantize JSON) and the
machine's description go to --out.

CPU (default): stories260K (real weights) with its per-channel test recipes (w4 and w2, RTN and
GPTQ), and a synthetic `tiny` Llama (hidden 64, too narrow for g128) with w4g32 and w4
per-channel recipes written into --work; calibration c4-2k from --data-dir (the fixture text
when the data folder is absent), 128 x 512 tokens; perplexity on the bundled WikiText-2 excerpt.
`--preset smollm2`: SmolLM2-135M (models/, real weights) with RTN and GPTQ w4g128.
`--malloc both` runs every recipe twice, on glibc's default allocator thresholds and on the
CLI's own (sq::tune_allocator), side by side.
CUDA: a synthetic llama2-7b bf16 checkpoint (shared with bench_eval.py's cache), GPTQ w4g128 and
RTN w4g128, 128 x 2048 calibration tokens of WikiText-2 (timing only: see the README).
"""
import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True
sys.path.insert(0, HERE)
import bench_eval as be  # noqa: E402  (shared: synthetic-checkpoint cache and stamp, helpers)

REPO = be.REPO
STORIES = be.STORIES
FIXTURE_TEXT = os.path.join(REPO, "tests", "fixtures", "text", "wikitext2_head.txt")
C4_REL = os.path.join("eval", "c4", "c4_validation_2k.jsonl.xz")
WIKI_REL = os.path.join("eval", "wikitext2", "wikitext2_test_gptq_join.txt")

# The report's phases (timings_seconds keys), in pipeline order, and their table headings.
PHASES = [("embed", "embed s"), ("calibration forwards + hessians", "calib s"),
          ("quantize (solve)", "solve s"), ("stream forwards", "stream s")]

# Issue target for GPTQ w4g128 on a Llama-2-7B on one H100.
TARGET_SECONDS = 180.0
TARGET_GPU_BYTES = 20e9

# Recipes per model. Names resolve in configs/ (the CLI's own lookup); "@name" is one written
# into --work by tiny_recipes() because the bundled ones do not fit hidden 64.
DEFAULT_RECIPES = {
    "stories260K": ["configs/test/stories-rtn-w4-pc.json", "configs/test/stories-gptq-w4-pc.json",
                    "configs/test/stories-rtn-w2-pc.json", "configs/test/stories-gptq-w2-pc.json",
                    # D²Quant at 2 bits and its ablation table (one piece off per row)
                    "configs/test/stories-d2quant-w2.json",
                    "configs/test/stories-d2quant-w2-no-rotate.json", "configs/test/stories-d2quant-w2-no-gptaq.json",
                    "configs/test/stories-d2quant-w2-no-dsq.json", "configs/test/stories-d2quant-w2-no-dac.json"],
    "tiny": ["@tiny-rtn-w4g32", "@tiny-gptq-w4g32", "@tiny-rtn-w4-pc", "@tiny-gptq-w4-pc"],
    # real weights at a real width (576, 49152 vocabulary; scripts/get_models.sh): --preset smollm2
    "smollm2-135m": ["configs/rtn-w4g128.json", "configs/gptq-w4g128.json"],
}
# GPTQ first: it is the row with a target; D²Quant's target is within 1.5x of GPTQ's time.
DEFAULT_RECIPES_7B = ["gptq-w4g128", "rtn-w4g128", "d2quant-w2g128"]

GPTQ_OPTIONS = {"damp": 0.01, "block_size": 128, "order": "group_preserving",
                "static_groups": False, "mse": False}


def tiny_recipes(work):
    """Writes the synthetic tiny model's recipes (w4g32 and w4 per-channel, RTN and GPTQ)."""
    out = {}
    for method in ("rtn", "gptq"):
        for fmt, tag in (("w4g32", "w4g32"), ("w4", "w4-pc")):
            name = "tiny-%s-%s" % (method, tag)
            rec = {
                "name": name,
                "description": "bench_quantize: %s %s for the synthetic tiny Llama (hidden 64, "
                               "intermediate 128: g128 does not fit)" % (method, fmt),
                "format": fmt,
                "pipeline": [{"pass": "gptq", "options": GPTQ_OPTIONS} if method == "gptq"
                             else {"pass": "rtn", "options": {"mse": False}}],
            }
            if method == "gptq":
                rec["calibration"] = {"dataset": "c4-2k", "samples": 128, "seqlen": 512, "seed": 0}
            path = os.path.join(work, "recipes", name + ".json")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                json.dump(rec, f, indent=2)
            out["@" + name] = path
    return out


def resolve_paths(args, tool):
    """Makes --work, --out (default work/TOOL.json), --bin and --data-dir absolute, checks the
    binary and creates the work directory."""
    args.work = os.path.abspath(args.work or os.path.join(REPO, "build", "bench-work"))
    args.out = os.path.abspath(args.out or os.path.join(args.work, tool + ".json"))
    args.bin = os.path.abspath(args.bin)
    args.data_dir = os.path.abspath(args.data_dir)
    if not os.access(args.bin, os.X_OK):
        raise SystemExit("%s: %s is not an executable (build first)" % (tool, args.bin))
    os.makedirs(args.work, exist_ok=True)


def print_table(title, head, lines, left_cols=None):
    """Logs TITLE, then HEAD and LINES (lists of strings) as aligned columns: the first
    LEFT_COLS columns (default all) left-aligned, the rest right-aligned."""
    left_cols = len(head) if left_cols is None else left_cols
    widths = [max([len(h)] + [len(c[i]) for c in lines]) for i, h in enumerate(head)]

    def fmt(cells):
        return "  ".join(x.ljust(w) if i < left_cols else x.rjust(w) for i, (x, w) in enumerate(zip(cells, widths)))

    be.log("")
    be.log(title)
    be.log(fmt(head))
    for c in lines:
        be.log(fmt(c))


def report_failures(report, out):
    """Logs each failed row and where the JSON went; returns the exit status (1 if any row failed)."""
    for f in report["failures"]:
        be.log("FAILED %s: %s" % (f["row"], f["why"]))
    be.log("wrote %s" % out)
    return 1 if report["failures"] else 0


def recipe_label(r):
    base = os.path.basename(r)
    return base[:-5] if base.endswith(".json") else base.lstrip("@")


def run(cmd, timeout=None, env=None):
    """Runs cmd, echoing it; returns (rc, wall seconds, combined output)."""
    return be.run(cmd, timeout, tag="bench_quantize", tail=12, note=" (time budget)", env=env)


# --malloc: the CLI tunes glibc's allocator (sq::tune_allocator) unless the environment already
# carries a malloc tunable; glibc.malloc.perturb=0 is glibc's own default, so with it the CLI
# runs on glibc's default thresholds and nothing else changes.
MALLOC_VARIANTS = {"tuned": None, "glibc": {"GLIBC_TUNABLES": "glibc.malloc.perturb=0"}}


def dir_bytes(path):
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            fp = os.path.join(root, f)
            if not os.path.islink(fp):
                total += os.path.getsize(fp)
    return total


def machine_info(args, cuda):
    info = {"host": socket.gethostname(), "platform": platform.platform(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "gpu": be.gpu_name() if cuda else None}
    try:
        info["loadavg_start"] = list(os.getloadavg())
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["mem_total_bytes"] = int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        p = subprocess.run([args.bin, "--version"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True, timeout=60)
        info["sliderquant"] = p.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def output_qconfig(qout):
    """The quantization_config.json of a written output ({} when there is none)."""
    try:
        with open(os.path.join(qout, "quantization_config.json")) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def fmt_s(x):
    return "-" if x is None else ("%.2f" % x if x < 100 else "%.1f" % x)


def fmt_ppl(x):
    if not isinstance(x, (int, float)):
        return "-"
    return "%.3f" % x if x < 1e4 else "%.4g" % x


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "sliderquant"))
    ap.add_argument("--data-dir", default=os.path.join(REPO, "..", "shared", "data"))
    ap.add_argument("--device", type=be.device_arg, default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--preset", default=None,
                    help="comma list of synth presets and/or 'stories260K' "
                         "(default: cpu 'stories260K,tiny', cuda 'llama2-7b')")
    ap.add_argument("--recipes", default=None,
                    help="comma list of recipe names (configs/) or files, used for every model "
                         "(default: per model, see the module docstring)")
    ap.add_argument("--work", default=None, help="scratch dir: checkpoints, outputs, per-run JSON")
    ap.add_argument("--out", default=None, help="JSON file for all rows")
    ap.add_argument("--calib", default=None,
                    help="calibration text (default: cpu c4-2k, or the fixture text when --data-dir "
                         "has no c4; cuda wikitext2)")
    ap.add_argument("--samples", type=int, default=128, help="calibration windows (default 128)")
    ap.add_argument("--seqlen", type=int, default=None,
                    help="calibration tokens per window (default: cpu 512, cuda 2048; capped by the model)")
    ap.add_argument("--batch-size", type=int, default=None, help="quantize --batch-size (default: the CLI's)")
    ap.add_argument("--dtype", default=None, help="quantize --dtype (default: the CLI's auto)")
    ap.add_argument("--eval", default=None,
                    help="perplexity datasets after quantizing (quantize --eval), 'none' for none "
                         "(default: cpu the bundled WikiText-2 excerpt, cuda none)")
    ap.add_argument("--no-baseline", action="store_true",
                    help="with --eval: skip the unquantized baseline row per model")
    ap.add_argument("--synth-dtype", default=None, help="synthetic checkpoint dtype (default: cpu "
                                                        "float32, cuda bfloat16)")
    ap.add_argument("--seed", type=int, default=0, help="synthetic checkpoint seed")
    ap.add_argument("--threads", type=int, default=0, help="--threads for the CLI (0: its default)")
    ap.add_argument("--keep-outputs", action="store_true", help="keep the quantized models in --work")
    ap.add_argument("--malloc", choices=["tuned", "glibc", "both"], default="tuned",
                    help="the CLI's allocator: tuned (its default), glibc (glibc's default thresholds) "
                         "or both, each recipe run with glibc's defaults and then tuned, side by side")
    ap.add_argument("--budget-s", type=float, default=0,
                    help="stop starting rows after this many seconds and kill a row that runs past "
                         "it (0 = no limit)")
    args = ap.parse_args()

    cuda = args.device.startswith("cuda")
    args.preset = args.preset or ("llama2-7b" if cuda else "stories260K,tiny")
    args.seqlen = args.seqlen or (2048 if cuda else 512)
    args.synth_dtype = args.synth_dtype or ("bfloat16" if cuda else "float32")
    resolve_paths(args, "bench_quantize")

    notes = []
    have_c4 = os.path.exists(os.path.join(args.data_dir, C4_REL))
    have_wiki = os.path.exists(os.path.join(args.data_dir, WIKI_REL))
    if args.calib is None:
        if cuda:
            args.calib = "wikitext2"
        elif have_c4:
            args.calib = "c4-2k"
        else:
            args.calib = FIXTURE_TEXT
            notes.append("no %s under %s: calibrating on the fixture text %s instead of c4-2k"
                         % (C4_REL, args.data_dir, os.path.relpath(FIXTURE_TEXT, REPO)))
    if args.calib == "wikitext2":
        notes.append("calibration on WikiText-2 *test* text (the only text the GPU machine is given): "
                     "for timing only; it would flatter WikiText-2 perplexity")
    if args.eval is None:
        args.eval = "none" if cuda else FIXTURE_TEXT
    evals = [] if args.eval == "none" else [e for e in args.eval.split(",") if e]
    if "wikitext2" in evals and not have_wiki:
        raise SystemExit("bench_quantize: --eval wikitext2 needs %s under %s" % (WIKI_REL, args.data_dir))

    t_start = time.monotonic()
    budget_end = t_start + args.budget_s if args.budget_s > 0 else float("inf")
    report = {
        "tool": "bench_quantize", "created": be.now_iso(), "device": args.device, "bin": args.bin,
        "machine": machine_info(args, cuda), "data_dir": args.data_dir,
        "calibration_requested": {"dataset": args.calib, "samples": args.samples, "seqlen": args.seqlen},
        "eval": evals, "notes": notes,
        "target": {"what": "GPTQ w4g128 on a Llama-2-7B-shaped model, one H100",
                   "seconds": TARGET_SECONDS, "gpu_bytes": TARGET_GPU_BYTES} if cuda else None,
        "models": {}, "rows": [], "failures": [], "skipped": [],
    }

    def save():
        tmp = args.out + ".tmp"
        os.makedirs(os.path.dirname(args.out), exist_ok=True)
        with open(tmp, "w") as f:
            json.dump(report, f, indent=2)
        os.replace(tmp, args.out)

    for n in notes:
        be.log("note: " + n)
    models = be.prepare_models(args, budget_end)   # same cache dir and stamp as bench_eval.py
    generated = tiny_recipes(args.work)
    user_recipes = [r.strip() for r in args.recipes.split(",") if r.strip()] if args.recipes else None

    for label, mdir, mnotes in models:
        with open(os.path.join(mdir, "config.json")) as f:
            cfg = json.load(f)
        report["models"][label] = dict(mnotes, dir=mdir, hidden=cfg["hidden_size"],
                                       intermediate=cfg["intermediate_size"],
                                       layers=cfg["num_hidden_layers"], vocab=cfg["vocab_size"],
                                       max_position_embeddings=cfg.get("max_position_embeddings"),
                                       matmul_params=be.matmul_params(cfg))
        save()
        recipes = user_recipes or DEFAULT_RECIPES.get(label) or DEFAULT_RECIPES_7B
        eval_dtype = "bfloat16" if cuda else "float32"   # what quantize --eval uses

        if evals and not args.no_baseline:
            tag = "%s/unquantized" % label
            left = budget_end - time.monotonic()
            if left < 15:
                report["skipped"].append({"row": tag, "why": "time budget spent"})
            else:
                jpath = os.path.join(args.work, "qbench-%s-baseline.json" % label)
                if os.path.exists(jpath):
                    os.remove(jpath)
                cmd = [args.bin, "eval", mdir, "--ppl", ",".join(evals), "--data-dir", args.data_dir,
                       "--device", args.device, "--dtype", eval_dtype, "--json", jpath, "--quiet"]
                if args.threads:
                    cmd += ["--threads", str(args.threads)]
                rc, wall, out = run(cmd, timeout=left, env=MALLOC_VARIANTS["glibc" if args.malloc == "glibc" else "tuned"])
                if rc != 0 or not os.path.exists(jpath):
                    report["failures"].append({"row": tag, "why": "rc %d" % rc, "output_tail": out[-2000:]})
                else:
                    with open(jpath) as f:
                        ej = json.load(f)
                    pp = ej.get("perplexity") or [{}]
                    report["rows"].append({
                        "model": label, "recipe": "(unquantized %s)" % eval_dtype, "baseline": True,
                        "device": ej.get("device"), "wall_seconds": round(wall, 3),
                        "ppl": pp[0].get("ppl"), "ppl_seqlen": pp[0].get("seqlen"),
                        "ppl_windows": pp[0].get("windows"), "perplexity": pp,
                        "peak_rss_bytes": ej.get("peak_rss_bytes"), "peak_gpu_bytes": ej.get("peak_gpu_bytes"),
                        "eval_json": ej})
                save()

        variants = ["glibc", "tuned"] if args.malloc == "both" else [args.malloc]
        for rec, malloc in [(r, v) for r in recipes for v in variants]:
            rpath = generated.get(rec, rec)
            if rec.startswith("@") and rec not in generated:
                raise SystemExit("bench_quantize: unknown generated recipe %s" % rec)
            name = recipe_label(rec) + ("" if args.malloc == "tuned" else " [%s malloc]" % malloc)
            tag = "%s/%s" % (label, name)
            left = budget_end - time.monotonic()
            if left < 15:
                be.log("skip %s: budget spent" % tag)
                report["skipped"].append({"row": tag, "why": "time budget spent"})
                save()
                continue
            qout = os.path.join(args.work, "q-%s-%s" % (label, recipe_label(rec)))
            jpath = os.path.join(args.work, "qbench-%s-%s.json" % (label, recipe_label(rec)))
            # a killed earlier run leaves OUT.work behind, and quantize would resume from it
            for p in (qout, qout + ".work"):
                shutil.rmtree(p, ignore_errors=True)
            if os.path.exists(jpath):
                os.remove(jpath)
            cmd = [args.bin, "quantize", mdir, "--recipe", rpath, "--out", qout, "--device", args.device,
                   "--calib", args.calib, "--samples", str(args.samples), "--seqlen", str(args.seqlen),
                   "--data-dir", args.data_dir, "--json", jpath, "--force", "--quiet"]
            if args.batch_size:
                cmd += ["--batch-size", str(args.batch_size)]
            if args.dtype:
                cmd += ["--dtype", args.dtype]
            if evals:
                cmd += ["--eval", ",".join(evals)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            rc, wall, out = run(cmd, timeout=left, env=MALLOC_VARIANTS[malloc])
            out_bytes = dir_bytes(qout) if os.path.isdir(qout) else None
            # what the output really holds (mixed-precision passes plan per layer)
            stored_bpw = output_qconfig(qout).get("bits_per_weight_quantized_linears")
            if not args.keep_outputs:
                for p in (qout, qout + ".work"):
                    shutil.rmtree(p, ignore_errors=True)
            if rc != 0 or not os.path.exists(jpath):
                why = ("killed at the time budget after %.0f s" % wall) if rc == 124 else (
                    "rc %d" % rc + ("" if os.path.exists(jpath) else ", no JSON"))
                report["failures"].append({"row": tag, "why": why, "wall_seconds": round(wall, 3),
                                           "output_tail": out[-2000:]})
                be.log("FAILED %s: %s" % (tag, why))
                save()
                continue
            with open(jpath) as f:
                qj = json.load(f)
            ts = qj.get("timings_seconds") or {}
            known = {k for k, _ in PHASES}
            pp = qj.get("perplexity") or []
            cal = qj.get("calibration")
            row = {
                "model": label, "recipe": name, "recipe_path": rpath, "baseline": False, "malloc": malloc,
                "device": qj.get("device"), "calibration_dtype": qj.get("calibration_dtype"),
                "format": (qj.get("recipe") or {}).get("format"),
                "passes": [p.get("pass") for p in (qj.get("recipe") or {}).get("pipeline", [])],
                "wall_seconds": round(wall, 3), "seconds_total": qj.get("seconds_total"),
                "phases": {k: ts.get(k) for k, _ in PHASES},
                "other_phases": {k: v for k, v in ts.items() if k not in known},
                # sub-phases ("of which hessian accumulation") are inside their phase: not subtracted twice
                "rest_seconds": (qj["seconds_total"] - sum(v for k, v in ts.items()
                                                           if isinstance(v, (int, float)) and not k.startswith("of which ")))
                if isinstance(qj.get("seconds_total"), (int, float)) else None,
                "peak_rss_bytes": qj.get("peak_rss_bytes"), "peak_gpu_bytes": qj.get("peak_gpu_bytes"),
                "bits_per_weight_planned": qj.get("bits_per_weight_planned"),
                "bits_per_weight_stored": stored_bpw,
                "calibration": cal, "output_bytes": out_bytes,
                "ppl": pp[0].get("ppl") if pp else None, "ppl_seqlen": pp[0].get("seqlen") if pp else None,
                "ppl_windows": pp[0].get("windows") if pp else None, "perplexity": pp,
                "quantize_json": qj,
            }
            report["rows"].append(row)
            save()
            be.log("row %s: %.1f s wall, %s s total, ppl %s" % (tag, wall, fmt_s(row["seconds_total"]), row["ppl"]))

    try:
        report["machine"]["loadavg_end"] = list(os.getloadavg())
    except OSError:
        pass
    report["total_seconds"] = round(time.monotonic() - t_start, 2)

    # ---- targets (CUDA, Llama-2-7B-shaped, GPTQ w4g128) -------------------------------------------
    verdicts = []
    if cuda:
        for r in report["rows"]:
            if r["baseline"] or r["format"] != "w4g128" or "gptq" not in r["passes"]:
                continue
            hid = report["models"][r["model"]]["hidden"]
            if hid != 4096:
                continue
            t_ok = (r["seconds_total"] or 0) < TARGET_SECONDS
            g_ok = (r["peak_gpu_bytes"] or 0) < TARGET_GPU_BYTES
            v = {"row": "%s/%s" % (r["model"], r["recipe"]), "seconds_total": r["seconds_total"],
                 "wall_seconds": r["wall_seconds"], "peak_gpu_bytes": r["peak_gpu_bytes"],
                 "seconds_met": t_ok, "gpu_memory_met": g_ok}
            verdicts.append(v)
        report["target_verdicts"] = verdicts
    save()

    # ---- the table -------------------------------------------------------------------------------
    head = ["model", "recipe", "device", "calib", "wall s", "total s"] + [h for _, h in PHASES] + \
           ["rest s", "peak RSS", "peak GPU", "bits/w", "out size", "ppl"]
    lines = []
    for r in report["rows"]:
        cal = r.get("calibration")
        cal_s = ("%s %dx%d" % (os.path.basename(cal.get("dataset", "?")), cal.get("samples", 0),
                               cal.get("seqlen", 0))) if cal else "-"
        ph = r.get("phases") or {}
        cells = [r["model"], r["recipe"], r.get("device") or "-", cal_s, "%.1f" % r["wall_seconds"],
                 fmt_s(r.get("seconds_total"))] + [fmt_s(ph.get(k)) for k, _ in PHASES] + \
                [fmt_s(r.get("rest_seconds")), be.fmt_bytes(r.get("peak_rss_bytes")),
                 be.fmt_bytes(r.get("peak_gpu_bytes")),
                 "%.3f" % (r.get("bits_per_weight_stored") or r["bits_per_weight_planned"])
                 if (r.get("bits_per_weight_stored") or r.get("bits_per_weight_planned")) else "-",
                 be.fmt_bytes(r.get("output_bytes")),
                 fmt_ppl(r.get("ppl"))]
        lines.append(cells)
    widths = [max([len(h)] + [len(c[i]) for c in lines]) for i, h in enumerate(head)]
    m = report["machine"]
    be.log("")
    be.log("=== bench_quantize results: device %s%s, %s CPUs, %s ===" % (
        args.device, (" (" + m["gpu"] + ")") if m.get("gpu") else "", m.get("cpus"),
        m.get("sliderquant", os.path.basename(args.bin))))
    be.log("  ".join(h.rjust(w) if i >= 4 else h.ljust(w) for i, (h, w) in enumerate(zip(head, widths))))
    for c in lines:
        be.log("  ".join(x.rjust(w) if i >= 4 else x.ljust(w) for i, (x, w) in enumerate(zip(c, widths))))
    be.log("wall s = the whole quantize process (load, calibration text, passes, write, --eval); "
           "total s = the report's seconds_total (to the written model, before --eval); phases from "
           "timings_seconds (RTN has none); rest s = total s - the phases (model load, calibration text "
           "load + tokenize, writing the packed model); peak RSS / GPU = the report's peaks, taken before "
           "--eval (GPU peak reset after model load)")
    synth = [lb for lb, info in report["models"].items() if "real weights" not in info.get("source", "")]
    if evals and synth:
        be.log("synthetic models (%s) have random weights: their ppl is about the vocabulary size and only "
               "shows that quantization did not break the model" % ", ".join(synth))
    if evals:
        seqs = sorted({r["ppl_seqlen"] for r in report["rows"] if r.get("ppl_seqlen")})
        be.log("ppl: %s, seqlen %s (the model's max_position_embeddings, at most 2048), eval dtype %s"
               % (",".join(os.path.relpath(e, REPO) if os.path.isabs(e) else e for e in evals),
                  "/".join(str(s) for s in seqs) or "-", "bfloat16" if cuda else "float32"))
    for n in notes:
        be.log("note: " + n)
    if cuda:
        be.log("target (issue): GPTQ w4g128 on a Llama-2-7B-shaped model under %.0f s and under %.0f GB "
               "(%.1f GiB) GPU memory on one H100" % (TARGET_SECONDS, TARGET_GPU_BYTES / 1e9,
                                                     TARGET_GPU_BYTES / 2 ** 30))
        if not verdicts:
            be.log("  no GPTQ w4g128 row on a hidden-4096 model completed: target not measured")
        for v in verdicts:
            be.log("  %s: total %s s -> %s; wall %.1f s; peak GPU %.2f GB -> %s" % (
                v["row"], fmt_s(v["seconds_total"]), "MET" if v["seconds_met"] else "MISSED",
                v["wall_seconds"], (v["peak_gpu_bytes"] or 0) / 1e9,
                "MET" if v["gpu_memory_met"] else "MISSED"))
    for s in report["skipped"]:
        be.log("skipped %s: %s" % (s["row"], s["why"]))
    for fl in report["failures"]:
        be.log("FAILED %s: %s" % (fl["row"], fl["why"]))
    la = m.get("loadavg_start"), m.get("loadavg_end")
    be.log("rows: %d, failures: %d, skipped: %d, %.1f s; load average start %s end %s; JSON: %s" % (
        len(report["rows"]), len(report["failures"]), len(report["skipped"]), report["total_seconds"],
        "%.1f" % la[0][0] if la[0] else "?", "%.1f" % la[1][0] if la[1] else "?", args.out))
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
