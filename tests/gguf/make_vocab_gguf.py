#!/usr/bin/env python3
"""Writes a vocabulary-only GGUF (tokenizer.ggml.* plus the few llama hparams llama.cpp reads
before the vocabulary) from Hugging Face tokenizer files, with gguf-py's GGUFWriter. The token
lists follow what llama.cpp's convert_hf_to_gguf.py stores: byte-level BPE vocabularies with
their merges, added tokens CONTROL when special and USER_DEFINED otherwise; SentencePiece
vocabularies with scores and types from tokenizer.model.

Usage: make_vocab_gguf.py KIND SRC OUT.gguf [PRE]
  KIND tokenizer_json (SRC: tokenizer.json or .json.xz; tokenizer_config.json beside it),
       gpt2_files (SRC: folder with encoder.json + vocab.bpe), spm (SRC: tokenizer.model).
  PRE  tokenizer.ggml.pre for the BPE kinds (llama-bpe, qwen2, gpt-2, ...).
"""
import json
import lzma
import os
import struct
import sys

import gguf

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6


def varint(buf, i):
    v = shift = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return v, i


def fields(buf):
    """(field number, wire type, value) of one protobuf message."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(buf, i)
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 2:
            n, i = varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError(f"wire type {wt}")
        yield num, wt, v


def spm_pieces(path):
    data = open(path, "rb").read()
    pieces, add_dummy_prefix = [], True
    for num, _, v in fields(data):
        if num == 1:
            piece, score, typ = "", 0.0, 1
            for n2, _, v2 in fields(v):
                if n2 == 1:
                    piece = v2.decode("utf-8")
                elif n2 == 2:
                    score = struct.unpack("<f", v2)[0]
                elif n2 == 3:
                    typ = v2
            pieces.append((piece, score, typ))
        elif num == 3:
            for n2, _, v2 in fields(v):
                if n2 == 3:
                    add_dummy_prefix = bool(v2)
    return pieces, add_dummy_prefix


def writer(out):
    w = gguf.GGUFWriter(out, "llama")
    w.add_context_length(2048)
    w.add_embedding_length(64)
    w.add_block_count(1)
    w.add_feed_forward_length(128)
    w.add_head_count(1)
    w.add_head_count_kv(1)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(64)
    return w


def finish(w):
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def read_json(path):
    raw = lzma.open(path).read() if path.endswith(".xz") else open(path, "rb").read()
    return json.loads(raw)


def token_text(tcfg, key):
    v = tcfg.get(key)
    return v.get("content") if isinstance(v, dict) else v


def main():
    kind, src, out = sys.argv[1:4]
    pre = sys.argv[4] if len(sys.argv) > 4 else None
    w = writer(out)
    if kind == "spm":
        pieces, add_prefix = spm_pieces(src)
        w.add_tokenizer_model("llama")
        w.add_token_list([p for p, _, _ in pieces])
        w.add_token_scores([s for _, s, _ in pieces])
        w.add_token_types([t for _, _, t in pieces])
        w.add_add_space_prefix(add_prefix)
        w.add_bos_token_id(1)
        w.add_eos_token_id(2)
        w.add_unk_token_id(0)
        w.add_add_bos_token(True)
        w.add_add_eos_token(False)
    else:
        if kind == "gpt2_files":
            vocab = read_json(os.path.join(src, "encoder.json"))
            lines = open(os.path.join(src, "vocab.bpe"), encoding="utf-8").read().split("\n")
            merges = [l for l in lines[1:] if l]
            added = {vocab["<|endoftext|>"]: ("<|endoftext|>", True)}
            bos = eos = vocab["<|endoftext|>"]
        else:
            j = read_json(src)
            vocab = j["model"]["vocab"]
            merges = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
            added = {a["id"]: (a["content"], a["special"]) for a in j.get("added_tokens", [])}
            tcfg = read_json(os.path.join(os.path.dirname(src), "tokenizer_config.json"))
            by_text = {t: i for t, i in vocab.items()}
            by_text.update({c: i for i, (c, _) in added.items()})
            bos = by_text.get(token_text(tcfg, "bos_token") or "")
            eos = by_text.get(token_text(tcfg, "eos_token") or "")
        n = max(max(vocab.values()), max(added) if added else 0) + 1
        tokens, types = [f"[PAD{i}]" for i in range(n)], [UNUSED] * n
        for t, i in vocab.items():
            tokens[i], types[i] = t, NORMAL
        for i, (c, special) in added.items():
            tokens[i], types[i] = c, CONTROL if special else USER_DEFINED
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(pre)
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(merges)
        if bos is not None:
            w.add_bos_token_id(bos)
        if eos is not None:
            w.add_eos_token_id(eos)
    finish(w)


if __name__ == "__main__":
    main()
