"""The blocking API: opening, values of every type, listing as a stream,
batches, files, principals, metrics, closing."""

from __future__ import annotations

import datetime
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

import tierfs


def test_open_default_root_and_context_manager(tmp_path: Path) -> None:
    with tierfs.open(root=tmp_path / "s") as store:
        store.put("a.txt", b"hello")
        assert store.get("a.txt") == b"hello"
        assert store.backends() == ["local"]
        assert not store.closed
    assert store.closed
    with pytest.raises(tierfs.InvalidInput):
        store.get("a.txt")
    # The embedded default is persistent: a new open sees the value.
    with tierfs.open(root=tmp_path / "s") as again:
        assert again.get("a.txt") == b"hello"


def test_open_without_arguments_uses_the_user_data_directory(tmp_path: Path) -> None:
    env = dict(os.environ, XDG_DATA_HOME=str(tmp_path / "xdg"), USER="someone")
    code = (
        "import tierfs\n"
        "s = tierfs.open()\n"
        "s.put('k', b'v')\n"
        "print(s.principal, s.backends())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["someone", "['local']"]
    assert (tmp_path / "xdg" / "tierfs").is_dir()


def test_principal_defaults_to_os_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USER", "os-user-name")
    with tierfs.open(root=tmp_path / "p") as store:
        assert store.principal == "os-user-name"
        bob = store.as_principal("bob", roles=["staff"])
        assert bob.principal == "bob" and bob.roles == ["staff"]


def test_config_and_root_together_refused(tmp_path: Path, write_config) -> None:
    path = write_config('[backends.m]\ntype = "memory"\n')
    with pytest.raises(tierfs.ConfigError):
        tierfs.open(path, root=tmp_path)


def test_values_of_every_type(local_store: tierfs.Store) -> None:
    local_store.put("b", b"bytes")
    local_store.put("ba", bytearray(b"bytearray"))
    local_store.put("mv", memoryview(b"xxmemoryview")[2:])
    local_store.put("s", "strüng")
    import array

    local_store.put("arr", array.array("B", [1, 2, 3]))
    assert local_store.get("b") == b"bytes"
    assert local_store.get("ba") == b"bytearray"
    assert local_store.get("mv") == b"memoryview"
    assert local_store.get("s") == "strüng".encode()
    assert local_store.get("arr") == b"\x01\x02\x03"
    for bad in (12, 10**12, [1, 2], {"a": 1}, None):
        with pytest.raises(TypeError):
            local_store.put("i", bad)  # type: ignore[arg-type]


def test_memoryviews_store_what_they_show(local_store: tierfs.Store) -> None:
    # Views of bytes are shared, not copied: any slice must still store
    # exactly the bytes it shows.
    data = bytes(range(256)) * 4
    view = memoryview(data)
    for name, part, expected in [
        ("whole", view, data),
        ("middle", view[100:900], data[100:900]),
        ("tail", view[1000:], data[1000:]),
        ("empty", view[5:5], b""),
        ("strided", view[::3], data[::3]),
        ("cast", view.cast("I")[10:20], data[40:80]),
    ]:
        local_store.put(f"view/{name}", part)
        assert local_store.get(f"view/{name}") == expected, name
    # Views of mutable buffers are copied: changing the buffer afterwards
    # changes nothing stored.
    buf = bytearray(b"before")
    local_store.put("view/mutable", memoryview(buf))
    buf[:] = b"after!"
    assert local_store.get("view/mutable") == b"before"
    with pytest.raises(TypeError):
        local_store.put("m", b"x", metadata={"a": 1})  # type: ignore[dict-item]


def test_stat_fields(local_store: tierfs.Store) -> None:
    before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5)
    put = local_store.put("st", b"12345", metadata={"owner": "alice"})
    s = local_store.stat("st")
    assert (s.key, s.size, s.metadata, s.version) == ("st", 5, {"owner": "alice"}, put.version)
    assert isinstance(s.modified, datetime.datetime) and s.modified.tzinfo is not None
    assert s.modified >= before
    assert abs(s.mtime - s.modified.timestamp()) < 1e-3
    assert "st" in repr(s)


