#!/usr/bin/env bash
# Re-creates the seed corpora fuzz/corpus/<target>/ from the repository's fixtures
# (tests/fixtures, configs/, and models/ where present). Deterministic; every seed is
# small (< 50 KB): real files are reduced (a few real tensors, a vocabulary cut to its first
# merges) rather than copied whole. Needs only python3 (no packages).
#
#   bash fuzz/make_corpus.sh [OUT_DIR]     # default: fuzz/corpus
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/fuzz/corpus}"
PY="${PYTHON:-python3}"
mkdir -p "$OUT"
exec "$PY" - "$ROOT" "$OUT" <<'EOF'
import hashlib, json, lzma, os, shutil, struct, sys

root, out = sys.argv[1], sys.argv[2]
fx = os.path.join(root, "tests", "fixtures")
MAX_SEED = 50 * 1024
made = {}

def target_dir(t):
    d = os.path.join(out, t)
    if t not in made:
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        made[t] = 0
    return d

def seed(t, name, data):
    if isinstance(data, str):
        data = data.encode()
    if len(data) > MAX_SEED:
        print(f"  skip {t}/{name}: {len(data)} bytes > {MAX_SEED}", file=sys.stderr)
        return
    with open(os.path.join(target_dir(t), name), "wb") as f:
        f.write(data)
    made[t] += 1

def rd(*p):
    with open(os.path.join(*p), "rb") as f:
        return f.read()

# ---------------------------------------------------------------- safetensors
DSIZE = {"F64": 8, "I64": 8, "F32": 4, "I32": 4, "F16": 2, "BF16": 2, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}

def st_file(tensors, metadata=None, header_pad_to=8, misalign=0):
    """tensors: list of (name, dtype, shape, bytes) -> a valid .safetensors file."""
    h, off, blob = {}, 0, b""
    if metadata is not None:
        h["__metadata__"] = metadata
    for name, dt, shape, data in tensors:
        n = DSIZE[dt]
        for d in shape:
            n *= d
        assert n == len(data), (name, n, len(data))
        h[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + n]}
        off += n
        blob += data
    hj = json.dumps(h, separators=(",", ":")).encode()
    pad = (-(8 + len(hj)) % header_pad_to + misalign) % 8 if header_pad_to else misalign
    hj += b" " * pad
    return struct.pack("<Q", len(hj)) + hj + blob

def real_st_tensors(path, budget):
    """The smallest tensors of a real file, with their real bytes, up to BUDGET bytes."""
    raw = rd(path)
    (n,) = struct.unpack("<Q", raw[:8])
    h = json.loads(raw[8:8 + n])
    base = 8 + n
    items = sorted(((k, v) for k, v in h.items() if k != "__metadata__"),
                   key=lambda kv: (kv[1]["data_offsets"][1] - kv[1]["data_offsets"][0], kv[0]))
    got, used = [], 0
    for k, v in items:
        b, e = v["data_offsets"]
        if used + (e - b) > budget:
            break
        got.append((k, v["dtype"], v["shape"], raw[base + b:base + e]))
        used += e - b
    return got, h.get("__metadata__")

def f32(vals):
    return struct.pack(f"<{len(vals)}f", *vals)

