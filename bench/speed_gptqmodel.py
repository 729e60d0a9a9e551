#!/usr/bin/env python3
"""Time GPTQModel's own GPTQ quantization on CPU, to put beside sliderquant's GPTQ timings.

Usage:
  .venv/bin/python bench/speed_gptqmodel.py MODEL_DIR CALIB_IDS_JSON OUT_JSON
      [--bits 4] [--group-size 128] [--damp 0.01] [--desc-act] [--threads N]
      [--dtype float32|bfloat16] [--cpu-workers K] [--serialize-modules] [--log FILE]

MODEL_DIR is a Hugging Face Llama directory (config.json, safetensors, tokenizer files; GPTQModel
loads the tokenizer but it is not used), e.g. from
`sliderquant synth OUT --preset llama2-7b --layers 2 --tokenizer ../shared/data/tokenizers/llama2`.
CALIB_IDS_JSON is a JSON list of lists of token ids: the calibration samples, already tokenized,
so that every runtime in the comparison sees exactly the same tokens. Each sample is passed as one
{"input_ids": [1, L], "attention_mask": ones(1, L)} dict (batch_size 1, no padding, no
re-tokenizing, calibration_sort=None keeps the order, calibration_data_min_length=0 drops none).

What is measured
----------------
- seconds_load: GPTQModel.load() of MODEL_DIR onto the CPU (not part of seconds_total).
- seconds_total: wall time of model.quantize(calibration) alone: GPTQModel's whole layer-by-layer
  pipeline: capture of the layer-0 inputs, per decoder layer and per true-sequential subset
  (q/k/v, o, gate/up, down) a calibration forward of the layer with the Hessian hooks, the GPTQ
  solve of the subset's linears, a replay forward giving the next layer's inputs from the quantized
  layer, and the creation + int32 packing of the QuantLinear modules. Nothing is saved to disk
  (offload_to_disk=False, no save()).
- hessian_seconds: wall time spent inside GPTQ.add_batch, i.e. the fp32 X^T X accumulation of
  the linears' inputs called from the forward hooks (per_layer_hessian_seconds per layer). The
  forwards themselves are not in it (see regions_seconds.pre_quant_forward).
- solve_seconds: wall time (union of the intervals, so concurrent modules count once) spent
  inside GPTQ.quantize: merging the Hessian partials and scaling by 2/n, W cloned to fp32,
  dead-column neutralizing, the damped Cholesky inverse, the blocked column loop with the group
  min/max scale search. hessian_inverse_seconds is GPTQModel's own timer for the Cholesky part.
- per_layer_seconds: the same solve wall time per decoder layer. per_layer_module_seconds_sum is
  the plain per-layer sum of the quant log's per-module times ("time" column, ms resolution),
  which double-counts modules GPTQModel solves concurrently; per_module_seconds lists each
  module's measured time, start (seconds into quantize()), damp used, loss and Hessian rows.
- regions_seconds: GPTQModel's own QuantizationRegionTimer totals (model.quant_region_timer):
  capture_inputs, pre_quant_forward, forward_hook, process_quant, post_quant_forward,
  submodule_finalize(_create/_pack), hessian_inverse. They overlap (worker threads), so they do
  not add up to seconds_total.
- peak_rss_bytes: resource.getrusage(RUSAGE_SELF).ru_maxrss * 1024 after quantize() (the model
  load included).
The hessian/solve split comes from wrapping GPTQModel's GPTQ.add_batch and GPTQ.quantize with a
timer (the originals run unchanged and are restored afterwards).

GPTQModel settings (GPTQConfig through QuantizeConfig)
-----------------------------------------------------
- bits, group_size (-1 = one group per output row), sym=True, damp_percent=--damp (GPTQModel's own
  default is 0.05; we pass 0.01, the IST-DASLab default), damp_auto_increment left at its default.
- act-order off (default) = natural column order: desc_act=False AND act_group_aware=False.
  GPTQModel 7.x turns its "GAR" group-aware reordering (act_group_aware: columns permuted within
  and across groups by diag H) on by default for GPTQ; that is not natural order, so it is off.
- --desc-act: desc_act=True (columns in descending diag H order), act_group_aware=False.
- static_groups=False: a group's scale is found from the already-updated weights when the column
  loop reaches the group's first column (IST-DASLab's default; with desc_act the groups follow the
  permuted order and g_idx is not monotone, like IST-DASLab's --act-order without --static-groups).
- mse=0.0 (plain min/max range, no shrink search), true_sequential=True (GPTQModel's default),
  lm_head not quantized, fallback=None (no RTN fallback for modules that saw few tokens),
  format=GPTQ, device="cpu", offload_to_disk=False, pack_impl="original" (the torch packer, so no
  C++ extension is JIT-built inside the timed region).
- --dtype (default float32, the dtype of sliderquant's CPU calibration forwards): the dtype the
  model is loaded in and the forwards run in; the GPTQ math is fp32 either way.
- --threads N: torch.set_num_threads(N), OMP/MKL_NUM_THREADS=N (0 = all cores). GPTQModel's
  worker threads inherit it.
- --cpu-workers K (default 2): GPTQMODEL_CPU_WORKERS, GPTQModel's CPU thread pool, which runs the
  linears of one subset concurrently (q/k/v, gate/up), each with N torch threads. GPTQModel's
  default is (cores + 1) // 2; it needs at least 2 (its model-loader pool takes 2).
- --serialize-modules: a lock around GPTQ.quantize so one linear is solved at a time (results are
  identical; it only removes the concurrency). GPTQModel's output goes to a temporary log file
  (kept with --log FILE, or named on stderr when the run fails).

Is it the IST-DASLab gptq.py algorithm? (gptqmodel/quantization/gptq.py in 7.7.0, read here)
------------------------------------------------------------------------------------------
Yes, the same algorithm: a check on a 256x512 linear with the same Hessian gave bit-identical
weights per channel and weights equal within float rounding (max 7e-8 on |W| ~ 0.04) with
groups of 128, with and without desc_act. Same: fp32 Hessian H = 2/n sum X^T X; dead columns
(H_ii = 0) get H_ii = 1 and W[:, i] = 0; damp = damp_percent * mean(diag H) on the diagonal; Hinv
= cholesky(cholesky_inverse(cholesky(H)), upper=True); the lazy-batch loop over blocks of 128
columns (per column: quantize, err = (w - q) / Hinv[i, i], rank-1 update of the rest of the
block; after the block W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]); the same min/max quantizer (sym:
scale = 2 max|w| / maxq, zero = (maxq + 1) / 2); desc_act = argsort(diag H, descending).
Differences:
- n counts tokens (rows of X), not sequences as in IST-DASLab (there H is rescaled by n/(n+1) and
  sqrt(2/n) per sample). Only H's scale changes, which the relative damp and the solve do not see.
- H is accumulated per batch as an fp32 X^T X (staging dtype fp32 by default, optional row
  chunking) into a per-device partial and scaled once, instead of a running rescale + addmm.
- Damp auto-increase: if the Cholesky fails at damp_percent, GPTQModel retries at damp_percent +
  k * damp_auto_increment (default step 0.01, bisecting the grid below 1.0), then with a growing
  diagonal floor (up to 6 attempts); IST-DASLab just fails. The damp each module ended up with is
  in per_module_seconds[].damp / damp_used, and a note is added when it differs from --damp.
- Shared-input dedup: q/k/v (and gate/up) see the same input, so GPTQModel accumulates that
  Hessian once (the leader's hook; the others skip) and computes the Cholesky factor once for the
  group; IST-DASLab's llama.py accumulates and factors it per linear. Same numbers, less work.
- Defaults that differ (overridden here): act_group_aware=True, damp_percent=0.05, RTN fallback.
- On CUDA a fused kernel can replace the per-column loop of a 128-column block; on CPU the eager
  loop runs. A NaN loss raises (with a fallback configured it would retry with an identity Hinv).
- Calibration runs layer by layer on cached layer inputs, each layer fed the outputs of the
  already-quantized previous layer, with true-sequential subsets, as IST-DASLab's llama.py.

Output JSON: tool, version, torch, transformers, threads, cpu_workers, serialize_modules, dtype,
samples, tokens, bits, group_size, damp, desc_act, seconds_load, seconds_total, hessian_seconds,
solve_seconds, hessian_inverse_seconds, per_layer_seconds, per_layer_hessian_seconds,
per_layer_module_seconds_sum, per_module_seconds, damp_used, regions_seconds, peak_rss_bytes,
notes. A one-line summary goes to stdout. Any failure exits non-zero (2 for bad arguments, else 1)
with one line on stderr saying what failed.
"""
import argparse
import contextlib
import functools
import json
import os
import resource
import sys
import tempfile
import threading
import time
import traceback