def test_set_metadata_changes_the_map_alone(local_store: tierfs.Store) -> None:
    put = local_store.put("m/a", b"value", metadata={"owner": "alice", "draft": "1"})
    s = local_store.set_metadata("m/a", {"owner": "bob"}, remove=["draft"], if_version=put.version)
    assert (s.size, s.metadata) == (5, {"owner": "bob"})
    assert local_store.stat("m/a").metadata == {"owner": "bob"}
    assert local_store.get("m/a") == b"value"
    assert local_store.set_metadata("m/a", {"x": "y"}, replace=True).metadata == {"x": "y"}
    assert local_store.set_metadata("m/a").metadata == {"x": "y"}
    with pytest.raises(tierfs.Conflict) as info:
        local_store.set_metadata("m/a", {"late": "1"}, if_version=put.version)
    assert info.value.key == "m/a" and info.value.kind == "conflict"
    assert local_store.stat("m/a").metadata == {"x": "y"}
    with pytest.raises(tierfs.NotFound):
        local_store.set_metadata("m/missing", {"a": "b"})
    with pytest.raises(TypeError):
        local_store.set_metadata("m/a", {"a": 1})  # type: ignore[dict-item]


def test_write_range_and_patch_change_part_of_a_value(local_store: tierfs.Store) -> None:
    local_store.put("p/log", b"hello world")
    assert local_store.write_range("p/log", 6, b"there").size == 11
    assert local_store.write_range("p/log", 14, memoryview(b"!")).size == 15
    assert local_store.get("p/log") == b"hello there\0\0\0!"
    # A large value, changed in place: one page and an append.
    big = bytes(range(256)) * 4096
    put = local_store.put("p/db", big)
    s = local_store.patch("p/db", [(4096, b"P" * 4096), (len(big), b"tail")], metadata={"v": "2"}, if_version=put.version)
    assert (s.size, s.metadata) == (len(big) + 4, {"v": "2"})
    got = local_store.get("p/db")
    assert got[4096:8192] == b"P" * 4096 and got[:4096] == big[:4096] and got[8192:-4] == big[8192:] and got[-4:] == b"tail"
    assert local_store.patch("p/db", length=10).size == 10
    assert local_store.get("p/db") == big[:10]
    assert local_store.patch("p/db", length=12).size == 12
    assert local_store.get("p/db") == big[:10] + b"\0\0"
    with pytest.raises(tierfs.Conflict):
        local_store.patch("p/db", [(0, b"x")], if_version=put.version)
    with pytest.raises(tierfs.NotFound):
        local_store.write_range("p/missing", 0, b"x")
    with pytest.raises(TypeError):
        local_store.patch("p/db", [b"not a pair"])  # type: ignore[list-item]
    assert local_store.get("p/db") == big[:10] + b"\0\0"


def test_list_streams_page_by_page(local_store: tierfs.Store) -> None:
    for i in range(30):
        local_store.put(f"many/{i:03}", b"x")
    it = local_store.list("many/", page_size=10)
    assert iter(it) is it
    first = next(it)
    assert first.key == "many/000"
    # Keys written after the first page was fetched but before the pages that
    # cover them show up: the listing is fetched lazily, page by page.
    local_store.put("many/999", b"late")
    rest = [e.key for e in it]
    assert rest[-1] == "many/999" and len(rest) == 30
    assert [e.key for e in local_store.list("many/", recursive=False, page_size=1)][:2] == ["many/000", "many/001"]


def test_batch_forms(local_store: tierfs.Store) -> None:
    local_store.batch([("put", "x/1", b"1"), ("put", "x/2", b"2", {"m": "v"}), tierfs.Put("x/3", "three")])
    assert local_store.stat("x/2").metadata == {"m": "v"}
    local_store.batch([("delete", "x/1"), tierfs.Delete("x/3")])
    assert [e.key for e in local_store.list("x/")] == ["x/2"]
    for bad in [[("frob", "x")], [("put", "x")], [42]]:
        with pytest.raises(tierfs.InvalidInput):
            local_store.batch(bad)
    local_store.batch([])
    assert repr(tierfs.Put("k", b"v")).startswith("Put(") and tierfs.Delete("k").key == "k"


def test_batch_across_routes_is_refused_whole(write_config) -> None:
    path = write_config(
        '[backends.main]\ntype = "memory"\n[backends.tmp]\ntype = "memory"\n'
        '[policy]\ntype = "always_local"\nbackend = "main"\n[[routes]]\nprefix = "tmp/"\nbackend = "tmp"\n'
    )
    with tierfs.open(path) as store:
        with pytest.raises(tierfs.Unsupported):
            store.batch([("put", "a", b"1"), ("put", "tmp/b", b"2")])
        assert not store.exists("a")


