#!/usr/bin/env python3
"""SIGKILL `sliderquant quantize` at several points; the rerun must equal an uninterrupted run.

    python3 tests/reliability/test_kill.py --cli build/sliderquant \\
        --model tests/fixtures/stories260K/hf --text tests/fixtures/text/wikitext2_head.txt

Two small recipes are written to the temporary directory: GPTQ w4 (every block of
stories260K, one checkpoint per block) and SliderQuant w2 (sliding windows, one checkpoint
per trained window stage), with small calibration. Each is run to completion twice
(the reference, and a second run that shows the output is deterministic at all). Then:

  a  gptq: killed during calibration (OUT.work exists, no block checkpoint yet)
  b  gptq: killed right after the first block checkpoint (OUT.work/block_00000.safetensors)
  c  sliderquant: killed mid-window, right after the first window checkpoint (windows.json)
  c2 sliderquant: killed as in c, resumed and killed again in the second stage, resumed
  d  gptq: killed while the output is being written (OUT.tmp.* next to OUT)

After each kill: nothing at OUT, or OUT complete (equal to the reference). Then the same
command is run again (no --force): exit code 0, resumed from OUT.work where a complete
checkpoint was there (b, c, c2, d: a "resuming" message), every output file byte-identical to the
reference (quantization_config.json after removing measurement fields: timings, seconds,
peak memory; the dropped keys are printed), no OUT.tmp.* next to OUT, no OUT.work left,
nothing else in the run's directory. Each run uses its own directory with the relative
path `out`, so the recorded paths are the same strings. A kill point the process ran past
before the poll saw it is retried (fresh directory), and a failure if never hit.
Exit code 1 with every difference (file, tensor) listed on failure.
"""
import hashlib
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

import common  # tests/reliability/common.py: options, input checks, the report

GPTQ_RECIPE = {
    "name": "kill-gptq-w4",
    "description": "test_kill: GPTQ w4 per-channel, one checkpoint per block",
    "calibration": {"dataset": "c4-2k", "samples": 16, "seqlen": 256, "seed": 0},
    "format": "w4",
    "pipeline": [{"pass": "gptq", "options": {"damp": 0.01, "block_size": 128}}],
}
SLIDER_RECIPE = {
    "name": "kill-sliderquant-w2",
    "description": "test_kill: SliderQuant w2, windows fill 4 / size 2 / stride 1, two stages, 1 epoch each",
    "calibration": {"dataset": "c4-2k", "samples": 8, "seqlen": 64, "seed": 0},
    "format": "w2",
    "pipeline": [{"pass": "sliderquant", "options": {
        "epochs": 2, "quant_rates": [0.5, 1.0], "stages": "global", "fill": 4, "window": 2, "stride": 1,
        "lora_rank": 4, "lora_lr": 5e-4, "lwc_lr": 1e-2, "scale_lr": 0, "batch": 3, "seed": 0}}],
}
MEASUREMENT_KEY = re.compile(r"second|timing|elapsed|peak|rss|_bytes$| bytes$", re.I)
POLL = 0.002
TRIES = 4


class Failures(list):
    def add(self, case, msg):
        self.append(f"[{case}] {msg}")


