#!/usr/bin/env python3
"""Changes of part of a large file, timed (scripts/bench-partial.sh runs it
in a native directory and in each mount).

  fuse-partial.py DIR sqlite  [--commits N] [--db-mib M]  single-row commits/s on an M MiB database
  fuse-partial.py DIR byte    [--changes N] [--file-mib M] ms per one-byte change + fsync in an M MiB file
  fuse-partial.py DIR append  [--changes N] [--file-mib M] ms per 4 KiB append + fsync to an M MiB file

Prints one number. The file or database is created first (not timed) and
removed at the end.
"""
import argparse
import os
import sqlite3
import time


def make_file(path, mib):
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())


def sqlite_commits(path, commits, mib):
    db = sqlite3.connect(path)
    db.execute("create table t(id integer primary key, v blob)")
    rows = mib * 1024  # about 1 KiB per row
    with db:
        db.executemany("insert into t(v) values (?)", ((os.urandom(1000),) for _ in range(rows)))
    db.close()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("pragma synchronous=full")
    start = time.perf_counter()
    for _ in range(commits):
        db.execute("begin")
        db.execute("insert into t(v) values (?)", (os.urandom(100),))
        db.execute("commit")
    elapsed = time.perf_counter() - start
    assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
    db.close()
    return commits / elapsed


def changes(path, n, mib, append):
    make_file(path, mib)
    size = mib << 20
    fd = os.open(path, os.O_WRONLY | (os.O_APPEND if append else 0))
    start = time.perf_counter()
    for i in range(n):
        if append:
            os.write(fd, b"a" * 4096)
        else:
            os.pwrite(fd, b"x", (i * 7919 * 4096) % size)
        os.fsync(fd)
    elapsed = time.perf_counter() - start
    os.close(fd)
    expected = size + (n * 4096 if append else 0)
    assert os.path.getsize(path) == expected, (os.path.getsize(path), expected)
    return elapsed / n * 1000


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("workload", choices=["sqlite", "byte", "append"])
    p.add_argument("--commits", type=int, default=300)
    p.add_argument("--changes", type=int, default=50)
    p.add_argument("--db-mib", type=int, default=50)
    p.add_argument("--file-mib", type=int, default=1024)
    a = p.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    path = os.path.join(a.dir, "partial.bin")
    try:
        if a.workload == "sqlite":
            print("%.1f" % sqlite_commits(path, a.commits, a.db_mib))
        else:
            print("%.2f" % changes(path, a.changes, a.file_mib, a.workload == "append"))
    finally:
        for suffix in ("", "-journal", "-wal", "-shm"):
            try:
                os.unlink(path + suffix)
            except FileNotFoundError:
                pass


if __name__ == "__main__":
    main()
