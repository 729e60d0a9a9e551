#!/usr/bin/env python3
"""sliderquant's zero-shot evaluator against lm-evaluation-harness 0.4.13, item for item.

Usage: test_zeroshot_parity.py --cli BUILD/sliderquant --model DIR [--limit N] [--data-dir D]
                               [--work W] [--tasks piqa,...] [--json OUT] [--dtype float32]
                               [--batch-size 8] [--token-docs 1] [--localize auto|always|never]
                               [--localize-max 100] [--reuse]

Both evaluators read the same local files (D/zeroshot/, default tests/fixtures): sliderquant
directly (`eval --tasks ... --limit N --json`, default BOS: --zs-bos auto), lm-eval through
make_tasks.py's configs (its own task YAMLs, data pointed at the files) and run_lmeval.py
(HF backend, CPU, 0-shot, add_bos_token not passed). Checks, each a FAIL line when broken:
  counts    per task |our correct - lm-eval's correct| <= 1 for acc, and for acc_norm where
            the task reports it (piqa, arc_*, hellaswag); n equal on both sides.
  prompts   every (context, continuation) lm-eval logged equals the one sliderquant builds from
            the same record (sq_local.our_doc, the mirror of src/eval/zeroshot_tasks.cpp).
  tokens    for the first --token-docs documents of each task, lm-eval's context_enc /
            continuation_enc (HFLM._encode_pair) equal `sliderquant tokenize` of the context and
            of context + continuation (trailing spaces of the context moved to the
            continuation, as both do), and the BOS each side puts first is the same.
Doc indices that differ: from our --json's per-document predictions when it has them (keys
pred / pred_norm per task); otherwise, when a count differs, by re-running sliderquant on each
document alone (at most --localize-max documents). Prints the tables in markdown; exits 1 on any
FAIL (a missing package, model, binary or data file included), 0 otherwise. Without --work the
work folder is a temporary one, removed when the test passes. --json OUT writes the comparison
(per task counts, differences, BOS, wall times) for bench scripts. Threads: OMP_NUM_THREADS
(default 2) for both evaluators.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import sq_local  # noqa: E402

FAILS = []


def fail(msg):
    FAILS.append(msg)
    print(f"FAIL: {msg}", flush=True)


def threads():
    return os.environ.get("OMP_NUM_THREADS", "2")


def wait_for_cli(cli, seconds=120):
    t0 = time.time()
    while time.time() - t0 < seconds:
        if os.path.isfile(cli) and os.access(cli, os.X_OK):
            return True
        time.sleep(5)
    return False


def run_cmd(cmd, what, timeout=3600):
    env = dict(os.environ, OMP_NUM_THREADS=threads())
    for attempt in range(3):  # the binary may be replaced by a rebuild meanwhile
        if not wait_for_cli(cmd[0]):
            raise SystemExit(f"FAIL: {cmd[0]} is not an executable file")
        t0 = time.time()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
            break
        except OSError:
            if attempt == 2:
                raise
            time.sleep(10)
    dt = time.time() - t0
    if p.returncode != 0:
        fail(f"{what} exited {p.returncode}: {' '.join(cmd)}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}")
    return p, dt


SQ_EXTRA = []  # --sq-extra: more `sliderquant eval` options (a negative control, e.g. --zs-bos no)


def run_ours(cli, model, tasks, limit, data_dir, out):
    cmd = [cli, "eval", model, "--tasks", ",".join(tasks), "--limit", str(limit), "--data-dir", data_dir,
           "--json", out, "-q", "--threads", threads()] + SQ_EXTRA
    p, dt = run_cmd(cmd, "sliderquant eval")
    if p.returncode != 0:
        return None, dt
    return json.load(open(out)), dt


def tokenize(cli, model, text, cache):
    if text in cache:
        return cache[text]
    for attempt in range(3):  # the binary may be replaced by a rebuild meanwhile
        if not wait_for_cli(cli):
            fail(f"{cli} is not an executable file")
            return None
        try:
            p = subprocess.run([cli, "tokenize", model, "--json", "-q", "--threads", "1", "--text=" + text],
                               capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
            break
        except OSError:
            if attempt == 2:
                raise
            time.sleep(10)
    if p.returncode != 0:
        fail(f"sliderquant tokenize exited {p.returncode}: {p.stderr[-500:]}")
        cache[text] = None
        return None
    cache[text] = json.loads(p.stdout)["ids"]
    return cache[text]


def write_single_doc_dir(root, task, src, index):
    """A data dir whose zeroshot/ file for `task` holds only document `index` of `src`."""
    os.makedirs(os.path.join(root, "zeroshot"), exist_ok=True)
    if task == "hellaswag":
        r = sq_local.read_records(src, task, index + 1)[index]
        lines = [r["line"], str(r["gold"])] + list(r["endings"])
        with open(os.path.join(root, "zeroshot", "hellaswag_val_full.txt"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        return
    raw = open(src, "rb").read().decode("utf-8").split("\n")
    recs = [ln for ln in raw if ln.strip(" \t\r")]
    with open(os.path.join(root, "zeroshot", sq_local.TASKS[task][0]), "w", encoding="utf-8") as f:
        f.write(recs[index] + "\n")


def localize(cli, model, n_of, data_dir, work, max_docs):
    """Per-document correctness of sliderquant (1/0) by scoring each document alone."""
    preds = {t: {"pred": [], "pred_norm": []} for t in n_of}
    for i in range(min(max(n_of.values()), max_docs)):
        d = os.path.join(work, f"single_{i}")
        shutil.rmtree(d, ignore_errors=True)
        tasks = [t for t in n_of if i < n_of[t]]
        for t in tasks:
            write_single_doc_dir(d, t, sq_local.task_file(data_dir, t), i)
        rep, _ = run_ours(cli, model, tasks, 1, d, os.path.join(d, "ours.json"))
        if rep is None:
            return None
        for t in tasks:
            z = rep["zeroshot"][t]
            preds[t]["pred"].append(int(round(z["acc"])))  # 1 = correct
            if z.get("acc_norm") is not None:
                preds[t]["pred_norm"].append(int(round(z["acc_norm"])))
        shutil.rmtree(d, ignore_errors=True)
    return preds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cli", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--limit", type=int, default=0, help="first N documents of each task (0 = all the files hold)")
    ap.add_argument("--data-dir", default=os.path.join(REPO, "tests", "fixtures"))
    ap.add_argument("--work")
    ap.add_argument("--tasks", default=",".join(sq_local.ALL_TASKS))
    ap.add_argument("--json")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--token-docs", type=int, default=1)
    ap.add_argument("--localize", choices=["auto", "always", "never"], default="auto",
                    help="re-run sliderquant per document to find differing documents: auto = only for tasks "
                         "whose counts differ (when our --json has no per-document predictions)")
    ap.add_argument("--localize-max", type=int, default=100)
    ap.add_argument("--reuse", action="store_true",
                    help="reuse ours.json / lmeval.json already in --work when they are for this model, "
                         "limit and task list (e.g. after an interrupted run)")
    ap.add_argument("--sq-extra", default="", help="extra options for `sliderquant eval`, e.g. '--zs-bos no' "
                    "(a negative control: the test must then fail)")
    a = ap.parse_args()
    SQ_EXTRA.extend(a.sq_extra.split())
    t_start = time.time()
    tasks = [t for t in a.tasks.split(",") if t]
    for t in tasks:
        if t not in sq_local.TASKS:
            fail(f"unknown task {t} (known: {', '.join(sq_local.ALL_TASKS)})")
            return 1
    cli, model, data_dir = os.path.abspath(a.cli), os.path.abspath(a.model), os.path.abspath(a.data_dir)
    if not wait_for_cli(cli):
        fail(f"{cli} is not an executable file")
    if not os.path.isfile(os.path.join(model, "config.json")):
        fail(f"model {model} has no config.json")
    try:
        import lm_eval  # noqa: F401
        import numpy  # noqa: F401
        import yaml  # noqa: F401
    except ImportError as e:
        fail(f"{sys.executable} lacks a package lm-eval parity needs: {e} (requirements-test.txt)")
    if FAILS:
        return 1
    # documents available / used
    counts, srcs = {}, {}
    for t in tasks:
        try:
            srcs[t] = sq_local.task_file(data_dir, t)
            counts[t] = len(sq_local.read_records(srcs[t], t))
        except (sq_local.DataError, OSError, ValueError) as e:
            fail(str(e))
    if FAILS:
        return 1
    lim = max(a.limit, 0)  # both evaluators take the first `lim` documents of each file (0: all)
    n_of = {t: counts[t] if lim == 0 else min(lim, counts[t]) for t in tasks}
    for t in tasks:
        if lim > counts[t]:
            print(f"note: {srcs[t]} holds {counts[t]} documents (< --limit {lim}); using all of them")
    docs_desc = (f"{next(iter(n_of.values()))} documents/task" if len(set(n_of.values())) == 1
                 else "documents/task: " + ", ".join(f"{t} {k}" for t, k in n_of.items()))
    work = os.path.abspath(a.work) if a.work else tempfile.mkdtemp(prefix="sq_lmeval_parity.")
    os.makedirs(work, exist_ok=True)
    print(f"model {model}\ndata {data_dir}, {docs_desc}, work {work}", flush=True)

    # 1. lm-eval task configs
    import make_tasks

    task_dir = os.path.join(work, "lmeval_tasks")
    shutil.rmtree(task_dir, ignore_errors=True)
    try:
        manifest = make_tasks.make(task_dir, data_dir, tasks, lim)
    except sq_local.DataError as e:
        fail(f"make_tasks: {e}")
        return 1
    # 2. ours
    ours_out, lm_out = os.path.join(work, "ours.json"), os.path.join(work, "lmeval.json")
    ours = lm = None
    if a.reuse and os.path.exists(ours_out) and os.path.exists(ours_out + ".wall"):
        r = json.load(open(ours_out))
        if os.path.abspath(r.get("model", "")) == model and all(
                r.get("zeroshot", {}).get(t, {}).get("n") == n_of[t] for t in tasks):
            ours, t_ours = r, float(open(ours_out + ".wall").read())
            print(f"sliderquant eval: reusing {ours_out} ({t_ours:.1f} s when it ran)", flush=True)
    if ours is None:
        ours, t_ours = run_ours(cli, model, tasks, lim, data_dir, ours_out)
        if ours is None:
            return 1
        open(ours_out + ".wall", "w").write(f"{t_ours}\n")
        print(f"sliderquant eval: {t_ours:.1f} s", flush=True)
    # 3. lm-eval
    if a.reuse and os.path.exists(lm_out) and os.path.exists(lm_out + ".wall"):
        r = json.load(open(lm_out))
        if (r.get("model") == model and r.get("limit") == lim and r.get("dtype") == a.dtype
                and all(t in r.get("tasks", {}) for t in tasks)):
            lm, t_lm = r, float(open(lm_out + ".wall").read())
            print(f"lm-eval: reusing {lm_out} ({t_lm:.1f} s when it ran)", flush=True)
    if lm is None:
        cmd = [sys.executable, os.path.join(HERE, "run_lmeval.py"), "--model", model, "--tasks", ",".join(tasks),
               "--limit", str(lim), "--out", lm_out, "--task-dir", task_dir, "--dtype", a.dtype,
               "--batch-size", str(a.batch_size), "--token-docs", str(a.token_docs)]
        p, t_lm = run_cmd(cmd, "run_lmeval.py")
        if p.returncode != 0:
            return 1
        open(lm_out + ".wall", "w").write(f"{t_lm}\n")
        print(f"lm-eval: {t_lm:.1f} s", flush=True)
        lm = json.load(open(lm_out))

    # 4. prompts: lm-eval's logged requests vs the strings sliderquant builds
    prompt_diffs = {}
    for t in tasks:
        recs = sq_local.read_records(srcs[t], t, n_of[t])
        bad = []
        for d in lm["tasks"][t]["docs"]:
            mine = sq_local.our_doc(t, recs[d["doc_id"]])
            theirs = d["arguments"]
            want = [[c, x] for c, x in zip(mine["contexts"], mine["continuations"])]
            if theirs != want:
                bad.append(d["doc_id"])
                if len(bad) <= 3:
                    for (c1, x1), (c2, x2) in zip(want, theirs):
                        if (c1, x1) != (c2, x2):
                            print(f"  {t} doc {d['doc_id']}: ours {c1!r} | {x1!r}\n"
                                  f"  {' ' * len(t)}          lm-eval {c2!r} | {x2!r}")
                            break
        prompt_diffs[t] = bad
        if bad:
            fail(f"{t}: {len(bad)} documents whose lm-eval request strings differ from ours: {bad[:20]}")

    # 5. tokens of the first documents
    tok_cache, tok_rows = {}, []
    for t in tasks:
        e = lm["tasks"][t]
        for tk in e["tokens"]:
            d = next(x for x in e["docs"] if x["doc_id"] == tk["doc_id"])
            ok = True
            for (ctx, cont), cenc, xenc in zip(d["arguments"], tk["context_enc"], tk["continuation_enc"]):
                ns = len(ctx) - len(ctx.rstrip())
                c2, x2 = (ctx[:-ns], ctx[-ns:] + cont) if ns else (ctx, cont)
                ids_c = tokenize(cli, model, c2, tok_cache)
                ids_w = tokenize(cli, model, c2 + x2, tok_cache)
                if ids_c is None or ids_w is None:
                    return 1
                if ids_c != cenc or ids_w[len(ids_c):] != xenc:
                    ok = False
                    fail(f"{t} doc {tk['doc_id']}: token ids differ for {ctx[-40:]!r} | {cont!r}: "
                         f"lm-eval ctx[:8] {cenc[:8]} cont {xenc}, ours ctx[:8] {ids_c[:8]} "
                         f"cont {ids_w[len(ids_c):]}")
            bos_id = lm["tokenizer"]["bos_token_id"]
            tok_rows.append((t, tk["doc_id"], len(tk["context_enc"]), ok,
                             bool(tk["context_enc"][0][:1] == [bos_id])))

    # 6. counts
    rows, cmp_tasks = [], {}
    for t in tasks:
        z, e = ours["zeroshot"][t], lm["tasks"][t]
        has_norm = sq_local.TASKS[t][3]
        oc = int(round(z["acc"] * z["n"]))
        ocn = int(round(z["acc_norm"] * z["n"])) if has_norm and z.get("acc_norm") is not None else None
        lc, lcn = e["correct"], e.get("correct_norm")
        if z["n"] != e["n"]:
            fail(f"{t}: ours scored {z['n']} documents, lm-eval {e['n']}")
        da = oc - lc
        dn = None if ocn is None or lcn is None else ocn - lcn
        if abs(da) > 1:
            fail(f"{t}: acc differs by {da} items (ours {oc}/{z['n']}, lm-eval {lc}/{e['n']})")
        if has_norm and (dn is None):
            fail(f"{t}: acc_norm missing (ours {z.get('acc_norm')}, lm-eval {e.get('acc_norm')})")
        elif dn is not None and abs(dn) > 1:
            fail(f"{t}: acc_norm differs by {dn} items (ours {ocn}/{z['n']}, lm-eval {lcn}/{e['n']})")
        if bool(z.get("bos")) != bool(lm["tokenizer"]["adds_bos"]):
            fail(f"{t}: BOS ours {z.get('bos')}, lm-eval's tokenizer adds BOS {lm['tokenizer']['adds_bos']}")
        cmp_tasks[t] = {"n": z["n"], "ours": {"acc": z["acc"], "acc_norm": z.get("acc_norm"), "correct": oc,
                                              "correct_norm": ocn, "bos": z.get("bos")},
                        "lmeval": {"acc": e["acc"], "acc_norm": e.get("acc_norm"), "correct": lc,
                                   "correct_norm": lcn, "bos": e["bos"]},
                        "diff_items_acc": da, "diff_items_acc_norm": dn,
                        "prompt_mismatch_docs": prompt_diffs[t], "differing_docs": None}
        rows.append((t, z["n"], z["acc"], z.get("acc_norm"), e["acc"], e.get("acc_norm"), da, dn, z.get("bos"),
                     e["bos"]))

    # 7. which documents differ
    per_doc = {}
    if all("pred" in ours["zeroshot"][t] for t in tasks):
        for t in tasks:
            z = ours["zeroshot"][t]
            docs = lm["tasks"][t]["docs"]
            per_doc[t] = {"acc": [d["doc_id"] for d in docs if int(z["pred"][d["doc_id"]]) != d["pred"]]}
            if sq_local.TASKS[t][3] and z.get("pred_norm"):
                per_doc[t]["acc_norm"] = [d["doc_id"] for d in docs
                                          if int(z["pred_norm"][d["doc_id"]]) != d["pred_norm"]]
        how = "our --json per-document predictions"
    else:
        diff_tasks = [t for t in tasks if cmp_tasks[t]["diff_items_acc"] or cmp_tasks[t]["diff_items_acc_norm"]]
        if a.localize == "always":
            diff_tasks = list(tasks)
        elif a.localize == "never":
            diff_tasks = []
        how = ("no per-document output in our --json and no document re-run"
               + (" (counts equal)" if a.localize == "auto" else ""))
        if diff_tasks:
            how = f"each document re-run alone by sliderquant (at most {a.localize_max} per task)"
            print(f"localizing {diff_tasks}: {how}", flush=True)
            loc = localize(cli, model, {t: n_of[t] for t in diff_tasks}, data_dir, work, a.localize_max)
            if loc is not None:
                for t in diff_tasks:
                    docs = lm["tasks"][t]["docs"]
                    per_doc[t] = {"acc": [d["doc_id"] for d in docs if d["doc_id"] < len(loc[t]["pred"])
                                          and loc[t]["pred"][d["doc_id"]] != int(d["acc"])]}
                    if loc[t]["pred_norm"]:
                        per_doc[t]["acc_norm"] = [d["doc_id"] for d in docs if d["doc_id"] < len(loc[t]["pred_norm"])
                                                  and loc[t]["pred_norm"][d["doc_id"]] != int(d["acc_norm"])]
    for t, v in per_doc.items():
        cmp_tasks[t]["differing_docs"] = v

    # report
    f4 = lambda x: "-" if x is None else f"{x:.4f}"  # noqa: E731
    fd = lambda x: "-" if x is None else f"{x:+d}"  # noqa: E731
    print(f"\n### {os.path.basename(model)}: sliderquant vs lm-eval {lm['lm_eval_version']} "
          f"({docs_desc}, {a.dtype}, {os.path.relpath(data_dir, REPO) if data_dir.startswith(REPO) else data_dir})\n")
    print("| task | n | ours acc | ours acc_norm | lm-eval acc | lm-eval acc_norm | Δ items acc | Δ items acc_norm "
          "| BOS ours | BOS lm-eval |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {f4(r[2])} | {f4(r[3])} | {f4(r[4])} | {f4(r[5])} | {fd(r[6])} | {fd(r[7])} "
              f"| {'yes' if r[8] else 'no'} | {'yes' if r[9] else 'no'} |")
    print(f"\nlm-eval tokenizer {lm['tokenizer']['class']}: adds BOS {lm['tokenizer']['adds_bos']} "
          f"(bos {lm['tokenizer']['bos_token']!r} = {lm['tokenizer']['bos_token_id']}, add_bos_token passed: "
          f"{lm['tokenizer']['add_bos_token_arg']}), max_length {lm['max_length']}")
    print("token ids (lm-eval _encode_pair vs sliderquant tokenize): " + ", ".join(
        f"{t}#{i} {'same' if ok else 'DIFFER'} ({nt} requests, BOS first: {b})" for t, i, nt, ok, b in tok_rows))
    print(f"prompt strings: {sum(len(v) for v in prompt_diffs.values())} documents differ "
          f"(of {sum(n_of.values())})")
    print(f"documents that differ ({how}): " + (", ".join(
        f"{t} {k} {v}" for t, m in per_doc.items() for k, v in m.items() if v) or "none"))
    if "lambada_openai" in tasks and lm["tasks"]["lambada_openai"].get("perplexity") is not None:
        po, pl = ours["zeroshot"]["lambada_openai"].get("ppl"), lm["tasks"]["lambada_openai"]["perplexity"]
        if po is not None:
            print(f"lambada_openai perplexity (not a pass criterion): ours {po:.6g}, lm-eval {pl:.6g}, "
                  f"relative difference {abs(po - pl) / pl:.2e}")
            cmp_tasks["lambada_openai"]["ppl"] = {"ours": po, "lmeval": pl}
    wall = time.time() - t_start
    print(f"wall: sliderquant {t_ours:.1f} s, lm-eval {t_lm:.1f} s (load {lm['seconds']['load']:.1f}, "
          f"evaluate {lm['seconds']['evaluate']:.1f}), total {wall:.1f} s; OMP_NUM_THREADS={threads()}")
    if a.json:
        out = {"model": model, "data_dir": data_dir, "limit": lim, "docs": n_of, "dtype": a.dtype, "batch_size": a.batch_size,
               "lm_eval_version": lm["lm_eval_version"], "lmeval_tokenizer": lm["tokenizer"],
               "lmeval_max_length": lm["max_length"], "manifest": manifest, "tasks": cmp_tasks,
               "token_checks": [{"task": t, "doc": i, "requests": nt, "same": ok, "bos_first": b}
                                for t, i, nt, ok, b in tok_rows],
               "differing_docs_method": how,
               "wall_seconds": {"sliderquant": t_ours, "lmeval": t_lm, "lmeval_load": lm["seconds"]["load"],
                                "lmeval_evaluate": lm["seconds"]["evaluate"], "total": wall},
               "threads": threads(), "fails": FAILS, "pass": not FAILS}
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1, ensure_ascii=False)
    if FAILS:
        print(f"\n{len(FAILS)} FAIL(s); files kept in {work}")
        return 1
    if not a.work:
        shutil.rmtree(work, ignore_errors=True)
    print("\nPASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
