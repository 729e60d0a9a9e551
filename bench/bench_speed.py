#!/usr/bin/env python3
"""bench/bench_speed.py: sliderquant's speed beside llama.cpp and PyTorch on SmolLM2-135M.

One run, side by side: a table on stdout and every row in JSON (--out).

Suite `eval` (perplexity evaluation, GPTQ protocol, the same token windows for every runtime):
  - sliderquant `eval` on the float32 and bfloat16 HF directories (computing in that dtype), on
    packed outputs of `quantize` (RTN onto w4g32 / w8g32 / w4g64 / w3g64 / w2g64, float32
    compute) and on GGUF files (F32 and BF16 exports, and Q8_0 / Q4_0 / Q4_K_M made by
    llama.cpp's own quantizer from the F32 export; Q4_K_M is llama.cpp's mix with its fallbacks
    for the 576-wide rows);
  - llama.cpp through llama-cpp-python (tests/gguf/llama_cpp_harness.py: batch = window, one
    window per context reset, float32 K/V cache) on the same GGUF files, as the test
    environment builds it (runtime `llama.cpp-venv-O1`: portable AVX2 and -O1, which keeps CI's
    install short and understates llama.cpp's speed, so it is no speed claim) and, with
    --llama-native DIR, a Release (-O3) build for this CPU (see bench/README.md for how it is
    made), the row to compare speeds with;
  - PyTorch eager (transformers, CPU, default attention) on the float32 / bfloat16 directories.
  Per row and setting (window length x threads): tokens/s (best and median of --repeats
  processes; model load and tokenization excluded, as each runtime times only its windows),
  peak RSS of the process, perplexity (the rows of one model must agree), and for GGUF files
  the ratio sliderquant / llama.cpp.

Suite `quantize`: GPTQ w4g128 on a synthetic Llama-2-7B-shaped checkpoint cut to --layers
layers (`sliderquant synth --preset llama2-7b`), calibrated on c4-2k (--calib-samples x
--calib-seqlen tokens, the same ids for every tool): sliderquant's wall time, its phases
(calibration forwards + Hessians, the GPTQ solve), seconds per layer and peak RSS, beside
GPTQModel's GPTQ on the CPU on the same checkpoint and token ids (bench/speed_gptqmodel.py).

Usage (the project's venv python; standard library + the venv's packages):
  .venv/bin/python bench/bench_speed.py --quick             # a few minutes
  .venv/bin/python bench/bench_speed.py [--suite eval|quantize|all] [--data-dir ../shared/data]
      [--seqlens 512,2048] [--threads 1,2] [--repeats 3] [--rows ROW,...] [--llama-native DIR]
      [--out out/bench_speed/bench_speed.json]
The worker modes (--worker-transformers) are this file run by itself in a child process.
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARNESS = os.path.join(ROOT, "tests", "gguf", "llama_cpp_harness.py")
VENV_PY = os.path.join(ROOT, ".venv", "bin", "python")
PACKED = ("w4g32", "w8g32", "w4g64", "w3g64", "w2g64")
# llama.cpp file types (llama_ftype): 7 = Q8_0, 2 = Q4_0, 15 = Q4_K_M.
LLAMA_FTYPES = (("q8_0", 7), ("q4_0", 2), ("q4_k_m", 15))


def log(msg):
    print(msg, flush=True)


def run_measured(cmd, env=None, stdin_path=None, timeout=None):
    """Runs CMD; returns (returncode, stdout, stderr). Peak memory comes from each tool's own
    report (sliderquant's JSON; getrusage in the Python workers)."""
    stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
    try:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=stdin, env=env)
        deadline = None if timeout is None else time.monotonic() + timeout
        out, err = p.communicate(timeout=None if deadline is None else max(1, deadline - time.monotonic()))
    finally:
        if stdin_path:
            stdin.close()
    return p.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def check(cmd, **kw):
    rc, out, err = run_measured(cmd, **kw)
    if rc != 0:
        raise RuntimeError("%s failed (%d): %s" % (" ".join(cmd), rc, err.strip()[-1500:]))
    return out


