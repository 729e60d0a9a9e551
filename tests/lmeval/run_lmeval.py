#!/usr/bin/env python3
"""lm-evaluation-harness 0.4.13 (HF backend, CPU) on the local zero-shot files.

Usage: run_lmeval.py --model DIR --tasks piqa,arc_easy,... --limit N --out results.json
                     (--task-dir T | --data-dir D) [--dtype float32|bfloat16] [--batch-size B]
                     [--token-docs K]

--task-dir: the output of make_tasks.py (tasks/sq_*.yaml); with --data-dir instead, make_tasks.py
runs first into <dir of --out>/lmeval_tasks. lm-eval runs through its Python API:
simple_evaluate(num_fewshot=0, limit=N, log_samples=True, task_manager=TaskManager(include_path=
T/tasks, include_defaults=False)). The model is HFLM made exactly as simple_evaluate makes it
from model="hf" (lm_eval.api.registry.get_model("hf").create_from_arg_string("pretrained=DIR,
dtype=...", {batch_size, device: cpu})) and then passed in, so that the same object can report
the token ids it builds (_encode_pair) for the first K documents of each task. add_bos_token is
NOT passed: lm-eval's default (the tokenizer's own BOS behaviour) is what sliderquant matches.
Everything runs offline (HF_HUB_OFFLINE, HF_DATASETS_OFFLINE), with a fresh HF_HOME /
HF_DATASETS_CACHE under the task dir.

results.json: {"lm_eval_version", "model", "dtype", "tokenizer": {...}, "tasks": {task: {acc,
acc_norm, n, correct, correct_norm, bos, docs: [{doc_id, gold, loglik, pred, pred_norm, acc,
acc_norm, is_greedy, arguments}], tokens: [...]}}}. pred = argmax loglik, pred_norm = argmax
loglik / len(choice) (choice = the continuation without the " " target delimiter), first
maximum on ties, as numpy.
"""
import argparse
import json
import os
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--tasks", default="piqa,arc_easy,arc_challenge,hellaswag,winogrande,boolq,lambada_openai")
    ap.add_argument("--limit", type=int, default=0, help="first N documents (0 = all)")
    ap.add_argument("--out", required=True)
    ap.add_argument("--task-dir", help="make_tasks.py output")
    ap.add_argument("--data-dir", help="run make_tasks.py on this folder first")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--token-docs", type=int, default=2, help="documents per task whose token ids are reported")
    return ap.parse_args()


def main():
    a = parse_args()
    tasks = [t for t in a.tasks.split(",") if t]
    out = os.path.abspath(a.out)
    if not a.task_dir and not a.data_dir:
        print("FAIL: give --task-dir (make_tasks.py output) or --data-dir")
        return 2
    task_dir = os.path.abspath(a.task_dir or os.path.join(os.path.dirname(out), "lmeval_tasks"))
    os.makedirs(task_dir, exist_ok=True)
    hf_home = tempfile.mkdtemp(prefix="hf_home.", dir=task_dir)  # fresh: no stale json cache
    os.environ.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                       "HF_HOME": hf_home, "HF_DATASETS_CACHE": os.path.join(hf_home, "datasets"),
                       "TOKENIZERS_PARALLELISM": "false", "TORCH_COMPILE_DISABLE": "1"})
    try:
        return run(a, tasks, out, task_dir)
    finally:
        shutil.rmtree(hf_home, ignore_errors=True)


