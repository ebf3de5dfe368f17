"""TierFS as an fsspec file system, for the ``tierfs://`` protocol.

Importing this module registers :class:`TierFileSystem` with fsspec (the
package also declares it as an ``fsspec.specs`` entry point, so plain
``fsspec.open("tierfs://...")`` finds it without an import). fsspec, and
pandas for ``read_csv``, are optional: ``pip install tierfs[pandas]``.

URLs name keys: ``tierfs://data/x.csv`` is the key ``data/x.csv``.
``storage_options`` take ``config`` (a configuration file), ``root`` (the
embedded default's directory), ``principal`` and ``roles``, as
:func:`tierfs.open` does.

Example:
    >>> import fsspec, pandas as pd
    >>> with fsspec.open("tierfs://data/x.csv", "wb", root="/tmp/demo") as f:
    ...     f.write(b"a,b\\n1,2\\n")
    >>> pd.read_csv("tierfs://data/x.csv", storage_options={"root": "/tmp/demo"})
       a  b
    0  1  2
"""

from __future__ import annotations

import datetime
from typing import Any, Optional

import fsspec
from fsspec.spec import AbstractBufferedFile, AbstractFileSystem

import tierfs

__all__ = ["TierFileSystem", "TierFile"]


class TierFileSystem(AbstractFileSystem):
    """fsspec file system over a TierFS store.

    Directories are key prefixes: ``mkdir`` creates nothing (a directory
    exists while a key is inside it), ``ls`` groups deeper keys into
    directory entries. Files are read with range reads and written by
    streaming, published atomically on close.

    Example:
        >>> fs = TierFileSystem(root="/tmp/demo", principal="alice")
        >>> fs.pipe_file("notes/a.txt", b"hello")
        >>> fs.ls("notes", detail=False)
        ['notes/a.txt']
        >>> fs.cat_file("notes/a.txt", start=1, end=3)
        b'el'
    """

    protocol = "tierfs"
    root_marker = ""

    def __init__(
        self,
        config: Optional[str] = None,
        root: Optional[str] = None,
        principal: Optional[str] = None,
        roles: Optional[list[str]] = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.store = tierfs.open(config, root=root, principal=principal, roles=roles)

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        path = str(path)
        if path.startswith("tierfs://"):
            path = path[len("tierfs://") :]
        elif path.startswith("tierfs:"):
            path = path[len("tierfs:") :]
        return path.strip("/")

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        return {}

    def _file_info(self, stat: Any) -> dict[str, Any]:
        return {
            "name": stat.key,
            "size": stat.size,
            "type": "file",
            "mtime": stat.mtime,
            "version": stat.version,
            "metadata": stat.metadata,
        }

    def ls(self, path: str, detail: bool = True, **kwargs: Any) -> list[Any]:
        path = self._strip_protocol(path)
        prefix = f"{path}/" if path else ""
        out: list[dict[str, Any]] = []
        for e in self.store.list(prefix, recursive=False):
            if e.is_dir:
                out.append({"name": e.key.rstrip("/"), "size": 0, "type": "directory"})
            else:
                out.append(
                    {
                        "name": e.key,
                        "size": e.size,
                        "type": "file",
                        "mtime": e.mtime,
                        "version": e.version,
                        "metadata": e.metadata,
                    }
                )
        if not out and path:
            try:
                out = [self._file_info(self.store.stat(path))]
            except tierfs.NotFound:
                raise FileNotFoundError(path) from None
        return out if detail else [o["name"] for o in out]

    def info(self, path: str, **kwargs: Any) -> dict[str, Any]:
        path = self._strip_protocol(path)
        if not path:
            return {"name": "", "size": 0, "type": "directory"}
        try:
            return self._file_info(self.store.stat(path))
        except tierfs.NotFound:
            pass
        except tierfs.InvalidKey:
            raise FileNotFoundError(path) from None
        for _ in self.store.list(f"{path}/", page_size=1):
            return {"name": path, "size": 0, "type": "directory"}
        raise FileNotFoundError(path)

    def exists(self, path: str, **kwargs: Any) -> bool:
        try:
            self.info(path)
            return True
        except FileNotFoundError:
            return False

    def cat_file(self, path: str, start: Optional[int] = None, end: Optional[int] = None, **kwargs: Any) -> bytes:
        path = self._strip_protocol(path)
        try:
            if start is None and end is None:
                return self.store.get(path)
            if (start is not None and start < 0) or (end is not None and end < 0):
                size = self.store.stat(path).size
                start = size + start if start is not None and start < 0 else start
                end = size + end if end is not None and end < 0 else end
            return self.store.get_range(path, max(start or 0, 0), end if end is not None else 2**63 - 1)
        except tierfs.NotFound:
            raise FileNotFoundError(path) from None

    def pipe_file(self, path: str, value: bytes, mode: str = "overwrite", **kwargs: Any) -> None:
        path = self._strip_protocol(path)
        self.store.put(path, value, if_absent=(mode == "create"))

    def rm_file(self, path: str) -> None:
        self.store.delete(self._strip_protocol(path))

    def _rm(self, path: str) -> None:
        self.rm_file(path)

    def mkdir(self, path: str, create_parents: bool = True, **kwargs: Any) -> None:
        """Directories are key prefixes: nothing to create."""

    def makedirs(self, path: str, exist_ok: bool = False) -> None:
        """Directories are key prefixes: nothing to create."""

    def rmdir(self, path: str) -> None:
        """Directories vanish with their last key: nothing to remove."""

    def mv(self, path1: str, path2: str, recursive: bool = False, maxdepth: Optional[int] = None, **kwargs: Any) -> None:
        src, dst = self._strip_protocol(path1), self._strip_protocol(path2)
        if not recursive and self.isfile(src):
            self.store.rename(src, dst)
        else:
            super().mv(path1, path2, recursive=recursive, maxdepth=maxdepth, **kwargs)

    def cp_file(self, path1: str, path2: str, **kwargs: Any) -> None:
        src, dst = self._strip_protocol(path1), self._strip_protocol(path2)
        meta = self.store.stat(src).metadata
        with self.store.open(src, "rb") as r, self.store.open(dst, "wb", metadata=meta) as w:
            while chunk := r.read(4 << 20):
                w.write(chunk)

    def modified(self, path: str) -> datetime.datetime:
        return self.store.stat(self._strip_protocol(path)).modified

    def created(self, path: str) -> datetime.datetime:
        """TierFS keeps no creation time; this is the last modification."""
        return self.modified(path)

    def ukey(self, path: str) -> str:
        return self.store.stat(self._strip_protocol(path)).version

    def _open(
        self,
        path: str,
        mode: str = "rb",
        block_size: Optional[int] = None,
        autocommit: bool = True,
        cache_options: Optional[dict[str, Any]] = None,
        **kwargs: Any,
    ) -> "TierFile":
        return TierFile(
            self,
            self._strip_protocol(path),
            mode=mode,
            block_size=block_size or self.blocksize,
            autocommit=autocommit,
            cache_options=cache_options,
            **kwargs,
        )


class TierFile(AbstractBufferedFile):
    """A file of :class:`TierFileSystem`: range reads, streamed writes.

    Writes go to a streamed TierFS write and become visible, atomically,
    when the file is closed; a discarded file leaves the previous value.
    """

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self.fs.store.get_range(self.path, start, end)

    def _initiate_upload(self) -> None:
        self._writer = self.fs.store.open(self.path, "wb")

    def _upload_chunk(self, final: bool = False) -> bool:
        if not hasattr(self, "_writer"):
            self._initiate_upload()
        data = self.buffer.getvalue()
        if data:
            self._writer.write(data)
        if final:
            self._writer.close()
        return True

    def discard(self) -> None:
        writer = getattr(self, "_writer", None)
        if writer is not None:
            writer.abort()


fsspec.register_implementation("tierfs", TierFileSystem, clobber=True)