def cpu_description():
    model, flags = "", []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and not model:
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    keep = [x for x in flags if x.startswith(("avx", "amx", "fma", "f16c", "bmi2"))]
    return {"model": model, "flags": sorted(keep), "cores": os.cpu_count(), "machine": platform.machine()}


# ---- workers (run in child processes) -------------------------------------------------------

def worker_transformers(a):
    """PyTorch eager through transformers: nll of tokens 1..L-1 of each window, timed."""
    import resource

    import torch
    from transformers import AutoModelForCausalLM
    torch.set_num_threads(a.threads)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[a.dtype]
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=dtype)
    model.eval()
    ids = json.load(open(a.ids))
    L, n = a.seqlen, a.windows
    total, count, seconds = 0.0, 0, 0.0
    with torch.inference_mode():
        for w in range(n):
            x = torch.tensor(ids[w * L:(w + 1) * L], dtype=torch.long).unsqueeze(0)
            t0 = time.perf_counter()
            logits = model(x).logits[0, :-1].float()
            nll = torch.nn.functional.cross_entropy(logits, x[0, 1:], reduction="sum")
            seconds += time.perf_counter() - t0
            total += float(nll)
            count += L - 1
    import math
    print(json.dumps({"ppl": math.exp(total / count), "seconds": seconds,
                      "tokens_per_second": n * L / seconds, "torch": torch.__version__,
                      "attn_implementation": getattr(model.config, "_attn_implementation", None),
                      "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


# ---- the eval suite -------------------------------------------------------------------------

class Eval:
    def __init__(self, a, cli, work):
        self.a, self.cli, self.work = a, cli, work
        self.rows = []

    def W(self, name):
        return os.path.join(self.work, name)

    def prepare(self):
        a, cli, W = self.a, self.cli, self.W
        fp = os.path.join(ROOT, "models", "smollm2-135m")
        if not os.path.exists(os.path.join(fp, "model.safetensors")):
            sys.exit("bench_speed: models/smollm2-135m is missing; run scripts/get_models.sh")
        wiki = os.path.join(a.data_dir, "eval", "wikitext2", "wikitext2_test_gptq_join.txt")
        if not os.path.exists(wiki):
            sys.exit("bench_speed: %s is missing (--data-dir)" % wiki)
        ids = json.loads(check([cli, "tokenize", fp, "--json", "-q"], stdin_path=wiki))["ids"]
        need = max(L * self.windows(L) for L in a.seqlens)
        self.ids = W("wikitext2_ids.json")
        json.dump(ids[:need], open(self.ids, "w"))
        models = {"hf-f32": (fp, "float32")}
        want = set(a.rows) if a.rows else None
        wanted = lambda r: want is None or r in want  # noqa: E731
        bf_dir = W("smollm2-bf16")
        f32 = W("smollm2-f32.gguf")
        if not os.path.exists(f32):
            check([cli, "export", fp, "--format", "gguf", "--out", f32, "--force", "-q"])
        if wanted("hf-bf16") or wanted("gguf-bf16"):
            if not os.path.exists(os.path.join(bf_dir, "config.json")):
                # the float32 model stored as bfloat16 (convert casts the exact F32 export)
                check([cli, "convert", f32, "--out", bf_dir, "--dtype", "bfloat16", "--force", "-q"])
            models["hf-bf16"] = (bf_dir, "bfloat16")
        for fmt in PACKED:
            if not wanted("packed-" + fmt):
                continue
            out = W("rtn-" + fmt)
            if not os.path.exists(os.path.join(out, "config.json")):
                r = W("rtn-%s.recipe.json" % fmt)
                json.dump({"name": "rtn-" + fmt, "format": fmt, "pipeline": [{"pass": "rtn", "options": {"mse": False}}]},
                          open(r, "w"))
                check([cli, "quantize", fp, "--recipe", r, "--out", out, "--force", "-q"])
            models["packed-" + fmt] = (out, "float32")
        ggufs = {}
        if wanted("gguf-f32"):
            ggufs["gguf-f32"] = f32
        if wanted("gguf-bf16"):
            g = W("smollm2-bf16.gguf")
            if not os.path.exists(g):
                check([cli, "export", bf_dir, "--format", "gguf", "--out", g, "--force", "-q"])
            ggufs["gguf-bf16"] = g
        for t, ftype in LLAMA_FTYPES:
            if not wanted("gguf-" + t):
                continue
            g = W("llama-%s.gguf" % t)
            if not os.path.exists(g):
                code = ("import llama_cpp,sys\np=llama_cpp.llama_model_quantize_default_params()\n"
                        "p.ftype=%d\np.nthread=2\n"
                        "sys.exit(llama_cpp.llama_model_quantize(sys.argv[1].encode(),sys.argv[2].encode(),p))\n" % ftype)
                check([VENV_PY, "-c", code, f32, g])
            ggufs["gguf-" + t] = g
        self.models = {k: v for k, v in models.items() if wanted(k)}
        self.ggufs = ggufs

    def windows(self, L):
        return self.a.windows_512 if L <= 512 else self.a.windows_2048

    def measure(self, row, runtime, path, dtype, L, T, fn):
        """Runs FN (returns dict with tokens_per_second, ppl, peak_rss_bytes) --repeats times."""
        if self.a.runtimes and runtime not in self.a.runtimes:
            return
        reps = []
        for _ in range(self.a.repeats):
            try:
                reps.append(fn())
            except RuntimeError as e:
                log("  %s / %s failed: %s" % (row, runtime, str(e)[-300:]))
                self.rows.append({"row": row, "runtime": runtime, "seqlen": L, "threads": T, "error": str(e)[-600:]})
                return
        tps = [r["tokens_per_second"] for r in reps]
        rec = {"row": row, "runtime": runtime, "file": os.path.relpath(path, ROOT), "dtype": dtype, "seqlen": L,
               "threads": T, "windows": self.windows(L), "tokens": L * self.windows(L),
               "tok_s_best": max(tps), "tok_s_median": statistics.median(tps), "tok_s_all": tps,
               "ppl": reps[0]["ppl"], "peak_rss_bytes": max(r.get("peak_rss_bytes") or 0 for r in reps)}
        for k in ("blas", "torch", "attn_implementation", "system_info"):
            if reps[0].get(k):
                rec[k] = reps[0][k]
        self.rows.append(rec)
        log("  %-18s %-22s L=%-5d T=%d  %8.1f tok/s (median %8.1f)  ppl %.4f  RSS %.0f MB" % (
            row, runtime, L, T, rec["tok_s_best"], rec["tok_s_median"], rec["ppl"], rec["peak_rss_bytes"] / 2**20))

    def sliderquant(self, path, dtype, L, T, cli=None):
        rep = self.W("last-eval.json")
        check([cli or self.cli, "eval", path, "--ppl", "wikitext2", "--data-dir", self.a.data_dir, "--seqlen", str(L),
               "--max-windows", str(self.windows(L)), "--threads", str(T), "--dtype", dtype, "--json", rep, "-q"])
        r = json.load(open(rep))
        p = r["perplexity"][0]
        return {"tokens_per_second": p["tokens_per_second"], "ppl": p["ppl"], "peak_rss_bytes": r["peak_rss_bytes"],
                "blas": r.get("blas"), "torch": r.get("torch")}

    def llama(self, path, L, T, site=None):
        env = dict(os.environ)
        if site:
            env["PYTHONPATH"] = site + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        rc, out, err = run_measured(
            [VENV_PY, "-c", "import resource,runpy,sys,json;sys.argv=sys.argv[1:];"
             "import io,contextlib\nbuf=io.StringIO()\nwith contextlib.redirect_stdout(buf): runpy.run_path(sys.argv[0], run_name='__main__')\n"
             "d=json.loads(buf.getvalue());d['peak_rss_bytes']=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss*1024\n"
             "import llama_cpp;d['system_info']=llama_cpp.llama_print_system_info().decode().strip()\nprint(json.dumps(d))",
             HARNESS, "ppl", path, self.ids, "--seqlen", str(L), "--max-windows", str(self.windows(L)), "--threads", str(T)],
            env=env)
        if rc != 0:
            raise RuntimeError(err.strip()[-600:])
        return json.loads(out.strip().splitlines()[-1])

    def transformers(self, path, dtype, L, T):
        rc, out, err = run_measured([VENV_PY, os.path.abspath(__file__), "--worker-transformers", path, "--ids", self.ids,
                                        "--seqlen", str(L), "--windows", str(self.windows(L)), "--worker-threads", str(T),
                                        "--dtype", dtype])
        if rc != 0:
            raise RuntimeError(err.strip()[-600:])
        return json.loads(out.strip().splitlines()[-1])

    def run(self):
        a = self.a
        self.prepare()
        for L in a.seqlens:
            for T in a.threads:
                log("window %d tokens x %d, %d thread(s)" % (L, self.windows(L), T))
                for row, (path, dtype) in self.models.items():
                    self.measure(row, "sliderquant", path, dtype, L, T, lambda: self.sliderquant(path, dtype, L, T))
                    if a.cli_wheel:
                        self.measure(row, "sliderquant-wheel-torch", path, dtype, L, T,
                                     lambda: self.sliderquant(path, dtype, L, T, a.cli_wheel))
                    if row.startswith("hf-") and not a.no_transformers:
                        self.measure(row, "pytorch-transformers", path, dtype, L, T,
                                     lambda: self.transformers(path, dtype, L, T))
                for row, g in self.ggufs.items():
                    dt = "bfloat16" if row == "gguf-bf16" else "float32"
                    self.measure(row, "sliderquant", g, dt, L, T, lambda: self.sliderquant(g, dt, L, T))
                    if a.cli_wheel:
                        self.measure(row, "sliderquant-wheel-torch", g, dt, L, T,
                                     lambda: self.sliderquant(g, dt, L, T, a.cli_wheel))
                    self.measure(row, "llama.cpp-venv-O1", g, "-", L, T, lambda: self.llama(g, L, T))
                    if a.llama_native:
                        self.measure(row, "llama.cpp-native", g, "-", L, T, lambda: self.llama(g, L, T, a.llama_native))
        return self.rows


def ratios(rows):
    """sliderquant / llama.cpp tokens/s per GGUF row and setting (best of repeats)."""
    out = []
    by = {}
    for r in rows:
        if "error" not in r:
            by[(r["row"], r["runtime"], r["seqlen"], r["threads"])] = r
    for (row, rt, L, T), r in sorted(by.items()):
        if not rt.startswith("sliderquant"):
            continue
        for other in ("llama.cpp-venv-O1", "llama.cpp-native", "pytorch-transformers"):
            o = by.get((row, other, L, T))
            if o:
                out.append({"row": row, "seqlen": L, "threads": T, "ours": rt, "versus": other,
                            "ratio": r["tok_s_best"] / o["tok_s_best"],
                            "ppl_gap_percent": 100 * (r["ppl"] - o["ppl"]) / o["ppl"]})
    return out


# ---- the quantize suite ---------------------------------------------------------------------

def quantize_suite(a, cli, work):
    W = lambda n: os.path.join(work, n)  # noqa: E731
    tok = os.path.join(a.data_dir, "tokenizers", "llama2")
    model = W("llama2-7b-%dl" % a.layers)
    if not os.path.exists(os.path.join(model, "config.json")):
        check([cli, "synth", model, "--preset", "llama2-7b", "--layers", str(a.layers), "--tokenizer", tok, "--force", "-q"])
    # The calibration ids, once, by sliderquant's own sampler: the report's calibration block.
    rows = []
    recipe = W("gptq-w4g128.recipe.json")
    # Symmetric w4g128 (GPTQModel's sym=True), IST-DASLab gptq.py's options (configs/gptq-w4g128.json).
    json.dump({"name": "gptq-w4g128s", "format": "w4g128s",
               "calibration": {"dataset": "c4-2k", "samples": a.calib_samples, "seqlen": a.calib_seqlen, "seed": 0},
               "pipeline": [{"pass": "gptq", "options": {"damp": 0.01, "block_size": 128, "order": "natural",
                                                         "static_groups": False, "group_params": "block_start",
                                                         "mse": False}}]},
              open(recipe, "w"))
    ids_path = W("calib_ids.json")
    rep = W("sliderquant-quantize.json")
    t0 = time.monotonic()
    check([cli, "quantize", model, "--recipe", recipe, "--out", W("q-out"), "--data-dir", a.data_dir, "--force",
           "--threads", str(a.quant_threads), "--json", rep, "--save-calibration", ids_path, "-q"])
    wall = time.monotonic() - t0
    r = json.load(open(rep))
    t = r.get("timings_seconds", {})
    rows.append({"tool": "sliderquant", "threads": a.quant_threads, "wall_seconds": wall,
                 "seconds_total": r.get("seconds_total"), "phases": t,
                 "seconds_per_layer_mean": sum(v for k, v in t.items()
                                               if k != "embed" and not k.startswith("of which")) / a.layers,
                 "peak_rss_bytes": r.get("peak_rss_bytes"), "blas": r.get("blas"), "dtype": "float32"})
    log("  sliderquant GPTQ: %.1f s, phases %s, peak RSS %.2f GB" % (wall, json.dumps({k: round(v, 1) for k, v in t.items()}),
                                                                     (r.get("peak_rss_bytes") or 0) / 1e9))
    peer = os.path.join(ROOT, "bench", "speed_gptqmodel.py")
    if os.path.exists(peer) and not a.no_gptqmodel:
        out = W("gptqmodel.json")
        rc, so, se = run_measured([VENV_PY, peer, model, ids_path, out, "--bits", "4", "--group-size", "128",
                                      "--damp", "0.01", "--threads", str(a.quant_threads)])
        if rc == 0:
            g = json.load(open(out))
            g["tool"] = "gptqmodel"
            rows.append(g)
            log("  GPTQModel GPTQ: %.1f s, peak RSS %.2f GB" % (g["seconds_total"], g["peak_rss_bytes"] / 1e9))
        else:
            rows.append({"tool": "gptqmodel", "error": se.strip()[-600:]})
            log("  GPTQModel failed: " + se.strip()[-300:])
    rows.append({"tool": "llm-compressor", "error": "not run: llmcompressor 0.14.0.1 pins torch<=2.14.0, "
                 "transformers<=5.17.0 and compressed-tensors==0.19.0, which cannot be installed beside the test "
                 "environment's torch 2.14.1 / transformers 5.25.0 (requirements-test.txt)"})
    log("\n| tool | threads | total s | per layer s (total / layers) | hessian accumulation s | GPTQ solve s | peak RSS GB |")
    log("|---|---|---|---|---|---|---|")
    for x in rows:
        if "error" in x:
            log("| %s | | not run | | | | |" % x["tool"])
        elif x["tool"] == "sliderquant":
            ph = x["phases"]
            log("| sliderquant | %d | %.1f | %.1f | %.1f | %.1f | %.2f |" % (
                x["threads"], x["seconds_total"], x["seconds_per_layer_mean"], ph.get("of which hessian accumulation", 0),
                ph.get("quantize (solve)", 0), x["peak_rss_bytes"] / 1e9))
        else:
            log("| %s | %s | %.1f | %.1f | %.1f | %.1f | %.2f |" % (
                x["tool"], x.get("threads"), x["seconds_total"], x["seconds_total"] / a.layers, x.get("hessian_seconds") or 0,
                x.get("solve_seconds") or 0, x["peak_rss_bytes"] / 1e9))
    return {"model": os.path.relpath(model, ROOT), "layers": a.layers, "calibration": {
        "dataset": "c4-2k", "samples": a.calib_samples, "seqlen": a.calib_seqlen, "seed": 0}, "rows": rows}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "sliderquant"))
    ap.add_argument("--data-dir", default=os.path.join(ROOT, "..", "shared", "data"))
    ap.add_argument("--work", default=os.path.join(ROOT, "out", "bench_speed"))
    ap.add_argument("--out", default="")
    ap.add_argument("--suite", choices=["eval", "quantize", "all"], default="eval")
    ap.add_argument("--seqlens", default="512,2048")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--windows-512", type=int, default=4, help="windows per run at 512 tokens")
    ap.add_argument("--windows-2048", type=int, default=1, help="windows per run at 2048 tokens")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--rows", default="", help="only these rows (hf-f32, hf-bf16, packed-w4g32, gguf-q4_0, ...)")
    ap.add_argument("--cli-wheel", default="",
                    help="a second sliderquant built against the PyPI torch wheel's libtorch (README: the fast CPU "
                         "build); its rows run beside the Debian build's")
    ap.add_argument("--llama-native", default="", help="site-packages folder of a llama-cpp-python built for this CPU")
    ap.add_argument("--no-transformers", action="store_true")
    ap.add_argument("--runtimes", default="", help="only these runtimes (sliderquant, sliderquant-wheel-torch, "
                                                   "llama.cpp, llama.cpp-native, pytorch-transformers)")
    ap.add_argument("--layers", type=int, default=2, help="quantize suite: decoder layers of the 7B-shaped model")
    ap.add_argument("--calib-samples", type=int, default=8)
    ap.add_argument("--calib-seqlen", type=int, default=2048)
    ap.add_argument("--quant-threads", type=int, default=2)
    ap.add_argument("--no-gptqmodel", action="store_true")
    ap.add_argument("--quick", action="store_true", help="512-token windows, 1 thread, 2 windows, 1 repeat, 4 rows")
    # worker mode
    ap.add_argument("--worker-transformers", default="")
    ap.add_argument("--ids", default="")
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--windows", type=int, default=4)
    ap.add_argument("--worker-threads", type=int, default=1)
    ap.add_argument("--dtype", default="float32")
    a = ap.parse_args()
    if a.worker_transformers:
        a.model, a.threads = a.worker_transformers, a.worker_threads
        return worker_transformers(a)
    a.seqlens = [int(x) for x in a.seqlens.split(",") if x]
    a.threads = [int(x) for x in a.threads.split(",") if x]
    a.rows = [x for x in a.rows.split(",") if x]
    a.runtimes = [x for x in a.runtimes.split(",") if x]
    if a.quick:
        a.seqlens, a.threads, a.windows_512, a.repeats = [512], [1], 2, 1
        a.rows = a.rows or ["hf-f32", "packed-w4g32", "gguf-f32", "gguf-q4_0"]
        a.calib_samples, a.calib_seqlen = 2, 512
    cli = os.path.abspath(a.cli)
    if a.cli_wheel:
        a.cli_wheel = os.path.abspath(a.cli_wheel)
        if not os.access(a.cli_wheel, os.X_OK):
            sys.exit("bench_speed: --cli-wheel %s is not an executable" % a.cli_wheel)
    if not os.access(cli, os.X_OK):
        sys.exit("bench_speed: %s is not built (scripts/build.sh)" % cli)
    os.makedirs(a.work, exist_ok=True)
    out_json = a.out or os.path.join(a.work, "bench_speed.json")
    result = {"bench": "bench_speed", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "cpu": cpu_description(), "args": {k: v for k, v in vars(a).items() if not k.startswith("worker")}}
    t0 = time.monotonic()
    if a.suite in ("eval", "all"):
        ev = Eval(a, cli, a.work)
        rows = ev.run()
        result["eval"] = {"rows": rows, "ratios": ratios(rows)}
        print_eval_table(rows, result["eval"]["ratios"])
    if a.suite in ("quantize", "all"):
        result["quantize"] = quantize_suite(a, cli, a.work)
    result["seconds"] = time.monotonic() - t0
    tmp = out_json + ".tmp"
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1)
    os.replace(tmp, out_json)
    log("wrote " + out_json)


def print_eval_table(rows, rat):
    log("\n| row | runtime | window | threads | tok/s best | tok/s median | ppl | peak RSS MB |")
    log("|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "error" in r:
            log("| %s | %s | %d | %d | failed | | | |" % (r["row"], r["runtime"], r["seqlen"], r["threads"]))
            continue
        log("| %s | %s | %d | %d | %.1f | %.1f | %.4f | %.0f |" % (
            r["row"], r["runtime"], r["seqlen"], r["threads"], r["tok_s_best"], r["tok_s_median"], r["ppl"],
            r["peak_rss_bytes"] / 2**20))
    log("\n| row | window | threads | ours | versus | tok/s ratio | ppl gap % |")
    log("|---|---|---|---|---|---|---|")
    for x in rat:
        log("| %s | %d | %d | %s | %s | %.2f | %+.3f |" % (x["row"], x["seqlen"], x["threads"], x["ours"], x["versus"],
                                                         x["ratio"], x["ppl_gap_percent"]))


if __name__ == "__main__":
    main()
