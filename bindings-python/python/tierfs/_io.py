"""File objects over streamed values: what ``Store.open`` returns.

``ReadFile`` streams a value with the core's chunked read; ``WriteFile``
streams into the core's writer and publishes the value, atomically, on
``close()``. Both are :class:`io.RawIOBase` subclasses, so they work with
``io.BufferedReader``, ``io.TextIOWrapper``, ``shutil.copyfileobj``, pandas
and anything else that takes a binary file.
"""

from __future__ import annotations

import io
from typing import Any, Optional

__all__ = ["ReadFile", "WriteFile"]


class ReadFile(io.RawIOBase):
    """A value of the store opened for reading (mode ``"rb"``).

    Reads stream chunk by chunk, so memory stays bounded whatever the size
    of the value. Seeking reopens the stream at the new position (the store
    must support range reads; every built-in backend does).

    Example:
        >>> with store.open("logs/big.log", "rb") as f:
        ...     header = f.read(64)
        ...     f.seek(-16, io.SEEK_END)
        ...     tail = f.read()
    """

    def __init__(self, native: Any, key: str) -> None:
        super().__init__()
        self._native = native
        self.name = key
        self.mode = "rb"

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: Optional[int] = -1) -> bytes:
        """Up to ``size`` bytes; everything left when ``size`` is negative or None."""
        self._checkClosed()
        return self._native.read(-1 if size is None else size)

    def readall(self) -> bytes:
        """Everything left, in one ``bytes``."""
        self._checkClosed()
        return self._native.read(-1)

    def readinto(self, buffer: Any) -> int:
        """Fills ``buffer`` (any writable bytes-like object); returns the count."""
        self._checkClosed()
        if isinstance(buffer, bytearray):
            return self._native.readinto(buffer)
        view = memoryview(buffer).cast("B")
        data = self._native.read(len(view))
        n = len(data)
        view[:n] = data
        return n

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._checkClosed()
        return self._native.seek(offset, whence)

    def tell(self) -> int:
        self._checkClosed()
        return self._native.tell()

    def close(self) -> None:
        if not self.closed:
            self._native.close()
        super().close()

    def __repr__(self) -> str:
        return f"<tierfs.ReadFile name={self.name!r} closed={self.closed}>"


class WriteFile(io.RawIOBase):
    """A value of the store opened for writing (mode ``"wb"``).

    Writes are handed to the backend 4 MiB at a time; nothing is visible to
    readers until ``close()`` publishes the value atomically (its ``Stat`` is
    then in ``.stat``). ``abort()``, leaving a ``with`` block through an
    exception, or dropping the file without closing it, discards the write
    and leaves the previous value in place. Seeking is not supported.

    Example:
        >>> with store.open("exports/data.bin", "wb", metadata={"kind": "export"}) as f:
        ...     for block in blocks:
        ...         f.write(block)
        >>> f.stat.size
        1048576
    """

    stat: Any = None

    def __init__(self, native: Any, key: str) -> None:
        super().__init__()
        self._native = native
        self.name = key
        self.mode = "wb"
        self._aborted = False

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        """Appends ``data`` (bytes-like, or str encoded UTF-8); returns the count."""
        self._checkClosed()
        return self._native.write(data)

    def tell(self) -> int:
        self._checkClosed()
        return self._native.tell()

    def close(self) -> None:
        """Publishes the value (once); its ``Stat`` goes to ``self.stat``."""
        if not self.closed:
            try:
                if not self._aborted:
                    self.stat = self._native.close()
            finally:
                super().close()

    def abort(self) -> None:
        """Discards everything written; the previous value stays."""
        if not self.closed:
            self._aborted = True
            try:
                self._native.abort()
            finally:
                super().close()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self.abort()
        else:
            self.close()

    def __del__(self) -> None:
        # Unlike a plain file, a writer that was never closed publishes nothing.
        try:
            if not self.closed:
                self.abort()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"<tierfs.WriteFile name={self.name!r} closed={self.closed}>"
