#!/usr/bin/env python3
"""Every sliderquant command with every path argument set to a hostile name.

    python3 tests/reliability/test_hostile_paths.py --cli build/sliderquant \\
        --model tests/fixtures/stories260K/hf --text tests/fixtures/text/wikitext2_head.txt

For each hostile name N (quotes, spaces, ;, $(touch PWNED), backticks, *, a newline, a
leading dash, `victim' 'y` next to a sentinel directory `victim`, and all of them at once)
the model, the text and a small GPTQ recipe are copied to N, N.txt and N.recipe.json in a
fresh case directory, and commands run with N-derived paths for every path argument:
quantize gptq (model, --recipe, --out, --json, --work, --calib, --eval; every name),
export --format gguf (--out, --json; every name), synth (--tokenizer; every name),
convert of that GGUF, quantize rtn (default work directory OUT.work), eval (--ppl,
--json, --kld-base, --save-logits), inspect (--json), tokenize (tokenizer file, stdin from
a hostile file; model directory with a hostile --text), recipe check (--model). Convert,
quantize rtn and eval run for the plain, everything, leading-dash and victim names;
inspect, tokenize and recipe check for plain and everything (which holds every hostile
character), to keep the test near a minute on two cores (each run is ~1 s of libtorch
start-up; cases run two at a time, --jobs).
Names with a leading dash are passed relative to the case directory: positionals as ./-N
(and once after `--`), option values as --opt=-N.

Checks: exit code 0; each output exists at exactly the path given, is well formed, and
matches the plain-named case byte for byte where the content does not record a path; no
file named PWNED anywhere (temp dir, case dirs, the current directory); sentinel
directories named like a shell-split prefix (or glob match) of a hostile name keep their
content; the case directory holds exactly the inputs and expected outputs (no *.tmp.*,
no *.work left after success, nothing else). Exit code 1 and a list of failures otherwise.
"""
import concurrent.futures
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import common  # tests/reliability/common.py: options, input checks, the report

# Which commands run for a case (each run costs about a second, mostly libtorch's start):
# "full" every command, "medium" the ones that write, "light" quantize (gptq, every path
# option), export (GGUF file written through a temporary) and synth (its own temporary). The "everything" name holds every hostile character.
FULL = {"rtn", "gptq", "eval", "inspect", "export", "convert", "tokenize", "tokenize-text", "synth", "recipe"}
MEDIUM = {"rtn", "gptq", "eval", "export", "convert", "synth"}
LIGHT = {"gptq", "export", "synth"}
CASES = [  # (label, hostile name, commands); "plain" is the reference the others are compared with
    ("plain", "plain", FULL),
    ("single-quote", "it's", LIGHT),
    ("double-quote", 'say "hi"', LIGHT),
    ("spaces", "with  two spaces", LIGHT),
    ("semicolon", "a;touch PWNED;b", LIGHT),
    ("cmd-subst", "$(touch PWNED)", LIGHT),
    ("backticks", "`touch PWNED`", LIGHT),
    ("glob", "star*", LIGHT),
    ("newline", "new\nline", LIGHT),
    ("leading-dash", "-dash", MEDIUM),
    ("victim", "victim' 'y", MEDIUM),
    ("everything", "-all ' \" ; $(touch PWNED) `touch PWNED` * \n|&<>\\ x", FULL),
]
HOSTILE_TEXT = "it's $(touch PWNED) `touch PWNED` \"q\" ; * \\ end"
SENTINEL_FILE, SENTINEL_BODY = "keep.txt", "sentinel: must survive\n"
GPTQ_RECIPE = {
    "name": "hostile-gptq-w4",
    "description": "test_hostile_paths: small GPTQ w4 per-channel (stories260K's widths take no common group)",
    "calibration": {"dataset": "c4-2k", "samples": 4, "seqlen": 64, "seed": 0},
    "format": "w4",
    "pipeline": [{"pass": "gptq", "options": {"damp": 0.01, "block_size": 128}}],
}


