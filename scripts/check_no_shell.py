#!/usr/bin/env python3
"""Fail if C++ sources start other programs: system(), popen(), exec*(), posix_spawn*().

    python3 scripts/check_no_shell.py ROOT            # scans ROOT/src, ROOT/tools, ROOT/include
    python3 scripts/check_no_shell.py ROOT --self-test # also proves the scanner can fail

Comments (// and /* */, with line continuations) and string / character literals (raw
strings included) are blanked before matching, so `// never call system()` or
"popen(" in a message do not count. Each finding is printed as FILE:LINE: text, and the
exit code is 1 if there is any. Exit code 2: bad usage, or nothing to scan (a check that
scanned no file must not pass).

One call is allowed, by file and exact call text (not by line number, so an edit
elsewhere in the file does not matter): tools/main.cpp re-executes the program itself
(execv("/proc/self/exe", argv)) to pick OpenBLAS kernels; that is no shell and runs no
other program. Each use of the allowlist is printed.
"""
import argparse
import contextlib
import io
import os
import re
import shutil
import sys
import tempfile

SCAN_DIRS = ("src", "tools", "include")
CPP_EXTS = {".c", ".cc", ".cpp", ".cxx", ".c++", ".h", ".hh", ".hpp", ".hxx", ".h++", ".inc", ".inl", ".ipp",
            ".tpp", ".cu", ".cuh"}

# A call to one of these (optionally qualified with :: or std::), not a member call (x.system()).
CALL_RE = re.compile(
    r"(?<![\w.>])(?:(?:std\s*)?::\s*)?"
    r"(system|popen|_popen|wordexp|execl|execlp|execle|execv|execvp|execvpe|execve|execveat|fexecve"
    r"|posix_spawn|posix_spawnp)\s*\(")
# std::system named without a call (e.g. taken as a function pointer).
STD_SYSTEM_RE = re.compile(r"\bstd\s*::\s*system\b")

# (path relative to ROOT, regex over the original source line, why it is safe)
ALLOWLIST = [
    ("tools/main.cpp", re.compile(r'\bexecv\s*\(\s*"/proc/self/exe"\s*,\s*argv\s*\)'),
     "re-executes sliderquant itself with its own argv (OpenBLAS kernel choice); no shell, no other program"),
]


def strip_cpp(text):
    """Blanks comments and string/char literals, keeping newlines so line numbers stay."""
    out = []
    i, n = 0, len(text)

    def blank(s):
        return "".join("\n" if ch == "\n" else " " for ch in s)

    def token_start(pos):  # start of the identifier/number token that ends just before pos
        j = pos
        while j > 0 and (text[j - 1].isalnum() or text[j - 1] in "_."):
            j -= 1
        return j

    while i < n:
        c = text[i]
        nxt = text[i + 1] if i + 1 < n else ""
        if c == "/" and nxt == "/":  # line comment; a backslash-newline continues it
            j = i + 2
            while j < n:
                if text[j] == "\n":
                    k = j - 1
                    if k >= 0 and text[k] == "\r":
                        k -= 1
                    if k >= i + 2 and text[k] == "\\":
                        j += 1
                        continue
                    break
                j += 1
            out.append(blank(text[i:j]))
            i = j
            continue
        if c == "/" and nxt == "*":
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(blank(text[i:j]))
            i = j
            continue
        if c == '"':
            ts = token_start(i)
            prefix = text[ts:i]
            if prefix in ("R", "u8R", "uR", "UR", "LR"):  # raw string R"delim( ... )delim"
                m = re.match(r'"([^()\\\s]{0,16})\(', text[i:])
                if m:
                    end_marker = ")" + m.group(1) + '"'
                    j = text.find(end_marker, i + m.end())
                    j = n if j < 0 else j + len(end_marker)
                    out.append('"' + blank(text[i + 1:j - 1]) + '"' if j - i >= 2 else blank(text[i:j]))
                    i = j
                    continue
            j = i + 1
            while j < n and text[j] != '"' and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append('"' + blank(text[i + 1:j - 1]) + '"')
            i = j
            continue
        if c == "'":
            ts = token_start(i)
            if ts < i and text[ts].isdigit():  # digit separator: 1'000'000
                out.append(c)
                i += 1
                continue
            j = i + 1
            while j < n and text[j] != "'" and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append("'" + blank(text[i + 1:j - 1]) + "'")
            i = j
            continue
        out.append(c)
        i += 1
    return "".join(out)


