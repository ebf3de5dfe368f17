"""A 1 GiB value streamed in and out with bounded memory.

The work runs in a fresh interpreter, so that its peak resident memory
(VmHWM) measures TierFS and not the test runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = r"""
import json, sys, zlib
import tierfs

def vmhwm():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024

root, mib = sys.argv[1], int(sys.argv[2])
chunk = 1 << 20
base = bytearray(range(256)) * (chunk // 256)
store = tierfs.open(root=root)
start_rss = vmhwm()
crc_in = 0
with store.open("big/value.bin", "wb") as f:
    for i in range(mib):
        base[0:8] = i.to_bytes(8, "little")
        crc_in = zlib.crc32(base, crc_in)
        f.write(base)
size = store.stat("big/value.bin").size
crc_out, total = 0, 0
buf = bytearray(chunk)
with store.open("big/value.bin", "rb") as f:
    while n := f.readinto(buf):
        crc_out = zlib.crc32(memoryview(buf)[:n], crc_out)
        total += n
with store.open("big/value.bin", "rb") as f:
    f.seek(size - 100)
    tail = f.read()
tail_ok = tail == bytes(base[-100:])
store.delete("big/value.bin")
print(json.dumps({"size": size, "total": total, "crc_ok": crc_in == crc_out, "tail_ok": tail_ok,
                  "start_rss": start_rss, "peak_rss": vmhwm()}))
"""


def test_one_gib_streamed_in_bounded_memory(tmp_path: Path) -> None:
    mib = int(os.environ.get("TIERFS_BIG_VALUE_MIB", "1024"))
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "store"), str(mib)],
        capture_output=True,
        text=True,
        check=True,
        timeout=900,
    )
    r = json.loads(out.stdout)
    assert r["size"] == mib << 20 and r["total"] == mib << 20
    assert r["crc_ok"] and r["tail_ok"]
    peak_mib = r["peak_rss"] / (1 << 20)
    print(f"peak RSS {peak_mib:.1f} MiB for a {mib} MiB value (at open: {r['start_rss'] / (1 << 20):.1f} MiB)")
    assert peak_mib < 200, f"peak RSS {peak_mib:.1f} MiB for a {mib} MiB value"
