"""Every exception type: its classes, attributes and message."""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest

import tierfs

CASES = [
    (tierfs.NotFound, KeyError),
    (tierfs.PermissionDenied, PermissionError),
    (tierfs.InvalidKey, ValueError),
    (tierfs.InvalidInput, ValueError),
    (tierfs.AlreadyExists, FileExistsError),
    (tierfs.Unsupported, NotImplementedError),
    (tierfs.Unavailable, OSError),
    (tierfs.ConfigError, ValueError),
]


@pytest.mark.parametrize("cls,builtin", CASES)
def test_hierarchy(cls: type, builtin: type) -> None:
    assert issubclass(cls, tierfs.Error) and issubclass(cls, builtin)
    assert cls.__module__ == "tierfs" and cls.__doc__
    e = cls("message")
    assert e.key is None and e.backend is None and e.operation is None and e.retryable is False
    assert str(e) == "message"


def test_not_found(local_store: tierfs.Store) -> None:
    with pytest.raises(KeyError) as info:
        local_store.get("missing/key")
    e = info.value
    assert isinstance(e, tierfs.NotFound)
    assert (e.key, e.backend, e.operation, e.kind, e.retryable) == ("missing/key", "local", "get", "not_found", False)
    assert str(e).startswith("not found: get `missing/key` on backend `local`")


def test_permission_denied(write_config) -> None:
    path = write_config('[backends.m]\ntype = "memory"\n[access]\ndefault = "none"\n')
    with tierfs.open(path, principal="eve") as store:
        with pytest.raises(PermissionError) as info:
            store.put("secret", b"x")
    e = info.value
    assert isinstance(e, tierfs.PermissionDenied) and e.kind == "permission_denied"
    assert e.key == "secret" and "eve" in str(e)


def test_invalid_key_and_input(local_store: tierfs.Store) -> None:
    with pytest.raises(tierfs.InvalidKey) as info:
        local_store.get("a//b")
    assert info.value.kind == "invalid_key" and "a//b" in str(info.value)
    local_store.put("x", b"0123456789")
    with pytest.raises(tierfs.InvalidKey) as info2:  # InvalidInput is an InvalidKey
        local_store.get_range("x", 5, 1)
    assert type(info2.value) is tierfs.InvalidInput and info2.value.kind == "invalid_input"


def test_already_exists(local_store: tierfs.Store) -> None:
    local_store.put("once", b"1")
    with pytest.raises(FileExistsError) as info:
        local_store.put("once", b"2", if_absent=True)
    assert isinstance(info.value, tierfs.AlreadyExists) and info.value.key == "once"
    assert info.value.kind == "already_exists"


def test_unsupported(write_config) -> None:
    path = write_config('[backends.main]\ntype = "pyminimal"\n')
    with tierfs.open(path) as store:
        with pytest.raises(NotImplementedError) as info:
            store.batch([("put", "a", b"1")])
    e = info.value
    assert isinstance(e, tierfs.Unsupported) and e.backend == "main" and e.kind == "unsupported"


def test_unavailable(tmp_path: Path, write_config) -> None:
    path = write_config('[backends.main]\ntype = "pyfailing"\nraises = "OSError"\n[health]\nretries = 0\n')
    store = tierfs.open(path)
    store.put("k", b"v")
    with pytest.raises(OSError) as info:
        store.get("k")
    # The backend is now marked unhealthy, so the flush at close fails fast too.
    with pytest.raises(tierfs.Unavailable):
        store.close()
    assert store.closed
    e = info.value
    assert isinstance(e, tierfs.Unavailable) and e.backend == "main" and e.key == "k"
    assert "disk on fire" in str(e) and e.kind == "unavailable"


def test_config_errors(tmp_path: Path, write_config) -> None:
    with pytest.raises(tierfs.ConfigError) as info:
        tierfs.open(tmp_path / "missing.toml")
    assert "missing.toml" in str(info.value) and isinstance(info.value, ValueError)
    bad = write_config('[backends.main]\ntype = "memory"\ncolour = 1\n')
    with pytest.raises(tierfs.ConfigError) as info:
        tierfs.open(bad)
    assert str(bad) in str(info.value) and "colour" in str(info.value)
    unknown = write_config('[backends.main]\ntype = "nfs"\n')
    with pytest.raises(tierfs.ConfigError) as info:
        tierfs.open(unknown)
    assert "registered types are" in str(info.value) and "pydict" in str(info.value)
    assert info.value.kind == "config"


def test_errors_are_catchable_as_base(local_store: tierfs.Store) -> None:
    with pytest.raises(tierfs.Error):
        local_store.stat("nope")


@pytest.fixture
def small_disk(tmp_path: Path):
    """A real 8 MiB tmpfs (mounting needs root, as in CI)."""
    if os.geteuid() != 0:
        if os.environ.get("CI") == "true":
            pytest.fail("mounting a tmpfs needs root, which CI=true requires")
        pytest.skip("mounting a tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(disk)], check=True)
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_a_full_device_is_enospc_and_the_store_keeps_serving(small_disk: Path) -> None:
    with tierfs.open(root=small_disk / "store") as store:
        store.put("small", b"kept")
        with pytest.raises(OSError) as info:
            store.put("big", b"x" * (16 << 20))
        e = info.value
        assert isinstance(e, tierfs.Unavailable) and e.errno == errno.ENOSPC, repr(e)
        assert "No space left" in str(e) and e.key == "big"
        with pytest.raises(OSError) as info:
            with store.open("streamed", "wb") as f:
                for _ in range(16):
                    f.write(b"y" * (1 << 20))
        assert info.value.errno == errno.ENOSPC, repr(info.value)
        assert not store.exists("big") and not store.exists("streamed")
        assert store.get("small") == b"kept"
        store.put("after", b"z" * (4 << 20))


def test_a_database_filled_by_small_values_recovers_without_reopening(small_disk: Path) -> None:
    value = b"s" * 100_000
    with tierfs.open(root=small_disk / "store") as store:
        written = []
        with pytest.raises(OSError) as info:
            for i in range(200):
                store.put(f"small/{i:03}", value)
                written.append(f"small/{i:03}")
        assert info.value.errno == errno.ENOSPC, repr(info.value)
        assert len(written) > 10, written
        # Reads of what was acknowledged go on at once.
        for key in written:
            assert store.get(key) == value, key
        # Deleting frees space; writes then work again, in the same store.
        for key in written[: len(written) // 2]:
            store.delete(key)
        store.put("small/after", value)
        assert store.get("small/after") == value
    with tierfs.open(root=small_disk / "store") as store:
        for key in written[len(written) // 2 :]:
            assert store.get(key) == value, key
        assert not store.exists(written[0])
