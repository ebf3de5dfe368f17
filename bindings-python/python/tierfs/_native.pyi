"""Type stubs of the native module ``tierfs._native`` (re-exported by ``tierfs``)."""

import datetime
import os
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any, Literal, Optional, TypedDict, Union

from ._io import ReadFile, WriteFile

__version__: str

# Aliases: inside the store classes, `list` names their method.
_Strings = list[str]
_Records = list[dict[str, Any]]

_Data = Union[bytes, bytearray, memoryview, str]
_Path = Union[str, os.PathLike[str]]
_Time = Union[datetime.datetime, float, int]
_BatchOp = Union[
    tuple[Literal["put"], str, _Data],
    tuple[Literal["put"], str, _Data, dict[str, str]],
    tuple[Literal["delete"], str],
    "Put",
    "Delete",
]

class Error(Exception):
    """Base class of every TierFS error."""

    key: Optional[str]
    backend: Optional[str]
    operation: Optional[str]
    kind: str
    retryable: bool

class NotFound(Error, KeyError): ...
class PermissionDenied(Error, PermissionError): ...
class InvalidKey(Error, ValueError): ...
class InvalidInput(InvalidKey): ...
class AlreadyExists(Error, FileExistsError): ...
class Unsupported(Error, NotImplementedError): ...
class Unavailable(Error, OSError):
    """The backend is down, failed at I/O, or ran out of retries. When its
    device is full, ``errno`` is ``errno.ENOSPC``; otherwise it is ``None``."""
class ConfigError(Error, ValueError): ...
class Conflict(Error):
    """The value changed since it was read: a ``set_metadata`` whose
    ``if_version`` is no longer the value's version. Read it and retry."""

class QuotaExceeded(Error, OSError):
    """A quota would be exceeded: the write was refused whole (``errno`` is
    ``EDQUOT``)."""

