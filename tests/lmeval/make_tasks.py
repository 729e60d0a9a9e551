#!/usr/bin/env python3
"""Local zero-shot files -> lm-eval 0.4.13 task configs that read them.

Usage: make_tasks.py OUTDIR --data-dir D [--limit N] [--tasks piqa,...]

For each task, D/zeroshot/<file> (the files sliderquant reads: llm-foundry jsonl, llama.cpp's
HellaSwag text) is turned back into the Hugging Face dataset schema that lm-eval's own task
YAML reads, written as OUTDIR/data/<task>.jsonl in the file's order, and OUTDIR/tasks/sq_<task>.yaml
is written: it `include:`s lm-eval's installed YAML (so its prompts, preprocessing, choices and
metrics are lm-eval's) and overrides only where the data comes from (dataset_path: json,
dataset_name: null, dataset_kwargs.data_files naming the evaluated split) plus the task name;
the YAML's other splits are set to null (the file has one split, and lm-eval builds its few-shot
sampler from training_split even at 0-shot: KeyError 'train' otherwise), and the included
YAML's tag list is emptied so the copies do not join lm-eval's tags. The YAMLs'
`!function` entries (hellaswag utils.process_docs, winogrande preprocess_winogrande.*) are
resolved by lm-eval relative to the YAML file that contains them, i.e. lm-eval's own task folder
(lm_eval/tasks/_yaml_loader.py: load_yaml builds each included file's loader with its own
parent directory), so nothing of lm-eval is copied.

Schemas (the field names lm-eval's YAMLs read):
  piqa            goal, sol1, sol2, label           goal = query without "Question: " and the
                                                    newline sliderquant replaces by "\\nAnswer:"
  arc_*           id, question, choices{text,label}, answerKey (labels A, B, C, ...)
  boolq           passage, question, label          "Passage: {p}\\nQuestion: {q}?" split at the
                                                    last "\\nQuestion: ", the "?" dropped
  hellaswag       ind, activity_label, ctx_a, ctx_b, ctx, endings, label (a string, as on the hub)
                  RECONSTRUCTED: the text file has "activity_label: ctx_a ctx_b" with ctx_b not
                  capitalized; the split into ctx_a / ctx_b is the one sliderquant's
                  hellaswag_query makes (ctx_b = the fragment after the last ". ", "! " or "? "
                  when the context does not end a sentence, else ctx_b = ""), so lm-eval's
                  capitalize() falls where ours does. It is not the dataset's own split.
  winogrande      sentence, option1, option2, answer ("1"/"2")
                  RECONSTRUCTED: sentence = "_ " + continuation and option_k = context_options[k]
                  (then sentence[:idx] + option_k == context_options[k] and
                  sentence[idx+1:].strip() == continuation.strip(), which are all lm-eval uses).
  lambada_openai  text = context + " " + continuation
Unrepresentable records (a check below fails) stop the script with exit 1.
"""
import argparse
import hashlib
import json
import os
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sq_local  # noqa: E402


def lmeval_tasks_dir():
    try:
        import lm_eval
    except ImportError as e:
        raise SystemExit(f"FAIL: lm_eval is not importable from {sys.executable} ({e}); "
                         "install requirements-test.txt (lm-eval==0.4.13)")
    return os.path.join(os.path.dirname(lm_eval.__file__), "tasks")


def _strip_question_prefix(q, where):
    if not q.startswith("Question: "):
        raise sq_local.DataError(f"{where}: query does not start with 'Question: '")
    body = q[len("Question: "):]
    if body.endswith("\nAnswer:"):
        return body[:-len("\nAnswer:")]
    if body.endswith("\n"):
        return body[:-1]
    return body


def convert(task, rec, i, stats):
    """One local record -> one row of the dataset lm-eval's YAML reads."""
    where = f"{task} item {i}"
    if task == "piqa":
        if len(rec["choices"]) != 2:
            raise sq_local.DataError(f"{where}: {len(rec['choices'])} choices, PIQA has 2")
        return {"goal": _strip_question_prefix(rec["query"], where), "sol1": rec["choices"][0],
                "sol2": rec["choices"][1], "label": int(rec["gold"])}
    if task in ("arc_easy", "arc_challenge"):
        labels = [chr(ord("A") + k) for k in range(len(rec["choices"]))]
        return {"id": f"sq-{task}-{i}", "question": _strip_question_prefix(rec["query"], where),
                "choices": {"text": list(rec["choices"]), "label": labels}, "answerKey": labels[rec["gold"]]}
    if task == "boolq":
        q = rec["query"]
        if q.startswith("Passage: "):
            q = q[len("Passage: "):]
        else:
            stats["boolq_no_passage_prefix"] = stats.get("boolq_no_passage_prefix", 0) + 1
        if list(rec["choices"]) != ["no", "yes"]:
            raise sq_local.DataError(f"{where}: choices {rec['choices']} are not ['no', 'yes'] (lm-eval's)")
        k = q.rfind("\nQuestion: ")
        if k < 0:
            raise sq_local.DataError(f"{where}: no '\\nQuestion: ' in the query")
        passage, question = q[:k], q[k + len("\nQuestion: "):]
        if question.endswith("\nAnswer:"):
            question = question[:-len("\nAnswer:")]
        elif question.endswith("\n"):
            question = question[:-1]
        if not question.endswith("?"):
            raise sq_local.DataError(f"{where}: question does not end with '?'")
        return {"passage": passage, "question": question[:-1], "label": int(rec["gold"])}
    if task == "hellaswag":
        s, body, cut = sq_local.hellaswag_split(rec["line"])
        if body == 0:
            raise sq_local.DataError(f"{where}: no 'activity_label: ' in {rec['line']!r}")
        label = s[:body - 2]
        if cut is None:
            ctx_a, ctx_b = s[body:], ""
        else:
            ctx_a, ctx_b = s[body:cut - 1], s[cut:]
            stats["hellaswag_ctx_b_split"] = stats.get("hellaswag_ctx_b_split", 0) + 1
            if any(ord(c) >= 0x80 for c in ctx_b):
                # Python's capitalize() lower-cases non-ASCII letters, our py_capitalize does not
                stats["hellaswag_ctx_b_non_ascii"] = stats.get("hellaswag_ctx_b_non_ascii", 0) + 1
        return {"ind": i, "activity_label": label, "ctx_a": ctx_a, "ctx_b": ctx_b,
                "ctx": ctx_a + (" " + ctx_b if ctx_b else ""), "endings": list(rec["endings"]),
                "label": str(rec["gold"])}
    if task == "winogrande":
        opts = rec["context_options"]
        if len(opts) != 2 or rec["gold"] not in (0, 1):
            raise sq_local.DataError(f"{where}: needs 2 context_options and gold 0/1")
        cont = rec["continuation"]
        sentence = "_ " + cont
        # what lm-eval's winogrande functions read of it: the text before/after the first "_"
        idx = sentence.index("_")
        assert sentence[:idx] + opts[0] == opts[0] and sentence[idx + 1:].strip() == cont.strip()
        return {"sentence": sentence, "option1": opts[0], "option2": opts[1], "answer": str(rec["gold"] + 1)}
    if task == "lambada_openai":
        ctx, word = rec["context"], rec["continuation"]
        text = ctx + " " + word
        parts = text.split(" ")
        if " ".join(parts[:-1]) != ctx or parts[-1] != word:
            # the word contains a space: the last ' '-separated piece is not our continuation
            raise sq_local.DataError(f"{where}: context + ' ' + continuation does not split back at its last space")
        return {"text": text}
    raise KeyError(task)


