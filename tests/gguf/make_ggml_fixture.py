#!/usr/bin/env python3
"""Writes tests/fixtures/ggml/: reference quantizations of a few float rows for test_ggml.cpp.

References, in order of preference for each type:
  * gguf-py (pip package gguf, tested with 0.19.0): quantizes f16, bf16, q4_0, q4_1, q5_0,
    q5_1, q8_0 and dequantizes those and q2_K..q6_K.
  * ggml's own C library, when SQ_LIBGGML names a libggml-base shared object (for instance
    from the wheel libggml-python 0.20.2.post1, see tests/fixtures/PROVENANCE.md): the k-quant
    reference quantizers (ggml_quantize_chunk without and with an importance matrix,
    quantize_row_q8_K_ref) and dequantize_row_q8_K, which gguf-py lacks. Where both exist
    the script checks that they agree.
Without the library the k-quant quantized bytes are not written (the test then skips those
comparisons) and only gguf-py's decodings of random blocks are recorded.

Files (all little-endian):
  rows.f32             ROWS x N float32 input rows
  imatrix.f32          N float32 importance weights (positive)
  <type>.q             quantized bytes of all rows (row after row)
  <type>.deq.f32       the reference decoding of <type>.q (not for bf16)
  <type>.imat.q        ggml C's bytes with imatrix.f32 as the importance matrix (per row)
  imat_rows.f32        IMAT_ROWS x 256 more rows (Gaussian and Laplace, varied scales), and
  <type>.imatx.q       ggml C's bytes for them with the first 256 entries of imatrix.f32
  <type>.rand.q        random but valid blocks; <type>.rand.deq.f32 their reference decoding
  manifest.json        what was written and by whom

Usage: .venv/bin/python tests/gguf/make_ggml_fixture.py [out_dir]
"""
import ctypes
import json
import os
import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf import quants

ROWS, N = 6, 512
IMAT_ROWS = 12  # extra rows of 256 for the imatrix searches (more super-blocks to differ in)
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "fixtures", "ggml")

GGUFPY_QUANT = [T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0]
KQUANTS = [T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]
IMATRIX_TYPES = [T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K]
NAMES = {T.F16: "f16", T.BF16: "bf16", T.Q4_0: "q4_0", T.Q4_1: "q4_1", T.Q5_0: "q5_0", T.Q5_1: "q5_1",
         T.Q8_0: "q8_0", T.Q2_K: "q2_K", T.Q3_K: "q3_K", T.Q4_K: "q4_K", T.Q5_K: "q5_K", T.Q6_K: "q6_K",
         T.Q8_K: "q8_K"}