class Stat:
    """What ``stat`` says about a stored value."""

    @property
    def key(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def modified(self) -> datetime.datetime:
        """Last write, timezone-aware, UTC."""
    @property
    def mtime(self) -> float:
        """Last write in seconds since the Unix epoch."""
    @property
    def version(self) -> str: ...
    @property
    def metadata(self) -> dict[str, str]: ...
    @property
    def storage_class(self) -> Optional[str]:
        """The key's storage class (None: its route places it); set by ``stat``."""
    @property
    def backends(self) -> Optional[list[str]]:
        """The backends that hold the key; set by ``stat``, None elsewhere."""

class ClassInfo(TypedDict):
    """What ``storage_class`` returns."""

    storage_class: Optional[str]
    inherited_from: Optional[str]
    backends: list[str]
    moving: bool

class Entry:
    """One entry of a listing: a value, or a directory (``is_dir``)."""

    @property
    def key(self) -> str: ...
    @property
    def is_dir(self) -> bool: ...
    @property
    def size(self) -> int: ...
    @property
    def modified(self) -> Optional[datetime.datetime]: ...
    @property
    def mtime(self) -> Optional[float]: ...
    @property
    def version(self) -> Optional[str]: ...
    @property
    def metadata(self) -> dict[str, str]: ...

class Put:
    """A put inside a batch."""

    def __init__(
        self, key: str, data: _Data, *, metadata: Optional[dict[str, str]] = None, if_absent: bool = False
    ) -> None: ...
    @property
    def key(self) -> str: ...
    @property
    def data(self) -> _Data: ...
    @property
    def if_absent(self) -> bool: ...

class Delete:
    """A delete inside a batch."""

    def __init__(self, key: str) -> None: ...
    @property
    def key(self) -> str: ...

class ListIterator(Iterator[Entry]):
    def __iter__(self) -> "ListIterator": ...
    def __next__(self) -> Entry: ...

class AsyncListIterator(AsyncIterator[Entry]):
    def __aiter__(self) -> "AsyncListIterator": ...
    async def __anext__(self) -> Entry: ...

class Store:
    """A TierFS store seen by one principal (blocking API, thread-safe)."""

    def __init__(
        self,
        config: Optional[_Path] = None,
        *,
        root: Optional[_Path] = None,
        principal: Optional[str] = None,
        roles: Optional[_Strings] = None,
    ) -> None: ...
    def get(self, key: str) -> bytes: ...
    def get_range(self, key: str, start: int, end: int) -> bytes: ...
    def put(
        self,
        key: str,
        data: _Data,
        *,
        metadata: Optional[dict[str, str]] = None,
        if_absent: bool = False,
        storage_class: Optional[str] = None,
    ) -> Stat:
        """Stores ``data`` under ``key``; ``storage_class`` keeps the key in
        that class (``"persistent"``, ``"distributed"``, ``"cache_only"`` or
        a configured one) from now on, or raises ``Unsupported`` before
        writing when no backend can provide it."""
    def set_metadata(
        self,
        key: str,
        changes: Optional[dict[str, str]] = None,
        *,
        remove: Optional[Iterable[str]] = None,
        replace: bool = False,
        if_version: Optional[str] = None,
    ) -> Stat:
        """Changes the metadata of ``key`` without rewriting its value and
        returns the new Stat: ``changes`` sets entries, ``remove`` drops
        them, ``replace=True`` makes the map exactly ``changes``. With
        ``if_version``, only while the value's version is that one, else
        Conflict; a missing key is NotFound.

        >>> store.set_metadata("a.txt", {"owner": "bob"}, remove=["draft"]).metadata
        {'owner': 'bob'}
        """
    def write_range(self, key: str, offset: int, data: _Data, *, if_version: Optional[str] = None) -> Stat:
        """Writes ``data`` at ``offset`` of the existing value of ``key``,
        extending it (zeros fill any gap), and returns the new Stat. Only
        these bytes are written where the backend changes values in place
        (local, memory); others rewrite the value. With ``if_version``, only
        while the value's version is that one, else Conflict; a missing key
        is NotFound.

        >>> store.put("log.txt", "hello world")
        >>> store.write_range("log.txt", 6, "there").size
        11
        """
    def patch(
        self,
        key: str,
        writes: Optional[Iterable[tuple[int, _Data]]] = None,
        *,
        length: Optional[int] = None,
        metadata: Optional[dict[str, str]] = None,
        if_version: Optional[str] = None,
    ) -> Stat:
        """Changes part of the value of ``key`` in one step: ``length``
        first (truncates, or extends with zeros), then ``writes``
        (``(offset, data)`` pairs, in order), and ``metadata`` entries set;
        all of it or nothing, even across a crash, where the backend changes
        values in place (local, memory). Returns the new Stat. With
        ``if_version``, only while the value's version is that one, else
        Conflict; a missing key is NotFound.

        >>> store.put("db.bin", bytes(8192))
        >>> store.patch("db.bin", [(0, b"head"), (4096, b"page")], length=16384).size
        16384
        """
    def delete(self, key: str) -> None: ...
    def stat(self, key: str) -> Stat: ...
    def set_storage_class(self, key: str, storage_class: Optional[str]) -> None:
        """Keeps ``key`` in ``storage_class`` from now on (None: inherit again);
        its data moves in the background, readers finding it throughout.

        Example:
            >>> store.set_storage_class("notes/today.txt", "persistent")
        """
    def storage_class(self, key: str) -> ClassInfo:
        """The class of ``key``, where it is inherited from, and the backends holding it.

        Example:
            >>> store.storage_class("scratch/t.bin")["backends"]
            ['ram']
        """
    def set_prefix_class(self, prefix: str, storage_class: Optional[str]) -> None:
        """Gives every key under ``prefix`` (``"dir/"``, or ``""``) that class unless
        it has its own; later keys there get it too.

        Example:
            >>> store.set_prefix_class("scratch/", "cache_only")
        """
    def prefix_class(self, prefix: str) -> Optional[str]:
        """The class in force under ``prefix``, own or inherited."""
    def exists(self, key: str) -> bool: ...
    def list(self, prefix: str = "", recursive: bool = True, *, page_size: Optional[int] = None) -> ListIterator: ...
    def batch(self, ops: Iterable[_BatchOp]) -> None: ...
    def rename(self, src: str, dst: str) -> None: ...
    def open(
        self,
        key: str,
        mode: Literal["rb", "wb", "r", "w"] = "rb",
        *,
        metadata: Optional[dict[str, str]] = None,
        storage_class: Optional[str] = None,
    ) -> Union[ReadFile, WriteFile]: ...
    def as_principal(self, name: str, roles: Optional[_Strings] = None) -> "Store": ...
    @property
    def principal(self) -> str: ...
    @property
    def roles(self) -> _Strings: ...
    @property
    def closed(self) -> bool: ...
    def backends(self) -> _Strings: ...
    def capabilities(self) -> dict[str, bool]: ...
    def access_policy(self) -> dict[str, Any]: ...
    def set_access_policy(self, policy: dict[str, Any]) -> None: ...
    def add_rule(self, principal: str, resource: str, operation: str = "*", level: str = "read") -> None: ...
    def remove_rule(self, principal: str, resource: str, operation: str = "*", level: str = "read") -> None: ...
    def set_policy(self, policy: dict[str, Any], route: Optional[str] = None) -> None: ...
    def add_backend(self, name: str, type: str, **settings: Any) -> None: ...
    def remove_backend(self, name: str) -> None: ...
    def reload_config(self, config: Optional[_Path] = None) -> None: ...
    def reload_plugins(self) -> None: ...
    def audit_log(
        self,
        principal: Optional[str] = None,
        since: Optional[_Time] = None,
        until: Optional[_Time] = None,
        key_prefix: Optional[str] = None,
        result: Optional[Literal["allowed", "denied"]] = None,
        limit: Optional[int] = None,
    ) -> _Records: ...
    def metrics(self) -> dict[str, Any]: ...
    def metrics_prometheus(self) -> str: ...
    def explain(self, operation: str, key: str, principal: Optional[str] = None) -> dict[str, Any]: ...
    def sync(self) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> "Store": ...
    def __exit__(self, *args: object) -> bool: ...

class AsyncReadFile:
    """A value being read, for asyncio."""

    @property
    def name(self) -> str: ...
    async def read(self, size: int = -1) -> bytes: ...
    async def seek(self, offset: int, whence: int = 0) -> int: ...
    async def close(self) -> None: ...
    async def __aenter__(self) -> "AsyncReadFile": ...
    async def __aexit__(self, *args: object) -> None: ...

class AsyncWriteFile:
    """A value being written, for asyncio; published by ``close()``."""

    @property
    def name(self) -> str: ...
    async def write(self, data: _Data) -> int: ...
    async def close(self) -> Optional[Stat]: ...
    async def abort(self) -> None: ...
    async def __aenter__(self) -> "AsyncWriteFile": ...
    async def __aexit__(self, *args: object) -> None: ...

class AsyncStore:
    """A TierFS store for asyncio: the methods of ``Store`` as coroutines."""

    def __init__(
        self,
        config: Optional[_Path] = None,
        *,
        root: Optional[_Path] = None,
        principal: Optional[str] = None,
        roles: Optional[_Strings] = None,
    ) -> None: ...
    def __await__(self) -> Any: ...
    async def get(self, key: str) -> bytes: ...
    async def get_range(self, key: str, start: int, end: int) -> bytes: ...
    async def put(
        self,
        key: str,
        data: _Data,
        *,
        metadata: Optional[dict[str, str]] = None,
        if_absent: bool = False,
        storage_class: Optional[str] = None,
    ) -> Stat:
        """As ``Store.put``."""
    async def set_metadata(
        self,
        key: str,
        changes: Optional[dict[str, str]] = None,
        *,
        remove: Optional[Iterable[str]] = None,
        replace: bool = False,
        if_version: Optional[str] = None,
    ) -> Stat:
        """As ``Store.set_metadata``."""
    async def write_range(self, key: str, offset: int, data: _Data, *, if_version: Optional[str] = None) -> Stat:
        """As ``Store.write_range``."""
    async def patch(
        self,
        key: str,
        writes: Optional[Iterable[tuple[int, _Data]]] = None,
        *,
        length: Optional[int] = None,
        metadata: Optional[dict[str, str]] = None,
        if_version: Optional[str] = None,
    ) -> Stat:
        """As ``Store.patch``."""
    async def delete(self, key: str) -> None: ...
    async def stat(self, key: str) -> Stat: ...
    async def set_storage_class(self, key: str, storage_class: Optional[str]) -> None:
        """As ``Store.set_storage_class``."""
    async def storage_class(self, key: str) -> ClassInfo:
        """As ``Store.storage_class``."""
    async def set_prefix_class(self, prefix: str, storage_class: Optional[str]) -> None:
        """As ``Store.set_prefix_class``."""
    def prefix_class(self, prefix: str) -> Optional[str]:
        """As ``Store.prefix_class``."""
    async def exists(self, key: str) -> bool: ...
    def list(self, prefix: str = "", recursive: bool = True, *, page_size: Optional[int] = None) -> AsyncListIterator: ...
    async def batch(self, ops: Iterable[_BatchOp]) -> None: ...
    async def rename(self, src: str, dst: str) -> None: ...
    async def open(
        self,
        key: str,
        mode: Literal["rb", "wb", "r", "w"] = "rb",
        *,
        metadata: Optional[dict[str, str]] = None,
        storage_class: Optional[str] = None,
    ) -> Union[AsyncReadFile, AsyncWriteFile]: ...
    def as_principal(self, name: str, roles: Optional[_Strings] = None) -> "AsyncStore": ...
    @property
    def principal(self) -> str: ...
    @property
    def roles(self) -> _Strings: ...
    @property
    def closed(self) -> bool: ...
    async def backends(self) -> _Strings: ...
    def capabilities(self) -> dict[str, bool]: ...
    async def access_policy(self) -> dict[str, Any]: ...
    async def set_access_policy(self, policy: dict[str, Any]) -> None: ...
    async def add_rule(self, principal: str, resource: str, operation: str = "*", level: str = "read") -> None: ...
    async def remove_rule(self, principal: str, resource: str, operation: str = "*", level: str = "read") -> None: ...
    async def set_policy(self, policy: dict[str, Any], route: Optional[str] = None) -> None: ...
    async def add_backend(self, name: str, type: str, **settings: Any) -> None: ...
    async def remove_backend(self, name: str) -> None: ...
    async def reload_config(self, config: Optional[_Path] = None) -> None: ...
    async def reload_plugins(self) -> None: ...
    async def audit_log(
        self,
        principal: Optional[str] = None,
        since: Optional[_Time] = None,
        until: Optional[_Time] = None,
        key_prefix: Optional[str] = None,
        result: Optional[Literal["allowed", "denied"]] = None,
        limit: Optional[int] = None,
    ) -> _Records: ...
    async def metrics(self) -> dict[str, Any]: ...
    async def metrics_prometheus(self) -> str: ...
    async def explain(self, operation: str, key: str, principal: Optional[str] = None) -> dict[str, Any]: ...
    async def sync(self) -> None: ...
    async def close(self) -> None: ...
    async def __aenter__(self) -> "AsyncStore": ...
    async def __aexit__(self, *args: object) -> None: ...

def open(
    config: Optional[_Path] = None,
    *,
    root: Optional[_Path] = None,
    principal: Optional[str] = None,
    roles: Optional[_Strings] = None,
) -> Store: ...
def open_async(
    config: Optional[_Path] = None,
    *,
    root: Optional[_Path] = None,
    principal: Optional[str] = None,
    roles: Optional[_Strings] = None,
) -> AsyncStore: ...
def register_backend(name: str, cls: Any) -> None: ...
def backend_types() -> _Strings: ...
def _flush_all() -> None: ...
