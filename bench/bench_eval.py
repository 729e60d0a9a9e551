#!/usr/bin/env python3
"""bench/bench_eval.py: the perplexity-evaluation speed benchmark (standard library only).

It makes synthetic checkpoints with `sliderquant synth` (or uses the real stories260K fixture),
runs `sliderquant eval --ppl wikitext2 --json` over a matrix of dtype x batch size, and prints
one table: tokens/s, seconds, peak RSS, peak GPU memory and perplexity per row. On CUDA it adds the
achieved matmul rate, 2 x matmul parameters x tokens / seconds, and its fraction of a named peak.
All rows (and the raw eval JSON of each) go to --out.

CPU (default): stories260K (real, vocab 512) and a synthetic `tiny` checkpoint that borrows the
stories260K tokenizer (also vocab 512), float32 and bfloat16, batch 1 and 4, a few windows.
CUDA: a synthetic llama2-7b bf16 checkpoint with the Llama-2 tokenizer from --data-dir.
"""
import argparse
import datetime
import json
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STORIES = os.path.join(REPO, "tests", "fixtures", "stories260K", "hf")

# Dense (no sparsity) BF16 tensor-core peak from NVIDIA's H100 SXM5 datasheet; the H200 has the
# same compute. The workplace measured ~798 TFLOP/s for an 8192^3 bf16 torch.matmul on its H100.
PEAKS = {
    "H100": ("NVIDIA H100 SXM5 datasheet, dense BF16 tensor core", 989.4),
    "H200": ("NVIDIA H200 SXM datasheet, dense BF16 tensor core", 989.4),
}
DEFAULT_PEAK = PEAKS["H100"]

# Which tokenizer each synthetic preset can use (the vocabularies must match).
PRESET_TOKENIZER = {
    "tiny": "stories",            # vocab 512 = stories260K's tokenizer.model
    "llama2-7b": "llama2",        # vocab 32000
    "mistral-7b": "llama2",       # vocab 32000, same SentencePiece model family
}


def log(msg):
    print(msg, flush=True)


def device_arg(text):
    """argparse type for --device: cpu, cuda or cuda:N (as sliderquant's own --device)."""
    import re
    if not re.fullmatch(r"cpu|cuda(:[0-9]+)?", text):
        raise argparse.ArgumentTypeError("expected cpu, cuda or cuda:N, got %r" % text)
    return text


def now_iso():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run(cmd, timeout=None, tag="bench_eval", tail=15, note="", env=None):
    """Runs cmd (with ENV, a dict of variables added to this process's, if given), echoing it;
    returns (rc, seconds, combined output tail)."""
    log("+ " + " ".join(cmd))
    if timeout is not None and timeout == float("inf"):
        timeout = None
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                           timeout=timeout, env=dict(os.environ, **env) if env else None)
        rc, out = p.returncode, p.stdout
    except subprocess.TimeoutExpired as e:
        rc = 124
        out = (e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or ""))
        out += "\n[%s: killed after %.0f s%s]" % (tag, timeout, note)
    dt = time.monotonic() - t0
    if out.strip():
        for line in out.strip().splitlines()[-tail:]:
            log("  | " + line)
    return rc, dt, out


def gpu_name():
    try:
        p = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=30)
        return p.stdout.strip().splitlines()[0] if p.returncode == 0 and p.stdout.strip() else ""
    except (OSError, subprocess.SubprocessError):
        return ""


def matmul_params(cfg):
    """Weights that take part in a matrix product per token: q, k, v, o, gate, up, down in every
    layer and the LM head (tied or not). Embedding lookups, norms and biases are excluded, and so
    is attention's own score/value arithmetic (which grows with seqlen)."""
    H = cfg["hidden_size"]
    I = cfg["intermediate_size"]
    L = cfg["num_hidden_layers"]
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads") or nh
    hd = cfg.get("head_dim") or H // nh
    V = cfg["vocab_size"]
    per_layer = H * nh * hd + 2 * H * nkv * hd + nh * hd * H + 3 * H * I
    return L * per_layer + H * V


def fmt_bytes(n):
    if not n:
        return "-"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return ("%.0f %s" % (n, unit)) if unit == "B" else ("%.1f %s" % (n, unit))
        n /= 1024
    return "-"


