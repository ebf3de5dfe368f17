"""A backend written in Python for the tests: values in a dict.

It implements the whole protocol of ``tierfs.register_backend``, including
the optional ``batch``, ``get_range`` and ``rename``, and is thread-safe
(TierFS calls it from worker threads).
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any


class DictBackend:
    """Values, metadata and versions in a dict guarded by a lock."""

    instances: list["DictBackend"] = []

    def __init__(self, label: str = "", **settings: Any) -> None:
        self.label = label
        self.settings = settings
        self.data: dict[str, tuple[bytes, dict[str, str], str, float]] = {}
        self.lock = threading.Lock()
        self.counter = itertools.count(1)
        self.calls: list[str] = []
        DictBackend.instances.append(self)

    def _info(self, key: str) -> dict[str, Any]:
        value, meta, version, modified = self.data[key]
        return {"size": len(value), "metadata": dict(meta), "version": version, "modified": modified}

    def _store(self, key: str, data: bytes, metadata: dict[str, str]) -> None:
        self.data[key] = (bytes(data), dict(metadata), str(next(self.counter)), time.time())

    def get(self, key: str) -> bytes:
        with self.lock:
            self.calls.append("get")
            return self.data[key][0]

    def get_range(self, key: str, start: int, end: int) -> bytes:
        with self.lock:
            return self.data[key][0][start:end]

    def put(self, key: str, data: bytes, metadata: dict[str, str]) -> dict[str, Any]:
        with self.lock:
            self.calls.append("put")
            self._store(key, data, metadata)
            return self._info(key)

    def delete(self, key: str) -> None:
        with self.lock:
            self.data.pop(key, None)

    def stat(self, key: str) -> dict[str, Any]:
        with self.lock:
            return self._info(key)

    def list(self, prefix: str) -> list[tuple[str, dict[str, Any]]]:
        with self.lock:
            return [(k, self._info(k)) for k in self.data if k.startswith(prefix)]

    def batch(self, ops: list[tuple[Any, ...]]) -> None:
        with self.lock:
            for op in ops:
                if op[0] == "put" and op[4] and op[1] in self.data:
                    raise FileExistsError(op[1])
            for op in ops:
                if op[0] == "put":
                    self._store(op[1], op[2], op[3])
                else:
                    self.data.pop(op[1], None)

    def rename(self, src: str, dst: str) -> None:
        with self.lock:
            if src not in self.data:
                raise KeyError(src)
            self.data[dst] = self.data.pop(src)


class MinimalBackend:
    """Only the required methods; keys listed as plain strings, put returns None."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.meta: dict[str, dict[str, str]] = {}
        self.lock = threading.Lock()
        self.version = itertools.count(1)
        self.versions: dict[str, str] = {}

    def get(self, key: str) -> bytes:
        with self.lock:
            return self.data[key]

    def put(self, key: str, data: bytes, metadata: dict[str, str]) -> None:
        with self.lock:
            self.data[key] = bytes(data)
            self.meta[key] = dict(metadata)
            self.versions[key] = str(next(self.version))

    def delete(self, key: str) -> None:
        with self.lock:
            if key not in self.data:
                raise KeyError(key)
            del self.data[key]

    def stat(self, key: str) -> dict[str, Any]:
        with self.lock:
            return {"size": len(self.data[key]), "version": self.versions[key], "metadata": self.meta[key]}

    def list(self, prefix: str) -> list[str]:
        with self.lock:
            return [k for k in self.data if k.startswith(prefix)]


class FailingBackend(MinimalBackend):
    """Raises the exception named by its setting on every get."""

    def __init__(self, raises: str = "OSError") -> None:
        super().__init__()
        self.raises = raises

    def get(self, key: str) -> bytes:
        import tierfs

        exc = {
            "OSError": OSError("disk on fire"),
            "TimeoutError": TimeoutError("too slow"),
            "PermissionError": PermissionError("no"),
            "NotImplementedError": NotImplementedError("cannot"),
            "ValueError": ValueError("bad"),
            "RuntimeError": RuntimeError("bug"),
            "tierfs.NotFound": tierfs.NotFound("gone"),
        }[self.raises]
        raise exc
