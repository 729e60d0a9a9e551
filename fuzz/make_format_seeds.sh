#!/usr/bin/env bash
# Writes the seeds of fuzz_formats (fuzz/corpus/fuzz_formats/ by default): tiny real
# checkpoints that sliderquant itself quantized and wrote in each format the target reads
# (native, gptq v1 and v2, compressed-tensors, plain HF), each bundled into one input as
# fuzz_formats.cpp splits it (files joined by "\n--FILE--\n" in its fixed order).
#
#   bash fuzz/make_format_seeds.sh [OUT_DIR] [CLI]     # CLI default: build/sliderquant
#
# The models are made here with python3 (no packages): a Llama and a Qwen3 with hidden 32,
# one layer, a 32-token vocabulary (the Qwen3 with grouped-query attention), seeded random bf16 weights, so that each seed stays
# 12-29 KB (every seed < 50 KB). Deterministic for a given CLI version, except the native
# seeds' quantization_config.json, which carries the run's report (its times).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT="${1:-$ROOT/fuzz/corpus/fuzz_formats}"
CLI="${2:-$ROOT/build/sliderquant}"
[ -x "$CLI" ] || { echo "make_format_seeds.sh: no CLI at $CLI (build first)" >&2; exit 2; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
rm -rf "$OUT"
mkdir -p "$OUT"

SQ_ROOT="$ROOT" python3 - "$WORK" <<'EOF'
import json, os, random, struct, sys
work = sys.argv[1]

def bf16(x):
    return struct.pack("<I", struct.unpack("<I", struct.pack("<f", x))[0])[2:]

def safetensors(tensors):
    header, blobs, off = {}, [], 0
    for name, shape, values in tensors:
        data = b"".join(bf16(v) for v in values)
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [off, off + len(data)]}
        blobs.append(data); off += len(data)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)

def model(name, arch, qk_norm):
    rng = random.Random(name)
    # k/v out = kv * hd = 32: GPTQ packs 3-bit zeros along out in 32-column words
    H, I, V, heads, kv, hd = 32, 64, 32, (4 if qk_norm else 2), 2, 16
    cfg = {"architectures": [arch], "model_type": "qwen3" if qk_norm else "llama", "hidden_size": H,
           "intermediate_size": I, "num_hidden_layers": 1, "num_attention_heads": heads,
           "num_key_value_heads": kv, "head_dim": hd, "vocab_size": V, "max_position_embeddings": 64,
           "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
           "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": 2}
    def w(o, i):
        return [o, i], [rng.gauss(0, 0.2) for _ in range(o * i)]
    def ones(n):
        return [n], [1.0 + rng.gauss(0, 0.05) for _ in range(n)]
    t = [("model.embed_tokens.weight", *w(V, H)), ("model.norm.weight", *ones(H))]
    p = "model.layers.0."
    t += [(p + "input_layernorm.weight", *ones(H)), (p + "post_attention_layernorm.weight", *ones(H)),
          (p + "self_attn.q_proj.weight", *w(heads * hd, H)), (p + "self_attn.k_proj.weight", *w(kv * hd, H)),
          (p + "self_attn.v_proj.weight", *w(kv * hd, H)), (p + "self_attn.o_proj.weight", *w(H, heads * hd)),
          (p + "mlp.gate_proj.weight", *w(I, H)), (p + "mlp.up_proj.weight", *w(I, H)),
          (p + "mlp.down_proj.weight", *w(H, I))]
    if qk_norm:
        t += [(p + "self_attn.q_norm.weight", *ones(hd)), (p + "self_attn.k_norm.weight", *ones(hd))]
    d = os.path.join(work, name)
    os.makedirs(d)
    json.dump(cfg, open(os.path.join(d, "config.json"), "w"), indent=1)
    open(os.path.join(d, "model.safetensors"), "wb").write(safetensors(t))
    shutil.copy(tok, d)

# quantize wants a tokenizer beside the weights (it is not part of the seeds: fuzz_formats
# reads none); stories260K's is the smallest at hand.
import shutil
tok = os.path.join(os.environ["SQ_ROOT"], "tests", "fixtures", "stories260K", "hf", "tokenizer.model")
model("llama", "LlamaForCausalLM", False)
model("qwen3", "Qwen3ForCausalLM", True)
for fmt in ("w4g16", "w8g32s", "w3"):
    r = {"name": f"seed-rtn-{fmt}", "format": fmt,
         "pipeline": [{"pass": "rtn", "options": {"mse": False}}]}
    json.dump(r, open(os.path.join(work, f"rtn-{fmt}.json"), "w"))
EOF

bundle() {  # bundle DIR SEED: the files fuzz_formats reads, in its order, joined by the marker
  python3 - "$1" "$2" <<'EOF'
import os, sys
d, out = sys.argv[1], sys.argv[2]
names = ["config.json", "model.safetensors", "quantization_config.json", "quantize_config.json",
         "model.safetensors.index.json"]
present = [n for n in names if os.path.exists(os.path.join(d, n))]
last = max(names.index(n) for n in present)
parts = []
for n in names[: last + 1]:
    p = os.path.join(d, n)
    parts.append(open(p, "rb").read() if os.path.exists(p) else b"")
data = b"\n--FILE--\n".join(parts)
assert len(data) < 50 * 1024, (out, len(data))
open(out, "wb").write(data)
EOF
}

for m in llama qwen3; do
  bundle "$WORK/$m" "$OUT/${m}_hf.seed"
  for fmt in w4g16 w8g32s w3; do
    for f in native gptq compressed-tensors; do
      extra=()
      [ "$f" = gptq ] && [ "$fmt" = w8g32s ] && extra=(--gptq-format gptq_v2)
      o="$WORK/$m-$fmt-$f"
      "$CLI" quantize "$WORK/$m" --recipe "$WORK/rtn-$fmt.json" --out "$o" --format "$f" "${extra[@]}" -q
      bundle "$o" "$OUT/${m}_${fmt}_${f}.seed"
    done
  done
done
# A GPTQ checkpoint whose quantization_config lives only in quantize_config.json (AutoGPTQ's
# layout), and a sharded HF checkpoint with an index.
python3 - "$WORK" "$OUT" <<'EOF'
import json, os, sys
work, out = sys.argv[1], sys.argv[2]
M = b"\n--FILE--\n"
d = os.path.join(work, "llama-w4g16-gptq")
cfg = json.load(open(os.path.join(d, "config.json")))
qc = cfg.pop("quantization_config")
st = open(os.path.join(d, "model.safetensors"), "rb").read()
open(os.path.join(out, "llama_w4g16_gptq_quantize_config.seed"), "wb").write(
    M.join([json.dumps(cfg, indent=1).encode(), st, b"", json.dumps(qc, indent=1).encode()]))
h = os.path.join(work, "llama")
idx = {"metadata": {}, "weight_map": {}}
import struct
raw = open(os.path.join(h, "model.safetensors"), "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
for k in json.loads(raw[8:8 + n]):
    if k != "__metadata__":
        idx["weight_map"][k] = "model.safetensors"
open(os.path.join(out, "llama_hf_index.seed"), "wb").write(
    M.join([open(os.path.join(h, "config.json"), "rb").read(), raw, b"", b"", json.dumps(idx).encode()]))
EOF
n=$(ls "$OUT" | wc -l)
echo "fuzz_formats: $n seeds, $(du -cb "$OUT"/* | tail -n1 | cut -f1) bytes, largest $(ls -S "$OUT" | head -n1)"
