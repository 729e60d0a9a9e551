#!/usr/bin/env python3
"""llama.cpp (through llama-cpp-python) as the reference runtime for sliderquant's tests.

Usage (run with the project's .venv python):
  llama_cpp_harness.py tokenize MODEL.gguf TEXT_FILE [--add-bos]   -> JSON list of ids
  llama_cpp_harness.py logits MODEL.gguf IDS_JSON OUT.npy          -> logits [n, vocab] float32
  llama_cpp_harness.py ppl MODEL.gguf IDS_JSON --seqlen L [--max-windows K] [--threads T]
        -> JSON {"ppl", "nll", "windows", "seqlen", "tokens_per_second"}

Perplexity follows sliderquant's GPTQ protocol on the SAME token ids: the ids are cut into
consecutive windows of L tokens (a trailing partial window is dropped), each window is run
alone from an empty cache with batch = window, and the mean negative log-likelihood of
tokens 1..L-1 of every window given the tokens before it is exponentiated.
The K/V cache is float32 (llama.cpp defaults to float16). Any failure (llama_cpp missing, model refused) exits non-zero with one line on stderr.
"""
import argparse
import json
import sys
import time


def load(path, n_ctx, threads, vocab_only=False):
    try:
        from llama_cpp import Llama
    except ImportError as e:  # a harness that cannot run must fail loudly
        sys.exit(f"llama_cpp_harness: llama-cpp-python is not importable ({e}); run scripts/install_python.sh")
    return Llama(model_path=path, n_ctx=max(n_ctx, 8), n_batch=max(n_ctx, 8), n_ubatch=max(n_ctx, 8),
                 logits_all=not vocab_only, vocab_only=vocab_only, n_threads=threads,
                 n_threads_batch=threads, verbose=False, seed=0,
                 # float32 K/V cache (llama.cpp's default is float16): the comparison is of the
                 # weights' arithmetic, not of a cache rounding sliderquant does not do
                 type_k=0, type_v=0)


def run_window(llm, ids):
    import numpy as np
    llm.reset()
    llm.eval(ids)
    return np.asarray(llm.scores[: len(ids)], dtype=np.float32)


def log_softmax(x):
    import numpy as np
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("cmd", choices=["tokenize", "logits", "ppl"])
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--add-bos", action="store_true")
    ap.add_argument("--seqlen", type=int, default=512)
    ap.add_argument("--max-windows", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    import numpy as np

    if a.cmd == "tokenize":
        llm = load(a.model, 8, a.threads, vocab_only=True)
        text = open(a.input, encoding="utf-8").read()
        print(json.dumps(llm.tokenize(text.encode("utf-8"), add_bos=a.add_bos, special=False)))
        return
    ids = json.load(open(a.input))
    if a.cmd == "logits":
        llm = load(a.model, len(ids), a.threads)
        np.save(a.out, run_window(llm, ids))
        return
    L = a.seqlen
    n = len(ids) // L
    if a.max_windows:
        n = min(n, a.max_windows)
    if n == 0:
        sys.exit(f"llama_cpp_harness: {len(ids)} tokens make no window of {L}")
    llm = load(a.model, L, a.threads)
    total, count, seconds = 0.0, 0, 0.0
    for w in range(n):
        win = ids[w * L:(w + 1) * L]
        t0 = time.perf_counter()
        lg = run_window(llm, win)
        seconds += time.perf_counter() - t0
        lp = log_softmax(lg[:-1])
        total -= float(lp[np.arange(L - 1), np.asarray(win[1:])].sum())
        count += L - 1
    nll = total / count
    print(json.dumps({"ppl": float(np.exp(nll)), "nll": nll, "windows": n, "seqlen": L,
                      "tokens_per_second": n * L / seconds}))


if __name__ == "__main__":
    main()
