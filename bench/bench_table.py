#!/usr/bin/env python3
"""bench/bench_table.py: the accuracy table, every method against the peers at equal bits.

One model (default models/smollm2-135m from scripts/get_models.sh), one calibration set for
everyone (c4-2k, --samples x --seqlen tokens, --seed), and for every row:

  quantize   sliderquant's recipes (RTN, GPTQ as published, GPTQ group-preserving, D2Quant,
             SliderQuant, the ratio method, adaptive transforms and their homogeneous baselines),
             GPTQModel's GPTQ (tests/hfquant/gptqmodel_quantize.py on the same token ids),
             AutoRound (bench/table_peers.py autoround, same token ids, exported as GPTQ) and
             llama.cpp's k-quants (bench/table_peers.py llamacpp: llama_model_quantize on the
             model's F32 GGUF, no importance matrix);
  evaluate   the output with sliderquant eval (its evaluator parity with transformers and lm-eval
             is bench/bench_parity.py and tests/lmeval): GPTQ-protocol perplexity on WikiText-2
             and c4-2k at seqlen 2048 (first --windows windows of each), the mean of the 7
             zero-shot tasks (first --zs-limit items of each), KL(base || model) on the same
             WikiText-2 windows;
  measure    bits per weight of the decoder linears as stored (scales, zeros, indices included;
             embeddings / lm_head / norms are not counted, for every tool alike), the quantize
             process's wall seconds and peak RSS (the child's ru_maxrss).

Every row's results are cached in --work/rows/ID.json under a key of its settings, so a run
that stops (or --budget-s) resumes where it was. Output: --work/table.json, table.md and
table.png (perplexity vs bits per weight). Learned passes take --epochs (CPU budget; the
recipes' own epoch counts are the papers' GPU settings and are stated beside each row).

  .venv/bin/python bench/bench_table.py                       # everything (hours on 2 cores)
  .venv/bin/python bench/bench_table.py --rows 'W4g128/*'     # one bits column
  .venv/bin/python bench/bench_table.py --report-only         # re-render from the cache
"""
import argparse
import fnmatch
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
PY = os.path.join(REPO, ".venv", "bin", "python")
if not os.path.exists(PY):
    PY = sys.executable
TASKS = "arc_easy,arc_challenge,boolq,hellaswag,lambada_openai,piqa,winogrande"


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------------------------------------
# rows: (bits column, row name, kind, spec). Ours take a configs/ recipe with overrides
# (format, pass options); "learned" rows get --epochs. Peers name their tool's settings.
def ours(recipe, fmt=None, learned=False, overrides=None, **opts):
    return {"kind": "ours", "recipe": recipe, "format": fmt, "options": opts, "learned": learned, "overrides": overrides}


def gptaq(fmt):
    """GPTAQ alone: the d2quant pass with rotation, DSQ and DAC off (group-preserving order, min-max groups)."""
    return ours("d2quant-w2g128", fmt, overrides=[], rotate=False, dac=False, gptaq=True, mse=False)