def prepare_models(args, budget_end):
    """Returns [(label, model_dir, notes)], making synthetic checkpoints as needed."""
    models = []
    for name in [p.strip() for p in args.preset.split(",") if p.strip()]:
        name, _, layers = name.partition("/")  # "llama2-7b/1": the preset's widths, 1 layer
        if name == "stories260K":
            models.append(("stories260K", STORIES, {"source": "tests/fixtures (real weights)"}))
            continue
        if name == "smollm2":
            d = os.path.join(REPO, "models", "smollm2-135m")
            if not os.path.isfile(os.path.join(d, "config.json")):
                raise SystemExit("bench_eval: %s is missing (bash scripts/get_models.sh makes it)" % d)
            models.append(("smollm2-135m", d, {"source": "models/ (real weights, scripts/get_models.sh)"}))
            continue
        tok = PRESET_TOKENIZER.get(name)
        if tok is None:
            raise SystemExit("bench_eval: no tokenizer.model matches preset %r (known: %s, stories260K, smollm2)"
                             % (name, ", ".join(sorted(PRESET_TOKENIZER))))
        tok_path = STORIES if tok == "stories" else os.path.join(args.data_dir, "tokenizers", "llama2")
        if not os.path.exists(os.path.join(tok_path, "tokenizer.model")):
            raise SystemExit("bench_eval: missing %s/tokenizer.model" % tok_path)
        dtype = args.synth_dtype
        label = name + ("/" + layers if layers else "")
        lopt = ["--layers", layers] if layers else []
        out_dir = os.path.join(args.work, "synth-%s%s-%s-seed%d" % (name, "-l" + layers if layers else "", dtype,
                                                                    args.seed))
        stamp = os.path.join(out_dir, ".bench_eval_stamp")
        want = json.dumps({"preset": name, "layers": layers, "dtype": dtype, "seed": args.seed, "tokenizer": tok_path,
                           "bin": os.path.abspath(args.bin)}, sort_keys=True)
        notes = {"source": "sliderquant synth --preset %s%s --dtype %s --seed %d" % (
            name, " --layers " + layers if layers else "", dtype, args.seed)}
        if os.path.exists(stamp) and open(stamp).read() == want:
            log("reusing %s" % out_dir)
            notes["synth_seconds"] = None
        else:
            shutil.rmtree(out_dir, ignore_errors=True)
            os.makedirs(args.work, exist_ok=True)
            rc, dt, _ = run([args.bin, "synth", out_dir, "--preset", name, "--dtype", dtype,
                             "--seed", str(args.seed), "--tokenizer", tok_path] + lopt,
                            timeout=max(30, budget_end - time.monotonic()))
            if rc != 0 or not os.path.exists(os.path.join(out_dir, "config.json")):
                raise SystemExit("bench_eval: synth %s failed (rc %d%s)" % (
                    name, rc, "" if rc else ", no config.json written"))
            with open(stamp, "w") as f:
                f.write(want)
            notes["synth_seconds"] = round(dt, 2)
            log("synth %s: %.1f s" % (name, dt))
        models.append((label, out_dir, notes))
    return models


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "sliderquant"))
    ap.add_argument("--data-dir", default=os.path.join(REPO, "..", "shared", "data"))
    ap.add_argument("--device", type=device_arg, default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--preset", default=None,
                    help="comma list of synth presets and/or 'stories260K' "
                         "(default: cpu 'stories260K,tiny', cuda 'llama2-7b')")
    ap.add_argument("--work", default=None, help="scratch dir for checkpoints and per-run JSON")
    ap.add_argument("--out", default=None, help="JSON file for all rows")
    ap.add_argument("--dtypes", default=None, help="eval dtypes (default: cpu float32,bfloat16; "
                                                   "cuda bfloat16,float16,float32)")
    ap.add_argument("--batches", default="1,4", help="eval batch sizes (default 1,4)")
    ap.add_argument("--seqlen", type=int, default=None, help="default: cpu 256, cuda 2048")
    ap.add_argument("--max-windows", type=int, default=None,
                    help="windows per run, 0 = all (default: cpu 64, cuda 0)")
    ap.add_argument("--max-windows-fp32", type=int, default=None,
                    help="cap for float32 rows (default: cpu same as --max-windows, cuda 32)")
    ap.add_argument("--synth-dtype", default=None, help="synthetic checkpoint dtype (default: cpu "
                                                        "float32, cuda bfloat16)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0, help="eval --threads (0: the CLI's default)")
    ap.add_argument("--dataset", default="wikitext2")
    ap.add_argument("--budget-s", type=float, default=0,
                    help="stop starting new rows after this many seconds (0 = no limit)")
    args = ap.parse_args()

    cuda = args.device.startswith("cuda")
    args.preset = args.preset or ("llama2-7b" if cuda else "stories260K,tiny")
    args.dtypes = args.dtypes or ("bfloat16,float16,float32" if cuda else "float32,bfloat16")
    args.seqlen = args.seqlen or (2048 if cuda else 256)
    if args.max_windows is None:
        args.max_windows = 0 if cuda else 64
    if args.max_windows_fp32 is None:
        args.max_windows_fp32 = 32 if cuda else args.max_windows
    args.synth_dtype = args.synth_dtype or ("bfloat16" if cuda else "float32")
    args.work = os.path.abspath(args.work or os.path.join(REPO, "build", "bench-work"))
    args.out = args.out or os.path.join(args.work, "bench_eval.json")
    args.bin = os.path.abspath(args.bin)
    args.data_dir = os.path.abspath(args.data_dir)
    if not os.access(args.bin, os.X_OK):
        raise SystemExit("bench_eval: %s is not an executable (build first)" % args.bin)
    os.makedirs(args.work, exist_ok=True)
    t_start = time.monotonic()
    budget_end = t_start + args.budget_s if args.budget_s > 0 else float("inf")

    gname = gpu_name() if cuda else ""
    peak_src, peak = DEFAULT_PEAK
    for key, val in PEAKS.items():
        if key in gname:
            peak_src, peak = val
    report = {
        "tool": "bench_eval", "created": now_iso(), "device": args.device, "gpu": gname or None,
        "bin": args.bin, "dataset": args.dataset, "seqlen_requested": args.seqlen,
        "peak_reference": {"tflops": peak, "what": peak_src} if cuda else None,
        "flops_formula": "2 x matmul_params x windows x seqlen / eval seconds; matmul_params = "
                         "q,k,v,o,gate,up,down of every layer + lm_head (no embedding lookup, "
                         "no attention-score arithmetic)",
        "models": {}, "rows": [], "failures": [], "skipped": [],
    }

    def save():
        tmp = args.out + ".tmp"
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(tmp, "w") as f:
            json.dump(report, f, indent=2)
        os.replace(tmp, args.out)

    models = prepare_models(args, budget_end)
    dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    batches = [int(b) for b in args.batches.split(",") if b.strip()]

    for label, mdir, notes in models:
        with open(os.path.join(mdir, "config.json")) as f:
            cfg = json.load(f)
        report["models"][label] = dict(notes, dir=mdir, matmul_params=matmul_params(cfg),
                                       vocab=cfg["vocab_size"], hidden=cfg["hidden_size"],
                                       layers=cfg["num_hidden_layers"])
        save()
        for dtype in dtypes:
            for batch in batches:
                windows = args.max_windows_fp32 if dtype == "float32" else args.max_windows
                tag = "%s/%s/b%d" % (label, dtype, batch)
                left = budget_end - time.monotonic()
                if left < 15:
                    log("skip %s: budget spent" % tag)
                    report["skipped"].append({"row": tag, "why": "time budget spent"})
                    save()
                    continue
                jpath = os.path.join(args.work, "eval-%s-%s-b%d.json" % (label, dtype, batch))
                if os.path.exists(jpath):
                    os.remove(jpath)
                cmd = [args.bin, "eval", mdir, "--ppl", args.dataset, "--data-dir", args.data_dir,
                       "--seqlen", str(args.seqlen), "--batch-size", str(batch),
                       "--max-windows", str(windows), "--dtype", dtype, "--device", args.device,
                       "--json", jpath, "--quiet"]
                if args.threads:
                    cmd += ["--threads", str(args.threads)]
                rc, wall, out = run(cmd, timeout=left)
                if rc != 0 or not os.path.exists(jpath):
                    why = "rc %d" % rc + ("" if os.path.exists(jpath) else ", no JSON")
                    report["failures"].append({"row": tag, "why": why, "output_tail": out[-2000:]})
                    log("FAILED %s: %s" % (tag, why))
                    save()
                    continue
                with open(jpath) as f:
                    ej = json.load(f)
                pp = (ej.get("perplexity") or [{}])[0]
                secs = pp.get("seconds") or 0.0
                tokens = (pp.get("windows") or 0) * (pp.get("seqlen") or 0)
                row = {
                    "model": label, "dtype": dtype, "batch": batch, "device": ej.get("device"),
                    "seqlen": pp.get("seqlen"), "windows": pp.get("windows"), "tokens": tokens,
                    "tokens_scored": pp.get("tokens_scored"), "seconds": secs, "wall_seconds": round(wall, 3),
                    "tokens_per_second": pp.get("tokens_per_second"),
                    "tokens_per_second_bench": (tokens / secs) if secs > 0 else None,
                    "ppl": pp.get("ppl"), "nll": pp.get("nll"), "streamed": pp.get("streamed"),
                    "resident": ej.get("resident"), "threads": ej.get("threads"),
                    "parameters": ej.get("parameters"), "peak_rss_bytes": ej.get("peak_rss_bytes"),
                    "peak_gpu_bytes": ej.get("peak_gpu_bytes"), "torch": ej.get("torch"),
                    "eval_json": ej,
                }
                if cuda and secs > 0:
                    tf = 2.0 * report["models"][label]["matmul_params"] * tokens / secs / 1e12
                    row["matmul_tflops"] = tf
                    row["fraction_of_peak"] = tf / peak
                report["rows"].append(row)
                save()
                log("row %s: %s tok/s, ppl %s" % (tag, pp.get("tokens_per_second"), pp.get("ppl")))

    report["total_seconds"] = round(time.monotonic() - t_start, 2)
    save()

    # ---- the table -----------------------------------------------------------------------------
    head = ["model", "dtype", "batch", "seqlen", "windows", "tokens/s", "seconds", "wall s",
            "peak RSS", "peak GPU", "ppl"]
    if cuda:
        head += ["TFLOP/s", "of peak"]
    lines = []
    for r in report["rows"]:
        cells = [r["model"], r["dtype"], str(r["batch"]), str(r["seqlen"]), str(r["windows"]),
                 "%.1f" % (r["tokens_per_second"] or 0), "%.2f" % r["seconds"], "%.1f" % r["wall_seconds"],
                 fmt_bytes(r["peak_rss_bytes"]), fmt_bytes(r["peak_gpu_bytes"]),
                 "%.4g" % r["ppl"] if isinstance(r["ppl"], (int, float)) else "-"]
        if cuda:
            cells += ["%.1f" % r.get("matmul_tflops", 0), "%.1f%%" % (100 * r.get("fraction_of_peak", 0))]
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) if lines else len(h) for i, h in enumerate(head)]
    log("")
    log("=== bench_eval results: %s, device %s%s, %s ===" % (
        args.dataset, args.device, (" (" + gname + ")") if gname else "", os.path.basename(args.bin)))
    log("  ".join(h.rjust(w) for h, w in zip(head, widths)))
    for c in lines:
        log("  ".join(x.rjust(w) for x, w in zip(c, widths)))
    if cuda:
        log("TFLOP/s = 2 x matmul params x windows x seqlen / eval seconds; peak = %.1f TFLOP/s (%s)"
            % (peak, peak_src))
    for s in report["skipped"]:
        log("skipped %s: %s" % (s["row"], s["why"]))
    for fl in report["failures"]:
        log("FAILED %s: %s" % (fl["row"], fl["why"]))
    log("rows: %d, failures: %d, skipped: %d, %.1f s; JSON: %s" % (
        len(report["rows"]), len(report["failures"]), len(report["skipped"]),
        report["total_seconds"], args.out))
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
