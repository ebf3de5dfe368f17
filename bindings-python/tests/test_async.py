"""The asyncio API: coroutines, many concurrent tasks, async iteration and files."""

from __future__ import annotations

import asyncio
import inspect
from pathlib import Path

import pytest

import tierfs


def test_open_async_without_a_loop(tmp_path: Path) -> None:
    store = tierfs.open_async(root=tmp_path / "a")
    assert isinstance(store, tierfs.AsyncStore)

    async def main() -> bytes:
        coro = store.put("k", b"v")
        assert inspect.isawaitable(coro)
        await coro
        return await store.get("k")

    assert asyncio.run(main()) == b"v"
    asyncio.run(store.close())
    assert store.closed


def test_open_async_awaited(tmp_path: Path) -> None:
    async def main() -> None:
        store = await tierfs.open_async(root=tmp_path / "b", principal="ann")
        async with store:
            assert store.principal == "ann"
            await store.put("k", b"v")
            assert await store.exists("k")
            assert not await store.exists("nope")
        assert store.closed

    asyncio.run(main())


def test_32_concurrent_tasks(tmp_path: Path) -> None:
    async def main() -> None:
        async with tierfs.open_async(root=tmp_path / "c") as store:

            async def task(i: int) -> None:
                for r in range(20):
                    key = f"t{i}/r{r}"
                    await store.put(key, f"{i}:{r}".encode() * 100)
                    assert await store.get(key) == f"{i}:{r}".encode() * 100
                    assert (await store.stat(key)).size == len(f"{i}:{r}") * 100

            await asyncio.gather(*(asyncio.create_task(task(i)) for i in range(32)))
            count = 0
            async for _ in store.list(""):
                count += 1
            assert count == 32 * 20

    asyncio.run(main())


def test_concurrent_tasks_on_memory_interleave(write_config) -> None:
    path = write_config('[backends.m]\ntype = "memory"\n')

    async def main() -> None:
        store = tierfs.open_async(path)
        await store.put("k", b"x" * 4096)
        results = await asyncio.gather(*(store.get("k") for _ in range(256)))
        assert all(r == b"x" * 4096 for r in results)
        await store.close()

    asyncio.run(main())


def test_async_errors(tmp_path: Path) -> None:
    async def main() -> None:
        async with tierfs.open_async(root=tmp_path / "d") as store:
            with pytest.raises(tierfs.NotFound) as info:
                await store.get("missing")
            assert info.value.key == "missing"
            with pytest.raises(tierfs.InvalidKey):
                await store.put("a//b", b"x")
            await store.put("present", b"0123456789")
            with pytest.raises(tierfs.InvalidInput):
                await store.get_range("present", 3, 1)
            s = await store.set_metadata("present", {"owner": "bob"})
            assert s.metadata == {"owner": "bob"} and s.size == 10
            with pytest.raises(tierfs.Conflict):
                await store.set_metadata("present", {"owner": "eve"}, if_version="not-a-version")
            with pytest.raises(tierfs.NotFound):
                await store.set_metadata("missing", {})
            assert (await store.write_range("present", 8, b"AB!")).size == 11
            s = await store.patch("present", [(0, b"x")], length=4, metadata={"v": "1"})
            assert (s.size, s.metadata["v"]) == (4, "1")
            assert await store.get("present") == b"x123"
            with pytest.raises(tierfs.NotFound):
                await store.patch("missing", [(0, b"x")])

    asyncio.run(main())


def test_async_list_batch_rename_files(tmp_path: Path) -> None:
    async def main() -> None:
        async with tierfs.open_async(root=tmp_path / "e") as store:
            await store.batch([("put", "d/a", b"1"), tierfs.Put("d/sub/b", b"2"), ("put", "d/c", b"3")])
            keys = [e.key async for e in store.list("d/", recursive=False, page_size=1)]
            assert keys == ["d/a", "d/c", "d/sub/"]
            await store.rename("d/a", "d/z")
            assert await store.get("d/z") == b"1"
            assert await store.get_range("d/z", 0, 10) == b"1"
            data = bytes(range(256)) * 40000
            async with await store.open("big", "wb", metadata={"m": "1"}) as f:
                for pos in range(0, len(data), 1 << 20):
                    await f.write(data[pos : pos + (1 << 20)])
            assert (await store.stat("big")).metadata == {"m": "1"}
            async with await store.open("big", "rb") as r:
                assert await r.read(10) == data[:10]
                await r.seek(5)
                assert await r.read() == data[5:]
            with pytest.raises(RuntimeError):
                async with await store.open("big", "wb") as f:
                    await f.write(b"partial")
                    raise RuntimeError("cut off")
            assert (await store.stat("big")).size == len(data)
            m = await store.metrics()
            assert m["backends"]["local"]["write"]["count"] >= 1
            assert "tierfs_operations_total" in await store.metrics_prometheus()
            assert (await store.explain("read", "big"))["allowed"]
            assert await store.backends() == ["local"]
            assert (await store.access_policy())["default"] == "full"

    asyncio.run(main())


def test_cancelled_task_leaves_store_usable(tmp_path: Path) -> None:
    async def main() -> None:
        async with tierfs.open_async(root=tmp_path / "f") as store:
            big = b"x" * (32 << 20)
            task = asyncio.create_task(store.put("big", big))
            await asyncio.sleep(0)
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            await store.put("after", b"ok")
            assert await store.get("after") == b"ok"

    asyncio.run(main())
