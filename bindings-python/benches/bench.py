"""TierFS from Python against opendal (PyPI 0.47.12) and plain file I/O.

Run through ``scripts/bench-python.sh``, which makes the virtual environment.
Each figure is the median of ``--repeat`` rounds; in each round every
library runs once in turn (interleaved), so load on a shared machine hits
all of them alike; the table goes to stdout
in Markdown.

Cases, on the same kind of backend for both libraries:
- memory: tierfs ``memory`` backend vs opendal ``memory`` service;
- local: tierfs ``local`` backend (the embedded default: redb + blob files,
  every write durable before it returns) vs opendal ``fs`` service (plain
  files, no fsync) in the same directory tree;
- plain Python file I/O on the same disk, with and without ``os.fsync``.

Measured: 4 KiB ``get`` and ``put`` ops/s, blocking and asyncio (one task
awaiting in sequence, and 32 concurrent tasks), and 64 MiB value write and
read throughput (whole value, and streamed through file objects in 4 MiB
chunks).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import opendal

import tierfs

KIB4 = 4096
MIB = 1 << 20


def timed_ops(op: Callable[[int], Any], n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        op(i)
    return n / (time.perf_counter() - start)


def timed_async_ops(make: Callable[[int], Awaitable[Any]], n: int, tasks: int) -> float:
    async def worker(t: int) -> None:
        for i in range(t, n, tasks):
            await make(i)

    async def main() -> float:
        start = time.perf_counter()
        await asyncio.gather(*(worker(t) for t in range(tasks)))
        return n / (time.perf_counter() - start)

    return asyncio.run(main())


class Subject:
    """One library on one backend, behind the same small interface."""

    name: str

    def put(self, key: str, data: bytes) -> None: ...
    def get(self, key: str) -> bytes: ...
    def aput(self, key: str, data: bytes) -> Awaitable[Any]: ...
    def aget(self, key: str) -> Awaitable[Any]: ...
    def write_stream(self, key: str, data: bytes, chunk: int) -> None: ...
    def read_stream(self, key: str, buf: bytearray) -> int: ...
    def reset_async(self) -> None: ...


class Tier(Subject):
    def __init__(self, name: str, **open_args: Any) -> None:
        self.name = name
        self.open_args = open_args
        self.store = tierfs.open(**open_args)
        self.astore: Any = None

    def reset_async(self) -> None:
        self.astore = tierfs.open_async(**self.open_args)

    def put(self, key: str, data: bytes) -> None:
        self.store.put(key, data)

    def get(self, key: str) -> bytes:
        return self.store.get(key)

    def aput(self, key: str, data: bytes) -> Awaitable[Any]:
        return self.astore.put(key, data)

    def aget(self, key: str) -> Awaitable[Any]:
        return self.astore.get(key)

    def write_stream(self, key: str, data: bytes, chunk: int) -> None:
        view = memoryview(data)
        with self.store.open(key, "wb") as f:
            for pos in range(0, len(data), chunk):
                f.write(view[pos : pos + chunk])

    def read_stream(self, key: str, buf: bytearray) -> int:
        total = 0
        with self.store.open(key, "rb") as f:
            while n := f.readinto(buf):
                total += n
        return total


class OpenDal(Subject):
    def __init__(self, name: str, scheme: str, **options: str) -> None:
        self.name = name
        self.scheme, self.options = scheme, options
        self.op = opendal.Operator(scheme, **options)
        self.aop: Any = None

    def reset_async(self) -> None:
        # opendal's memory service is per operator: share the data by
        # writing through the async operator in the async cases only.
        self.aop = opendal.AsyncOperator(self.scheme, **self.options)

    def put(self, key: str, data: bytes) -> None:
        self.op.write(key, data)

    def get(self, key: str) -> bytes:
        return self.op.read(key)

    def aput(self, key: str, data: bytes) -> Awaitable[Any]:
        return self.aop.write(key, data)

    def aget(self, key: str) -> Awaitable[Any]:
        return self.aop.read(key)

    def write_stream(self, key: str, data: bytes, chunk: int) -> None:
        view = memoryview(data)
        with self.op.open(key, "wb") as f:
            for pos in range(0, len(data), chunk):
                f.write(bytes(view[pos : pos + chunk]))

    def read_stream(self, key: str, buf: bytearray) -> int:
        total = 0
        with self.op.open(key, "rb") as f:
            while n := f.readinto(buf):
                total += n
        return total


class PlainFiles(Subject):
    def __init__(self, name: str, root: Path, fsync: bool) -> None:
        self.name = name
        self.root = root
        self.fsync = fsync
        root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        p = self.root / key
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def put(self, key: str, data: bytes) -> None:
        with open(self._path(key), "wb") as f:
            f.write(data)
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())

    def get(self, key: str) -> bytes:
        with open(self._path(key), "rb") as f:
            return f.read()

    def write_stream(self, key: str, data: bytes, chunk: int) -> None:
        view = memoryview(data)
        with open(self._path(key), "wb") as f:
            for pos in range(0, len(data), chunk):
                f.write(view[pos : pos + chunk])
            if self.fsync:
                f.flush()
                os.fsync(f.fileno())

    def read_stream(self, key: str, buf: bytearray) -> int:
        total = 0
        with open(self._path(key), "rb", buffering=0) as f:
            while n := f.readinto(buf):
                total += n
        return total


def small_ops(s: Subject, n: int, keys: int) -> dict[str, float]:
    """One round of every 4 KiB case on `s`."""
    data = os.urandom(KIB4)
    out: dict[str, float] = {}
    out["put"] = timed_ops(lambda i: s.put(f"small/{i % keys}", data), n)
    out["get"] = timed_ops(lambda i: s.get(f"small/{i % keys}"), n)
    if isinstance(s, PlainFiles):
        return out
    s.reset_async()
    for tasks in (1, 32):
        out[f"aput{tasks}"] = timed_async_ops(lambda i: s.aput(f"small/{i % keys}", data), n, tasks)
        out[f"aget{tasks}"] = timed_async_ops(lambda i: s.aget(f"small/{i % keys}"), n, tasks)
    return out


def big_value(s: Subject, data: bytes, buf: bytearray) -> dict[str, float]:
    """One round of every large-value case on `s`, in MiB/s."""
    mb = len(data) / MIB

    def rate(fn: Callable[[], Any]) -> float:
        start = time.perf_counter()
        fn()
        return mb / (time.perf_counter() - start)

    return {
        "write": rate(lambda: s.put("big/value", data)),
        "read": rate(lambda: s.get("big/value")),
        "swrite": rate(lambda: s.write_stream("big/streamed", data, 4 * MIB)),
        "sread": rate(lambda: s.read_stream("big/streamed", buf)),
    }


def interleaved(subjects: list[Subject], one_round: Callable[[Subject], dict[str, float]], repeat: int) -> dict[str, dict[str, float]]:
    """Medians over `repeat` rounds, each round running every subject once in
    turn, so that a burst of load on this shared machine hits all of them."""
    runs: dict[str, list[dict[str, float]]] = {s.name: [] for s in subjects}
    for _ in range(repeat):
        for s in subjects:
            runs[s.name].append(one_round(s))
    return {
        name: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for name, rs in runs.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default=None, help="scratch directory on the disk to measure (default: a temp dir)")
    parser.add_argument("--ops", type=int, default=20000, help="4 KiB operations per run (memory)")
    parser.add_argument("--local-ops", type=int, default=2000, help="4 KiB operations per run (local disk)")
    parser.add_argument("--big-mib", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    base = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="tierfs-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    cfg = base / "memory.toml"
    cfg.write_text('[backends.mem]\ntype = "memory"\n')
    try:
        subjects = {
            "memory": [Tier("tierfs memory", config=str(cfg)), OpenDal("opendal memory", "memory")],
            "local": [
                Tier("tierfs local", root=str(base / "tierfs-local")),
                OpenDal("opendal fs", "fs", root=str(base / "opendal-fs")),
            ],
        }
        files = [
            PlainFiles("python files", base / "plain", fsync=False),
            PlainFiles("python files + fsync", base / "plain-sync", fsync=True),
        ]
        print(f"# TierFS Python benchmark: Python {sys.version.split()[0]}, opendal {opendal.__version__ if hasattr(opendal, '__version__') else '0.47.12'}, tierfs {tierfs.__version__}")
        print(f"# scratch directory: {base}; {os.cpu_count()} CPUs; median of {args.repeat} interleaved rounds\n")

        print("## 4 KiB values, operations per second\n")
        print("| backend | library | put | get | async put (1 task) | async get (1 task) | async put (32 tasks) | async get (32 tasks) |")
        print("|---|---|---:|---:|---:|---:|---:|---:|")
        for kind, subs in subjects.items():
            n = args.ops if kind == "memory" else args.local_ops
            res = interleaved(subs, lambda s: small_ops(s, n, keys=256), args.repeat)
            for s in subs:
                r = res[s.name]
                print(
                    f"| {kind} | {s.name} | {r['put']:,.0f} | {r['get']:,.0f} | {r['aput1']:,.0f} | {r['aget1']:,.0f} "
                    f"| {r['aput32']:,.0f} | {r['aget32']:,.0f} |",
                    flush=True,
                )
        res = interleaved(files, lambda s: small_ops(s, args.local_ops, keys=256), args.repeat)
        for f in files:
            r = res[f.name]
            print(f"| local disk | {f.name} | {r['put']:,.0f} | {r['get']:,.0f} | | | | |", flush=True)

        data = os.urandom(args.big_mib * MIB)
        buf = bytearray(4 * MIB)
        print(f"\n## {args.big_mib} MiB value, MiB/s\n")
        print("| backend | library | write (put) | read (get) | streamed write (4 MiB chunks) | streamed read (readinto 4 MiB) |")
        print("|---|---|---:|---:|---:|---:|")
        res = interleaved(subjects["memory"], lambda s: big_value(s, data, buf), args.repeat)
        for s in subjects["memory"]:
            r = res[s.name]
            print(f"| memory | {s.name} | {r['write']:,.0f} | {r['read']:,.0f} | {r['swrite']:,.0f} | {r['sread']:,.0f} |", flush=True)
        disk: list[Subject] = [*subjects["local"], *files]
        res = interleaved(disk, lambda s: big_value(s, data, buf), args.repeat)
        for s in disk:
            r = res[s.name]
            kind = "local" if s in subjects["local"] else "local disk"
            print(f"| {kind} | {s.name} | {r['write']:,.0f} | {r['read']:,.0f} | {r['swrite']:,.0f} | {r['sread']:,.0f} |", flush=True)
    finally:
        if not args.dir:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
