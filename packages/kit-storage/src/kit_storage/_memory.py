"""``MemoryStorage``: the ``Storage`` API over a dict, for tests and prototypes."""

from __future__ import annotations

import hashlib
import io
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO

from kit_storage._common import (
    check_delimiter,
    check_metadata,
    check_range,
    check_timeout,
    content_type_for,
    download_stream,
    iter_listing,
    make_signer,
    read_chunk,
    require_signer,
)
from kit_storage._keys import validate_key, validate_prefix
from kit_storage._signing import (
    SignedRequest,
    check_content_type,
    check_download_name,
    validate_expires_in,
)
from kit_storage._types import Data, Folder, ObjectInfo, open_data
from kit_storage.exceptions import (
    AlreadyExists,
    NotFound,
)

__all__ = ["MemoryStorage"]


@dataclass(frozen=True, slots=True)
class _Entry:
    data: bytes
    content_type: str
    metadata: dict[str, str]
    md5: str
    updated: datetime
    generation: int


class MemoryStorage:
    """The ``Storage`` API kept in a dict: fast, thread-safe, gone when the process ends.

    Use it in your own tests instead of a real bucket or directory. Signed URLs work
    like :class:`~kit_storage.LocalStorage`'s when ``base_url`` and ``secret`` are given.

    Example::

        >>> storage = MemoryStorage()
        >>> storage.put("notes/a.txt", b"hello").content_type
        'text/plain'
        >>> storage.get("notes/a.txt")
        b'hello'
        >>> [item.key for item in storage.list("notes/")]
        ['notes/a.txt']
    """

    def __init__(self, *, base_url: str | None = None, secret: bytes | str | None = None) -> None:
        self._objects: dict[str, _Entry] = {}
        self._lock = threading.RLock()
        self._generation = 0
        self._signer = make_signer(base_url, secret)

    def __repr__(self) -> str:
        return f"MemoryStorage(objects={len(self._objects)})"

    def ping(self, timeout: float = 2.0) -> bool:
        """Health check: always True (a dict cannot be down).

        Example::

            >>> MemoryStorage().ping()
            True
        """
        check_timeout(timeout)
        return True

    # -- writing -------------------------------------------------------------------

    def put(
        self,
        key: str,
        data: Data,
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        if_not_exists: bool = False,
    ) -> ObjectInfo:
        """Store ``data`` under ``key`` (read in chunks), replacing any previous object."""
        key = validate_key(key)
        kind = content_type_for(key, content_type)
        meta = check_metadata(metadata)
        if if_not_exists and self.exists(key):  # fail before reading a big body
            raise AlreadyExists(f"an object already exists at {key!r}")
        buffer = bytearray()
        digest = hashlib.md5(usedforsecurity=False)
        with open_data(data) as (stream, _size):
            while chunk := read_chunk(stream):
                buffer += chunk
                digest.update(chunk)
        return self._store(key, bytes(buffer), kind, meta, digest.hexdigest(), if_not_exists)

    def _store(
        self,
        key: str,
        data: bytes,
        content_type: str,
        metadata: dict[str, str],
        md5: str,
        if_not_exists: bool,
    ) -> ObjectInfo:
        with self._lock:
            if if_not_exists and key in self._objects:
                raise AlreadyExists(f"an object already exists at {key!r}")
            self._generation += 1
            entry = _Entry(
                data, content_type, dict(metadata), md5, datetime.now(UTC), self._generation
            )
            self._objects[key] = entry
        return _info(key, entry)

    # -- reading -------------------------------------------------------------------

    def _entry(self, key: str) -> _Entry:
        with self._lock:
            entry = self._objects.get(key)
        if entry is None:
            raise NotFound(f"no object at {key!r}")
        return entry

    def get(self, key: str) -> bytes:
        """The whole content of ``key``."""
        return self._entry(validate_key(key)).data

    def open(self, key: str, *, start: int = 0, end: int | None = None) -> IO[bytes]:
        """A reader of bytes ``start`` to ``end`` (exclusive, clipped to the size)."""
        key = validate_key(key)
        check_range(start, end)
        data = self._entry(key).data
        return io.BytesIO(data[start:end])

    def download_to(self, key: str, path: str | os.PathLike[str]) -> ObjectInfo:
        """Write the object into the local file ``path`` atomically; return its info."""
        key = validate_key(key)
        entry = self._entry(key)
        download_stream(io.BytesIO(entry.data), path)
        return _info(key, entry)

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        key = validate_key(key)
        with self._lock:
            return key in self._objects

    def info(self, key: str) -> ObjectInfo:
        """Size, content type, md5 (also the etag), update time and metadata."""
        key = validate_key(key)
        return _info(key, self._entry(key))

    def list(
        self, prefix: str = "", *, delimiter: str | None = None
    ) -> Iterator[ObjectInfo | Folder]:
        """Objects under ``prefix`` in key order (a snapshot of the keys taken at the
        first ``next()``), with :class:`Folder` entries when ``delimiter="/"``."""
        prefix = validate_prefix(prefix)
        delimiter = check_delimiter(delimiter)
        return self._list(prefix, delimiter)

    def _list(self, prefix: str, delimiter: str | None) -> Iterator[ObjectInfo | Folder]:
        with self._lock:
            keys = sorted(k for k in self._objects if k.startswith(prefix))
        for name, is_folder in iter_listing(keys, prefix, delimiter):
            if is_folder:
                yield Folder(name)
                continue
            with self._lock:
                entry = self._objects.get(name)
            if entry is not None:  # deleted since the snapshot
                yield _info(name, entry)

    # -- deleting, copying ---------------------------------------------------------

    def delete(self, key: str) -> bool:
        """Delete ``key``; True if it existed."""
        key = validate_key(key)
        with self._lock:
            return self._objects.pop(key, None) is not None

    def delete_many(self, keys: Iterable[str]) -> int:
        """Delete every key (all validated first); return how many existed."""
        checked = [validate_key(k) for k in keys]
        with self._lock:
            return sum(self._objects.pop(k, None) is not None for k in checked)

    def copy(self, source: str, destination: str, *, if_not_exists: bool = False) -> ObjectInfo:
        """Copy content, content type and metadata to ``destination``."""
        source = validate_key(source)
        destination = validate_key(destination)
        with self._lock:
            entry = self._entry(source)
            if source == destination and not if_not_exists:
                return _info(destination, entry)
            return self._store(
                destination, entry.data, entry.content_type, entry.metadata, entry.md5,
                if_not_exists,
            )  # fmt: skip

    def move(self, source: str, destination: str, *, if_not_exists: bool = False) -> ObjectInfo:
        """Copy, then delete the source (atomically here)."""
        source = validate_key(source)
        destination = validate_key(destination)
        with self._lock:
            info = self.copy(source, destination, if_not_exists=if_not_exists)
            if source != destination:
                del self._objects[source]
            return info

    # -- signed URLs ---------------------------------------------------------------

    def url(self, key: str, *, expires_in: float = 3600, download_name: str | None = None) -> str:
        """A signed GET URL for ``key`` (needs ``base_url`` and ``secret``).

        Example::

            >>> storage = MemoryStorage(base_url="https://app.example/files", secret=b"k" * 32)
            >>> storage.url("a.txt").startswith("https://app.example/files/a.txt?expires=")
            True
        """
        key = validate_key(key)
        validate_expires_in(expires_in)
        check_download_name(download_name)
        signer = require_signer(self._signer, "MemoryStorage")
        return signer.sign("GET", key, expires_in, download_name)

    def upload_url(
        self, key: str, *, expires_in: float = 900, content_type: str | None = None
    ) -> str:
        """A signed PUT URL a browser can upload ``key``'s bytes to."""
        key = validate_key(key)
        validate_expires_in(expires_in)
        check_content_type(content_type)
        signer = require_signer(self._signer, "MemoryStorage")
        return signer.sign("PUT", key, expires_in, content_type=content_type)

    def verify_signed_url(
        self, key: str, params: Mapping[str, str], *, method: str = "GET"
    ) -> SignedRequest:
        """Check a signed URL's query parameters; raise ``InvalidSignature`` if tampered
        with, expired or for another method."""
        signer = require_signer(self._signer, "MemoryStorage")
        return signer.verify(method, key, params)


def _info(key: str, entry: _Entry) -> ObjectInfo:
    return ObjectInfo(
        key=key,
        size=len(entry.data),
        content_type=entry.content_type,
        etag=f"{entry.md5}-{entry.generation:x}",
        md5=entry.md5,
        updated=entry.updated,
        metadata=dict(entry.metadata),
    )
