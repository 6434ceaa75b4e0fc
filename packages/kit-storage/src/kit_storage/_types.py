"""The ``Storage`` protocol every backend implements, and the values it returns."""

from __future__ import annotations

import io
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

from kit_storage.exceptions import BackendUnavailable, InvalidData

__all__ = ["Data", "Folder", "ObjectInfo", "Storage", "open_data"]

#: What ``put`` accepts: bytes, a binary file object (read in chunks, never whole), or the
#: path of a local file (``pathlib.Path`` or any ``os.PathLike``; a plain ``str`` is
#: refused because it is ambiguous with content).
Data = bytes | bytearray | memoryview | IO[bytes] | os.PathLike[str]

#: Chunk size for streaming copies: large enough for throughput, small for flat memory.
CHUNK_SIZE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What a backend knows about one stored object.

    ``etag`` is an opaque version tag (changes with the content); ``md5`` is the hex MD5
    of the content where the backend has it; ``updated`` is timezone-aware UTC.

    Example::

        >>> from datetime import UTC, datetime
        >>> ObjectInfo("a.txt", 3, "text/plain", "e1", None, datetime(2026, 1, 1, tzinfo=UTC)).size
        3
    """

    key: str
    size: int
    content_type: str
    etag: str
    md5: str | None
    updated: datetime
    metadata: Mapping[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class Folder:
    """A common prefix returned by ``list(..., delimiter="/")``: ``prefix`` ends with
    the delimiter, e.g. ``"avatars/42/"``."""

    prefix: str


@runtime_checkable
class Storage(Protocol):
    """One API over the local file system, Google Cloud Storage and memory.

    Keys are validated by :func:`~kit_storage.validate_key`; a missing key raises
    :class:`~kit_storage.NotFound`; a backend failure raises
    :class:`~kit_storage.BackendUnavailable`.
    """

    def put(
        self,
        key: str,
        data: Data,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        if_not_exists: bool = False,
    ) -> ObjectInfo:
        """Store ``data`` under ``key`` (streamed; replaces atomically), return its info."""
        ...

    def get(self, key: str) -> bytes:
        """The whole content (for small objects; stream big ones with :meth:`open`)."""
        ...

    def open(self, key: str, *, start: int = 0, end: int | None = None) -> IO[bytes]:
        """A streaming binary reader of bytes ``start`` to ``end`` (exclusive)."""
        ...

    def download_to(self, key: str, path: str | os.PathLike[str]) -> ObjectInfo:
        """Stream the object into a local file (written atomically)."""
        ...

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        ...

    def info(self, key: str) -> ObjectInfo:
        """Size, content type, etag or md5, update time and metadata."""
        ...

    def delete(self, key: str) -> bool:
        """Delete; True if something was deleted, False if nothing was there."""
        ...

    def delete_many(self, keys: Iterable[str]) -> int:
        """Delete several keys; returns how many existed."""
        ...

    def list(
        self, prefix: str = "", *, delimiter: str | None = None
    ) -> Iterator[ObjectInfo | Folder]:
        """Objects under ``prefix`` in key order, lazily, page by page; with
        ``delimiter="/"`` the sub-folders come back as :class:`Folder` entries."""
        ...

    def copy(self, source: str, destination: str, *, if_not_exists: bool = False) -> ObjectInfo:
        """Copy an object (content type and metadata included)."""
        ...

    def move(self, source: str, destination: str, *, if_not_exists: bool = False) -> ObjectInfo:
        """Copy, then delete the source."""
        ...

    def url(self, key: str, *, expires_in: float = 3600, download_name: str | None = None) -> str:
        """A signed download URL valid for ``expires_in`` seconds."""
        ...

    def upload_url(
        self, key: str, *, expires_in: float = 900, content_type: str | None = None
    ) -> str:
        """A signed URL a browser can ``PUT`` the object's bytes to."""
        ...

    def ping(self, timeout: float = 2.0) -> bool:
        """Health check: True if the backend can be used now; False, never an exception,
        when it cannot, answered within ``timeout`` seconds."""
        ...


@contextmanager
def open_data(data: Data) -> Iterator[tuple[IO[bytes], int | None]]:
    """``data`` as a readable binary stream and its size when known (without reading it).

    Example::

        >>> with open_data(b"hello") as (stream, size):
        ...     stream.read(), size
        (b'hello', 5)
    """
    if isinstance(data, bytes | bytearray | memoryview):
        view = bytes(data)
        yield io.BytesIO(view), len(view)
    elif isinstance(data, os.PathLike):
        path = Path(data)
        try:
            stream = path.open("rb")
        except FileNotFoundError:
            raise InvalidData(f"no local file at {path}; check the path given to put()") from None
        except OSError as exc:
            raise BackendUnavailable(f"cannot read {path}: {exc.strerror}") from None
        with stream:
            yield stream, path.stat().st_size
    elif isinstance(data, str):
        raise InvalidData(
            "put() got a str: pass bytes (data.encode()), a binary file object, or a "
            "pathlib.Path for a local file"
        )
    elif hasattr(data, "read"):
        if isinstance(data, io.TextIOBase):
            raise InvalidData("put() got a text-mode file; open it in binary mode ('rb')")
        yield data, None
    else:
        raise InvalidData(
            f"put() cannot store a {type(data).__name__}: pass bytes, a binary file object "
            "or a pathlib.Path"
        )
