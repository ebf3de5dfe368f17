"""TierFS from Python: the whole storage layer in-process.

The same manager, routes, policies, access control, audit log and backends
as the ``tierfs`` binary and the Rust crate, through a blocking
:class:`Store` and an asyncio :class:`AsyncStore`.

Example:
    >>> import tierfs
    >>> with tierfs.open(root="/tmp/tierfs-demo") as store:
    ...     store.put("reports/2026/q4.csv", b"region,total\\n")
    ...     store.get("reports/2026/q4.csv")
    ...     [e.key for e in store.list("reports/", recursive=False)]
    b'region,total\\n'
    ['reports/2026/']

Errors all derive from :class:`tierfs.Error` and from the matching
built-in exception (``NotFound`` is a ``KeyError``, ``PermissionDenied`` a
``PermissionError``, ...); each carries ``key``, ``backend``,
``operation``, ``kind`` and ``retryable``.

Access control in-process: the principal is whatever the program names
(``principal=``, ``as_principal``); the checks guard against mistakes, not
against the program itself. The FUSE daemon, which takes the principal from
the kernel, is the security boundary.
"""

from __future__ import annotations

import atexit
import os
from typing import Any, Iterable, Optional, Union

from . import _native
from ._io import ReadFile, WriteFile
from ._native import (
    AlreadyExists,
    AsyncListIterator,
    AsyncReadFile,
    AsyncStore,
    AsyncWriteFile,
    ConfigError,
    Conflict,
    QuotaExceeded,
    Delete,
    Entry,
    Error,
    InvalidInput,
    InvalidKey,
    ListIterator,
    NotFound,
    PermissionDenied,
    Put,
    Stat,
    Store,
    Unavailable,
    Unsupported,
)

__version__: str = _native.__version__

__all__ = [
    "open",
    "open_async",
    "register_backend",
    "backend_types",
    "Store",
    "AsyncStore",
    "Stat",
    "Entry",
    "Put",
    "Delete",
    "ReadFile",
    "WriteFile",
    "AsyncReadFile",
    "AsyncWriteFile",
    "ListIterator",
    "AsyncListIterator",
    "Error",
    "NotFound",
    "PermissionDenied",
    "InvalidKey",
    "InvalidInput",
    "AlreadyExists",
    "Unsupported",
    "Unavailable",
    "ConfigError",
    "Conflict",
    "QuotaExceeded",
]

PathLike = Union[str, "os.PathLike[str]"]


def open(
    config: Optional[PathLike] = None,
    *,
    root: Optional[PathLike] = None,
    principal: Optional[str] = None,
    roles: Optional[Iterable[str]] = None,
) -> Store:
    """Opens a store.

    Args:
        config: path of a TierFS configuration file (the TOML file the
            ``tierfs`` binary reads: backends, routes, policy, ``[access]``,
            ``[audit]``). Without it, the embedded default: one persistent
            ``local`` backend in ``root`` or in the user's data directory
            (``$XDG_DATA_HOME/tierfs``), where everyone may do everything.
        root: directory of the embedded default store (not with ``config``).
        principal: who the store acts as; default: the current OS user.
        roles: roles the principal holds (rules name them ``role:NAME``).

    Stores opened from the same file (or the same root) in one process share
    one manager while any of them is open, so a second ``open`` does not
    trip the local backend's single-opener lock.

    Raises:
        ConfigError: the file is missing or invalid (the message names the
            file and the field).
        Unavailable: a backend cannot be opened (for example the local
            store is open in another process).

    Example:
        >>> store = tierfs.open()                       # the embedded default
        >>> store = tierfs.open("tierfs.toml", principal="alice", roles=["staff"])
        >>> with tierfs.open(root="/tmp/demo") as store:
        ...     store.put("a.txt", b"hello")
    """
    return _native.open(_path(config), root=_path(root), principal=principal, roles=_roles(roles))


