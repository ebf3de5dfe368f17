"""Shared fixtures: stores over every backend the behaviour cases run against."""

from __future__ import annotations

import itertools
import os
import sys
import textwrap
from pathlib import Path
from typing import Callable, Iterator

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import tierfs  # noqa: E402
from dict_backend import DictBackend, FailingBackend, MinimalBackend  # noqa: E402

tierfs.register_backend("pydict", DictBackend)
tierfs.register_backend("pyminimal", MinimalBackend)
tierfs.register_backend("pyfailing", FailingBackend)

_names = itertools.count()


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[[str], Path]:
    """Writes a configuration file (``{dir}`` is the test's directory); returns its path."""

    def write(text: str) -> Path:
        path = tmp_path / f"tierfs-{next(_names)}.toml"
        path.write_text(textwrap.dedent(text).replace("{dir}", str(tmp_path)))
        return path

    return write


# Backend stacks for the behaviour cases: name -> configuration (None: embedded default).
STACKS = {
    "memory": '[backends.main]\ntype = "memory"\n',
    "local": None,
    "python": '[backends.main]\ntype = "pydict"\nlabel = "behaviour"\n',
    "python_minimal": '[backends.main]\ntype = "pyminimal"\n',
    "routes": (
        '[backends.main]\ntype = "memory"\n[backends.disk]\ntype = "local"\npath = "{dir}/disk"\n'
        '[backends.py]\ntype = "pydict"\n'
        '[policy]\ntype = "always_local"\nbackend = "main"\n'
        '[[routes]]\nprefix = "stream/"\nbackend = "disk"\n'
        '[[routes]]\nprefix = "b/"\nbackend = "py"\n'
    ),
    "tiered": (
        '[backends.hot]\ntype = "memory"\n[backends.cold]\ntype = "local"\npath = "{dir}/cold"\n'
        '[policy]\ntype = "tiered"\nhot = "hot"\ncold = "cold"\n'
    ),
}


@pytest.fixture(params=list(STACKS))
def store(request: pytest.FixtureRequest, tmp_path: Path, write_config: Callable[[str], Path]) -> Iterator[tierfs.Store]:
    """A store over each backend stack in turn."""
    text = STACKS[request.param]
    if text is None:
        s = tierfs.open(root=tmp_path / "default", principal="tester")
    else:
        s = tierfs.open(write_config(text), principal="tester")
    yield s
    s.close()


@pytest.fixture
def local_store(tmp_path: Path) -> Iterator[tierfs.Store]:
    """The embedded default store in a temporary root."""
    s = tierfs.open(root=tmp_path / "store", principal="tester")
    yield s
    s.close()


def peak_rss_bytes() -> int:
    """Peak resident memory of this process (VmHWM)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")
