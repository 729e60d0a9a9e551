"""The local zero-shot task files, read the way sliderquant reads them.

Shared by make_tasks.py (files -> the Hugging Face dataset schemas lm-eval's task YAMLs read)
and test_zeroshot_parity.py (the (context, continuation) strings sliderquant builds, compared
with the requests lm-eval logged). `our_doc` mirrors src/eval/zeroshot_tasks.cpp
(jsonl_doc, parse_hellaswag, hellaswag_query, with_answer_suffix, py_capitalize and
hellaswag_preprocess): when that file changes, change this one. Nothing here is lm-eval's code;
lm-eval's prompts are only ever run by lm-eval itself (run_lmeval.py).
"""
import bz2
import json
import os

# our task name -> (local file under zeroshot/, lm-eval YAML under lm_eval/tasks/, the split
# key the YAML evaluates, has acc_norm)
TASKS = {
    "piqa": ("piqa.jsonl", "piqa/piqa.yaml", "validation_split", True),
    "arc_easy": ("arc_easy.jsonl", "arc/arc_easy.yaml", "test_split", True),
    "arc_challenge": ("arc_challenge.jsonl", "arc/arc_challenge.yaml", "test_split", True),
    "hellaswag": ("hellaswag_val_full.txt.bz2", "hellaswag/hellaswag.yaml", "validation_split", True),
    "winogrande": ("winogrande.jsonl", "winogrande/default.yaml", "validation_split", False),
    "boolq": ("boolq.jsonl", "super_glue/boolq/default.yaml", "validation_split", False),
    "lambada_openai": ("lambada_openai.jsonl", "lambada/lambada_openai.yaml", "test_split", False),
}
ALL_TASKS = list(TASKS)


class DataError(Exception):
    pass


def task_file(data_dir, task):
    """The file sliderquant reads for `task` (HellaSwag: the .bz2, else the plain .txt)."""
    path = os.path.join(data_dir, "zeroshot", TASKS[task][0])
    if not os.path.exists(path) and path.endswith(".bz2") and os.path.exists(path[:-4]):
        path = path[:-4]
    if not os.path.exists(path):
        raise DataError(f"task {task}: {path} not found")
    return path


def _lines(text):
    # zeroshot_tasks.cpp split_lines: split at '\n', drop one trailing '\r' per line
    out = text.split("\n")
    if out and out[-1] == "" and text.endswith("\n"):
        out.pop()
    return [ln[:-1] if ln.endswith("\r") else ln for ln in out]


def read_records(path, task, limit=0):
    """The file's raw records in file order (jsonl: dicts; HellaSwag: 6-line items)."""
    raw = open(path, "rb").read()
    if path.endswith(".bz2"):
        raw = bz2.decompress(raw)
    text = raw.decode("utf-8")
    recs = []
    if task == "hellaswag":
        lines = _lines(text)
        while lines and lines[-1] == "":
            lines.pop()
        if len(lines) % 6:
            raise DataError(f"{path}: {len(lines)} lines is not a multiple of 6")
        for i in range(0, len(lines), 6):
            if limit and len(recs) >= limit:
                break
            recs.append({"line": lines[i], "gold": int(lines[i + 1]), "endings": lines[i + 2:i + 6]})
        return recs
    for ln in _lines(text):
        if not ln.strip(" \t"):
            continue
        if limit and len(recs) >= limit:
            break
        recs.append(json.loads(ln))
    return recs


# ---- sliderquant's mapping (mirror of zeroshot_tasks.cpp) ---------------------------------
def with_answer_suffix(q):
    if q.endswith("\nAnswer:"):
        return q
    if q.endswith("\n"):
        return q + "Answer:"
    return q + "\nAnswer:"


def py_capitalize_ascii(s):
    # zeroshot_tasks.cpp py_capitalize: ASCII letters only (bytes >= 0x80 untouched)
    b = bytearray(s.encode("utf-8"))
    for i, c in enumerate(b):
        if c >= 0x80:
            continue
        ch = chr(c)
        b[i] = ord(ch.upper() if i == 0 else ch.lower())
    return b.decode("utf-8")


def hellaswag_preprocess(text):
    # zeroshot_tasks.cpp hellaswag_preprocess (written out as that C++ does it)
    s = text.strip(" \t\n\r\v\f")
    s = s.replace(" [title]", ". ")
    out, i = [], 0
    while i < len(s):
        if s[i] == "[":
            j = i + 1
            while j < len(s) and s[j] != "]" and s[j] != "\n":
                j += 1
            if j < len(s) and s[j] == "]":
                i = j + 1
                continue
        out.append(s[i])
        i += 1
    return "".join(out).replace("  ", " ")


def hellaswag_split(line):
    """zeroshot_tasks.cpp hellaswag_query's decision, as fields: (s, body, cut).
    s = the line without trailing spaces/tabs, body = index after the first ": " (0 if none),
    cut = start of the fragment that gets capitalize() (None: the context ends a sentence)."""
    s = line.rstrip(" \t")
    colon = s.find(": ")
    body = 0 if colon < 0 else colon + 2
    cut = None
    if s and s[-1] not in ".!?":
        for i in range(len(s) - 1, body, -1):  # i = size-1 .. body+1
            if s[i] == " " and s[i - 1] in ".!?":
                cut = i + 1
                break
        if cut is not None and cut >= len(s):
            cut = None
    return s, body, cut


def hellaswag_query(line):
    s, _, cut = hellaswag_split(line)
    if cut is not None:
        s = s[:cut] + py_capitalize_ascii(s[cut:])
    return hellaswag_preprocess(s)


def our_doc(task, rec):
    """-> {"contexts", "continuations", "choices", "gold"} as zeroshot_tasks.cpp builds them."""
    if task == "hellaswag":
        endings = [hellaswag_preprocess(e) for e in rec["endings"]]
        q = hellaswag_query(rec["line"])
        return {"contexts": [q] * 4, "continuations": [" " + e for e in endings], "choices": endings,
                "gold": rec["gold"]}
    if task == "winogrande":
        target = rec["continuation"].strip(" \t\n")
        opts = rec["context_options"]
        return {"contexts": list(opts), "continuations": [" " + target] * len(opts), "choices": list(opts),
                "gold": rec["gold"]}
    if task == "lambada_openai":
        return {"contexts": [rec["context"]], "continuations": [" " + rec["continuation"]],
                "choices": [rec["continuation"]], "gold": 0}
    q = rec["query"]
    if task == "boolq" and q.startswith("Passage: "):
        q = q[len("Passage: "):]
    ctx = with_answer_suffix(q)
    return {"contexts": [ctx] * len(rec["choices"]), "continuations": [" " + c for c in rec["choices"]],
            "choices": list(rec["choices"]), "gold": rec["gold"]}
