#!/usr/bin/env python3
"""Prompt identity on whole files, without a model: lm-eval 0.4.13 builds its 0-shot requests
from make_tasks.py's configs (its own YAMLs, data pointed at the local files) and every
(context, continuation) is compared with the one sliderquant builds from the same record
(sq_local.our_doc, the mirror of src/eval/zeroshot_tasks.cpp).

Usage: check_prompts.py --data-dir D [--limit N] [--tasks ...] [--work W] [--json OUT]
Exits 1 when any document differs (prints the first few), 0 otherwise.
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
import sq_local  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--tasks", default=",".join(sq_local.ALL_TASKS))
    ap.add_argument("--work")
    ap.add_argument("--json")
    a = ap.parse_args()
    tasks = [t for t in a.tasks.split(",") if t]
    work = os.path.abspath(a.work) if a.work else tempfile.mkdtemp(prefix="sq_lmeval_prompts.")
    task_dir = os.path.join(work, "lmeval_tasks")
    shutil.rmtree(task_dir, ignore_errors=True)
    os.makedirs(task_dir)
    hf_home = tempfile.mkdtemp(prefix="hf_home.", dir=task_dir)
    os.environ.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": hf_home,
                       "HF_DATASETS_CACHE": os.path.join(hf_home, "datasets")})
    import make_tasks
    from lm_eval.tasks import TaskManager

    t0 = time.time()
    make_tasks.make(task_dir, a.data_dir, tasks, a.limit)
    tm = TaskManager(include_path=os.path.join(task_dir, "tasks"), include_defaults=False)
    loaded = tm.load([f"sq_{t}" for t in tasks])["tasks"]
    report, bad_total = {}, 0
    for t in tasks:
        task = loaded[f"sq_{t}"]
        task.set_config(key="num_fewshot", value=0)
        task.build_all_requests(limit=None)
        by_doc = {}
        for inst in task.instances:
            by_doc.setdefault(inst.doc_id, []).append(inst)
        recs = sq_local.read_records(sq_local.task_file(a.data_dir, t), t, a.limit)
        bad = []
        for doc_id, insts in sorted(by_doc.items()):
            insts.sort(key=lambda x: x.idx)
            theirs = [list(i.args) for i in insts]
            mine = sq_local.our_doc(t, recs[doc_id])
            want = [[c, x] for c, x in zip(mine["contexts"], mine["continuations"])]
            if theirs != want:
                bad.append(doc_id)
                if len(bad) <= 3:
                    for w, th in zip(want, theirs):
                        if w != th:
                            print(f"{t} doc {doc_id}:\n  ours    {w!r}\n  lm-eval {th!r}")
                            break
        if len(by_doc) != len(recs):
            print(f"{t}: lm-eval built {len(by_doc)} documents, the file holds {len(recs)}")
            bad.append(-1)
        report[t] = {"docs": len(recs), "differ": len(bad), "differ_docs": bad[:50]}
        bad_total += len(bad)
        print(f"{t:15s} {len(recs):6d} documents, {len(bad)} differ", flush=True)
    print(f"{time.time() - t0:.1f} s")
    shutil.rmtree(hf_home, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(report, f, indent=1)
    return 1 if bad_total else 0


if __name__ == "__main__":
    sys.exit(main())