def make_rows(rng):
    r = np.zeros((ROWS, N), dtype=np.float32)
    # 0: weight-like Gaussian
    r[0] = rng.normal(0, 0.02, N)
    # 1: all zeros, then a constant
    r[1, 256:] = 0.5
    # 2: tiny (fp16-subnormal and below GROUP_MAX_EPS), then huge (still fp16-finite scales)
    r[2, :128] = rng.normal(0, 1e-7, 128)
    r[2, 128:256] = rng.normal(0, 1e-20, 128)
    r[2, 256:] = rng.normal(0, 1e4, 256).clip(-6e4, 6e4)
    # 3: Gaussian with one large outlier, then negative-only values
    r[3, :256] = rng.normal(0, 1, 256)
    r[3, 100] = 50.0
    r[3, 256:] = -np.abs(rng.normal(0, 1, 256)) - 0.1
    # 4: per-32-group oddities: varying scales, zeros, positive-only, constant, single spike
    g = rng.normal(0, 1, N) * np.repeat(np.exp(rng.normal(0, 2, N // 32)), 32)
    g[32:64] = 0
    g[64:96] = np.abs(g[64:96])
    g[96:128] = -0.75
    g[128:160] = 0
    g[140] = 3.0
    r[4] = g
    # 5: Laplace (heavy tails)
    r[5] = rng.laplace(0, 0.1, N)
    return r.astype(np.float32)


def load_ggml():
    path = os.environ.get("SQ_LIBGGML")
    if not path:
        return None
    lib = ctypes.CDLL(path)
    lib.ggml_quantize_chunk.restype = ctypes.c_size_t
    lib.ggml_quantize_chunk.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                                        ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
    lib.ggml_version.restype = ctypes.c_char_p
    lib.ggml_commit.restype = ctypes.c_char_p
    return lib


def c_quantize(lib, t, rows, imatrix=None):
    block, size = gguf.GGML_QUANT_SIZES[t]
    out = np.zeros(rows.shape[0] * rows.shape[1] // block * size, dtype=np.uint8)
    src = np.ascontiguousarray(rows, dtype=np.float32)
    if t == T.Q8_K:  # not a storage type: ggml_quantize_chunk refuses it, use the row reference
        lib.quantize_row_q8_K_ref(src.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p),
                                  ctypes.c_int64(src.size))
        return out
    im = None if imatrix is None else np.ascontiguousarray(imatrix, dtype=np.float32).ctypes.data_as(ctypes.c_void_p)
    lib.ggml_quantize_chunk(int(t), src.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p),
                            0, rows.shape[0], rows.shape[1], im)
    return out


def c_dequantize(lib, t, data, n):
    out = np.zeros(n, dtype=np.float32)
    fn = getattr(lib, "dequantize_row_" + NAMES[t])
    fn(data.ctypes.data_as(ctypes.c_void_p), out.ctypes.data_as(ctypes.c_void_p), ctypes.c_int64(n))
    return out


def random_blocks(rng, t, nblocks):
    """Random bytes with every fp16 scale replaced by a finite value of moderate size."""
    block, size = gguf.GGML_QUANT_SIZES[t]
    b = rng.integers(0, 256, (nblocks, size), dtype=np.uint8)
    half = lambda v: np.array([v], dtype=np.float16).view(np.uint8)
    for i in range(nblocks):
        d = half(rng.uniform(-0.05, 0.05))
        dmin = half(rng.uniform(0, 0.05))
        if t == T.Q2_K:
            b[i, 80:82], b[i, 82:84] = d, dmin
        elif t == T.Q3_K:
            b[i, 108:110] = d
        elif t in (T.Q4_K, T.Q5_K):
            b[i, 0:2], b[i, 2:4] = d, dmin
        elif t == T.Q6_K:
            b[i, 208:210] = d
        elif t in (T.Q4_0, T.Q5_0, T.Q8_0):
            b[i, 0:2] = d
        elif t in (T.Q4_1, T.Q5_1):
            b[i, 0:2], b[i, 2:4] = d, dmin
    return b.reshape(-1)


def main():
    rng = np.random.default_rng(20240611)
    os.makedirs(OUT, exist_ok=True)
    rows = make_rows(rng)
    imatrix = np.exp(rng.normal(0, 1, N)).astype(np.float32)
    rows.tofile(os.path.join(OUT, "rows.f32"))
    scales = np.exp(rng.normal(0, 1.5, (IMAT_ROWS, 1)))
    irows = np.where(np.arange(IMAT_ROWS)[:, None] % 2 == 0, rng.normal(0, 1, (IMAT_ROWS, 256)),
                     rng.laplace(0, 1, (IMAT_ROWS, 256)))
    irows = (irows * scales).astype(np.float32)
    imatrix.tofile(os.path.join(OUT, "imatrix.f32"))
    lib = load_ggml()
    if lib is not None:
        irows.tofile(os.path.join(OUT, "imat_rows.f32"))
    manifest = {"rows": ROWS, "n": N, "gguf_py": getattr(gguf, "__version__", None) or "0.19.0",
                "ggml_c": None, "types": {}}
    if lib is not None:
        manifest["ggml_c"] = "ggml %s (commit %s)" % (lib.ggml_version().decode(), lib.ggml_commit().decode())

    def write(name, arr):
        arr.tofile(os.path.join(OUT, name))

    for t in GGUFPY_QUANT + KQUANTS + [T.Q8_K]:
        name = NAMES[t]
        entry = {}
        if t in GGUFPY_QUANT:
            q = np.asarray(quants.quantize(rows, t)).view(np.uint8).reshape(-1)
            entry["quant"] = "gguf-py"
            if lib is not None and t not in (T.F16, T.BF16):
                c = c_quantize(lib, t, rows)
                assert np.array_equal(c, q), "gguf-py and ggml C disagree on " + name
                entry["quant"] = "gguf-py (= ggml C)"
        elif lib is not None:
            q = c_quantize(lib, t, rows)
            entry["quant"] = "ggml C"
        else:
            q = None
        if q is not None:
            write(name + ".q", q)
            if t == T.Q8_K:
                deq = c_dequantize(lib, t, q, ROWS * N)
                entry["deq"] = "ggml C"
            else:
                deq = np.asarray(quants.dequantize(q.reshape(ROWS, -1), t), dtype=np.float32).reshape(-1)
                entry["deq"] = "gguf-py"
                if lib is not None and t not in (T.F16, T.BF16):
                    c = c_dequantize(lib, t, q, ROWS * N)
                    assert np.array_equal(c.view(np.uint32), deq.view(np.uint32)), "dequantize differs: " + name
                    entry["deq"] = "gguf-py (= ggml C)"
            if t != T.BF16:  # (bf16 decodes by a shift; its file would only cost space)
                write(name + ".deq.f32", deq)
                entry["deq_file"] = True
        if t in KQUANTS:
            rb = random_blocks(rng, t, 4)
            block = gguf.GGML_QUANT_SIZES[t][0]
            write(name + ".rand.q", rb)
            rd = np.asarray(quants.dequantize(rb.reshape(1, -1), t), dtype=np.float32).reshape(-1)
            if lib is not None:
                c = c_dequantize(lib, t, rb, 4 * block)
                assert np.array_equal(c.view(np.uint32), rd.view(np.uint32)), "random dequantize differs: " + name
            write(name + ".rand.deq.f32", rd)
            entry["rand_blocks"] = 4
        if lib is not None and t in IMATRIX_TYPES:
            write(name + ".imat.q", c_quantize(lib, t, rows, imatrix))
            write(name + ".imatx.q", c_quantize(lib, t, irows, imatrix[:256]))
            entry["imatrix"] = "ggml C"
        manifest["types"][name] = entry
    with open(os.path.join(OUT, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1, sort_keys=True)
        f.write("\n")
    total = sum(os.path.getsize(os.path.join(OUT, p)) for p in os.listdir(OUT))
    print("wrote %s (%d bytes)" % (OUT, total))


if __name__ == "__main__":
    main()
