"""The ``tierfs://`` protocol through fsspec, and pandas reading a CSV."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

fsspec = pytest.importorskip("fsspec")
pd = pytest.importorskip("pandas")

import tierfs  # noqa: E402
import tierfs.fsspec  # noqa: E402


@pytest.fixture
def root(tmp_path: Path) -> str:
    return str(tmp_path / "fs")


def test_fsspec_open_write_and_read(root: str) -> None:
    with fsspec.open("tierfs://data/x.csv", "wb", root=root) as f:
        f.write(b"a,b\n1,2\n3,4\n")
    with fsspec.open("tierfs://data/x.csv", "rb", root=root) as f:
        assert f.read() == b"a,b\n1,2\n3,4\n"
    with fsspec.open("tierfs://data/x.csv", "rt", root=root) as f:
        assert f.readline() == "a,b\n"
    with tierfs.open(root=root) as store:
        assert store.get("data/x.csv") == b"a,b\n1,2\n3,4\n"


def test_pandas_reads_and_writes_csv(root: str) -> None:
    with tierfs.open(root=root) as store:
        store.put("data/x.csv", b"region,total\nnorth,10\nsouth,32\n")
        df = pd.read_csv("tierfs://data/x.csv", storage_options={"root": root})
        assert list(df.columns) == ["region", "total"] and df["total"].sum() == 42
        df.assign(double=df["total"] * 2).to_csv("tierfs://out/y.csv", index=False, storage_options={"root": root})
        assert store.get("out/y.csv").splitlines()[0] == b"region,total,double"


def test_filesystem_operations(root: str) -> None:
    fs = fsspec.filesystem("tierfs", root=root, principal="alice")
    assert isinstance(fs, tierfs.fsspec.TierFileSystem)
    fs.pipe_file("d/a.txt", b"hello")
    fs.pipe_file("d/sub/b.txt", b"world")
    assert fs.cat_file("d/a.txt") == b"hello"
    assert fs.cat_file("tierfs://d/a.txt", start=1, end=3) == b"el"
    assert fs.cat_file("d/a.txt", start=-3) == b"llo"
    assert sorted(fs.ls("d", detail=False)) == ["d/a.txt", "d/sub"]
    info = fs.info("d/a.txt")
    assert info["type"] == "file" and info["size"] == 5
    assert fs.info("d/sub")["type"] == "directory"
    assert fs.isdir("d") and fs.isfile("d/a.txt") and not fs.exists("d/none")
    assert sorted(fs.find("d")) == ["d/a.txt", "d/sub/b.txt"]
    fs.mv("d/a.txt", "d/c.txt")
    assert fs.cat_file("d/c.txt") == b"hello" and not fs.exists("d/a.txt")
    fs.cp_file("d/c.txt", "d/copy.txt")
    assert fs.cat_file("d/copy.txt") == b"hello"
    fs.rm("d/copy.txt")
    fs.rm("d", recursive=True)
    assert fs.ls("", detail=False) == []
    with pytest.raises(FileNotFoundError):
        fs.info("nothing")
    with pytest.raises(FileNotFoundError):
        fs.cat_file("nothing")
    assert fs.ukey("x") if fs.exists("x") else True


def test_large_file_through_fsspec(root: str) -> None:
    data = os.urandom(12 << 20)
    with fsspec.open("tierfs://big/blob", "wb", root=root, block_size=4 << 20) as f:
        for pos in range(0, len(data), 1 << 20):
            f.write(data[pos : pos + (1 << 20)])
    with fsspec.open("tierfs://big/blob", "rb", root=root) as f:
        f.seek(5 << 20)
        assert f.read(1000) == data[5 << 20 : (5 << 20) + 1000]


def test_entry_point_registers_protocol_without_import(tmp_path: Path) -> None:
    code = (
        "import fsspec, sys\n"
        "assert 'tierfs.fsspec' not in sys.modules\n"
        f"fs = fsspec.filesystem('tierfs', root={str(tmp_path / 'ep')!r})\n"
        "fs.pipe_file('k', b'v')\n"
        "print(type(fs).__module__, fs.cat_file('k').decode())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["tierfs.fsspec", "v"]


def test_access_control_through_fsspec(write_config) -> None:
    path = write_config(
        '[backends.m]\ntype = "memory"\n[access]\ndefault = "none"\n'
        '[[access.rules]]\nprincipal = "reader"\nresource = "*"\nlevel = "read"\n'
    )
    fs = fsspec.filesystem("tierfs", config=str(path), principal="reader")
    with pytest.raises(PermissionError):
        fs.pipe_file("x", b"y")