hand = [
    ("a.weight", "F32", [2, 3], f32([0.5, -1.0, 2.0, 3.25, 0.0, -0.0])),
    ("b.bias", "BF16", [4], bytes([0x80, 0x3f, 0x00, 0x40, 0x80, 0xbf, 0x00, 0x00])),
    ("c.ids", "I64", [1], struct.pack("<q", -7)),
    ("d.mask", "BOOL", [3], bytes([1, 0, 1])),
    ("e.half", "F16", [2], struct.pack("<2H", 0x3c00, 0xc000)),
    ("f.u8", "U8", [2, 2], bytes([1, 2, 3, 250])),
    ("g.i8", "I8", [3], bytes([0x80, 0x7f, 0])),
    ("h.i16", "I16", [1], struct.pack("<h", -2)),
    ("i.i32", "I32", [2], struct.pack("<2i", 1, -1)),
    ("j.f64", "F64", [1], struct.pack("<d", 1e-300)),
    ("k.empty", "F32", [0, 3], b""),
    ("l.scalar", "F32", [], f32([42.0])),
]
meta = {"format": "pt", "note": "fuzz seed"}
st_seeds = {
    "hand_all_dtypes": st_file(hand, meta),
    "hand_misaligned": st_file(hand, meta, misalign=3),
    "hand_one": st_file(hand[:1]),
    "hand_empty_header": st_file([], {}),
}
for sub in ("hf", "hf_bf16"):
    p = os.path.join(fx, "stories260K", sub, "model.safetensors")
    if os.path.exists(p):
        ts, m = real_st_tensors(p, 12 * 1024)
        st_seeds[f"stories260K_{sub}_small"] = st_file(ts, m)
        raw = rd(p)
        (hn,) = struct.unpack("<Q", raw[:8])
        st_seeds[f"stories260K_{sub}_truncated"] = raw[:8 + hn + 2048]  # the real header, data cut short
for name, data in st_seeds.items():
    seed("fuzz_safetensors", name + ".single", b"\x00" + data)

def sharded(tensors, data, shard="model-00001-of-00001.safetensors"):
    idx = {"metadata": {"total_size": sum(len(t[3]) for t in tensors)},
           "weight_map": {t[0]: shard for t in tensors}}
    return b"\x01" + json.dumps(idx, indent=1).encode() + b"\n--SHARD--\n" + data

seed("fuzz_safetensors", "hand_all_dtypes.sharded", sharded(hand, st_seeds["hand_all_dtypes"]))
seed("fuzz_safetensors", "hand_misaligned.sharded", sharded(hand, st_seeds["hand_misaligned"]))
if "stories260K_hf_small" in st_seeds:
    ts, _ = real_st_tensors(os.path.join(fx, "stories260K", "hf", "model.safetensors"), 12 * 1024)
    seed("fuzz_safetensors", "stories260K_hf_small.sharded", sharded(ts, st_seeds["stories260K_hf_small"]))

# ---------------------------------------------------------------- config.json
for sub in ("hf", "hf_bf16"):
    p = os.path.join(fx, "stories260K", sub, "config.json")
    if os.path.exists(p):
        seed("fuzz_config", f"stories260K_{sub}.json", rd(p))
p = os.path.join(root, "models", "smollm2-135m", "config.json")
if os.path.exists(p):
    seed("fuzz_config", "smollm2-135m.json", rd(p))
common = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
          "num_key_value_heads": 2, "vocab_size": 256, "max_position_embeddings": 256,
          "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "hidden_act": "silu", "torch_dtype": "bfloat16"}
configs = {
    "llama3_rope": dict(common, architectures=["LlamaForCausalLM"], model_type="llama", head_dim=16,
                        attention_bias=False, mlp_bias=False, tie_word_embeddings=False,
                        bos_token_id=128000, eos_token_id=[128001, 128008, 128009],
                        rope_scaling={"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                      "original_max_position_embeddings": 8192, "rope_type": "llama3"}),
    "llama_linear_rope": dict(common, architectures=["LlamaForCausalLM"], model_type="llama",
                              rope_scaling={"type": "linear", "factor": 2.0}, attention_bias=True),
    "mistral": dict(common, architectures=["MistralForCausalLM"], model_type="mistral", sliding_window=4096,
                    bos_token_id=1, eos_token_id=2),
    "qwen2": dict(common, architectures=["Qwen2ForCausalLM"], model_type="qwen2", use_sliding_window=False,
                  tie_word_embeddings=True, eos_token_id=151643),
    "qwen3": dict(common, architectures=["Qwen3ForCausalLM"], model_type="qwen3", head_dim=32,
                  attention_bias=False, use_sliding_window=False, rope_scaling=None, dtype="bfloat16"),
}
for name, c in configs.items():
    seed("fuzz_config", name + ".json", json.dumps(c, indent=2))

# ---------------------------------------------------------------- recipes
for d in (os.path.join(root, "configs"), os.path.join(root, "configs", "test")):
    if os.path.isdir(d):
        for n in sorted(os.listdir(d)):
            if n.endswith(".json"):
                seed("fuzz_recipe", ("test_" if d.endswith("test") else "") + n, rd(d, n))

# ---------------------------------------------------------------- tokenizer.json
def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b); cs.append(256 + n); n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}

