#!/usr/bin/env python3
"""Is a PNG screenshot blank? Decodes it with zlib and struct only (no Pillow needed) and prints
its size, distinct colours and the share of non-white pixels; exits 1 when it looks blank.

    png_check.py FILE [--min-colours N] [--min-nonwhite FRACTION]
"""
import argparse
import struct
import sys
import zlib


def decode(path):
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG file")
    pos, idat, hdr = 8, [], None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if hdr is None:
        raise ValueError(f"{path}: no IHDR chunk")
    w, h, depth, ctype, _, _, interlace = hdr
    if depth != 8 or ctype not in (2, 6) or interlace:
        raise ValueError(f"{path}: unsupported PNG (bit depth {depth}, colour type {ctype}, interlace {interlace})")
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = w * bpp
    prev = bytearray(stride)
    rows = []
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif f == 3:
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
                line[i] = (line[i] + pr) & 255
        elif f != 0:
            raise ValueError(f"{path}: bad filter {f} in row {y}")
        rows.append(bytes(line))
        prev = line
    return w, h, bpp, rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("png")
    ap.add_argument("--min-colours", type=int, default=16)
    ap.add_argument("--min-nonwhite", type=float, default=0.001)
    a = ap.parse_args()
    w, h, bpp, rows = decode(a.png)
    colours, nonwhite = set(), 0
    for r in rows:
        for i in range(0, len(r), bpp):
            px = r[i:i + 3]
            colours.add(px)
            if px != b"\xff\xff\xff":
                nonwhite += 1
    frac = nonwhite / float(w * h)
    print(f"{a.png}: {w}x{h}, {len(colours)} distinct colours, {100 * frac:.2f}% non-white pixels")
    if len(colours) < a.min_colours or frac < a.min_nonwhite:
        print(f"{a.png}: looks blank (need >= {a.min_colours} colours and >= {100 * a.min_nonwhite:.2f}% non-white)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
