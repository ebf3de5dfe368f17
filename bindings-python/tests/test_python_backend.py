"""Backends written in Python: registered by name, named by configuration,
run through the same manager, access control, audit and metrics."""

from __future__ import annotations

import asyncio
import threading

import pytest

import tierfs
from dict_backend import DictBackend


def test_settings_reach_the_constructor(write_config) -> None:
    path = write_config('[backends.main]\ntype = "pydict"\nlabel = "from-config"\nextra = [1, 2]\nnested = { a = true }\n')
    before = len(DictBackend.instances)
    with tierfs.open(path) as store:
        store.put("k", b"v", metadata={"m": "1"})
        backend = DictBackend.instances[before]
        assert backend.label == "from-config"
        assert backend.settings == {"extra": [1, 2], "nested": {"a": True}}
        assert backend.data["k"][0] == b"v" and backend.data["k"][1] == {"m": "1"}
        assert store.metrics()["backends"]["main"]["put"]["count"] == 1


def test_python_backend_behind_a_route_with_access_and_audit(write_config) -> None:
    path = write_config(
        '[backends.disk]\ntype = "local"\npath = "{dir}/disk"\n[backends.py]\ntype = "pydict"\n'
        '[policy]\ntype = "always_local"\nbackend = "disk"\n[[routes]]\nprefix = "py/"\nbackend = "py"\n'
        '[access]\ndefault = "none"\n[[access.rules]]\nprincipal = "admin"\nresource = "*"\nlevel = "full"\n'
        '[[access.rules]]\nprincipal = "*"\nresource = "@py"\nlevel = "read"\n'
        '[[access.rules]]\nprincipal = "admin"\nresource = "@py"\nlevel = "full"\n'
        '[audit]\npath = "{dir}/audit.log"\n'
    )
    with tierfs.open(path, principal="admin") as store:
        store.put("py/a", b"in python")
        store.put("disk/a", b"on disk")
        guest = store.as_principal("guest")
        assert guest.get("py/a") == b"in python"
        with pytest.raises(tierfs.PermissionDenied):
            guest.get("disk/a")
        with pytest.raises(tierfs.PermissionDenied):
            guest.put("py/b", b"x")
        log = store.audit_log(principal="guest")
        assert [(r["operation"], r["result"]) for r in log] == [("read", "allowed"), ("read", "denied"), ("write", "denied")]
        assert store.explain("read", "py/a")["route"]["backends"] == ["py"]


def test_minimal_backend_without_optional_methods(write_config) -> None:
    path = write_config('[backends.main]\ntype = "pyminimal"\n')
    with tierfs.open(path) as store:
        caps = store.capabilities()
        assert not caps["atomic_batch"] and not caps["streaming"]
        store.put("a/1", b"one")
        store.put("a/2", b"two")
        assert [e.key for e in store.list("a/")] == ["a/1", "a/2"]
        assert store.get_range("a/1", 1, 10) == b"ne"
        store.delete("a/1")
        store.delete("a/1")  # the backend raises KeyError; deleting a missing key succeeds
        with pytest.raises(tierfs.Unsupported):
            store.batch([("delete", "a/2")])


@pytest.mark.parametrize(
    "raises,cls,retryable",
    [
        ("OSError", tierfs.Unavailable, False),
        ("TimeoutError", tierfs.Unavailable, True),
        ("PermissionError", tierfs.PermissionDenied, False),
        ("NotImplementedError", tierfs.Unsupported, False),
        ("ValueError", tierfs.InvalidInput, False),
        ("RuntimeError", tierfs.Unavailable, False),
        ("tierfs.NotFound", tierfs.NotFound, False),
    ],
)
def test_exceptions_map_back(write_config, raises: str, cls: type, retryable: bool) -> None:
    path = write_config(f'[backends.main]\ntype = "pyfailing"\nraises = "{raises}"\n[health]\nretries = 0\n')
    with pytest.raises(cls) as info:
        with tierfs.open(path) as store:
            store.put("k", b"v")
            store.get("k")
    if cls is tierfs.Unavailable:
        # The backend is marked unhealthy: the flush at close failed too, and
        # says so in a note rather than hiding the first error.
        assert any("closing the store failed" in n for n in getattr(info.value, "__notes__", []))
    assert type(info.value) is cls
    assert info.value.backend == "main" and info.value.key == "k"
    assert info.value.retryable is retryable


def test_bad_classes_and_names() -> None:
    class NoMethods:
        def __init__(self) -> None:
            pass

    tierfs.register_backend("pynomethods", NoMethods)
    with pytest.raises(tierfs.AlreadyExists):
        tierfs.register_backend("pynomethods", NoMethods)
    with pytest.raises(tierfs.InvalidInput):
        tierfs.register_backend("bad name", NoMethods)
    with pytest.raises(TypeError):
        tierfs.register_backend("pynotcallable", 42)


def test_bad_class_fails_at_open(write_config) -> None:
    path = write_config('[backends.main]\ntype = "pynomethods"\n')
    with pytest.raises(tierfs.ConfigError) as info:
        tierfs.open(path)
    assert "get, put, delete, stat and list" in str(info.value) and "backends.main" in str(info.value)
    bad_arg = write_config('[backends.main]\ntype = "pyminimal"\nunexpected = 1\n')
    with pytest.raises(tierfs.ConfigError) as info:
        tierfs.open(bad_arg)
    assert "unexpected" in str(info.value)


def test_python_backend_from_threads_and_tasks(write_config) -> None:
    path = write_config('[backends.main]\ntype = "pydict"\n')
    with tierfs.open(path) as store:
        def work(t: int) -> None:
            for i in range(20):
                store.put(f"t{t}/{i}", bytes([t]) * 100)
                assert store.get(f"t{t}/{i}") == bytes([t]) * 100

        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        assert sum(1 for _ in store.list("")) == 160

    async def main() -> None:
        async with tierfs.open_async(path) as astore:
            await asyncio.gather(*(astore.put(f"a/{i}", b"x") for i in range(32)))
            assert len([e async for e in astore.list("a/")]) == 32

    asyncio.run(main())


def test_backend_calling_back_into_another_store(tmp_path, write_config) -> None:
    """A Python backend may itself use a tierfs store (it runs on a worker thread)."""
    inner = tierfs.open(root=tmp_path / "inner")

    class Forwarding(DictBackend):
        def put(self, key, data, metadata):
            inner.put(key, data)
            return super().put(key, data, metadata)

    tierfs.register_backend("pyforwarding", Forwarding)
    path = write_config('[backends.main]\ntype = "pyforwarding"\n')
    with tierfs.open(path) as store:
        store.put("k", b"forwarded")
    assert inner.get("k") == b"forwarded"
    inner.close()