def scan(root):
    """Returns (files scanned, findings [(rel, line, text)], allowed [(rel, line, text, why)])."""
    files = []
    for d in SCAN_DIRS:
        base = os.path.join(root, d)
        if not os.path.isdir(base):
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames.sort()
            for f in sorted(filenames):
                if os.path.splitext(f)[1].lower() in CPP_EXTS:
                    files.append(os.path.join(dirpath, f))
    findings, allowed = [], []
    for path in files:
        rel = os.path.relpath(path, root).replace(os.sep, "/")
        with open(path, "r", encoding="utf-8", errors="surrogateescape") as fh:
            text = fh.read()
        orig_lines = text.split("\n")
        stripped = strip_cpp(text)
        # Matched over the whole text (a call may break the line before its parenthesis).
        by_line = {}
        for rx in (CALL_RE, STD_SYSTEM_RE):
            for m in rx.finditer(stripped):
                lineno = stripped.count("\n", 0, m.start()) + 1
                by_line.setdefault(lineno, []).append(m.group(0))
        for lineno in sorted(by_line):
            hits = by_line[lineno]
            src = orig_lines[lineno - 1] if lineno - 1 < len(orig_lines) else ""
            rule = next((a for a in ALLOWLIST if a[0] == rel and a[1].search(src)), None)
            if rule and len(hits) == 1:
                allowed.append((rel, lineno, src.strip(), rule[2]))
                continue
            findings.append((rel, lineno, src.strip()))
    return files, findings, allowed


def check(root):
    files, findings, allowed = scan(root)
    if not files:
        print(f"check_no_shell: no C++ files under {root}/{{{','.join(SCAN_DIRS)}}}: nothing checked", file=sys.stderr)
        return 2
    for rel, lineno, src, why in allowed:
        print(f"check_no_shell: allowed {rel}:{lineno}: {src}  ({why})")
    for rel_allowed, rx, _ in ALLOWLIST:
        if not any(a[0] == rel_allowed for a in allowed) and os.path.exists(os.path.join(root, rel_allowed)):
            print(f"check_no_shell: note: allowlist entry for {rel_allowed} ({rx.pattern}) matched nothing; "
                  "it may be removed")
    if findings:
        print(f"check_no_shell: FAIL: {len(findings)} call(s) that start a shell or another program:", file=sys.stderr)
        for rel, lineno, src in findings:
            print(f"{rel}:{lineno}: {src}", file=sys.stderr)
        return 1
    print(f"check_no_shell: OK: {len(files)} C++ files under {root} ({', '.join(SCAN_DIRS)}), "
          "no system/popen/exec*/posix_spawn calls")
    return 0


def self_test():
    """The scanner must find planted calls and ignore comments and literals."""
    tmp = tempfile.mkdtemp(prefix="check_no_shell.")
    try:
        os.makedirs(os.path.join(tmp, "src"))
        clean = ('// std::system("rm -rf x") in a comment\n'
                 '/* popen("x", "r");\n execvp(a, b); */\n'
                 'const char* s = "system(\\"rm\\")";\n'
                 'const char* r = R"x(popen("ls"))x";\n'
                 "int n = 1'000'000; char q = '\"'; // ' \\\n execl(continued comment)\n"
                 "auto p = fs.system(1); std::filesystem::path f;\n")
        with open(os.path.join(tmp, "src", "clean.cpp"), "w") as fh:
            fh.write(clean)
        _, findings, _ = scan(tmp)
        if findings:
            print(f"check_no_shell: self-test FAIL: false positives in clean.cpp: {findings}", file=sys.stderr)
            return 1
        planted = {
            "a.cpp": 'void f() { std::system("rm -rf x"); }\n',
            "b.h": 'FILE* g() { return popen("ls", "r"); }\n',
            "c.cc": "int h(char** v) { return ::execvp(v[0], v); }\n",
            "d.cpp": "int k() { return posix_spawnp(0, 0, 0, 0, 0, 0); }\n",
            "e.cpp": "auto fp = &std::system;\n",
            "f.cpp": 'int z = 1\'0; int m() { return system ("x"); }\n',
            "g.cpp": 'int w() {\n  return std::system\n      ("split over lines");\n}\n',
        }
        for name, body in planted.items():
            with open(os.path.join(tmp, "src", name), "w") as fh:
                fh.write(body)
        _, findings, _ = scan(tmp)
        got = {f[0].split("/")[-1] for f in findings}
        missing = set(planted) - got
        if missing:
            print(f"check_no_shell: self-test FAIL: planted calls not found in {sorted(missing)}", file=sys.stderr)
            return 1
        with contextlib.redirect_stderr(io.StringIO()):
            rc = check(tmp)
        if rc != 1:
            print("check_no_shell: self-test FAIL: check() did not fail on planted calls", file=sys.stderr)
            return 1
        print(f"check_no_shell: self-test OK ({len(planted)} planted calls found, comments/literals ignored)")
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("root", help="repository root (scans ROOT/src, ROOT/tools, ROOT/include)")
    ap.add_argument("--self-test", action="store_true", help="first check that planted calls are found")
    a = ap.parse_args()
    if not os.path.isdir(a.root):
        print(f"check_no_shell: {a.root} is not a directory", file=sys.stderr)
        return 2
    if a.self_test:
        rc = self_test()
        if rc:
            return rc
    return check(a.root)


if __name__ == "__main__":
    sys.exit(main())
