"""Optimiser steps that `mixlab sweep` workers logged, from their logs (bench/zoology_workers.sh,
tests/device/zoology_mqar.sh keep them in logs.tgz): each training's last "train step X/Y" or
"stop step X/Y" line.  A training's progress lines come before its point's line ("done in", or
nothing when interrupted), so a training is a run of rising step counts; an interrupted one counts
what it ran, to within one progress interval (78 steps at Zoology's sizes).

Usage: python3 count_steps.py LOGS.tgz SECONDS   -> points done, steps, steps/s (one line)
       python3 count_steps.py --table OUT SECONDS K...   -> the markdown table of OUT/K<k>/logs.tgz,
           each K's rate over its wall time (OUT/K<k>/summary.txt) where that is under SECONDS
"""
import io
import re
import sys
import tarfile

POINT = re.compile(r"^\[\d+/\d+\] .*\([0-9a-f]+\): (.*)")
STEP = re.compile(r"^\s*(?:train|stop)\s+step (\d+)/\d+")


def count(archive_path):
    """(points done, optimiser steps) over the worker*.log files of one archive."""
    steps, done = 0, 0
    with tarfile.open(archive_path) as archive:
        for member in archive.getmembers():
            if not member.name.startswith("worker"):
                continue
            latest = 0
            for line in io.TextIOWrapper(archive.extractfile(member), encoding="utf-8", errors="replace"):
                m = STEP.match(line)
                if m:
                    value = int(m.group(1))
                    if value < latest:
                        steps, latest = steps + latest, 0
                    latest = max(latest, value)
                    continue
                m = POINT.match(line)
                if m:
                    done += m.group(1).startswith("done in")
                    steps, latest = steps + latest, 0
            steps += latest
    return done, steps


WALL = re.compile(r"^workers: \d+, wall: (\d+) s")


def wall_seconds(summary_path, deadline):
    """The workers' wall time from zoology_mqar.sh's summary.txt, at most the deadline: when every
    point finished before the deadline, the rate is the steps over the time they took."""
    try:
        with open(summary_path, encoding="utf-8") as summary:
            for line in summary:
                m = WALL.match(line)
                if m:
                    return min(deadline, float(m.group(1)))
    except OSError:
        pass
    return deadline


def table(out, seconds, ks):
    print(f"Optimiser steps logged by K workers in at most {seconds:.0f} s (experiments/zoology-workers-bench.json)\n")
    print("| workers | points done | optimiser steps | seconds | steps/s, all workers | steps/s per worker |")
    print("|---|---|---|---|---|---|")
    for k in ks:
        try:
            done, steps = count(f"{out}/K{k}/logs.tgz")
        except (OSError, tarfile.TarError) as error:
            print(f"| {k} | – | – | – | – | – |  ({error})")
            continue
        wall = wall_seconds(f"{out}/K{k}/summary.txt", seconds)
        rate = steps / wall
        print(f"| {k} | {done} | {steps} | {wall:.0f} | {rate:.0f} | {rate / int(k):.0f} |")


if __name__ == "__main__":
    if sys.argv[1] == "--table":
        table(sys.argv[2], float(sys.argv[3]), sys.argv[4:])
    else:
        done, steps = count(sys.argv[1])
        print(f"{done} points done, {steps} optimiser steps, {steps / float(sys.argv[2]):.0f} steps/s")
