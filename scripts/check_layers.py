#!/usr/bin/env python3
"""Checks the layer order of the C++ sources: a file may include headers of its own layer or
of lower layers only.

Usage: scripts/check_layers.py [REPO_ROOT]   (default: the folder above this script)

Every file under src/, include/sliderquant/ and tools/ is mapped to a layer by its folder
(src/<folder>/..., include/sliderquant/<folder>/..., tools/). Each quoted #include is
resolved: "sliderquant/<folder>/..." names the layer directly; any other quoted name is
looked up relative to the including file. The script reports, one line per offence:
  - an include of a header that belongs to a HIGHER layer;
  - a relative include that leaves the including file's own top folder (src/<folder>/,
    include/sliderquant/<folder>/ or tools/), e.g. "../arch/x.h" from src/model/: folders
    share code through public headers in include/sliderquant/, not through each other's
    private ones (subfolders and "../" back up to the own top folder are fine);
  - a quoted include that resolves to nothing (so it cannot be checked);
  - a source or header in a folder the layer table does not know (add it to LAYERS).
Exit status: 0 when clean, 1 when there are offences, 2 on usage errors.
"""
import os
import re
import sys

# Low to high. A folder's rank decides what it may include; equal ranks may include each
# other. src/arch/ implements the model layer's family registry (model/arch.h), so it is
# part of the model layer. pack/ and formats/ sit on one level.
ORDER = [
    ["core"],
    ["io"],
    ["quant"],
    ["model", "arch"],
    ["data"],
    ["transform"],
    ["pipeline"],
    ["passes"],
    ["pack", "formats"],
    ["eval"],
    ["tools"],
]
LAYERS = {folder: rank for rank, folders in enumerate(ORDER) for folder in folders}
# The layer name reported for a folder (src/arch/ is reported as model).
LAYER_NAME = {"arch": "model"}

SOURCE_EXT = (".h", ".hpp", ".cpp", ".cc", ".inc")
INCLUDE_RE = re.compile(r'^\s*#\s*include\s*([<"])([^">]+)[">]')


def layer_name(folder):
    return LAYER_NAME.get(folder, folder)


def top_folder(rel):
    """(top folder path, layer folder) of a repository-relative path, or (None, None)."""
    parts = rel.split("/")
    if parts[0] == "src" and len(parts) >= 3:
        return "src/" + parts[1], parts[1]
    if parts[:2] == ["include", "sliderquant"] and len(parts) >= 4:
        return "include/sliderquant/" + parts[2], parts[2]
    if parts[0] == "tools" and len(parts) >= 2:
        return "tools", "tools"
    return None, None


def files_to_check(root):
    for base in ("src", os.path.join("include", "sliderquant"), "tools"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, base)):
            dirnames.sort()
            for name in sorted(filenames):
                if name.endswith(SOURCE_EXT):
                    yield os.path.relpath(os.path.join(dirpath, name), root).replace(os.sep, "/")


def check(root):
    offences = []
    count = 0
    for rel in files_to_check(root):
        count += 1
        top, folder = top_folder(rel)
        if folder not in LAYERS:
            offences.append(f"{rel}: folder '{top or os.path.dirname(rel)}' has no layer "
                            f"(add it to ORDER in scripts/check_layers.py)")
            continue
        rank = LAYERS[folder]
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as fh:
            lines = fh.readlines()
        for lineno, line in enumerate(lines, 1):
            m = INCLUDE_RE.match(line)
            if not m:
                continue
            bracket, name = m.groups()
            inc_folder = None
            if name.startswith("sliderquant/"):
                parts = name.split("/")
                inc_folder = parts[1] if len(parts) >= 3 else None
                if inc_folder is None:
                    offences.append(f"{rel}:{lineno}: includes \"{name}\", which names no layer folder")
                    continue
            elif bracket == '"':
                target = os.path.normpath(os.path.join(os.path.dirname(rel), name)).replace(os.sep, "/")
                if not os.path.isfile(os.path.join(root, target)):
                    offences.append(f"{rel}:{lineno}: includes \"{name}\", which does not resolve "
                                    f"next to the file (use \"sliderquant/<layer>/...\" for public headers)")
                    continue
                inc_top, inc_folder = top_folder(target)
                if inc_top != top:
                    offences.append(f"{rel}:{lineno}: relative include \"{name}\" reaches into another folder "
                                    f"({target}, layer {layer_name(inc_folder) if inc_folder else '?'}; "
                                    f"file's layer {layer_name(folder)}): include a public header instead")
                    continue
            else:
                continue  # <system or third-party header>
            if inc_folder not in LAYERS:
                offences.append(f"{rel}:{lineno}: includes \"{name}\" from folder '{inc_folder}', which has no layer")
                continue
            if LAYERS[inc_folder] > rank:
                offences.append(f"{rel}:{lineno}: includes \"{name}\" of layer {layer_name(inc_folder)}, "
                                f"higher than the file's layer {layer_name(folder)}")
    return count, offences


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    root = argv[1] if len(argv) == 2 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    root = os.path.abspath(root)
    if not os.path.isdir(os.path.join(root, "src")):
        print(f"check_layers: {root} has no src/ folder", file=sys.stderr)
        return 2
    count, offences = check(root)
    for o in offences:
        print(o)
    order = " < ".join("/".join(fs) for fs in ORDER)
    if offences:
        print(f"check_layers: {len(offences)} offence(s) in {count} files (order: {order})", file=sys.stderr)
        return 1
    print(f"check_layers: {count} files follow the layer order ({order})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