def open_async(
    config: Optional[PathLike] = None,
    *,
    root: Optional[PathLike] = None,
    principal: Optional[str] = None,
    roles: Optional[Iterable[str]] = None,
) -> AsyncStore:
    """Opens a store for asyncio; the arguments are those of :func:`open`.

    The store is opened at once (the GIL is released meanwhile) and
    returned, so this works with or without a running event loop. The
    result is also awaitable, giving itself, so both spellings work:

    Example:
        >>> store = tierfs.open_async(root="/tmp/demo")          # no loop needed
        >>> async def main():
        ...     store = await tierfs.open_async(root="/tmp/demo")  # also fine
        ...     async with store:
        ...         await store.put("a.txt", b"hello")
        ...         return await store.get("a.txt")
    """
    return _native.open_async(_path(config), root=_path(root), principal=principal, roles=_roles(roles))


def register_backend(name: str, cls: Any) -> None:
    """Makes ``cls`` a backend type that configurations can name.

    A backend ``[backends.NAME]`` with ``type = "<name>"`` is created as
    ``cls(**settings)``, the other keys of its table as keyword arguments.
    It runs through the same registry, manager, policies, access control
    and audit as the built-in backends; TierFS calls it from a worker thread
    holding the GIL only around each call, so it must be thread-safe.

    The protocol (``info`` is a dict, or an object with attributes, with
    ``size`` and optionally ``modified`` (seconds or datetime), ``version``
    (str, must change whenever the value changes) and ``metadata`` (dict)):

    - ``get(key) -> bytes``; raise ``KeyError`` (or ``tierfs.NotFound``) if missing.
    - ``put(key, data: bytes, metadata: dict) -> info | None``.
    - ``delete(key) -> None``; deleting a missing key must succeed.
    - ``stat(key) -> info``; raise ``KeyError`` if missing.
    - ``list(prefix) -> iterable`` of every key starting with ``prefix``,
      each a ``str`` or a ``(key, info)`` pair (saves one ``stat`` per key);
      TierFS sorts, pages and groups directories itself.
    - optional ``get_range(key, start, end) -> bytes`` (else ``get`` is sliced),
      ``batch(ops)`` applying all or none of ``("put", key, data, metadata,
      if_absent)`` and ``("delete", key)`` (without it batches are refused
      with ``Unsupported``), ``rename(src, dst)``, ``persistent = True``
      (values survive a restart) and ``shared = True`` (other hosts see
      them), which storage classes consult.

    Exceptions map back to kinds: ``KeyError``/``FileNotFoundError`` to
    NotFound, ``PermissionError`` to PermissionDenied, ``FileExistsError``
    to AlreadyExists, ``NotImplementedError`` to Unsupported, ``ValueError``
    to InvalidInput, anything else to Unavailable (``TimeoutError`` and
    ``ConnectionError`` marked retryable).

    Raises:
        AlreadyExists: ``name`` is already a registered type.
        InvalidInput: ``name`` is not 1 to 64 of ``a-z A-Z 0-9 _ -``.

    Example:
        >>> class DictBackend:
        ...     def __init__(self, **settings): self.data = {}
        ...     def get(self, key): return self.data[key][0]
        ...     def put(self, key, data, metadata):
        ...         self.data[key] = (data, dict(metadata))
        ...         return {"size": len(data), "metadata": metadata}
        ...     def delete(self, key): self.data.pop(key, None)
        ...     def stat(self, key):
        ...         data, meta = self.data[key]
        ...         return {"size": len(data), "metadata": meta}
        ...     def list(self, prefix): return [k for k in self.data if k.startswith(prefix)]
        >>> tierfs.register_backend("dict", DictBackend)
        >>> # tierfs.toml:  [backends.main]\\n type = "dict"
    """
    _native.register_backend(name, cls)


def backend_types() -> list[str]:
    """The registered backend type names, sorted.

    Example:
        >>> tierfs.backend_types()
        ['local', 'memory']
    """
    return _native.backend_types()


def _path(p: Optional[PathLike]) -> Optional[str]:
    return None if p is None else os.fspath(p)


def _roles(roles: Optional[Iterable[str]]) -> Optional[list[str]]:
    if roles is None:
        return None
    if isinstance(roles, str):
        return [roles]
    return list(roles)


# Write-back caches reach their backends before the interpreter exits.
atexit.register(_native._flush_all)