def test_files_are_raw_io(local_store: tierfs.Store) -> None:
    data = os.urandom(5 * 1024 * 1024 + 3)
    with local_store.open("f/data.bin", "wb", metadata={"kind": "blob"}) as f:
        assert isinstance(f, io.RawIOBase) and f.writable() and not f.readable()
        view = memoryview(data)
        for pos in range(0, len(data), 1 << 20):
            f.write(view[pos : pos + (1 << 20)])
        assert f.tell() == len(data)
    assert f.closed and f.stat.size == len(data)
    assert local_store.stat("f/data.bin").metadata == {"kind": "blob"}

    with local_store.open("f/data.bin") as r:
        assert isinstance(r, io.RawIOBase) and r.readable() and r.seekable()
        buf = bytearray(1000)
        assert r.readinto(buf) == 1000 and bytes(buf) == data[:1000]
        mv = memoryview(bytearray(10))
        assert r.readinto(mv) == 10 and bytes(mv) == data[1000:1010]
        assert r.tell() == 1010
        assert r.seek(-3, io.SEEK_END) == len(data) - 3
        assert r.read() == data[-3:]
        r.seek(0)
        assert r.readall() == data
    with pytest.raises(ValueError):
        r.read()

    buffered = io.BufferedReader(local_store.open("f/data.bin", "rb"))
    assert buffered.read(7) == data[:7]
    text = io.TextIOWrapper(local_store.open("f/text", "wb"), encoding="utf-8")
    text.write("line 1\nline 2\n")
    text.close()
    assert local_store.get("f/text") == b"line 1\nline 2\n"
    with pytest.raises(tierfs.InvalidInput):
        local_store.open("f/x", "a")


def test_write_is_invisible_until_close(local_store: tierfs.Store) -> None:
    f = local_store.open("pending", "wb")
    f.write(b"abc")
    assert not local_store.exists("pending")
    f.close()
    assert local_store.get("pending") == b"abc"
    f.close()  # a second close is harmless


def test_metrics(local_store: tierfs.Store) -> None:
    local_store.put("m/1", b"abc")
    local_store.get("m/1")
    m = local_store.metrics()
    put = m["backends"]["local"]["put"]
    assert put["count"] >= 1 and put["bytes_in"] >= 3
    assert put["latency"]["count"] == put["count"]
    assert {"cache_hits", "cache_misses", "repairs", "migrations", "retries"} <= set(m)
    # A local store moves nothing over the network.
    assert m["traffic"] == {}
    text = local_store.metrics_prometheus()
    assert 'tierfs_operations_total{backend="local",op="put"}' in text


def test_explain_and_capabilities(local_store: tierfs.Store) -> None:
    e = local_store.explain("write", "a/b.txt")
    assert e["allowed"] and e["route"]["backends"] == ["local"] and "ALLOWED" in e["text"]
    caps = local_store.capabilities()
    assert caps["persistent"] and caps["atomic_batch"] and caps["streaming"]


def test_add_and_remove_backend_and_set_policy(local_store: tierfs.Store) -> None:
    local_store.add_backend("scratch", "memory")
    assert sorted(local_store.backends()) == ["local", "scratch"]
    local_store.set_policy({"type": "always_local", "backend": "scratch"}, route="tmp/")
    local_store.put("tmp/x", b"in memory")
    assert local_store.explain("read", "tmp/x")["route"]["backends"] == ["scratch"]
    assert local_store.metrics()["backends"]["scratch"]["put"]["count"] == 1
    with pytest.raises(tierfs.AlreadyExists):
        local_store.add_backend("scratch", "memory")
    with pytest.raises(tierfs.ConfigError):
        local_store.add_backend("bad", "no-such-type")
    with pytest.raises(tierfs.ConfigError):
        local_store.set_policy({"type": "fastest"})
    local_store.set_policy({"type": "always_local", "backend": "local"}, route="tmp/")
    local_store.remove_backend("scratch")
    assert local_store.backends() == ["local"]


def test_reload_config(write_config) -> None:
    path = write_config('[backends.m]\ntype = "memory"\n')
    with tierfs.open(path) as store:
        path.write_text('[backends.m]\ntype = "memory"\n[backends.n]\ntype = "memory"\n[policy]\ntype = "always_local"\nbackend = "m"\n')
        store.reload_config()
        assert store.backends() == ["m", "n"]
        path.write_text("[backends.m]\ntype = 3\n")
        with pytest.raises(tierfs.ConfigError) as info:
            store.reload_config()
        assert str(path) in str(info.value)
        assert store.backends() == ["m", "n"]
        store.reload_plugins()


def test_stores_of_one_source_share_a_manager(tmp_path: Path) -> None:
    a = tierfs.open(root=tmp_path / "shared")
    b = tierfs.open(root=tmp_path / "shared")
    a.put("k", b"v")
    assert b.get("k") == b"v"
    a.close()
    assert b.get("k") == b"v"
    b.close()


def test_version_and_backend_types() -> None:
    assert tierfs.__version__
    assert {"local", "memory", "pydict"} <= set(tierfs.backend_types())