def run(a, tasks, out, task_dir):
    import sq_local

    for t in tasks:
        if t not in sq_local.TASKS:
            print(f"FAIL: unknown task {t}")
            return 2
    if not os.path.isfile(os.path.join(a.model, "config.json")):
        print(f"FAIL: {a.model} is not a Hugging Face model directory (no config.json)")
        return 1
    try:
        import numpy as np
        import torch
        import lm_eval
        from lm_eval.api.registry import get_model
        from lm_eval.tasks import TaskManager
    except ImportError as e:
        print(f"FAIL: cannot import lm-eval / torch from {sys.executable}: {e}")
        return 1
    if a.data_dir:
        import make_tasks

        try:
            make_tasks.make(task_dir, a.data_dir, tasks, a.limit)
        except sq_local.DataError as e:
            print(f"FAIL: {e}")
            return 1
    for t in tasks:
        if not os.path.isfile(os.path.join(task_dir, "tasks", f"sq_{t}.yaml")):
            print(f"FAIL: {task_dir}/tasks/sq_{t}.yaml missing (run make_tasks.py)")
            return 1
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))

    t0 = time.time()
    model_args = f"pretrained={os.path.abspath(a.model)},dtype={a.dtype}"
    lm = get_model("hf").create_from_arg_string(
        model_args, {"batch_size": a.batch_size, "max_batch_size": None, "device": "cpu"})
    t_load = time.time() - t0
    tm = TaskManager(include_path=os.path.join(task_dir, "tasks"), include_defaults=False)
    t1 = time.time()
    res = lm_eval.simple_evaluate(model=lm, tasks=[f"sq_{t}" for t in tasks], num_fewshot=0,
                                  limit=a.limit or None, log_samples=True, task_manager=tm,
                                  batch_size=a.batch_size, device="cpu", bootstrap_iters=0)
    t_eval = time.time() - t1

    tok = lm.tokenizer
    bos_id = tok.bos_token_id
    probe = tok.encode("Question: x")
    report = {
        "lm_eval_version": getattr(lm_eval, "__version__", "?"),
        "model": os.path.abspath(a.model), "model_args": model_args, "dtype": a.dtype,
        "batch_size": a.batch_size, "limit": a.limit, "task_dir": task_dir,
        "max_length": lm.max_length,
        "tokenizer": {"class": type(tok).__name__, "bos_token": tok.bos_token, "bos_token_id": bos_id,
                      "add_bos_token_arg": lm.add_bos_token,
                      "adds_bos": bool(bos_id is not None and probe and probe[0] == bos_id)},
        "seconds": {"load": t_load, "evaluate": t_eval}, "tasks": {},
    }
    for t in tasks:
        name = f"sq_{t}"
        r = res["results"][name]
        samples = sorted(res["samples"][name], key=lambda s: s["doc_id"])
        docs, tokens = [], []
        for s in samples:
            args = [list(x) for x in s["arguments"]]
            fr = s["filtered_resps"]
            lls = [float(x[0]) for x in fr]
            greedy = [bool(x[1]) for x in fr]
            d = {"doc_id": s["doc_id"], "loglik": lls, "arguments": args}
            if t == "lambada_openai":
                d.update(pred=int(all(greedy)), is_greedy=all(greedy), acc=s.get("acc"))
            else:
                # winogrande's target is the continuation text; its gold is doc_to_text's index
                gold = int(s["doc"]["answer"]) - 1 if t == "winogrande" else int(s["target"])
                d["gold"] = gold
                d["pred"] = int(np.argmax(lls))
                d["acc"] = s.get("acc")
                if sq_local.TASKS[t][3]:
                    lens = [float(len(c[1][1:] if c[1].startswith(" ") else c[1])) for c in args]
                    d["pred_norm"] = int(np.argmax(np.array(lls) / np.array(lens)))
                    d["acc_norm"] = s.get("acc_norm")
            docs.append(d)
            if len(tokens) < a.token_docs:
                enc = [lm._encode_pair(c, x) for c, x in args]
                tokens.append({"doc_id": s["doc_id"], "context_enc": [e[0] for e in enc],
                               "continuation_enc": [e[1] for e in enc]})
        # BOS as lm-eval applies it: the first request of the first document, encoded by HFLM
        first_ctx = lm._encode_pair(*docs[0]["arguments"][0])[0] if docs else []
        n = len(docs)
        entry = {"lmeval_task": name, "n": n, "acc": r.get("acc,none"), "acc_norm": r.get("acc_norm,none"),
                 "correct": int(sum(int(d["acc"]) for d in docs)),
                 "bos": bool(first_ctx and bos_id is not None and first_ctx[0] == bos_id),
                 "n_samples": res.get("n-samples", {}).get(name), "docs": docs, "tokens": tokens}
        if r.get("perplexity,none") is not None:
            entry["perplexity"] = r["perplexity,none"]
        if entry["acc_norm"] is not None:
            entry["correct_norm"] = int(sum(int(d["acc_norm"]) for d in docs))
        report["tasks"][t] = entry
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(report, f, indent=1, ensure_ascii=False)
    print(f"lm-eval {report['lm_eval_version']} {a.model}: load {t_load:.1f}s, evaluate {t_eval:.1f}s; "
          f"tokenizer adds BOS: {report['tokenizer']['adds_bos']}")
    for t, e in report["tasks"].items():
        norm = "" if e["acc_norm"] is None else f" acc_norm {e['acc_norm']:.4f}"
        print(f"  {t:15s} n {e['n']:5d}  acc {e['acc']:.4f}{norm}  bos {e['bos']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