def read_safetensors_header(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        return json.loads(f.read(n)), 8 + n


def diff_safetensors(a, b):
    """Names of tensors (and the metadata) that differ between two safetensors files."""
    try:
        ha, oa = read_safetensors_header(a)
        hb, ob = read_safetensors_header(b)
    except (OSError, ValueError, struct.error) as e:
        return [f"(unreadable safetensors: {e})"]
    out = []
    if ha.get("__metadata__") != hb.get("__metadata__"):
        out.append("__metadata__")
    names = sorted((set(ha) | set(hb)) - {"__metadata__"})
    with open(a, "rb") as fa, open(b, "rb") as fb:
        for n in names:
            if n not in ha or n not in hb:
                out.append(f"{n} (only in {'reference' if n in ha else 'rerun'})")
                continue
            ta, tb = ha[n], hb[n]
            if ta["dtype"] != tb["dtype"] or ta["shape"] != tb["shape"]:
                out.append(f"{n} (dtype/shape {ta['dtype']}{ta['shape']} vs {tb['dtype']}{tb['shape']})")
                continue
            fa.seek(oa + ta["data_offsets"][0])
            fb.seek(ob + tb["data_offsets"][0])
            da = fa.read(ta["data_offsets"][1] - ta["data_offsets"][0])
            db = fb.read(tb["data_offsets"][1] - tb["data_offsets"][0])
            if da != db:
                out.append(n)
    return out


DROPPED = set()


def strip_measurements(x, path=""):
    if isinstance(x, dict):
        out = {}
        for k, v in x.items():
            p = f"{path}/{k}"
            if MEASUREMENT_KEY.search(k):
                DROPPED.add(re.sub(r"\[\d+\]", "[]", p))
                continue
            out[k] = strip_measurements(v, p)
        return out
    if isinstance(x, list):
        return [strip_measurements(v, f"{path}[]") for v in x]
    return x


def json_diff(a, b, path=""):
    """Paths where two JSON values differ (first few)."""
    if type(a) is not type(b):
        return [f"{path or '/'}: {str(a)[:80]} != {str(b)[:80]}"]
    if isinstance(a, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b:
                out.append(f"{path}/{k}: only in {'reference' if k in a else 'rerun'}")
            else:
                out += json_diff(a[k], b[k], f"{path}/{k}")
        return out
    if isinstance(a, list):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items != {len(b)} items ({str(a)[:120]} vs {str(b)[:120]})"]
        out = []
        for i, (u, v) in enumerate(zip(a, b)):
            out += json_diff(u, v, f"{path}[{i}]")
        return out
    return [] if a == b else [f"{path}: {str(a)[:80]} != {str(b)[:80]}"]


def compare_outputs(ref, out):
    """Differences between two output directories: every file, tensors named."""
    diffs = []
    fr, fo = sorted(os.listdir(ref)), sorted(os.listdir(out))
    if fr != fo:
        diffs.append(f"file sets differ: only in reference {sorted(set(fr) - set(fo))}, "
                     f"only in rerun {sorted(set(fo) - set(fr))}")
    for f in sorted(set(fr) & set(fo)):
        a, b = os.path.join(ref, f), os.path.join(out, f)
        if f == "quantization_config.json":
            with open(a) as x, open(b) as y:
                ja, jb = strip_measurements(json.load(x)), strip_measurements(json.load(y))
            d = json_diff(ja, jb)
            if d:
                diffs.append(f"{f} (measurement fields removed) differs at: " + "; ".join(d[:8])
                             + (f"; ... {len(d) - 8} more" if len(d) > 8 else ""))
            continue
        with open(a, "rb") as x, open(b, "rb") as y:
            if x.read() == y.read():
                continue
        if f.endswith(".safetensors"):
            t = diff_safetensors(a, b)
            diffs.append(f"{f} differs in {len(t)} tensor(s): {', '.join(t[:20])}"
                         + (f", ... {len(t) - 20} more" if len(t) > 20 else ""))
        else:
            diffs.append(f"{f} differs")
    return diffs


class Runner:
    def __init__(self, args, tmp):
        self.args, self.tmp = args, tmp
        self.recipes = {}
        for r in (GPTQ_RECIPE, SLIDER_RECIPE):
            p = os.path.join(tmp, r["name"] + ".json")
            with open(p, "w") as f:
                json.dump(r, f)
            self.recipes[r["name"]] = p

    def argv(self, recipe):
        return [self.args.cli, "quantize", self.args.model, "--recipe", self.recipes[recipe], "--out", "out",
                "--calib", self.args.text, "--threads", "1"]

    def run(self, recipe, cwd):
        t0 = time.monotonic()
        p = subprocess.run(self.argv(recipe), cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=300)
        return p.returncode, p.stderr.decode(errors="replace"), time.monotonic() - t0

    def start(self, recipe, cwd):
        return subprocess.Popen(self.argv(recipe), cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)

    def kill_when(self, recipe, cwd, cond):
        """Starts quantize in CWD and SIGKILLs it as soon as cond(cwd) is true.
        Returns (killed, what cond saw, stderr)."""
        p = self.start(recipe, cwd)
        seen = None
        deadline = time.monotonic() + 300
        while p.poll() is None and time.monotonic() < deadline:
            seen = cond(cwd)
            if seen:
                p.send_signal(signal.SIGKILL)
                break
            time.sleep(POLL)
        p.wait()
        err = p.stderr.read().decode(errors="replace")
        p.stderr.close()
        return p.returncode == -signal.SIGKILL and bool(seen), seen, err


def work_files(cwd):
    w = os.path.join(cwd, "out.work")
    try:
        return sorted(os.listdir(w))
    except OSError:
        return None


def cond_calibration(cwd):
    files = work_files(cwd)
    if files is not None and not any(f.startswith("block_") for f in files):
        return f"out.work holds {files}"
    return None


def cond_first_block(cwd):
    files = work_files(cwd)  # the block file and the state.json that names it (a complete checkpoint)
    if files and "block_00000.safetensors" in files and "state.json" in files:
        return f"out.work holds {files}"
    return None


def units_done(cwd):
    try:
        with open(os.path.join(cwd, "out.work", "windows.json")) as f:
            return json.load(f).get("units_done", 0)
    except (OSError, ValueError):
        return 0


def cond_units(n):
    def cond(cwd):
        u = units_done(cwd)
        return f"windows.json units_done={u}, out.work holds {work_files(cwd)}" if u >= n else None
    return cond


def cond_writing(cwd):
    tmps = [f for f in os.listdir(cwd) if f.startswith("out.tmp.")]
    return f"{tmps} next to out" if tmps else None


def main():
    args = common.parse_args(__doc__, "a small HF model directory (stories260K: 5 blocks)", "a text file for calibration")
    if args is None:
        return 1

    t_all = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="sq_kill.")
    fails = Failures()
    try:
        R = Runner(args, tmp)
        ref, ref_err = {}, {}
        # ---- references: two uninterrupted runs of each recipe, which must agree
        for recipe in (GPTQ_RECIPE["name"], SLIDER_RECIPE["name"]):
            dirs = []
            for i in (1, 2):
                d = os.path.join(tmp, f"ref{i}_{recipe}")
                os.mkdir(d)
                rc, err, dt = R.run(recipe, d)
                print(f"  reference {i} {recipe:<20} {dt:5.1f}s  rc={rc}", flush=True)
                if rc != 0:
                    fails.add("reference", f"{recipe}: exit code {rc}\n    argv: {R.argv(recipe)!r}\n"
                                           f"    stderr: {err.strip()[-1500:]}")
                    continue
                left = sorted(set(os.listdir(d)) - {"out"})
                if left:
                    fails.add("reference", f"{recipe}: left next to out after success: {left}")
                dirs.append(os.path.join(d, "out"))
                ref_err[recipe] = err
            if len(dirs) == 2:
                d = compare_outputs(dirs[0], dirs[1])
                if d:
                    fails.add("determinism", f"{recipe}: two uninterrupted runs differ:\n      " + "\n      ".join(d))
                ref[recipe] = dirs[0]
        if GPTQ_RECIPE["name"] not in ref or SLIDER_RECIPE["name"] not in ref:
            raise RuntimeError("no reference output; cannot compare resumed runs")
        # windows per stage, from the reference's log ("sliderquant: 8 windows 0-0,0-1,...")
        m = re.search(r"sliderquant: (\d+) windows", ref_err[SLIDER_RECIPE["name"]])
        if not m:
            raise RuntimeError("cannot find the window count in the sliderquant reference's log")
        K = int(m.group(1))

        cases = [  # (label, recipe, what, kill conditions, the rerun must resume from out.work)
            ("a", GPTQ_RECIPE["name"], "during calibration (out.work exists, no block checkpoint)",
             [cond_calibration], False),
            ("b", GPTQ_RECIPE["name"], "after the first block checkpoint", [cond_first_block], True),
            ("c", SLIDER_RECIPE["name"], "mid-window, after the first window checkpoint", [cond_units(1)], True),
            ("c2", SLIDER_RECIPE["name"], "after the first window checkpoint, then again in stage 2",
             [cond_units(1), cond_units(K + 2)], True),
            ("d", GPTQ_RECIPE["name"], "while writing the output (out.tmp.* next to out)", [cond_writing], True),
        ]
        for label, recipe, what, conds, must_resume in cases:
            t0 = time.monotonic()
            hit, notes, d = False, [], None
            for attempt in range(1, TRIES + 1):
                d = os.path.join(tmp, f"kill_{label}")
                shutil.rmtree(d, ignore_errors=True)
                os.mkdir(d)
                notes = []
                ok = True
                for i, cond in enumerate(conds):
                    killed, seen, err = R.kill_when(recipe, d, cond)
                    if not killed:
                        ok = False
                        notes.append(f"attempt {attempt}: kill {i + 1} missed (process ended first: {err.strip()[-300:]})")
                        break
                    notes.append(f"killed at {seen}")
                    debris = sorted(os.listdir(d))
                    notes.append(f"after kill {i + 1}: {debris}")
                    out = os.path.join(d, "out")
                    if os.path.lexists(out):
                        diffs = compare_outputs(ref[recipe], out) if os.path.isdir(out) else ["not a directory"]
                        if diffs:
                            fails.add(label, f"incomplete output at out after SIGKILL {what}:\n      "
                                             + "\n      ".join(diffs))
                        else:
                            notes.append("out exists after the kill and is complete")
                if ok:
                    hit = True
                    break
                print(f"  {label}: " + notes[-1], flush=True)
            if not hit:
                fails.add(label, f"could not SIGKILL {what} in {TRIES} tries (the process finished first)")
                continue
            out = os.path.join(d, "out")
            existed = os.path.lexists(out)
            rc, err, dt = R.run(recipe, d)
            resumed = re.search(r"resum", err, re.I) is not None
            if existed:
                # a complete OUT was renamed into place before the kill: the rerun must refuse, not touch it
                if rc == 0:
                    fails.add(label, "rerun without --force over an existing complete out exited 0")
                diffs = compare_outputs(ref[recipe], out)
                if diffs:
                    fails.add(label, "out changed by the refused rerun: " + "; ".join(diffs))
                notes.append(f"rerun refused the existing out (rc={rc})")
            elif rc != 0:
                fails.add(label, f"rerun after SIGKILL {what}: exit code {rc}\n    argv: {R.argv(recipe)!r}\n"
                                 f"    cwd: {d}\n    {'; '.join(notes)}\n    stderr: {err.strip()[-1500:]}")
            else:
                if must_resume and not resumed:
                    fails.add(label, f"rerun after SIGKILL {what} started over instead of resuming from out.work "
                                     f"(no 'resuming' message on stderr)")
                diffs = compare_outputs(ref[recipe], out)
                if diffs:
                    fails.add(label, f"rerun after SIGKILL {what} ({'resumed' if resumed else 'no resume message'})"
                                     f" is not byte-identical to the uninterrupted run:\n      "
                                     + "\n      ".join(diffs) + f"\n    kill: {'; '.join(notes)}")
            debris = sorted(set(os.listdir(d)) - {"out"})
            tmps = [e for e in debris if ".tmp." in e]
            if tmps:
                fails.add(label, f"temporaries left next to out after the successful rerun: {tmps}")
            if not existed and "out.work" in debris:
                fails.add(label, f"out.work left after the successful rerun: {work_files(d)}")
            other = [e for e in debris if ".tmp." not in e and e != "out.work"]
            if other:
                fails.add(label, f"unexpected entries next to out after the rerun: {other}")
            print(f"  {label:<3} {recipe:<20} {time.monotonic() - t0:5.1f}s  killed {what}; "
                  f"{'; '.join(notes)}; rerun rc={rc} {'(resumed)' if resumed else '(started over)'} {dt:.1f}s",
                  flush=True)
        if DROPPED:
            print("  quantization_config.json: dropped measurement fields " + ", ".join(sorted(DROPPED)))
    except Exception as e:  # a harness error is a failure, never a skip
        fails.add("harness", f"{type(e).__name__}: {e}")
    finally:
        common.drop_tmp(tmp, args.keep)
    return common.report("test_kill", fails, time.monotonic() - t_all)


if __name__ == "__main__":
    sys.exit(main())