def test_sharded_store_spreads_keys_and_explains_their_owners(write_config, tmp_path: Path) -> None:
    path = write_config(
        "".join(f'[backends.d{i}]\ntype = "local"\npath = "{tmp_path}/d{i}"\n' for i in range(3))
        + '[policy]\ntype = "sharded"\nbackends = ["d0", "d1", "d2"]\n'
    )
    with tierfs.open(path) as store:
        for i in range(30):
            store.put(f"k/{i}", str(i).encode())
        assert [store.get(f"k/{i}") for i in range(30)] == [str(i).encode() for i in range(30)]
        assert len(list(store.list("k/", recursive=True))) == 30
        owners = {store.explain("read", f"k/{i}")["placement"].split()[2] for i in range(30)}
        assert owners == {"d0", "d1", "d2"}, "30 keys land on all three members"


def _classes_config(write_config, tmp_path: Path) -> Path:
    return write_config(
        f'[backends.disk]\ntype = "local"\npath = "{tmp_path}/disk"\n'
        f'[backends.nvme]\ntype = "local"\npath = "{tmp_path}/nvme"\n'
        '[backends.ram]\ntype = "memory"\n'
        '[policy]\ntype = "always_local"\nbackend = "disk"\n'
        '[classes.fast]\nbackend = "nvme"\n'
    )


def test_storage_classes_place_keys_and_survive_a_reopen(write_config, tmp_path: Path) -> None:
    path = _classes_config(write_config, tmp_path)
    with tierfs.open(path) as store:
        store.put("a/tmp", b"scratch", storage_class="cache_only")
        assert store.stat("a/tmp").storage_class == "cache_only"
        assert store.stat("a/tmp").backends == ["ram"]
        store.put("a/tmp", b"again")  # a write naming no class keeps the key's
        assert store.storage_class("a/tmp") == {
            "storage_class": "cache_only",
            "inherited_from": None,
            "backends": ["ram"],
            "moving": False,
        }
        with store.open("a/big", "wb", storage_class="fast") as f:
            f.write(b"x" * 100_000)
        assert store.stat("a/big").backends == ["nvme"]
        store.set_prefix_class("logs/", "fast")
        store.put("logs/1", b"one")
        info = store.storage_class("logs/1")
        assert (info["storage_class"], info["inherited_from"], info["backends"]) == ("fast", "logs/", ["nvme"])
        assert store.prefix_class("logs/") == "fast"
        assert store.explain("read", "logs/1")["storage_class"] == "`fast` (inherited from `logs/`): on nvme"
        assert store.explain("read", "other")["storage_class"] is None
        store.put("plain", b"p")
        assert (store.stat("plain").storage_class, store.stat("plain").backends) == (None, ["disk"])
        assert sorted(e.key for e in store.list("")) == ["a/big", "a/tmp", "logs/1", "plain"]
    with tierfs.open(path) as store:
        assert store.get("a/big") == b"x" * 100_000
        assert store.stat("a/big").storage_class == "fast"
        assert store.prefix_class("logs/") == "fast"
        with pytest.raises(tierfs.NotFound):
            store.get("a/tmp")  # cache_only lived in memory


def test_a_class_nobody_provides_is_refused_before_writing(write_config, tmp_path: Path) -> None:
    with tierfs.open(_classes_config(write_config, tmp_path)) as store:
        with pytest.raises(tierfs.Unsupported, match="distributed"):
            store.put("x", b"x", storage_class="distributed")
        with pytest.raises(tierfs.InvalidInput, match="unknown storage class"):
            store.put("x", b"x", storage_class="nope")
        assert not store.exists("x")


def test_a_write_past_a_quota_raises_quota_exceeded_and_writes_nothing(write_config, tmp_path: Path) -> None:
    path = write_config(
        f'[backends.disk]\ntype = "local"\npath = "{tmp_path}/disk"\n'
        '[[quotas]]\nprefix = "q/"\nmax_bytes = 100\nmax_keys = 2\n'
    )
    with tierfs.open(path) as store:
        store.put("q/a", b"x" * 60)
        with pytest.raises(tierfs.QuotaExceeded) as raised:
            store.put("q/b", b"x" * 50)
        assert raised.value.errno == 122 and isinstance(raised.value, OSError)
        assert "`q/`" in str(raised.value)
        assert not store.exists("q/b")
        with pytest.raises(tierfs.QuotaExceeded):
            with store.open("q/big", "wb") as f:
                f.write(b"y" * 30)
                f.write(b"y" * 30)
        assert not store.exists("q/big")
        assert store.explain("write", "q/c")["quota"] == {
            "prefix": "q/",
            "max_bytes": 100,
            "max_keys": 2,
            "used_bytes": 60,
            "used_keys": 1,
        }