B2U = bytes_to_unicode()

def merge_pair(m):
    return tuple(m) if isinstance(m, list) else tuple(m.split(" ", 1))

def reduce_tokenizer(tj, n_merges, keep_added):
    """Keep the 256 byte tokens and the results of the first N_MERGES usable merges; dense ids."""
    model = tj["model"]
    vocab = model["vocab"]
    keep = [B2U[b] for b in range(256) if B2U[b] in vocab]
    kept = set(keep)
    merges = []
    for m in model["merges"]:
        a, b = merge_pair(m)
        if a in kept and b in kept and (a + b) in vocab:
            merges.append(m)
            if a + b not in kept:
                keep.append(a + b); kept.add(a + b)
            if len(merges) >= n_merges:
                break
    new_vocab = {t: i for i, t in enumerate(keep)}
    added = []
    remap = {}
    for a in tj.get("added_tokens", [])[:keep_added]:
        a = dict(a)
        remap[a["id"]] = a["id"] = len(new_vocab) + len(added)
        added.append(a)
    tj = dict(tj)
    tj["model"] = dict(model, vocab=new_vocab, merges=merges)
    tj["added_tokens"] = added
    pp = tj.get("post_processor")
    def fix_pp(p):
        if isinstance(p, dict):
            if p.get("type") == "Sequence":
                p["processors"] = [fix_pp(x) for x in p.get("processors", [])]
            st = p.get("special_tokens")
            if isinstance(st, dict):
                for v in st.values():
                    v["ids"] = [remap.get(i, 0) for i in v.get("ids", [])]
        return p
    if pp is not None:
        tj["post_processor"] = fix_pp(json.loads(json.dumps(pp)))
    return tj

tokdir = os.path.join(fx, "tokenizers")
for name in ("llama3", "qwen3"):
    p = os.path.join(tokdir, name, "tokenizer.json.xz")
    if os.path.exists(p):
        tj = json.loads(lzma.decompress(rd(p)))
        seed("fuzz_tokenizer_json", f"{name}_reduced.json",
             json.dumps(reduce_tokenizer(tj, 300, 12), ensure_ascii=False, indent=None))
        if name == "qwen3":  # the [a, b] merge form and a NFC normalizer Sequence
            r = reduce_tokenizer(tj, 120, 4)
            r["model"]["merges"] = [list(merge_pair(m)) for m in r["model"]["merges"]]
            r["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFC"}]}
            seed("fuzz_tokenizer_json", "qwen3_pairs_nfc.json", json.dumps(r, ensure_ascii=False))
p = os.path.join(root, "models", "smollm2-135m", "tokenizer.json")
if os.path.exists(p):
    seed("fuzz_tokenizer_json", "smollm2_reduced.json",
         json.dumps(reduce_tokenizer(json.loads(rd(p)), 300, 17), ensure_ascii=False))
g = os.path.join(tokdir, "gpt2")
if os.path.exists(os.path.join(g, "encoder.json")):
    enc = json.loads(rd(g, "encoder.json"))
    lines = rd(g, "vocab.bpe").decode().split("\n")[1:]
    gpt2 = {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [{"id": 50256, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                              "rstrip": False, "normalized": True, "special": True}],
            "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
            "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                      "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                      "vocab": enc, "merges": [l for l in lines if l]}}
    seed("fuzz_tokenizer_json", "gpt2_reduced.json", json.dumps(reduce_tokenizer(gpt2, 300, 1), ensure_ascii=False))
    # a Split(Regex) + ByteLevel(use_regex=false) pre-tokenizer and a TemplateProcessing
    t = reduce_tokenizer(gpt2, 80, 1)
    t["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}"},
         "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    eot = t["added_tokens"][0]["id"]
    t["post_processor"] = {"type": "TemplateProcessing",
                           "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                                      {"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [], "special_tokens": {"<|endoftext|>": {"id": "<|endoftext|>", "ids": [eot],
                                                                           "tokens": ["<|endoftext|>"]}}}
    t["model"]["ignore_merges"] = True
    seed("fuzz_tokenizer_json", "gpt2_split_template.json", json.dumps(t, ensure_ascii=False))