class Failure(Exception):
    """A failure with a one-line message for stderr."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line on stderr, exit 2, instead of usage + message
        raise Failure(f"arguments: {message} (see --help)")


def parse_args(argv):
    ap = _Parser(description="time GPTQModel's GPTQ quantization on CPU")
    ap.add_argument("model_dir")
    ap.add_argument("calib_ids_json")
    ap.add_argument("out_json")
    ap.add_argument("--bits", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=128, help="-1 = per channel")
    ap.add_argument("--damp", type=float, default=0.01, help="damp_percent (fraction of mean diag H)")
    ap.add_argument("--desc-act", action="store_true", help="act-order: columns by descending diag H")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = all cores)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                    help="dtype the model is loaded in (calibration forwards)")
    ap.add_argument("--cpu-workers", type=int, default=2,
                    help="GPTQModel's CPU worker pool size (GPTQMODEL_CPU_WORKERS, >= 2)")
    ap.add_argument("--serialize-modules", action="store_true",
                    help="run one GPTQ.quantize (module solve) at a time instead of GPTQModel's "
                         "concurrent module jobs (a lock around it; nothing else changes)")
    ap.add_argument("--log", help="keep GPTQModel's own output (logs, progress, tables) in this file "
                                  "(default: a temporary file, deleted on success)")
    return ap.parse_args(argv)


def load_calibration(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise Failure(f"reading calibration ids {path}: {e}")
    if not isinstance(data, list) or not data:
        raise Failure(f"{path}: expected a non-empty JSON list of lists of token ids")
    for i, s in enumerate(data):
        if not isinstance(s, list) or not s or not all(isinstance(t, int) and t >= 0 for t in s):
            raise Failure(f"{path}: sample {i} is not a non-empty list of non-negative ints")
    return data


def setup_env(threads, cpu_workers):
    # Before gptqmodel / torch are imported.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("GPTQMODEL_OFFLINE", "1")
    os.environ.setdefault("TORCH_COMPILE_DISABLE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""  # a CPU benchmark even on a GPU machine
    os.environ["GPTQMODEL_CPU_WORKERS"] = str(cpu_workers)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(threads)


def run(a, notes):
    ids = load_calibration(a.calib_ids_json)
    try:
        with open(os.path.join(a.model_dir, "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
    except (OSError, ValueError) as e:
        raise Failure(f"reading {a.model_dir}/config.json: {e}")
    vocab = cfg.get("vocab_size")
    if isinstance(vocab, int):
        top = max(max(s) for s in ids)
        if top >= vocab:
            raise Failure(f"calibration token id {top} >= the model's vocab_size {vocab}")

    import torch
    torch.set_num_threads(a.threads)
    import transformers
    import gptqmodel
    from gptqmodel import GPTQModel, QuantizeConfig
    from gptqmodel.quantization import FORMAT

    calib = [{"input_ids": torch.tensor([s], dtype=torch.long),
              "attention_mask": torch.ones(1, len(s), dtype=torch.long)} for s in ids]
    tokens = sum(len(s) for s in ids)

    try:
        qc = QuantizeConfig(bits=a.bits, group_size=a.group_size, sym=True, desc_act=a.desc_act,
                            act_group_aware=False, static_groups=False, damp_percent=a.damp,
                            mse=0.0, true_sequential=True, fallback=None, format=FORMAT.GPTQ,
                            device="cpu", offload_to_disk=False, pack_impl="original")
    except Exception as e:
        raise Failure(f"QuantizeConfig: {type(e).__name__}: {e}")

    dtype = getattr(torch, a.dtype)
    t0 = time.perf_counter()
    try:
        model = GPTQModel.load(a.model_dir, qc, dtype=dtype)
    except Exception as e:
        raise Failure(f"GPTQModel.load({a.model_dir}): {type(e).__name__}: {e}")
    seconds_load = time.perf_counter() - t0

    probe = _Probe(serialize=a.serialize_modules)
    probe.install()
    t0 = time.perf_counter()
    try:
        qlog = model.quantize(calib, batch_size=1, calibration_sort=None,
                              calibration_data_min_length=0)
    except Exception as e:
        raise Failure(f"GPTQModel quantize(): {type(e).__name__}: {e}")
    finally:
        probe.uninstall()
    seconds_total = time.perf_counter() - t0
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    # The GPTQ processor's log: one row per linear, {"process": "gptq", "layer": i, "module": name,
    # "loss": ..., "samples": ..., "damp": ..., "time": seconds (3 decimals), "fwd_time": ...}.
    rows = []
    if isinstance(qlog, dict):
        for proc, entries in qlog.items():
            if str(proc).lower().startswith("gptq") and isinstance(entries, list):
                rows.extend(e for e in entries if isinstance(e, dict))
    log_sum, damps, log_by_module = {}, {}, {}
    for r in rows:
        try:
            layer, sec = int(r.get("layer")), float(r.get("time"))
        except (TypeError, ValueError):
            continue
        log_sum[layer] = log_sum.get(layer, 0.0) + sec
        log_by_module[(layer, r.get("module"))] = r
        d = r.get("damp")
        if d is not None:
            damps[d] = damps.get(d, 0) + 1
    if not rows:
        notes.append("quantize() returned no GPTQ log rows: no per-module damp/loss/sample counts")
    seen = sorted({str(r.get("samples")) for r in rows})
    if rows and seen != [str(tokens)]:
        notes.append(f"GPTQModel reports {'/'.join(seen)} Hessian rows per module, not {tokens} tokens")
    off = {d: n for d, n in damps.items() if _num(d) is not None and abs(_num(d) - a.damp) > 1e-9}
    if off:
        notes.append(f"damp auto-increased (Cholesky failed at {a.damp}) on {sum(off.values())} modules: {off}")

    regions = {}
    timer = getattr(model, "quant_region_timer", None)
    if timer is not None:
        for k, v in timer.snapshot().items():
            if v.get("count"):
                regions[k] = {"seconds": round(v["total"], 6), "count": v["count"]}
    else:
        notes.append("model has no quant_region_timer: regions_seconds unavailable")

    solve_ev = [e for e in probe.events if e[0] == "solve"]
    hess_ev = [e for e in probe.events if e[0] == "hessian"]
    layers = sorted({e[1] for e in solve_ev if e[1] is not None})
    hessian = round(_union(hess_ev), 6) if hess_ev else None
    solve = round(_union(solve_ev), 6) if solve_ev else None
    if hessian is None:
        notes.append("no GPTQ.add_batch call was seen: hessian_seconds unavailable")
    else:
        notes.append("hessian_seconds = wall time inside GPTQ.add_batch (the fp32 X^T X accumulation of "
                     "each linear's inputs, run by the forward hooks; once per shared-input group: q/k/v "
                     "share one Hessian, gate/up share one); the calibration forwards themselves are in "
                     "regions_seconds.pre_quant_forward")
    if solve is None:
        notes.append("no GPTQ.quantize call was seen: solve_seconds and per_layer_seconds unavailable")
    else:
        notes.append("solve_seconds / per_layer_seconds = wall time (union of intervals) inside "
                     "GPTQ.quantize: Hessian merge and 2/n scaling, W clone to fp32, damped Cholesky "
                     "inverse (computed once per shared-input group, the others wait for it), the blocked "
                     "column loop; per_layer_module_seconds_sum is the plain per-layer sum of the quant "
                     "log's per-module times, which double-counts modules solved concurrently"
                     + (" (modules were serialized here: --serialize-modules)" if a.serialize_modules
                        else f" (cpu_workers={a.cpu_workers}: q/k/v and gate/up run concurrently)"))
    notes.append("seconds_total also covers capturing the layer-0 inputs, the calibration and replay "
                 "forwards and creating + int32-packing the QuantLinear modules "
                 "(regions_seconds.submodule_finalize, run on worker threads alongside later work); "
                 "GPTQModel's regions overlap and do not add up to it")
    if str(cfg.get("torch_dtype", cfg.get("dtype", ""))) not in ("", a.dtype):
        notes.append(f"checkpoint dtype {cfg.get('torch_dtype', cfg.get('dtype'))} loaded as {a.dtype}")

    per_module = []
    for kind, layer, name, t_start, t_end in sorted(solve_ev, key=lambda e: e[3]):
        row = log_by_module.get((layer, name), {})
        per_module.append({"layer": layer, "module": name, "seconds": round(t_end - t_start, 6),
                           "start": round(t_start - t0, 6), "damp": _num(row.get("damp")),
                           "loss": _num(row.get("loss")), "hessian_rows": _num(row.get("samples"))})

    return {
        "tool": "gptqmodel",
        "version": getattr(gptqmodel, "__version__", None),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "threads": torch.get_num_threads(),
        "cpu_workers": a.cpu_workers,
        "serialize_modules": a.serialize_modules,
        "dtype": a.dtype,
        "samples": len(ids),
        "tokens": tokens,
        "bits": a.bits,
        "group_size": a.group_size,
        "damp": a.damp,
        "desc_act": a.desc_act,
        "seconds_load": round(seconds_load, 6),
        "seconds_total": round(seconds_total, 6),
        "hessian_seconds": hessian,
        "solve_seconds": solve,
        "hessian_inverse_seconds": regions.get("hessian_inverse", {}).get("seconds"),
        "per_layer_seconds": [round(_union([e for e in solve_ev if e[1] == k]), 6) for k in layers] or None,
        "per_layer_hessian_seconds": [round(_union([e for e in hess_ev if e[1] == k]), 6) for k in layers] or None,
        "per_layer_module_seconds_sum": [round(log_sum[k], 6) for k in sorted(log_sum)] or None,
        "per_module_seconds": per_module,
        "damp_used": damps,
        "regions_seconds": regions,
        "peak_rss_bytes": peak_rss,
        "notes": notes,
    }


class _Probe:
    """Wraps GPTQModel's GPTQ.add_batch / GPTQ.quantize to record (kind, layer, module, start, end).

    Only timing is added (and, with serialize=True, a lock that runs one GPTQ.quantize at a time);
    the wrapped methods are called unchanged.
    """

    def __init__(self, serialize=False):
        self.events = []
        self._lock = threading.Lock()
        self._serial = threading.RLock() if serialize else None
        self._saved = None

    def _record(self, kind, task, start, end):
        named = getattr(task, "_named_module", None)
        layer = getattr(named, "layer_index", None)
        with self._lock:
            self.events.append((kind, layer, getattr(task, "name", None), start, end))

    def install(self):
        from gptqmodel.quantization.gptq import GPTQ
        probe = self
        orig_add, orig_quant = GPTQ.__dict__["add_batch"], GPTQ.__dict__["quantize"]

        @functools.wraps(orig_add)
        def add_batch(task, *args, **kwargs):
            start = time.perf_counter()
            try:
                return orig_add(task, *args, **kwargs)
            finally:
                probe._record("hessian", task, start, time.perf_counter())

        @functools.wraps(orig_quant)
        def quantize(task, *args, **kwargs):
            with probe._serial if probe._serial is not None else contextlib.nullcontext():
                start = time.perf_counter()
                try:
                    return orig_quant(task, *args, **kwargs)
                finally:
                    probe._record("solve", task, start, time.perf_counter())

        self._saved = (GPTQ, orig_add, orig_quant)
        GPTQ.add_batch, GPTQ.quantize = add_batch, quantize

    def uninstall(self):
        if self._saved is not None:
            cls, orig_add, orig_quant = self._saved
            cls.add_batch, cls.quantize = orig_add, orig_quant
            self._saved = None


def _union(events):
    """Total length of the union of the [start, end] intervals of events (kind, layer, name, start, end)."""
    total, cur_s, cur_e = 0.0, None, None
    for s, e in sorted((ev[3], ev[4]) for ev in events):
        if cur_e is None or s > cur_e:
            if cur_e is not None:
                total += cur_e - cur_s
            cur_s, cur_e = s, e
        else:
            cur_e = max(cur_e, e)
    if cur_e is not None:
        total += cur_e - cur_s
    return total


def _num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def _say(fd, text):
    data = text.encode("utf-8", "replace")
    while data:
        data = data[os.write(fd, data):]


def main(argv=None):
    # GPTQModel writes its banner, progress bars and tables to stdout, and torch/transformers warn
    # on stderr. Point fds 1 and 2 at a log file for the whole run and keep the real ones for the
    # one-line summary (stdout) or the one-line error (stderr).
    sys.stdout.flush()
    sys.stderr.flush()
    out_fd, err_fd = os.dup(1), os.dup(2)
    try:
        a = parse_args(argv)
    except Failure as e:
        _say(err_fd, f"speed_gptqmodel: {e}\n")
        return 2
    if a.threads <= 0:
        a.threads = os.cpu_count() or 1
    keep_log = a.log is not None
    try:
        if keep_log:
            log_path = os.path.abspath(a.log)
            log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        else:
            log_fd, log_path = tempfile.mkstemp(prefix="speed_gptqmodel.", suffix=".log")
    except OSError as e:
        _say(err_fd, f"speed_gptqmodel: opening the log file: {e}\n")
        return 1
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)

    notes = []
    error = None
    try:
        if a.cpu_workers < 2:
            raise Failure("--cpu-workers must be >= 2 (GPTQModel's model-loader pool takes 2 of them)")
        out_dir = os.path.dirname(os.path.abspath(a.out_json))
        if not os.path.isdir(out_dir) or not os.access(out_dir, os.W_OK):
            raise Failure(f"cannot write {a.out_json}: {out_dir} is not a writable directory")
        setup_env(a.threads, a.cpu_workers)
        res = run(a, notes)
        try:
            with open(a.out_json, "w", encoding="utf-8") as f:
                json.dump(res, f, indent=1)
                f.write("\n")
        except OSError as e:
            raise Failure(f"writing {a.out_json}: {e}")
    except Failure as e:
        error = str(e)
    except BaseException as e:  # noqa: BLE001 - one line, whatever failed
        traceback.print_exc()  # into the log
        error = f"{type(e).__name__}: {e}"
    finally:
        sys.stdout.flush()
        sys.stderr.flush()

    if error is not None:
        where = ""
        try:
            if os.path.getsize(log_path) > 0 or keep_log:
                where = f" (GPTQModel output: {log_path})"
            else:
                os.unlink(log_path)
        except OSError:
            pass
        _say(err_fd, f"speed_gptqmodel: {' '.join(error.split())}{where}\n")
        return 1
    if not keep_log:
        try:
            os.unlink(log_path)
        except OSError:
            pass
    layers = res["per_layer_seconds"] or []
    _say(out_fd,
         f"gptqmodel {res['version']} GPTQ w{a.bits} g{a.group_size} desc_act={a.desc_act} "
         f"{a.dtype} threads={res['threads']} workers={a.cpu_workers}: {res['samples']} samples, "
         f"{res['tokens']} tokens: quantize {res['seconds_total']:.2f} s (hessian "
         f"{_fmt(res['hessian_seconds'])} s, solve {_fmt(res['solve_seconds'])} s, {len(layers)} layers), "
         f"load {res['seconds_load']:.2f} s, peak RSS {res['peak_rss_bytes'] / 2**30:.2f} GiB "
         f"-> {a.out_json}\n")
    return 0


def _fmt(x):
    return "n/a" if x is None else f"{x:.2f}"


if __name__ == "__main__":
    sys.exit(main())
