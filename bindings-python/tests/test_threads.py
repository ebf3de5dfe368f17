"""One store shared by many threads; the GIL is released while storage works."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import tierfs


def test_threads_share_one_store(local_store: tierfs.Store) -> None:
    def work(t: int) -> int:
        for i in range(50):
            local_store.put(f"th/{t}/{i}", f"{t}-{i}".encode())
            assert local_store.get(f"th/{t}/{i}") == f"{t}-{i}".encode()
        return sum(1 for _ in local_store.list(f"th/{t}/"))

    with ThreadPoolExecutor(16) as pool:
        counts = list(pool.map(work, range(16)))
    assert counts == [50] * 16
    assert sum(1 for _ in local_store.list("th/")) == 800


def test_gil_is_released_during_storage_work(tmp_path: Path) -> None:
    """A pure-Python thread keeps running while another thread streams a
    large value through the store."""
    with tierfs.open(root=tmp_path / "gil") as store:
        data = b"z" * (64 << 20)
        ticks = 0
        done = threading.Event()

        def spin() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1

        spinner = threading.Thread(target=spin)
        spinner.start()
        start = time.perf_counter()
        # Ticks counted while the main thread is inside the store only: with
        # the GIL held through a call, the spinner could not move during it.
        during = 0
        for i in range(4):
            before = ticks
            store.put(f"big/{i}", data)
            during += ticks - before
            before = ticks
            value = store.get(f"big/{i}")
            during += ticks - before
            assert len(value) == len(data)
        elapsed = time.perf_counter() - start
        done.set()
        spinner.join()
        assert during > 1000, (during, elapsed)


def test_store_usable_after_thread_closes_view(tmp_path: Path) -> None:
    store = tierfs.open(root=tmp_path / "views")
    bob = store.as_principal("bob")
    t = threading.Thread(target=bob.close)
    t.start()
    t.join()
    store.put("k", b"v")
    assert store.get("k") == b"v"
    store.close()