# ---------------------------------------------------------------- GGUF
GT = {"u8": 0, "i8": 1, "u16": 2, "i16": 3, "u32": 4, "i32": 5, "f32": 6, "bool": 7, "str": 8, "arr": 9,
      "u64": 10, "i64": 11, "f64": 12}
FMT = {"u8": "<B", "i8": "<b", "u16": "<H", "i16": "<h", "u32": "<I", "i32": "<i", "f32": "<f", "bool": "<?",
       "u64": "<Q", "i64": "<q", "f64": "<d"}

def gstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b

def gval(t, v):
    if t == "str":
        return gstr(v)
    return struct.pack(FMT[t], v)

def gguf(kv, tensors, version=3, alignment=32):
    """kv: list of (key, type, value) with type 'arr:<elem>' for arrays;
    tensors: list of (name, ne list, ggml type id, bytes)."""
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kv))
    for key, t, v in kv:
        out += gstr(key)
        if t.startswith("arr:"):
            et = t[4:]
            out += struct.pack("<II", GT["arr"], GT[et]) + struct.pack("<Q", len(v))
            out += b"".join(gval(et, x) for x in v)
        else:
            out += struct.pack("<I", GT[t]) + gval(t, v)
    off, datas = 0, []
    for name, ne, typ, data in tensors:
        out += gstr(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
        out += struct.pack("<IQ", typ, off)
        datas.append((off, data))
        off += len(data) + (-len(data) % alignment)
    out += b"\0" * (-len(out) % alignment)
    for o, d in datas:
        out += d + b"\0" * (-len(d) % alignment)
    return out

GGML = {"f32": 0, "f16": 1, "q4_0": 2, "q4_1": 3, "q5_0": 6, "q5_1": 7, "q8_0": 8, "q2_K": 10, "q3_K": 11,
        "q4_K": 12, "q5_K": 13, "q6_K": 14, "q8_K": 15, "bf16": 30}
ggdir = os.path.join(fx, "ggml")
man = json.loads(rd(ggdir, "manifest.json")) if os.path.exists(os.path.join(ggdir, "manifest.json")) else {}
rows, n = man.get("rows", 6), man.get("n", 512)
qt = []
for t, tid in GGML.items():
    p = os.path.join(ggdir, f"{t}.q")
    if os.path.exists(p):
        raw = rd(p)
        qt.append((f"blk.0.{t}.weight", [n, 1], tid, raw[:len(raw) // rows]))  # the first row
base_kv = [
    ("general.architecture", "str", "llama"), ("general.name", "str", "fuzz seed"),
    ("general.alignment", "u32", 32), ("general.file_type", "u32", 7),
    ("llama.block_count", "u32", 1), ("llama.context_length", "u64", 2048),
    ("llama.embedding_length", "u32", 512), ("llama.rope.freq_base", "f32", 10000.0),
    ("llama.attention.layer_norm_rms_epsilon", "f64", 1e-5), ("x.u8", "u8", 255), ("x.i8", "i8", -128),
    ("x.u16", "u16", 65535), ("x.i16", "i16", -1), ("x.i32", "i32", -2147483648), ("x.i64", "i64", -1),
    ("x.bool", "bool", True), ("x.ints", "arr:i32", [1, -2, 3]), ("x.floats", "arr:f32", [0.5, -1.5]),
    ("x.bools", "arr:bool", [True, False]), ("x.strs", "arr:str", ["a", "", "ccc"]),
    ("x.u64s", "arr:u64", [0, 1 << 40]),
]
seed("fuzz_gguf", "types_all_quants.gguf", gguf(base_kv, qt + [("output_norm.weight", [4, 3], 0, f32([1.0] * 12))]))
seed("fuzz_gguf", "v2_minimal.gguf", gguf([("general.architecture", "str", "llama")],
                                           [("t", [8], 0, f32([float(i) for i in range(8)]))], version=2))
seed("fuzz_gguf", "align64_f16.gguf", gguf([("general.alignment", "u32", 64)],
                                            [("a", [2, 2], 1, struct.pack("<4H", 0x3c00, 0, 0xbc00, 0x7bff)),
                                             ("b", [32], 8, rd(ggdir, "q8_0.q")[:34] if qt else b"\0" * 34)],
                                            alignment=64))
seed("fuzz_gguf", "no_tensors.gguf", gguf(base_kv[:4], []))

# A llama (SentencePiece-style) vocabulary from stories260K's tokenizer.model (512 pieces),
# read from the protobuf by hand: ModelProto.pieces (1) = {piece (1), score (2), type (3)}.
def varint(b, i):
    r = s = 0
    while True:
        c = b[i]; i += 1
        r |= (c & 0x7F) << s; s += 7
        if c < 0x80:
            return r, i

def spm_pieces(raw):
    i, pieces = 0, []
    while i < len(raw):
        key, i = varint(raw, i)
        f, w = key >> 3, key & 7
        if w == 2:
            ln, i = varint(raw, i)
            body = raw[i:i + ln]; i += ln
            if f == 1:
                piece, score, typ, j = "", 0.0, 1, 0
                while j < len(body):
                    k2, j = varint(body, j)
                    f2, w2 = k2 >> 3, k2 & 7
                    if w2 == 2:
                        l2, j = varint(body, j)
                        if f2 == 1:
                            piece = body[j:j + l2].decode("utf-8", "replace")
                        j += l2
                    elif w2 == 5:
                        if f2 == 2:
                            (score,) = struct.unpack("<f", body[j:j + 4])
                        j += 4
                    elif w2 == 0:
                        v, j = varint(body, j)
                        if f2 == 3:
                            typ = v
                    else:
                        break
                pieces.append((piece, score, typ))
        elif w == 0:
            _, i = varint(raw, i)
        elif w == 5:
            i += 4
        elif w == 1:
            i += 8
        else:
            break
    return pieces

p = os.path.join(fx, "stories260K", "hf", "tokenizer.model")
if os.path.exists(p):
    pcs = spm_pieces(rd(p))
    if pcs:
        kv = [("general.architecture", "str", "llama"), ("tokenizer.ggml.model", "str", "llama"),
              ("tokenizer.ggml.tokens", "arr:str", [x[0] for x in pcs]),
              ("tokenizer.ggml.scores", "arr:f32", [x[1] for x in pcs]),
              ("tokenizer.ggml.token_type", "arr:i32", [x[2] for x in pcs]),
              ("tokenizer.ggml.bos_token_id", "u32", 1), ("tokenizer.ggml.eos_token_id", "u32", 2),
              ("tokenizer.ggml.unknown_token_id", "u32", 0), ("tokenizer.ggml.add_bos_token", "bool", True),
              ("tokenizer.ggml.add_space_prefix", "bool", True)]
        seed("fuzz_gguf", "tokenizer_llama_stories260K.gguf", gguf(kv, []))

# gpt2 (byte-level BPE) vocabularies from the reduced tokenizer.json seeds, with llama.cpp
# pre-tokenizer names of several families.
def gguf_bpe(tj, pre):
    vocab = tj["model"]["vocab"]
    toks = [None] * (max(list(vocab.values()) + [a["id"] for a in tj["added_tokens"]]) + 1)
    types = [1] * len(toks)
    for t, i in vocab.items():
        toks[i] = t
    for a in tj["added_tokens"]:
        toks[a["id"]] = a["content"]; types[a["id"]] = 3 if a.get("special") else 4
    toks = [t if t is not None else f"[PAD{i}]" for i, t in enumerate(toks)]
    merges = [" ".join(merge_pair(m)) for m in tj["model"]["merges"]]
    eot = tj["added_tokens"][0]["id"] if tj["added_tokens"] else 0
    kv = [("general.architecture", "str", "qwen2"), ("tokenizer.ggml.model", "str", "gpt2"),
          ("tokenizer.ggml.pre", "str", pre), ("tokenizer.ggml.tokens", "arr:str", toks),
          ("tokenizer.ggml.token_type", "arr:i32", types), ("tokenizer.ggml.merges", "arr:str", merges),
          ("tokenizer.ggml.bos_token_id", "u32", eot), ("tokenizer.ggml.eos_token_id", "u32", eot),
          ("tokenizer.ggml.add_bos_token", "bool", False)]
    return gguf(kv, [])

tdir = os.path.join(out, "fuzz_tokenizer_json")
for fname, pre in (("qwen3_reduced.json", "qwen2"), ("llama3_reduced.json", "llama-bpe"),
                   ("gpt2_reduced.json", "gpt-2"), ("smollm2_reduced.json", "smollm")):
    p = os.path.join(tdir, fname)
    if os.path.exists(p):
        seed("fuzz_gguf", f"tokenizer_gpt2_{pre}.gguf", gguf_bpe(json.loads(rd(p)), pre))

# ---------------------------------------------------------------- tokenizer.model (SentencePiece)
def pb_varint(v):
    b = bytearray()
    while True:
        x = v & 0x7F; v >>= 7
        b.append(x | (0x80 if v else 0))
        if not v:
            return bytes(b)

def pb_field(num, wire, payload):
    key = pb_varint((num << 3) | wire)
    if wire == 2:
        return key + pb_varint(len(payload)) + payload
    return key + payload

def spm_model(pieces, model_type):
    # ModelProto: 1 pieces {1 piece, 2 score (float), 3 type}, 2 trainer_spec {3 model_type,
    # 40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id}, 3 normalizer_spec {1 name, 3 add_dummy_prefix}
    m = b""
    for text, score, typ in pieces:
        m += pb_field(1, 2, pb_field(1, 2, text.encode()) + pb_field(2, 5, struct.pack("<f", score)) +
                      pb_field(3, 0, pb_varint(typ)))
    trainer = (pb_field(3, 0, pb_varint(model_type)) + pb_field(40, 0, pb_varint(0)) + pb_field(41, 0, pb_varint(1)) +
               pb_field(42, 0, pb_varint(2)))
    m += pb_field(2, 2, trainer)
    m += pb_field(3, 2, pb_field(1, 2, b"identity") + pb_field(3, 0, pb_varint(1)))
    return m

spm_real = rd(fx, "stories260K", "hf", "tokenizer.model")
seed("fuzz_spm", "stories260K.model", spm_real)
seed("fuzz_spm", "stories260K_text.model", spm_real + b"\n--TEXT--\nOnce upon a time, Lily saw a \xe2\x9c\xa8 star.")
seed("fuzz_spm", "stories260K_truncated.model", spm_real[: len(spm_real) // 2])
letters = [(c, -float(i), 1) for i, c in enumerate("\u2581abcdehlortw")]
base = [("<unk>", 0.0, 2), ("<s>", 0.0, 3), ("</s>", 0.0, 3)]
bpe = base + letters + [("\u2581h", -20.0, 1), ("el", -21.0, 1), ("lo", -22.0, 1)]
seed("fuzz_spm", "tiny_bpe.model", spm_model(bpe, 2) + b"\n--TEXT--\nhello world")
seed("fuzz_spm", "tiny_unigram.model", spm_model(base + letters + [("\u2581hello", -3.0, 1)], 1))
seed("fuzz_spm", "tiny_char.model", spm_model(base + letters, 4))
seed("fuzz_spm", "tiny_word.model", spm_model(base + [("\u2581hello", -1.0, 1), ("\u2581world", -2.0, 1)], 3))
# Regression: a unigram piece "\0" is a zero-length key to libsentencepiece's trie builder,
# which throws, and the module leaked the half-built model (LeakSanitizer; fixed in
# spm_module.cpp).
seed("fuzz_spm", "regress_nul_piece_leak.model", spm_model(base + letters + [("\x00", -5.0, 1)], 1))

for t in sorted(made):
    d = os.path.join(out, t)
    sizes = [os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)]
    print(f"{t}: {made[t]} seeds, {sum(sizes)} bytes, largest {max(sizes) if sizes else 0}")
EOF