def sha(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def sentinel_names(name):
    """Directories a shell would hit if it split or globbed the hostile name."""
    out = set()
    prefix = re.split(r"[\s'\";$`*()|&<>\\]", name)[0]
    if prefix and prefix != name:
        out.add(prefix)
    if "*" in name:
        out.add(name.split("*")[0] + "_glob_sentinel")  # matches the glob N* itself
    return sorted(out)


class Case:
    def __init__(self, label, name, commands, root, args):
        self.label, self.name, self.commands, self.args = label, name, commands, args
        self.dir = os.path.join(root, "case_" + label)  # plain directory name, hostile files inside
        self.dash = name.startswith("-")
        self.failures, self.log, self.results = [], [], {}
        self.created, self.expected = set(), set()
        self.seconds = 0.0

    # Paths as given to the CLI: absolute, or for dash names relative to the case directory.
    def pos(self, rel):
        return "./" + rel if self.dash else os.path.join(self.dir, rel)

    def opt(self, option, rel):
        return [f"{option}={rel}"] if self.dash else [option, os.path.join(self.dir, rel)]

    def given(self, rel):  # the string the CLI sees for an option value
        return rel if self.dash else os.path.join(self.dir, rel)

    def fail(self, msg):
        self.failures.append(f"[{self.label}] {msg}")

    def run(self, what, argv, stdin_path=None):
        argv = [self.args.cli] + argv
        t0 = time.monotonic()
        stdin = open(stdin_path, "rb") if stdin_path else subprocess.DEVNULL
        try:
            p = subprocess.run(argv, cwd=self.dir, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               timeout=300)
        except subprocess.TimeoutExpired:
            self.fail(f"{what}: timed out after 300 s: {argv!r}")
            return None
        finally:
            if stdin_path:
                stdin.close()
        dt = time.monotonic() - t0
        self.log.append(f"{what} {dt:.1f}s")
        if p.returncode != 0:
            err = p.stderr.decode(errors="replace").strip()[-1500:]
            self.fail(f"{what}: exit code {p.returncode} (expected 0)\n    argv: {argv!r}\n    cwd: {self.dir!r}\n"
                      f"    stderr: {err}")
            return None
        return p

    def expect(self, rel, kind, files=()):
        """The output REL must exist exactly there (kind 'file' or 'dir', with FILES inside)."""
        self.expected.add(rel)
        path = os.path.join(self.dir, rel)
        if kind == "dir":
            if not os.path.isdir(path):
                self.fail(f"expected output directory missing: {path!r}")
                return False
            for f in files:
                if not os.path.isfile(os.path.join(path, f)):
                    self.fail(f"output directory {path!r} lacks {f}")
                    return False
        elif not os.path.isfile(path):
            self.fail(f"expected output file missing: {path!r}")
            return False
        return True

    def load_json(self, rel):
        try:
            with open(os.path.join(self.dir, rel), encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError) as e:
            self.fail(f"{rel!r}: not readable JSON: {e}")
            return None


def prepare(case):
    os.mkdir(case.dir)
    N = case.name
    shutil.copytree(case.args.model, os.path.join(case.dir, N))
    shutil.copyfile(case.args.text, os.path.join(case.dir, N + ".txt"))
    with open(case.args.text, "rb") as f:  # a short perplexity text: --eval has no window limit
        head = f.read(4096)
    with open(os.path.join(case.dir, N + ".ppl.txt"), "wb") as f:
        f.write(head[:head.rfind(b"\n") + 1] or head)
    with open(os.path.join(case.dir, N + ".recipe.json"), "w", encoding="utf-8") as f:
        json.dump(GPTQ_RECIPE, f)
    case.created |= {N, N + ".txt", N + ".ppl.txt", N + ".recipe.json"}
    for s in sentinel_names(N):
        os.mkdir(os.path.join(case.dir, s))
        with open(os.path.join(case.dir, s, SENTINEL_FILE), "w") as f:
            f.write(SENTINEL_BODY)
        case.created.add(s)
    case.sentinels = sentinel_names(N)


def run_case(case):
    t0 = time.monotonic()
    try:
        prepare(case)
        _run_commands(case)
        _check_case_dir(case)
    except Exception as e:  # a harness error is a failure too, never a skip
        case.fail(f"harness error: {type(e).__name__}: {e}")
    case.seconds = time.monotonic() - t0
    return case


def _run_commands(case):
    N, R = case.name, case.results
    common = ["-q", "--threads", "1"]

    do = case.commands
    # quantize, rtn, default work directory (N.rtn.work must be gone after success)
    if "rtn" in do and case.run("quantize rtn", ["quantize", case.pos(N), "--recipe", "rtn-w4g128", *case.opt("--out", N + ".rtn"),
                                 *case.opt("--json", N + ".rtn.json"), *common]):
        if case.expect(N + ".rtn", "dir", ["model.safetensors", "quantization_config.json", "config.json"]):
            R["rtn"] = sha(os.path.join(case.dir, N + ".rtn", "model.safetensors"))
        if case.expect(N + ".rtn.json", "file"):
            j = case.load_json(N + ".rtn.json")
            if j is not None and j.get("output") != case.given(N + ".rtn"):
                case.fail(f"quantize --json 'output' is {j.get('output')!r}, expected {case.given(N + '.rtn')!r}")

    # quantize, gptq: recipe file, --work, --calib, --eval, --json all hostile
    if case.run("quantize gptq", ["quantize", case.pos(N), *case.opt("--recipe", N + ".recipe.json"),
                                  *case.opt("--out", N + ".q"), *case.opt("--json", N + ".q.json"),
                                  *case.opt("--work", N + ".work"), *case.opt("--calib", N + ".txt"),
                                  *case.opt("--eval", N + ".ppl.txt"), *common]):
        if case.expect(N + ".q", "dir", ["model.safetensors", "quantization_config.json", "config.json"]):
            R["gptq"] = sha(os.path.join(case.dir, N + ".q", "model.safetensors"))
        if case.expect(N + ".q.json", "file"):
            j = case.load_json(N + ".q.json")
            if j is not None:
                ds = (j.get("calibration") or {}).get("dataset")
                if ds != case.given(N + ".txt"):
                    case.fail(f"quantize --json calibration.dataset is {ds!r}, expected {case.given(N + '.txt')!r}")
                R["calib_sha"] = (j.get("calibration") or {}).get("sha256")
                try:
                    R["q_eval_ppl"] = j["perplexity"][0]["ppl"]
                    if j["perplexity"][0]["dataset"] != case.given(N + ".ppl.txt"):
                        case.fail(f"quantize --eval dataset is {j['perplexity'][0]['dataset']!r}")
                except (KeyError, IndexError, TypeError) as e:
                    case.fail(f"quantize --json lacks the --eval perplexity: {e!r}")

    # eval of the hostile-named quantized model: --ppl file, --json, --kld-base, --save-logits
    if "eval" in do and case.run("eval", ["eval", case.pos(N + ".q"), *case.opt("--ppl", N + ".txt"),
                         *case.opt("--json", N + ".eval.json"), *case.opt("--kld-base", N),
                         *case.opt("--save-logits", N + ".logits.npy"), "--seqlen", "64", "--max-windows", "2",
                         *common]):
        if case.expect(N + ".eval.json", "file"):
            j = case.load_json(N + ".eval.json")
            if j is not None:
                try:
                    R["ppl"] = j["perplexity"][0]["ppl"]
                    R["kld"] = j["kld"]["results"][0]["mean_kl"]
                    if j["perplexity"][0]["dataset"] != case.given(N + ".txt"):
                        case.fail(f"eval --json dataset is {j['perplexity'][0]['dataset']!r}")
                except (KeyError, IndexError, TypeError) as e:
                    case.fail(f"eval --json lacks perplexity/kld results: {e!r}")
        if case.expect(N + ".logits.npy", "file"):
            with open(os.path.join(case.dir, N + ".logits.npy"), "rb") as f:
                if f.read(6) != b"\x93NUMPY":
                    case.fail("--save-logits output is not a .npy file")
            R["logits"] = sha(os.path.join(case.dir, N + ".logits.npy"))
        case.expect(N + ".logits.npy.ids.json", "file")

    # inspect
    if "inspect" in do and case.run("inspect", ["inspect", case.pos(N + ".q"), "--tensors", *case.opt("--json", N + ".inspect.json"),
                            *common]):
        if case.expect(N + ".inspect.json", "file"):
            case.load_json(N + ".inspect.json")
    if case.dash and case.run("inspect after --", ["inspect", *common, "--", N + ".q"]) is None:
        pass  # failure already recorded

    # export to GGUF, then convert it back
    if "export" in do and case.run("export gguf", ["export", case.pos(N), "--format", "gguf", *case.opt("--out", N + ".gguf"),
                                *case.opt("--json", N + ".export.json"), *common]):
        if case.expect(N + ".gguf", "file"):
            with open(os.path.join(case.dir, N + ".gguf"), "rb") as f:
                if f.read(4) != b"GGUF":
                    case.fail("export --format gguf output does not start with GGUF")
        case.expect(N + ".export.json", "file")
        if "convert" in do and case.run("convert", ["convert", case.pos(N + ".gguf"), *case.opt("--out", N + ".conv"), *common]):
            if case.expect(N + ".conv", "dir", ["config.json", "model.safetensors"]):
                R["conv"] = sha(os.path.join(case.dir, N + ".conv", "model.safetensors"))

    # tokenize: the tokenizer file inside the hostile directory, text on stdin from a hostile file
    p = "tokenize" in do and case.run("tokenize", ["tokenize", case.pos(os.path.join(N, "tokenizer.model")), *common],
                 stdin_path=os.path.join(case.dir, N + ".txt"))
    if p:
        R["tok_file"] = hashlib.sha256(p.stdout).hexdigest()
        if not p.stdout.strip():
            case.fail("tokenize printed no ids")
    if "tokenize-text" in do:  # the model directory and a hostile --text
        p = case.run("tokenize --text", ["tokenize", case.pos(N), "--text", HOSTILE_TEXT, "--json", *common])
        if p:
            try:
                R["tok_text"] = json.loads(p.stdout)["ids"]
            except (ValueError, KeyError) as e:
                case.fail(f"tokenize --json output unreadable: {e}")

    # synth, with the tokenizer copied from the hostile directory
    if "synth" in do and case.run("synth", ["synth", case.pos(N + ".syn"), "--seed", "1", *case.opt("--tokenizer", N), *common]):
        if case.expect(N + ".syn", "dir", ["config.json", "model.safetensors", "tokenizer.model"]):
            R["syn"] = sha(os.path.join(case.dir, N + ".syn", "model.safetensors"))

    # recipe check of the hostile recipe file against the hostile model directory
    if "recipe" in do:
        case.run("recipe check", ["recipe", "check", case.pos(N + ".recipe.json"), *case.opt("--model", N), *common])


def _check_case_dir(case):
    for s in case.sentinels:
        f = os.path.join(case.dir, s, SENTINEL_FILE)
        try:
            with open(f) as fh:
                ok = fh.read() == SENTINEL_BODY
            ok = ok and os.listdir(os.path.join(case.dir, s)) == [SENTINEL_FILE]
        except OSError:
            ok = False
        if not ok:
            case.fail(f"sentinel directory {os.path.join(case.dir, s)!r} was modified or removed")
    present = set(os.listdir(case.dir))
    extra = present - case.created - case.expected
    for e in sorted(extra):
        why = ("temporary left behind" if ".tmp." in e else "work directory left after success" if e.endswith(".work")
               else "shell injection" if e == "PWNED" else "unexpected entry")
        case.fail(f"{why}: {os.path.join(case.dir, e)!r}")
    missing = case.created - present
    for m in sorted(missing):
        case.fail(f"input or sentinel removed: {os.path.join(case.dir, m)!r}")


def main():
    args = common.parse_args(
        __doc__, "a small HF model directory (stories260K)", "a small text file (calibration / perplexity)",
        lambda ap: ap.add_argument("--jobs", type=int, default=2, help="cases run in parallel (default 2)"))
    if args is None:
        return 1

    t_start = time.monotonic()
    cwd = os.getcwd()
    cwd_before = set(os.listdir(cwd))
    tmp = tempfile.mkdtemp(prefix="sq_hostile.")
    failures = []
    try:
        cases = [Case(label, name, commands, tmp, args) for label, name, commands in CASES]
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
            for case in ex.map(run_case, cases):
                print(f"  {case.label:<13} {case.seconds:5.1f}s  {'FAIL' if case.failures else 'ok'}  "
                      f"({', '.join(case.log)})", flush=True)
                failures += case.failures

        # Outputs at hostile paths must equal the plain-path ones (same inputs, same seeds).
        ref = cases[0].results
        keys = ("rtn", "gptq", "calib_sha", "q_eval_ppl", "ppl", "kld", "logits", "conv", "tok_file", "syn")
        for case in cases[1:]:
            for k in keys:
                if k in ref and k in case.results and case.results[k] != ref[k]:
                    failures.append(f"[{case.label}] {k}: result differs from the plain-named case "
                                    f"({case.results[k]!r} != {ref[k]!r})")
        ev = next(c for c in cases if c.label == "everything").results
        if "tok_text" in ref and "tok_text" in ev and ref["tok_text"] != ev["tok_text"]:
            failures.append("[everything] tokenize --text: ids differ from the plain-named case")

        # Anything named PWNED anywhere, *.tmp.* anywhere, stray top-level entries.
        for dirpath, dirnames, filenames in os.walk(tmp):
            for n in dirnames + filenames:
                if n == "PWNED":
                    failures.append(f"shell injection: {os.path.join(dirpath, n)!r} exists")
                elif ".tmp." in n and dirpath != tmp and os.path.dirname(dirpath) != tmp:
                    failures.append(f"temporary left inside an output: {os.path.join(dirpath, n)!r}")
        top_extra = set(os.listdir(tmp)) - {os.path.basename(c.dir) for c in cases}
        for e in sorted(top_extra):
            failures.append(f"unexpected entry in the temporary directory: {os.path.join(tmp, e)!r}")
        if os.path.lexists(os.path.join(cwd, "PWNED")):
            failures.append(f"shell injection: {os.path.join(cwd, 'PWNED')!r} exists in the current directory")
        fragments = {"PWNED", "plain"} | {s for _, n, _ in CASES for s in re.split(r"[\s'\";$`*()|&<>\\]", n) if len(s) > 2}
        for e in sorted(set(os.listdir(cwd)) - cwd_before):
            if any(f in e for f in fragments) or e.startswith(("-", "it", "with", "say", "a;", "star", "new", "victim")):
                failures.append(f"stray entry in the current directory {cwd!r}: {e!r}")
            else:
                print(f"  note: {e!r} appeared in {cwd} during the test (unrelated to the hostile names?)")
    finally:
        common.drop_tmp(tmp, args.keep)
    return common.report("test_hostile_paths", failures, time.monotonic() - t_start,
                         f"{len(CASES)} names x every command, ")


if __name__ == "__main__":
    sys.exit(main())