ROWS = [
    # W4, group 128 (576 = 4 x 128 + 64 and 1536 = 12 x 128: ragged last group on 576-wide inputs)
    ("W4g128", "RTN", ours("rtn-w4g128")),
    ("W4g128", "GPTQ", ours("gptq-w4g128")),
    ("W4g128", "GPTQ act-order", ours("gptq-act-w4g128")),
    ("W4g128", "GPTQ group-preserving", ours("gptq-gp-w4g128")),
    ("W4g128", "GPTAQ", gptaq("w4g128")),
    ("W4g128", "SliderQuant", ours("sliderquant-w4a16", "w4g128", learned=True)),
    ("W4g128", "GPTQModel GPTQ", {"kind": "gptqmodel", "bits": 4, "group": 128, "desc_act": False}),
    ("W4g128", "GPTQModel GPTQ desc_act", {"kind": "gptqmodel", "bits": 4, "group": 128, "desc_act": True}),
    ("W4g128", "GPTQModel GPTQ asym", {"kind": "gptqmodel", "bits": 4, "group": 128, "desc_act": False, "sym": False}),
    # AutoRound leaves a linear in full precision when its input width is not a multiple of the
    # group size (seen on stories260K), so on SmolLM2 (576 = 4.5 x 128) it runs at group 64
    ("W4g128", "AutoRound (g64)", {"kind": "autoround", "bits": 4, "group": 64}),
    ("W4g128", "llama.cpp Q4_K_M", {"kind": "llamacpp", "type": "Q4_K_M"}),
    ("W4g128", "llama.cpp Q4_K_S", {"kind": "llamacpp", "type": "Q4_K_S"}),
    ("W4g128", "GPTQ onto Q4_K", ours("gptq-q4_k")),
    ("W4g128", "GPTQ w4g32s (Q4_0 grid)", ours("gptq-w4g128", "w4g32s")),  # 4.5 bits, beside llama.cpp Q4_0  # llama.cpp's grid and fallbacks: the k-quant comparison
    ("W4g128", "llama.cpp Q4_0", {"kind": "llamacpp", "type": "Q4_0"}),
    # W3, group 128
    ("W3g128", "RTN", ours("rtn-w3g128")),
    ("W3g128", "GPTQ", ours("gptq-w3g128")),
    ("W3g128", "GPTQ group-preserving", ours("gptq-gp-w3g128")),
    ("W3g128", "GPTAQ", gptaq("w3g128")),
    ("W3g128", "D2Quant", ours("d2quant-w3g128")),
    ("W3g128", "ratio (searched)", ours("ratio-w3g128", learned=True)),
    ("W3g128", "SliderQuant", ours("sliderquant-w3a16", "w3g128", learned=True)),
    ("W3g128", "GPTQModel GPTQ", {"kind": "gptqmodel", "bits": 3, "group": 128, "desc_act": False}),
    ("W3g128", "AutoRound (g64)", {"kind": "autoround", "bits": 3, "group": 64}),
    ("W3g128", "llama.cpp Q3_K_M", {"kind": "llamacpp", "type": "Q3_K_M"}),
    ("W3g128", "GPTQ onto Q3_K", ours("gptq-q3_k")),
    # W2, group 64
    ("W2g64", "RTN", ours("rtn-w2g64")),
    ("W2g64", "GPTQ", ours("gptq-w2g64")),
    ("W2g64", "GPTQ group-preserving", ours("gptq-gp-w2g64")),
    ("W2g64", "GPTAQ", gptaq("w2g64")),
    ("W2g64", "D2Quant", ours("d2quant-w2g128", "w2g64", overrides=[{"match": "blocks.*.mlp.down", "format": "w2g64d"}])),
    ("W2g64", "ratio (searched)", ours("ratio-w2g64", learned=True)),
    ("W2g64", "ratio (fixed 0.10)", ours("ratio-w2g64", learned=True, fixed_ratio=0.10)),
    ("W2g64", "SliderQuant", ours("sliderquant-w2a16g128", "w2g64", learned=True)),
    ("W2g64", "GPTQModel GPTQ", {"kind": "gptqmodel", "bits": 2, "group": 64, "desc_act": False}),
    ("W2g64", "GPTQModel GPTQ asym", {"kind": "gptqmodel", "bits": 2, "group": 64, "desc_act": False, "sym": False}),
    ("W2g64", "AutoRound", {"kind": "autoround", "bits": 2, "group": 64}),
    ("W2g64", "llama.cpp Q2_K", {"kind": "llamacpp", "type": "Q2_K"}),
    ("W2g64", "GPTQ onto Q2_K mix", ours("gptq-q2_k-q3_k")),
    ("W2g64", "SliderQuant onto Q2_K", ours("sliderquant-q2_k", learned=True)),
    # W2 per-channel
    ("W2", "RTN", ours("rtn-w2g64", "w2")),
    ("W2", "GPTQ", ours("gptq-w4-perchannel", "w2")),
    ("W2", "SliderQuant", ours("sliderquant-w2a16", learned=True)),
    ("W2", "GPTQModel GPTQ", {"kind": "gptqmodel", "bits": 2, "group": -1, "desc_act": False}),
    # weights and activations
    ("W4A4KV4", "rotation (Hadamard)", ours("rotate-w4a4kv4", learned=True)),
    ("W4A4KV4", "affine", ours("affine-w4a4kv4", learned=True)),
    ("W4A4KV4", "adaptive", ours("adaptive-w4a4kv4", learned=True)),
    ("W4A4KV4", "SliderQuant", ours("sliderquant-w4a4", learned=True)),
    ("W3A3K2V2", "rotation (Hadamard)", ours("adaptive-w3a3k2v2", learned=True, mode="rotation")),
    ("W3A3K2V2", "affine", ours("adaptive-w3a3k2v2", learned=True, mode="affine")),
    ("W3A3K2V2", "adaptive", ours("adaptive-w3a3k2v2", learned=True)),
]


