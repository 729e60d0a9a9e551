#!/usr/bin/env python3
"""The timeline of tests/slurm/test_slurm.sh: its own marks, the preempted task's stamped lines
(task.log) and slurmctld's lines about that array task, merged and sorted.

    timeline.py T0 MARKS TASK_LOG SLURMCTLD_LOG JOB_TASK
"""
import datetime as dt
import re
import sys


def iso(s):
    frac = 0.0
    if "." in s:
        s, f = s.split(".", 1)
        frac = float("0." + f)
    return dt.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.timezone.utc).timestamp() + frac


def main():
    t0, marks, tasklog, ctld, jt = float(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
    ev = []
    for line in open(marks):
        t, text = line.rstrip("\n").split("|", 1)
        ev.append((float(t), "test", text))
    last = None
    for line in open(tasklog, errors="replace").read().replace("\r", "\n").splitlines():
        m = re.search(r" at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?)Z", line)
        if m:
            last = iso(m.group(1))
        if last is None:
            continue
        if line.startswith("=== attempt"):
            ev.append((last, "task", "start " + line.split(" host ")[0].strip("= ")))
        elif re.match(r"task: (got|requeue|preempted|quantize exited|eval exited|done)", line):
            ev.append((last, "task", re.sub(r" at \S+Z", "", line[6:])[:110]))
        elif line.startswith("resuming from"):
            ev.append((last + 0.001, "task", "resume: " + re.sub(r"^resuming from \S+", "resuming from model.work", line)))
    for line in open(ctld, errors="replace"):
        m = re.match(r"\[(\S+?)\.(\d+)\] (.*)", line)
        if m and jt + "(" in m.group(3) and re.search(r"Allocate|Started|Requeuing|WEXITSTATUS", m.group(3)):
            ev.append((iso(m.group(1)) + int(m.group(2)) / 1000.0, "slurmctld", re.sub(r" (NodeList|in sq on).*", "", m.group(3))))
    for t, who, text in sorted(ev, key=lambda e: e[0]):
        stamp = dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%H:%M:%S.%f")[:12]
        print(f"{stamp}  +{t - t0:6.1f}s  [{who}] {text}")


if __name__ == "__main__":
    main()
