#!/usr/bin/env bash
# scripts/gpu/fetch_deps.sh — runs on the Debian 12 CPU machine, never on the GPU machine.
# Owns the ignored folder .gpu-deps/ that the device tool carries to the GPU machine (which has
# no package registry): Debian's .debs for the header-only and small dependencies unpacked into
# .gpu-deps/prefix/, plus the evaluation text and the Llama-2 tokenizer under .gpu-deps/data/.
# Usage: bash scripts/gpu/fetch_deps.sh [--no-eigen]      (SQ_DATA_DIR overrides ../shared/data)
# (--no-eigen only where the GPU machine already has Eigen: the build requires it, quant/ratio_iqp)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEPS=$ROOT/.gpu-deps
DATA_SRC=${SQ_DATA_DIR:-$ROOT/../shared/data}
LIMIT_MIB=60
WITH_EIGEN=1
for a in "$@"; do
  case $a in
    --no-eigen) WITH_EIGEN=0 ;;
    -h|--help) sed -n 2,7p "$0"; exit 0 ;;
    *) echo "fetch_deps: unknown argument $a" >&2; exit 2 ;;
  esac
done

# nlohmann/CLI11/Eigen: headers + CMake configs; googletest: sources (/usr/src/googletest);
# sentencepiece: library, headers, .pc; liblzma: headers + the .so the -dev symlink points at;
# pkgconf: a pkg-config for the GPU machine in case it has none.
# bzip2 (HellaSwag's .bz2), PCRE2 and utf8proc (byte-level BPE tokenizer): headers, .so, .pc.
PKGS=(nlohmann-json3-dev libcli11-dev googletest libsentencepiece-dev libsentencepiece0
      liblzma-dev liblzma5 pkgconf-bin libpkgconf3
      libbz2-dev libbz2-1.0 libpcre2-dev libpcre2-8-0 libutf8proc-dev libutf8proc2)
[[ $WITH_EIGEN == 1 ]] && PKGS+=(libeigen3-dev)

git -C "$ROOT" check-ignore -q .gpu-deps/x || { echo "fetch_deps: .gpu-deps/ is not git-ignored" >&2; exit 1; }

mkdir -p "$DEPS/debs"
cd "$DEPS/debs"
need=()
for p in "${PKGS[@]}"; do
  compgen -G "${p}_*.deb" >/dev/null || need+=("$p")
done
if ((${#need[@]})); then
  echo "== apt-get download ${need[*]}"
  # as root apt warns that the download is unsandboxed; harmless here
  apt-get download "${need[@]}" 2>&1 | grep -v 'unsandboxed' || true
fi
for p in "${PKGS[@]}"; do
  compgen -G "${p}_*.deb" >/dev/null || { echo "fetch_deps: $p did not download" >&2; exit 1; }
done

echo "== unpacking into .gpu-deps/prefix"
rm -rf "$DEPS/prefix"
mkdir -p "$DEPS/prefix"
for p in "${PKGS[@]}"; do
  deb=$(ls "${p}"_*.deb | sort -V | tail -n1)
  dpkg -x "$deb" "$DEPS/prefix"
  echo "   $deb"
done
rm -rf "$DEPS/prefix/usr/share/doc" "$DEPS/prefix/usr/share/man" "$DEPS/prefix/usr/share/lintian"

# Absolute symlinks (liblzma.so -> /lib/x86_64-linux-gnu/liblzma.so.5.4.1) would point at the
# GPU machine's own files, which may not exist there: make them relative inside the prefix.
while IFS= read -r -d '' link; do
  tgt=$(readlink "$link")
  [[ $tgt == /* ]] || continue
  if [[ -e $DEPS/prefix$tgt ]]; then
    ln -sfn "$(realpath --relative-to="$(dirname "$link")" "$DEPS/prefix$tgt")" "$link"
  else
    echo "fetch_deps: dangling absolute link ${link#$DEPS/} -> $tgt" >&2; exit 1
  fi
done < <(find "$DEPS/prefix" -type l -print0)

# The checks the GPU side relies on.
P=$DEPS/prefix/usr
for f in include/nlohmann/json.hpp include/CLI/CLI.hpp include/sentencepiece_processor.h include/lzma.h \
         src/googletest/CMakeLists.txt src/googletest/googletest/CMakeLists.txt \
         lib/x86_64-linux-gnu/pkgconfig/sentencepiece.pc lib/x86_64-linux-gnu/libsentencepiece.so \
         lib/x86_64-linux-gnu/liblzma.so bin/pkgconf include/bzlib.h include/pcre2.h include/utf8proc.h \
         lib/x86_64-linux-gnu/pkgconfig/libpcre2-8.pc lib/x86_64-linux-gnu/pkgconfig/libutf8proc.pc; do
  [[ -e $P/$f ]] || { echo "fetch_deps: missing $f in the prefix" >&2; exit 1; }
done
compgen -G "$P/share/cmake/nlohmann_json*/nlohmann_jsonConfig.cmake" >/dev/null \
  || compgen -G "$P/lib/*/cmake/nlohmann_json*/nlohmann_jsonConfig.cmake" >/dev/null \
  || { echo "fetch_deps: no nlohmann_jsonConfig.cmake in the prefix" >&2; exit 1; }

echo "== data from $DATA_SRC"
rm -rf "$DEPS/data"
mkdir -p "$DEPS/data/eval/wikitext2" "$DEPS/data/tokenizers/llama2"
cp "$DATA_SRC/eval/wikitext2/wikitext2_test_gptq_join.txt" "$DEPS/data/eval/wikitext2/"
cp "$DATA_SRC/tokenizers/llama2/tokenizer.model" "$DEPS/data/tokenizers/llama2/"
chmod -R u+w "$DEPS/data"

# carry sends the whole folder, .debs included, so the budget covers all of it (the device
# tool's 64 MiB also covers the working tree itself).
bytes=$(du -sb "$DEPS" | cut -f1)
mib=$(( (bytes + 1048575) / 1048576 ))
echo "== .gpu-deps: $mib MiB in all ($(du -sh "$DEPS/debs" | cut -f1) debs, $(du -sh "$DEPS/prefix" | cut -f1) prefix, $(du -sh "$DEPS/data" | cut -f1) data)"
if ((mib > LIMIT_MIB)); then
  echo "fetch_deps: $mib MiB is over the $LIMIT_MIB MiB budget (try --no-eigen)" >&2; exit 1
fi
echo "OK: carry [\".gpu-deps\"] and run: bash scripts/gpu/run.sh"