def row_id(col, name):
    return "%s/%s" % (col, name)


def slug(text):
    return "".join(c if c.isalnum() else "-" for c in text).strip("-").lower()


# ---------------------------------------------------------------------------------------------
def run(cmd, log_path, env=None, timeout=None):
    """Runs cmd with output to log_path; returns (rc, wall seconds, peak RSS bytes of the child)."""
    log("+ " + " ".join(cmd))
    t0 = time.time()
    with open(log_path, "w") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
        try:
            _, status, usage = os.wait4(p.pid, 0) if timeout is None else _wait_timeout(p, timeout)
        except KeyboardInterrupt:
            p.kill()
            raise
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, time.time() - t0, usage.ru_maxrss * 1024


def _wait_timeout(p, timeout):
    end = time.time() + timeout
    while True:
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            return pid, status, usage
        if time.time() > end:
            p.kill()
            return os.wait4(p.pid, 0)
        time.sleep(1)


def tail(path, n=8):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:]).strip()
    except OSError:
        return ""


def write_recipe(args, rid, spec):
    src = os.path.join(REPO, "configs", spec["recipe"] + ".json")
    with open(src) as f:
        rec = json.load(f)
    rec["name"] = "table-" + slug(rid)
    rec["calibration"] = {"dataset": args.calib, "samples": args.samples, "seqlen": args.seqlen, "seed": args.seed}
    if spec["format"]:
        rec["format"] = spec["format"]
    opts = dict(spec["options"])
    if spec.get("overrides") is not None:
        rec["overrides"] = spec["overrides"]
        if not rec["overrides"]:
            del rec["overrides"]
    po = rec["pipeline"][0]["options"]
    if spec["learned"] and "epochs" in po:
        po["epochs"] = args.epochs
    if spec["learned"] and "search_epochs" in po:
        po["search_epochs"] = min(po["search_epochs"], args.epochs)
    po.update(opts)
    path = os.path.join(args.work, "recipes", rec["name"] + ".json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(rec, f, indent=2)
    return path, rec


# ---------------------------------------------------------------------------------------------
# bits per weight of the decoder linears as stored, read from the output files themselves
LINEAR_SUFFIXES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
GGUF_LINEARS = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down")


def safetensors_headers(d):
    out = {}
    for fn in sorted(os.listdir(d)):
        if fn.endswith(".safetensors"):
            with open(os.path.join(d, fn), "rb") as f:
                n = int.from_bytes(f.read(8), "little")
                h = json.loads(f.read(n))
            h.pop("__metadata__", None)
            out.update(h)
    return out


def gptq_bits(d):
    """GPTQ checkpoint: bytes of qweight + qzeros + scales + g_idx of the decoder linears over their weights."""
    h = safetensors_headers(d)
    with open(os.path.join(d, "config.json")) as f:
        cfg = json.load(f)
    bits = (cfg.get("quantization_config") or {}).get("bits")
    stored = weights = 0
    for name, t in h.items():
        base, _, part = name.rpartition(".")
        if not base.endswith(LINEAR_SUFFIXES):
            continue
        o, e = t["data_offsets"]
        if part in ("qweight", "qzeros", "scales", "g_idx"):
            stored += (e - o) * 8
        if part == "qweight":  # [in * bits / 32, out] int32
            weights += t["shape"][0] * 32 // bits * t["shape"][1]
        if part == "weight":
            stored += (e - o) * 8
            n = 1
            for s in t["shape"]:
                n *= s
            weights += n
    return stored / weights if weights else None


def gguf_bits(path):
    from gguf import GGUFReader  # the .venv's gguf-py
    r = GGUFReader(path)
    stored = weights = 0
    types = {}
    for t in r.tensors:
        parts = t.name.split(".")
        if len(parts) >= 3 and parts[0] == "blk" and parts[2] in GGUF_LINEARS:
            stored += int(t.n_bytes) * 8
            weights += int(t.n_elements)
            types[t.tensor_type.name] = types.get(t.tensor_type.name, 0) + int(t.n_elements)
    return (stored / weights if weights else None), types


# ---------------------------------------------------------------------------------------------
def eval_cmds(args, target, stem):
    """The evaluation of one output as (command, json path) pairs. A quantized model: KL(base || model)
    on the WikiText-2 windows (which also gives its WikiText-2 perplexity on them: the same windows,
    the same L - 1 scored tokens each as the --ppl protocol, checked on the baseline), then c4-2k
    perplexity and the zero-shot tasks. The baseline: --ppl on both."""
    common = ["--data-dir", args.data_dir, "-q"] + (["--max-windows", str(args.windows)] if args.windows else [])
    common += ["--threads", str(args.threads)] if args.threads else []
    zs = ["--tasks", TASKS, "--limit", str(args.zs_limit)] if args.zs_limit >= 0 else []
    if target == args.model or not args.kld:
        return [([args.bin, "eval", target, "--ppl", "wikitext2,c4-2k", "--json", stem + ".eval.json"] + zs + common,
                 stem + ".eval.json")]
    return [([args.bin, "eval", target, "--kld-base", args.model, "--json", stem + ".kld.json"] + common, stem + ".kld.json"),
            ([args.bin, "eval", target, "--ppl", "c4-2k", "--json", stem + ".eval.json"] + zs + common, stem + ".eval.json")]


def short(dataset):
    return "wikitext2" if "wikitext" in dataset else "c4-2k" if "c4" in dataset else dataset


def read_eval(paths):
    res = {"ppl": {}, "kld": {}, "zeroshot": {}}
    for path in paths:
        with open(path) as f:
            j = json.load(f)
        for p in j.get("perplexity", []):
            res["ppl"][short(p["dataset"])] = p["ppl"]
            res["ppl_windows"] = p.get("windows")
        for k in (j.get("kld") or {}).get("results", []):
            res["kld"][short(k["dataset"])] = {"mean_kl": k["mean_kl"], "top1": k["top1_agreement"],
                                               "windows": k["windows"]}
            res["ppl"].setdefault(short(k["dataset"]), k["model_ppl"])
            res.setdefault("base_ppl_in_kld", {})[short(k["dataset"])] = k["base_ppl"]
        for task, z in (j.get("zeroshot") or {}).items():
            res["zeroshot"][task] = {"acc": z["acc"], "acc_norm": z.get("acc_norm"), "metric": z.get("metric"),
                                     "score": z.get("score"), "n": z.get("n")}
        if j.get("zeroshot_summary"):  # mean over tasks of 100 x (acc_norm where the task reports it, else acc)
            res["zs_mean"] = j["zeroshot_summary"]["score"]
            res["zs_rule"] = j["zeroshot_summary"]["rule"]
    return res


def cached_row(rdir, stem, key_src):
    """(key of KEY_SRC, the row's cache path, the cached row if it ran with that key and succeeded)."""
    key = hashlib.sha256(json.dumps(key_src, sort_keys=True).encode()).hexdigest()[:16]
    cache = os.path.join(rdir, stem + ".json")
    if os.path.exists(cache):
        with open(cache) as f:
            old = json.load(f)
        if old.get("key") == key and old.get("ok"):
            return key, cache, old
    return key, cache, None


def do_row(args, col, name, spec, calib_ids):
    rid = row_id(col, name)
    s = slug(rid)
    rdir = os.path.join(args.work, "rows")
    os.makedirs(rdir, exist_ok=True)
    key, cache, old = cached_row(rdir, s, {
        "spec": spec, "model": os.path.abspath(args.model), "calib": [args.calib, args.samples, args.seqlen, args.seed],
        "epochs": args.epochs if spec.get("learned") else None, "windows": args.windows, "zs_limit": args.zs_limit,
        "kld": args.kld, "v": 1})
    if old:
        return old
    row = {"id": rid, "column": col, "name": name, "spec": spec, "key": key, "ok": False}
    out = os.path.join(args.work, "out", s)
    shutil.rmtree(out, ignore_errors=True)
    if os.path.exists(out + ".gguf"):
        os.remove(out + ".gguf")
    qlog = os.path.join(rdir, s + ".quantize.log")
    kind = spec["kind"]
    if kind == "ours":
        rpath, rec = write_recipe(args, rid, spec)
        row["recipe"] = rec
        qjson = os.path.join(rdir, s + ".quantize.json")
        cmd = [args.bin, "quantize", args.model, "--recipe", rpath, "--out", out, "--json", qjson, "--force", "-q",
               "--data-dir", args.data_dir]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        target = out
        row["tool"] = "sliderquant"
    elif kind == "gptqmodel":
        cmd = [PY, os.path.join(REPO, "tests", "hfquant", "gptqmodel_quantize.py"), args.model, out,
               "--bits", str(spec["bits"]), "--group", str(spec["group"]), "--calib-ids", calib_ids,
               "--desc-act" if spec["desc_act"] else "--no-desc-act", "--sym" if spec.get("sym", True) else "--asym"]
        target = out
        row["tool"] = "GPTQModel " + pkg_version("gptqmodel")
    elif kind == "autoround":
        cmd = [PY, os.path.join(HERE, "table_peers.py"), "autoround", args.model, out, "--bits", str(spec["bits"]),
               "--group", str(spec["group"]), "--calib-ids", calib_ids, "--iters", str(args.autoround_iters)]
        target = out
        row["tool"] = "AutoRound " + pkg_version("auto-round")
    elif kind == "llamacpp":
        target = out + ".gguf"
        cmd = [PY, os.path.join(HERE, "table_peers.py"), "llamacpp", base_gguf(args), target, "--type", spec["type"],
               "--threads", str(args.threads)]
        row["tool"] = "llama.cpp (llama-cpp-python %s)" % pkg_version("llama-cpp-python")
    else:
        raise ValueError(kind)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    row["loadavg_before"] = list(os.getloadavg())  # other work on the machine inflates the wall times
    env = dict(os.environ)
    if args.threads:  # the peers' torch / OpenMP threads, as --threads for sliderquant
        env.update({"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)})
    rc, wall, rss = run(cmd, qlog, env=env, timeout=args.row_timeout or None)
    row["loadavg_after"] = list(os.getloadavg())
    row.update({"quantize_cmd": cmd, "quantize_rc": rc, "quantize_wall_s": round(wall, 2), "quantize_peak_rss_bytes": rss})
    if rc != 0:
        row["error"] = tail(qlog)
        log("FAILED %s (quantize rc %d):\n%s" % (rid, rc, row["error"]))
        save_json(cache, row)
        return row
    if kind == "ours":
        with open(qjson) as f:
            q = json.load(f)
        row["quantize_seconds_total"] = q.get("seconds_total")
        try:
            with open(os.path.join(out, "quantization_config.json")) as f:
                qc = json.load(f)
            row["bits_per_weight"] = qc.get("bits_per_weight_quantized_linears")
        except (OSError, ValueError):
            row["bits_per_weight"] = q.get("bits_per_weight_planned")
        row["ratio_bits"] = find_key(q, "ratio bits per weight")  # [stored, codes, as the paper counts]
    elif kind == "llamacpp":
        row["bits_per_weight"], row["gguf_types"] = gguf_bits(target)
    else:
        row["bits_per_weight"] = gptq_bits(out)
    jsons = []
    row["eval_wall_s"] = 0
    for cmd, ejson in eval_cmds(args, target, os.path.join(rdir, s)):
        elog = ejson[:-5] + ".log"
        rc, wall, _ = run(cmd, elog)
        row["eval_wall_s"] = round(row["eval_wall_s"] + wall, 2)
        if rc != 0:
            row["error"] = tail(elog)
            log("FAILED %s (eval rc %d):\n%s" % (rid, rc, row["error"]))
            save_json(cache, row)
            return row
        jsons.append(ejson)
    row.update(read_eval(jsons))
    row["ok"] = True
    if not args.keep_outputs:
        shutil.rmtree(out, ignore_errors=True)
        if os.path.exists(out + ".gguf"):
            os.remove(out + ".gguf")
    save_json(cache, row)
    return row


def find_key(obj, key):
    """The first value under KEY anywhere in a JSON object (None if absent)."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        obj = list(obj.values())
    if isinstance(obj, list):
        for v in obj:
            r = find_key(v, key)
            if r is not None:
                return r
    return None


def base_gguf(args):
    """The unquantized model as an F32 GGUF (sliderquant convert), the input of llama-quantize."""
    path = os.path.join(args.work, "base-f32.gguf")
    if not os.path.exists(path):
        rc, _, _ = run([args.bin, "export", args.model, "--format", "gguf", "--out", path, "-q"],
                       os.path.join(args.work, "base-f32.log"))
        if rc != 0:
            raise SystemExit("bench_table: could not write %s:\n%s" % (path, tail(os.path.join(args.work, "base-f32.log"))))
    return path


_VERSIONS = {}


def pkg_version(name):
    if name not in _VERSIONS:
        p = subprocess.run([PY, "-c", "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))", name],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        _VERSIONS[name] = p.stdout.strip() or "(not installed)"
    return _VERSIONS[name]


def save_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=1)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
def calibration_ids(args):
    """The shared calibration token ids, written by sliderquant itself (quantize --save-calibration)."""
    path = os.path.join(args.work, "calib-%s-%dx%d-seed%d.json" % (args.calib, args.samples, args.seqlen, args.seed))
    if os.path.exists(path):
        return path
    rpath, _ = write_recipe(args, "calibration", ours("gptq-w4g128"))
    os.makedirs(os.path.join(args.work, "out"), exist_ok=True)
    rc, _, _ = run([args.bin, "quantize", args.model, "--recipe", rpath, "--dry-run", "--out",
                    os.path.join(args.work, "out", "calibration"), "--save-calibration", path, "--data-dir",
                    args.data_dir, "-q"], os.path.join(args.work, "calibration.log"))
    if rc != 0 or not os.path.exists(path):
        raise SystemExit("bench_table: could not write the calibration ids:\n" + tail(os.path.join(args.work, "calibration.log")))
    return path


def baseline(args):
    s = "baseline"
    rdir = os.path.join(args.work, "rows")
    os.makedirs(rdir, exist_ok=True)
    key, cache, old = cached_row(rdir, s, [os.path.abspath(args.model), args.windows, args.zs_limit, 1])
    if old:
        return old
    (cmd, ejson), = eval_cmds(args, args.model, os.path.join(rdir, s))
    rc, wall, _ = run(cmd, os.path.join(rdir, s + ".eval.log"))
    row = {"id": "baseline", "column": "fp32", "name": "unquantized", "tool": "-", "key": key, "ok": rc == 0,
           "bits_per_weight": 32.0, "eval_wall_s": round(wall, 2)}
    if rc == 0:
        row.update(read_eval([ejson]))
    else:
        raise SystemExit("bench_table: the baseline eval failed:\n" + tail(os.path.join(rdir, s + ".eval.log")))
    save_json(cache, row)
    return row


def fmt(x, spec="%.3f"):
    return "-" if x is None else spec % x


def render(args, base, rows):
    cols = ["bits", "method", "tool", "bits/w", "wiki2 ppl", "c4 ppl", "zs mean", "KL wiki2", "top-1", "quant s",
            "peak RSS GB"]
    lines = []

    def line(r):
        kl = (r.get("kld") or {}).get("wikitext2") or {}
        return [r["column"], r["name"], r.get("tool", "-"), fmt(r.get("bits_per_weight"), "%.3f"),
                fmt(r.get("ppl", {}).get("wikitext2"), "%.2f"), fmt(r.get("ppl", {}).get("c4-2k"), "%.2f"),
                fmt(r.get("zs_mean"), "%.1f"), fmt(kl.get("mean_kl"), "%.4f"),
                fmt(kl.get("top1"), "%.3f"), fmt(r.get("quantize_wall_s"), "%.0f"),
                fmt(r["quantize_peak_rss_bytes"] / 2**30 if r.get("quantize_peak_rss_bytes") else None, "%.2f")]
    lines.append(line(base))
    failed = []
    for r in rows:
        if r.get("ok"):
            lines.append(line(r))
        else:
            failed.append(r)
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    md += ["| " + " | ".join(c) + " |" for c in lines]
    if failed:
        md.append("")
        md.append("Rows that did not run:")
        for r in failed:
            md.append("- %s (%s): %s" % (r["id"], r.get("tool", r["spec"]["kind"]),
                                         (r.get("error") or r.get("why") or "").replace("\n", " / ")[-400:]))
    text = "\n".join(md) + "\n"
    with open(os.path.join(args.work, "table.md"), "w") as f:
        f.write(settings_text(args) + "\n" + text)
    log(text)
    try:
        plot(args, base, [r for r in rows if r.get("ok")])
    except ImportError as e:
        log("no plot: %s" % e)


def settings_text(args):
    return ("Model %s; calibration %s %d x %d tokens, seed %d (the same token ids for every tool); perplexity: GPTQ "
            "protocol, seqlen 2048, %s windows of WikiText-2 test and of c4-2k; zero-shot: %s; KL(base || model) "
            "on the WikiText-2 windows; learned passes %d epochs (CPU budget); bits/w: the decoder linears as "
            "stored (scales, zeros, indices; embeddings and lm_head not counted).\n" %
            (args.model, args.calib, args.samples, args.seqlen, args.seed, "first %d" % args.windows if args.windows
             else "all", "mean over %s of acc_norm (acc where a task has none), first %d items each" % (TASKS, args.zs_limit) if args.zs_limit >= 0 else "not run",
             args.epochs))


def plot(args, base, rows):
    """WikiText-2 perplexity against bits per weight, one point per weight-only row: all rows on a
    log scale (left), and those within 2x the unquantized perplexity (right); one legend entry
    per row (colour), marker by tool."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    pts = [(r["bits_per_weight"], r["ppl"]["wikitext2"], r) for r in rows
           if r.get("bits_per_weight") and (r.get("ppl") or {}).get("wikitext2") and "A" not in r["column"][2:]]
    if not pts:
        return
    fig, axes = plt.subplots(1, 2, figsize=(15, 6.5))
    tools = sorted({r["tool"].split(" ")[0] for _, _, r in pts})
    markers = dict(zip(tools, "os^Dv<>p"))
    colors = plt.cm.tab20.colors + plt.cm.tab20b.colors
    base_ppl = base["ppl"]["wikitext2"]
    for ax, zoom in zip(axes, (False, True)):
        for k, (b, p, r) in enumerate(pts):
            if zoom and p > 2 * base_ppl:
                continue
            ax.scatter(b, p, marker=markers[r["tool"].split(" ")[0]], color=colors[k % len(colors)], s=40,
                       label=None if zoom else "%s: %s (%s)" % (r["column"], r["name"], r["tool"].split(" ")[0]))
        ax.axhline(base_ppl, color="gray", linestyle="--", linewidth=1)
        ax.set_xlabel("bits per weight (decoder linears, as stored)")
        ax.set_ylabel("WikiText-2 perplexity" + ("" if zoom else " (log scale)"))
        if not zoom:
            ax.set_yscale("log")
        ax.set_title("within 2x the unquantized perplexity (%.2f, dashed)" % base_ppl if zoom else
                     "%s: weight-only rows" % os.path.basename(args.model.rstrip("/")))
    fig.legend(loc="center right", fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0, 0.74, 1))
    fig.savefig(os.path.join(args.work, "table.png"), dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.split("\n")[1:]))
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "sliderquant"))
    ap.add_argument("--model", default=os.path.join(REPO, "models", "smollm2-135m"))
    ap.add_argument("--data-dir", default=os.environ.get("SQ_DATA_DIR", os.path.join(REPO, "..", "shared", "data")))
    ap.add_argument("--work", default=os.path.join(REPO, "out", "table"))
    ap.add_argument("--calib", default="c4-2k")
    ap.add_argument("--samples", type=int, default=32)
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=2, help="epochs of the learned passes (CPU budget)")
    ap.add_argument("--autoround-iters", type=int, default=200, help="AutoRound's iters (its default 200)")
    ap.add_argument("--windows", type=int, default=40, help="perplexity windows per dataset (0 = all)")
    ap.add_argument("--zs-limit", type=int, default=100, help="items per zero-shot task (-1: no zero-shot)")
    ap.add_argument("--no-kld", dest="kld", action="store_false")
    ap.add_argument("--threads", type=int, default=0, help="threads of every tool (0: each tool's default); "
                    "give 1 to run two copies of this script on disjoint --rows side by side on 2 cores")
    ap.add_argument("--rows", default="*", help="comma list of globs over 'COLUMN/NAME'")
    ap.add_argument("--budget-s", type=float, default=0, help="start no row after this many seconds")
    ap.add_argument("--row-timeout", type=float, default=0, help="kill a quantize that runs longer (seconds)")
    ap.add_argument("--keep-outputs", action="store_true")
    ap.add_argument("--report-only", action="store_true", help="render the cached rows, run nothing")
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    t0 = time.time()
    globs = args.rows.split(",")
    chosen = [(c, n, s) for c, n, s in ROWS if any(fnmatch.fnmatch(row_id(c, n), g) for g in globs)]
    base = baseline(args) if not args.report_only else json.load(open(os.path.join(args.work, "rows", "baseline.json")))
    calib_ids = None if args.report_only else calibration_ids(args)
    rows = []
    for c, n, s in chosen:
        cache = os.path.join(args.work, "rows", slug(row_id(c, n)) + ".json")
        if args.report_only or (args.budget_s and time.time() - t0 > args.budget_s):
            if os.path.exists(cache):
                with open(cache) as f:
                    rows.append(json.load(f))
            continue
        rows.append(do_row(args, c, n, s, calib_ids))
        report = {"settings": vars(args), "machine": {"cpu": cpu_name(), "platform": platform.platform()},
                  "baseline": base, "rows": rows}
        save_json(os.path.join(args.work, "table.json"), report)
    report = {"settings": vars(args), "machine": {"cpu": cpu_name(), "platform": platform.platform()},
              "baseline": base, "rows": rows}
    save_json(os.path.join(args.work, "table.json"), report)
    render(args, base, rows)
    log("wrote %s/table.{json,md,png}" % args.work)


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


if __name__ == "__main__":
    main()
