"""The behaviour cases of the Rust suite (tests/src/behaviour), through Python.

Each case runs against every backend stack of ``conftest.STACKS``: memory,
the embedded local default, backends written in Python (with and without
the optional methods), prefix routes and a tiered policy. Cases that need
a capability check ``store.capabilities()`` and expect the documented
refusal when it is missing, as the Rust cases do.
"""

from __future__ import annotations

import threading

import pytest

import tierfs


def names(store: tierfs.Store, prefix: str, recursive: bool, page_size: int | None = None) -> list[str]:
    return [e.key for e in store.list(prefix, recursive=recursive, page_size=page_size)]


def fill(store: tierfs.Store, keys: list[str]) -> None:
    for k in keys:
        store.put(k, k.encode())


def pattern(seed: int, pos: int, n: int) -> bytes:
    return bytes((seed * 31 + i) % 251 for i in range(pos, pos + n))


def test_round_trip(store: tierfs.Store) -> None:
    meta = store.put("dir/file.txt", b"hello world")
    assert meta.size == 11 and meta.key == "dir/file.txt"
    assert store.get("dir/file.txt") == b"hello world"
    assert store.get_range("dir/file.txt", 6, 11) == b"world"
    stat = store.stat("dir/file.txt")
    assert stat.size == 11 and stat.version == meta.version
    store.delete("dir/file.txt")
    with pytest.raises(tierfs.NotFound):
        store.get("dir/file.txt")


def test_overwrite_replaces_value_and_metadata(store: tierfs.Store) -> None:
    v1 = store.put("over", b"\x01" * 5000, metadata={"a": "1", "b": "2"})
    v2 = store.put("over", b"short", metadata={"a": "3"})
    assert v1.version != v2.version
    assert store.get("over") == b"short"
    stat = store.stat("over")
    assert stat.size == 5 and stat.metadata == {"a": "3"}


def test_empty_value(store: tierfs.Store) -> None:
    store.put("empty", b"")
    assert store.get("empty") == b""
    assert store.stat("empty").size == 0
    assert store.get_range("empty", 0, 10) == b""


def test_missing_keys(store: tierfs.Store) -> None:
    k = "no/such/key"
    for call in (
        lambda: store.get(k),
        lambda: store.get_range(k, 0, 1),
        lambda: store.stat(k),
        lambda: store.open(k, "rb"),
    ):
        with pytest.raises(tierfs.NotFound) as info:
            call()
        e = info.value
        assert e.key == k
        assert e.backend
        assert k in str(e)
        assert isinstance(e, KeyError)
    store.delete(k)
    assert not store.exists(k)


def test_range_reads_clamp(store: tierfs.Store) -> None:
    store.put("ranged", b"0123456789")
    assert store.get_range("ranged", 8, 100) == b"89"
    assert store.get_range("ranged", 10, 20) == b""
    assert store.get_range("ranged", 50, 60) == b""
    assert store.get_range("ranged", 3, 3) == b""
    with pytest.raises(tierfs.InvalidInput):
        store.get_range("ranged", 5, 2)


def test_metadata_round_trip(store: tierfs.Store) -> None:
    m = {"posix.mode": "100644", "posix.symlink": "../target/ünï cödé", "empty": ""}
    store.put("with-meta", b"x", metadata=m)
    assert store.stat("with-meta").metadata == m


def test_lookalike_keys_are_distinct(store: tierfs.Store) -> None:
    for a, b in [("allowed/x", "аllowed/x"), ("caf\u00e9", "cafe\u0301")]:
        store.put(a, b"A")
        store.put(b, b"B")
        assert store.get(a) == b"A"
        assert store.get(b) == b"B"


@pytest.mark.parametrize(
    "bad",
    ["", "/a", "a//b", "a/", "./a", "a/./b", "a/..", "allowed/../secret", "..", "a\0b",
     "/".join(["k" * 200] * 6), "s" * 256],
)
def test_invalid_keys_refused(store: tierfs.Store, bad: str) -> None:
    with pytest.raises(tierfs.InvalidKey) as info:
        store.put(bad, b"x")
    assert isinstance(info.value, ValueError) and str(info.value)
    with pytest.raises(tierfs.InvalidKey):
        store.get(bad)


def test_invalid_list_prefixes_refused(store: tierfs.Store) -> None:
    for prefix in ["a//", "../"]:
        with pytest.raises(tierfs.InvalidKey):
            list(store.list(prefix, recursive=False))


def test_conditional_put(store: tierfs.Store) -> None:
    if not store.capabilities()["conditional_put"]:
        # Some route cannot: the key's own route either honours it or refuses openly.
        try:
            store.put("once", b"first", if_absent=True)
        except tierfs.Unsupported:
            pass
        return
    store.put("once", b"first", if_absent=True)
    with pytest.raises(tierfs.AlreadyExists) as info:
        store.put("once", b"second", if_absent=True)
    assert isinstance(info.value, FileExistsError)
    assert store.get("once") == b"first"


def test_rename(store: tierfs.Store) -> None:
    store.put("mv/from", b"moved", metadata={"mode": "644"})
    store.put("mv/to", b"old target")
    store.rename("mv/from", "mv/to")
    with pytest.raises(tierfs.NotFound):
        store.get("mv/from")
    assert store.get("mv/to") == b"moved"
    stat = store.stat("mv/to")
    assert stat.metadata == {"mode": "644"} and stat.key == "mv/to"
    with pytest.raises(tierfs.NotFound):
        store.rename("mv/none", "mv/to")


