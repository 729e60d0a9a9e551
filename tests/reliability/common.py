"""What the reliability scripts share: their command line (--cli, --model, --text, --keep),
the check that those inputs exist, and the closing report (temporary directory kept or
removed, problems listed, exit status)."""
import argparse
import os
import shutil
import sys


def parse_args(doc, model_help, text_help, extra=None):
    """The common options (EXTRA(ap) may add more), paths made absolute; None (after saying
    why, as a failure) when an input is missing."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--cli", required=True, help="the sliderquant binary")
    ap.add_argument("--model", required=True, help=model_help)
    ap.add_argument("--text", required=True, help=text_help)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (printed) for inspection")
    if extra:
        extra(ap)
    args = ap.parse_args()
    args.cli, args.model, args.text = map(os.path.abspath, (args.cli, args.model, args.text))
    problems = []
    if not (os.path.isfile(args.cli) and os.access(args.cli, os.X_OK)):
        problems.append(f"--cli {args.cli}: not an executable file")
    if not os.path.isfile(os.path.join(args.model, "config.json")):
        problems.append(f"--model {args.model}: no config.json")
    if not os.path.isfile(args.text):
        problems.append(f"--text {args.text}: not a file")
    if problems:
        name = os.path.splitext(os.path.basename(sys.argv[0]))[0]
        print(f"{name}: FAIL (cannot run):\n  " + "\n  ".join(problems), file=sys.stderr)
        return None
    return args


def drop_tmp(tmp, keep):
    if keep:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


def report(name, failures, seconds, ok_detail=""):
    """Prints the outcome; the exit status (1 when there are failures)."""
    if failures:
        print(f"{name}: FAIL ({len(failures)} problem(s), {seconds:.1f}s):", file=sys.stderr)
        for f in failures:
            print("  - " + f, file=sys.stderr)
        return 1
    print(f"{name}: OK ({ok_detail}{seconds:.1f}s)")
    return 0
