#!/usr/bin/env python3
"""Small-file workload for scripts/bench-fuse.sh: N files of SIZE bytes in DIR.

Phases, each timed on its own: create+write+close, stat, read, unlink.
Prints one JSON object: {"create": ops_per_s, "stat": ..., "read": ..., "unlink": ...}.
With --phase-hook CMD, runs CMD (through the shell) before and after each phase
with the phase name and "begin"/"end" as arguments (used to sample the daemon).
"""
import argparse
import json
import os
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--files", type=int, default=20000)
    ap.add_argument("--size", type=int, default=4096)
    ap.add_argument("--per-dir", type=int, default=1000, help="files per subdirectory")
    ap.add_argument("--phase-hook", default=None)
    args = ap.parse_args()

    payload = os.urandom(args.size)
    paths = []
    for i in range(args.files):
        sub = os.path.join(args.dir, "d%04d" % (i // args.per_dir))
        paths.append(os.path.join(sub, "f%06d" % i))
    for d in sorted({os.path.dirname(p) for p in paths}):
        os.makedirs(d, exist_ok=True)

    def hook(phase, when):
        if args.phase_hook:
            subprocess.run(args.phase_hook + " %s %s" % (phase, when), shell=True, check=True)

    results = {}

    def timed(name, fn):
        hook(name, "begin")
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        hook(name, "end")
        results[name] = round(args.files / dt, 1)

    def create():
        for p in paths:
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, payload)
            os.close(fd)

    def stat():
        for p in paths:
            os.stat(p)

    def read():
        for p in paths:
            fd = os.open(p, os.O_RDONLY)
            data = os.read(fd, args.size + 1)
            os.close(fd)
            if len(data) != args.size:
                sys.exit("short read of %s: %d bytes" % (p, len(data)))

    def unlink():
        for p in paths:
            os.unlink(p)

    timed("create", create)
    timed("stat", stat)
    timed("read", read)
    timed("unlink", unlink)
    for d in sorted({os.path.dirname(p) for p in paths}):
        os.rmdir(d)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