def test_list_children_and_subtree(store: tierfs.Store) -> None:
    fill(store, ["a/1", "a/2", "a/sub/3", "a/sub/deep/4", "a/sub2/5", "ab", "b/6"])
    assert names(store, "a/", False) == ["a/1", "a/2", "a/sub/", "a/sub2/"]
    assert names(store, "a/", True) == ["a/1", "a/2", "a/sub/3", "a/sub/deep/4", "a/sub2/5"]
    assert names(store, "", False) == ["a/", "ab", "b/"]
    assert names(store, "a/sub/", False) == ["a/sub/3", "a/sub/deep/"]
    first = next(iter(store.list("a/", recursive=False)))
    assert not first.is_dir and first.size == 3 and first.version
    groups = [e for e in store.list("a/", recursive=False) if e.is_dir]
    assert [g.key for g in groups] == ["a/sub/", "a/sub2/"] and all(g.size == 0 for g in groups)


def test_list_partial_prefix(store: tierfs.Store) -> None:
    fill(store, ["p/foo", "p/fob/x", "p/fa", "p/g"])
    assert names(store, "p/fo", False) == ["p/fob/", "p/foo"]
    assert names(store, "p/fo", True) == ["p/fob/x", "p/foo"]


def test_list_pagination(store: tierfs.Store) -> None:
    keys = [f"pg/{i:04}" for i in range(250)]
    fill(store, keys)
    assert names(store, "pg/", True, page_size=7) == keys
    assert names(store, "pg/", True, page_size=13) == keys


def test_list_pagination_of_groups(store: tierfs.Store) -> None:
    keys = [f"grp/d{g}/{i}" for g in range(5) for i in range(4)] + [f"grp/f{g}" for g in range(5)]
    fill(store, keys)
    expected = [f"grp/d{g}/" for g in range(5)] + [f"grp/f{g}" for g in range(5)]
    for limit in [1, 2, 3, 100]:
        assert names(store, "grp/", False, page_size=limit) == expected, limit


def test_list_missing_prefix_is_empty(store: tierfs.Store) -> None:
    store.put("x/1", b"1")
    assert names(store, "nothing/here/", False) == []
    assert names(store, "x/1/", True) == []


def test_batch_applies_all(store: tierfs.Store) -> None:
    store.put("b/gone", b"x")
    big = b"\x07" * (600 * 1024)
    ops = [("put", "b/one", b"1"), tierfs.Put("b/big", big), ("delete", "b/gone"), tierfs.Delete("b/never-existed")]
    if not store.capabilities()["atomic_batch"]:
        with pytest.raises(tierfs.Unsupported) as info:
            store.batch(ops)
        assert isinstance(info.value, NotImplementedError)
        return
    store.batch(ops)
    assert store.get("b/one") == b"1"
    assert store.get("b/big") == big
    with pytest.raises(tierfs.NotFound):
        store.get("b/gone")


def test_batch_failing_half_way_applies_nothing(store: tierfs.Store) -> None:
    store.put("h/kept", b"kept")
    store.put("h/exists", b"old")
    ops = [
        ("put", "h/new", b"new"),
        ("put", "h/big", b"\x01" * (512 * 1024)),
        ("delete", "h/kept"),
        tierfs.Put("h/exists", b"clobbered", if_absent=True),
        ("put", "h/after", b"after"),
    ]
    if not store.capabilities()["atomic_batch"]:
        with pytest.raises(tierfs.Unsupported):
            store.batch(ops)
        return
    with pytest.raises(tierfs.AlreadyExists):
        store.batch(ops)
    for missing in ["h/new", "h/big", "h/after"]:
        assert not store.exists(missing)
    assert store.get("h/kept") == b"kept"
    assert store.get("h/exists") == b"old"


def test_concurrent_writers_same_key(store: tierfs.Store) -> None:
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for r in range(25):
                n = 300 * 1024 if (w + r) % 3 == 0 else 1000 + w
                store.put("contended", bytes([w]) * n)
                seen = store.get("contended")
                assert seen and seen.count(seen[:1]) == len(seen), "torn value"
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    last = store.get("contended")
    assert last[0] < 8 and last.count(last[:1]) == len(last)


def test_concurrent_writers_different_keys(store: tierfs.Store) -> None:
    def writer(w: int) -> None:
        for r in range(25):
            store.put(f"conc/w{w}/r{r}", f"{w}-{r}".encode())

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for w in range(8):
        for r in range(25):
            assert store.get(f"conc/w{w}/r{r}") == f"{w}-{r}".encode()


def test_streamed_write_and_read(store: tierfs.Store) -> None:
    for i, n in enumerate([0, 1, 4096, 300 * 1024, 3 * 1024 * 1024 + 17]):
        k = f"stream/{i}"
        data = pattern(i, 0, n)
        with store.open(k, "wb") as f:
            for pos in range(0, n, 64 * 1024):
                f.write(data[pos : pos + 64 * 1024])
        assert f.stat.size == n
        with store.open(k, "rb") as f:
            assert f.read() == data
        assert store.stat(k).size == n
        assert store.get(k) == data
        if n > 10:
            with store.open(k, "rb") as f:
                f.seek(3)
                assert f.read(n - 5) == data[3 : n - 2]
        with store.open(k, "rb") as f:
            f.seek(n + 5)
            assert f.read() == b""


def test_streamed_write_abort_keeps_old_value(store: tierfs.Store) -> None:
    store.put("ab/kept", b"original")
    for size in [100, 1 << 20]:
        f = store.open("ab/kept", "wb")
        f.write(b"\x09" * size)
        f.abort()
        with pytest.raises(RuntimeError):
            with store.open("ab/kept", "wb") as f:
                f.write(b"\x09" * size)
                raise RuntimeError("cut off")
        f = store.open("ab/fresh", "wb")
        f.write(b"\x09" * size)
        del f
    assert store.get("ab/kept") == b"original"
    assert not store.exists("ab/fresh")