def make(outdir, data_dir, tasks, limit=0):
    """Writes OUTDIR/data/*.jsonl, OUTDIR/tasks/sq_*.yaml, OUTDIR/manifest.json; returns the manifest."""
    from lm_eval.tasks._yaml_loader import load_yaml  # lm-eval's own loader (includes resolved)

    tdir = lmeval_tasks_dir()
    outdir = os.path.abspath(outdir)
    os.makedirs(os.path.join(outdir, "data"), exist_ok=True)
    os.makedirs(os.path.join(outdir, "tasks"), exist_ok=True)
    manifest = {"data_dir": os.path.abspath(data_dir), "limit": limit, "lm_eval_tasks_dir": tdir, "tasks": {}}
    for task in tasks:
        fname, yaml_rel, split_key, has_norm = sq_local.TASKS[task]
        src = sq_local.task_file(data_dir, task)
        recs = sq_local.read_records(src, task, limit)
        if not recs:
            raise sq_local.DataError(f"{src}: no documents")
        stats = {}
        rows = [convert(task, r, i, stats) for i, r in enumerate(recs)]
        data_path = os.path.join(outdir, "data", f"{task}.jsonl")
        with open(data_path, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        base_yaml = os.path.join(tdir, yaml_rel)
        if not os.path.exists(base_yaml):
            raise SystemExit(f"FAIL: lm-eval task config {base_yaml} not found (lm-eval 0.4.13 expected)")
        base = load_yaml(base_yaml, resolve_func=False)
        if base.get(split_key) in (None, ""):
            raise SystemExit(f"FAIL: {base_yaml} has no {split_key}; lm-eval's layout changed")
        split = base[split_key]
        cfg = {
            "include": base_yaml,
            "task": f"sq_{task}",
            "dataset_path": "json",
            "dataset_name": None,
            "dataset_kwargs": {"data_files": {split: data_path}},
        }
        # the split lm-eval evaluates is the only one present; the YAML's other splits (few-shot
        # sources and, for ARC, validation) would name splits the json file does not have
        for other in ("training_split", "validation_split", "test_split"):
            if other != split_key and base.get(other) is not None:
                cfg[other] = None
        if "tag" in base:
            cfg["tag"] = []  # do not join lm-eval's own tags (ai2_arc, multiple_choice, ...)
        yaml_path = os.path.join(outdir, "tasks", f"sq_{task}.yaml")
        with open(yaml_path, "w", encoding="utf-8") as f:
            f.write(f"# generated by tests/lmeval/make_tasks.py from {src}\n")
            yaml.safe_dump(cfg, f, sort_keys=False, allow_unicode=True)
        manifest["tasks"][task] = {
            "lmeval_task": f"sq_{task}", "includes": base_yaml, "split": split, "split_key": split_key,
            "source": os.path.abspath(src), "source_sha256": hashlib.sha256(open(src, "rb").read()).hexdigest(),
            "docs": len(rows), "data": data_path, "yaml": yaml_path, "has_acc_norm": has_norm, "notes": stats,
        }
    with open(os.path.join(outdir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--data-dir", required=True, help="folder with zeroshot/<files>")
    ap.add_argument("--limit", type=int, default=0, help="write only the first N documents (0 = all)")
    ap.add_argument("--tasks", default=",".join(sq_local.ALL_TASKS))
    a = ap.parse_args()
    tasks = [t for t in a.tasks.split(",") if t]
    for t in tasks:
        if t not in sq_local.TASKS:
            raise SystemExit(f"FAIL: unknown task {t} (known: {', '.join(sq_local.ALL_TASKS)})")
    try:
        m = make(a.outdir, a.data_dir, tasks, a.limit)
    except sq_local.DataError as e:
        print(f"FAIL: {e}")
        return 1
    for t, e in m["tasks"].items():
        print(f"{e['lmeval_task']}: {e['docs']} docs from {e['source']} -> {e['yaml']} {e['notes'] or ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
