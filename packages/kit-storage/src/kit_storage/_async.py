"""``AsyncStorage``: the ``Storage`` API for ``async`` code, without blocking the loop.

Every call runs the blocking backend method in a worker thread (``asyncio.to_thread``).
Reading streams chunk by chunk (:meth:`AsyncStorage.open`, :meth:`AsyncStorage.aiter_chunks`),
listing comes back as an async iterator fetched in batches, and ``put`` also accepts an
async iterable of bytes (a request body), pulled from the loop by the worker thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Mapping
from itertools import islice
from types import TracebackType
from typing import IO, Any, cast

from kit_storage._common import check_delimiter, check_range, check_timeout
from kit_storage._keys import validate_key, validate_prefix
from kit_storage._signing import SignedRequest
from kit_storage._types import CHUNK_SIZE, Data, Folder, ObjectInfo, Storage
from kit_storage.exceptions import ConfigurationError, InvalidData

__all__ = ["AsyncReader", "AsyncStorage"]

_LIST_BATCH = 256


class AsyncStorage:
    """Wrap any :class:`~kit_storage.Storage` for ``async`` code (FastAPI, Starlette).

    Example::

        >>> import asyncio
        >>> from kit_storage import MemoryStorage
        >>> async def demo() -> list[bytes]:
        ...     files = AsyncStorage(MemoryStorage())
        ...     await files.put("a.txt", b"hello world")
        ...     return [chunk async for chunk in files.aiter_chunks("a.txt", start=6)]
        >>> asyncio.run(demo())
        [b'world']
    """

    def __init__(self, storage: Storage) -> None:
        if isinstance(storage, AsyncStorage):
            raise ConfigurationError("AsyncStorage wraps a Storage, not another AsyncStorage")
        if not callable(getattr(storage, "put", None)) or not callable(
            getattr(storage, "open", None)
        ):
            raise ConfigurationError(
                f"AsyncStorage needs a Storage (LocalStorage, GCSStorage, MemoryStorage), "
                f"not {type(storage).__name__}"
            )
        #: The wrapped blocking storage.
        self.storage = storage

    def __repr__(self) -> str:
        return f"AsyncStorage({self.storage!r})"

    async def put(
        self,
        key: str,
        data: Data | AsyncIterable[bytes],
        *,
        content_type: str | None = None,
        metadata: Mapping[str, str] | None = None,
        if_not_exists: bool = False,
    ) -> ObjectInfo:
        """Store ``data`` (bytes, a binary file, a path, or an async iterable of byte
        chunks such as a request body) under ``key``, streamed, in a worker thread."""
        if isinstance(data, AsyncIterable):
            source = data
            reader = _LoopReader(aiter(source), asyncio.get_running_loop())
            try:
                return await asyncio.to_thread(
                    self.storage.put,
                    key,
                    cast(IO[bytes], reader),
                    content_type=content_type,
                    metadata=metadata,
                    if_not_exists=if_not_exists,
                )
            finally:
                reader.cancelled.set()
                aclose = getattr(source, "aclose", None)
                if aclose is not None:
                    # After a cancellation the worker may still be inside the source.
                    with contextlib.suppress(RuntimeError):
                        await aclose()
        return await asyncio.to_thread(
            self.storage.put,
            key,
            data,
            content_type=content_type,
            metadata=metadata,
            if_not_exists=if_not_exists,
        )

    async def get(self, key: str) -> bytes:
        """The whole content (small objects; stream big ones with :meth:`aiter_chunks`)."""
        return await asyncio.to_thread(self.storage.get, key)

    async def open(
        self, key: str, *, start: int = 0, end: int | None = None, chunk_size: int = CHUNK_SIZE
    ) -> AsyncReader:
        """Open bytes ``start`` to ``end`` (exclusive) of ``key`` for streaming: an
        :class:`AsyncReader`, an async iterator of chunks and an async context manager.
        Raises NotFound here, before any byte is sent."""
        _check_chunk_size(chunk_size)
        stream = await asyncio.to_thread(self.storage.open, key, start=start, end=end)
        return AsyncReader(stream, chunk_size)

    async def aiter_chunks(
        self, key: str, start: int = 0, end: int | None = None, chunk_size: int = CHUNK_SIZE
    ) -> AsyncIterator[bytes]:
        """Yield bytes ``start`` to ``end`` of ``key`` in chunks of ``chunk_size``; the
        object is opened at the first iteration and closed at the end."""
        validate_key(key)
        check_range(start, end)
        _check_chunk_size(chunk_size)
        async with await self.open(key, start=start, end=end, chunk_size=chunk_size) as reader:
            async for chunk in reader:
                yield chunk

    async def download_to(self, key: str, path: str | os.PathLike[str]) -> ObjectInfo:
        """Stream the object into a local file (written atomically)."""
        return await asyncio.to_thread(self.storage.download_to, key, path)

    async def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        return await asyncio.to_thread(self.storage.exists, key)

    async def info(self, key: str) -> ObjectInfo:
        """Size, content type, etag or md5, update time and metadata."""
        return await asyncio.to_thread(self.storage.info, key)

    async def delete(self, key: str) -> bool:
        """Delete; True if something was deleted."""
        return await asyncio.to_thread(self.storage.delete, key)

    async def delete_many(self, keys: Iterable[str]) -> int:
        """Delete several keys; returns how many existed."""
        return await asyncio.to_thread(self.storage.delete_many, list(keys))

    async def list(
        self, prefix: str = "", *, delimiter: str | None = None
    ) -> AsyncIterator[ObjectInfo | Folder]:
        """Objects (and :class:`Folder` entries with ``delimiter="/"``) under ``prefix``
        in key order, fetched from the backend in batches off the loop."""
        validate_prefix(prefix)
        check_delimiter(delimiter)
        listing: Iterator[ObjectInfo | Folder] = await asyncio.to_thread(
            self.storage.list, prefix, delimiter=delimiter
        )
        while batch := await asyncio.to_thread(_take, listing, _LIST_BATCH):
            for item in batch:
                yield item

    async def copy(
        self, source: str, destination: str, *, if_not_exists: bool = False
    ) -> ObjectInfo:
        """Copy an object (content type and metadata included)."""
        return await asyncio.to_thread(
            self.storage.copy, source, destination, if_not_exists=if_not_exists
        )

    async def move(
        self, source: str, destination: str, *, if_not_exists: bool = False
    ) -> ObjectInfo:
        """Copy, then delete the source."""
        return await asyncio.to_thread(
            self.storage.move, source, destination, if_not_exists=if_not_exists
        )

    async def url(
        self, key: str, *, expires_in: float = 3600, download_name: str | None = None
    ) -> str:
        """A signed download URL (GCS may call IAM signBlob over the network: off the loop)."""
        return await asyncio.to_thread(
            self.storage.url, key, expires_in=expires_in, download_name=download_name
        )

    async def upload_url(
        self, key: str, *, expires_in: float = 900, content_type: str | None = None
    ) -> str:
        """A signed URL a browser can ``PUT`` the object's bytes to."""
        return await asyncio.to_thread(
            self.storage.upload_url, key, expires_in=expires_in, content_type=content_type
        )

    async def ping(self, timeout: float = 2.0) -> bool:
        """Health check of the wrapped storage, off the loop: its ``ping(timeout)``
        (True if usable; False, never an exception, when down or later than ``timeout``
        seconds). A wrapped object without ``ping`` is probed with ``exists``.

        Example::

            >>> import asyncio
            >>> from kit_storage import MemoryStorage
            >>> asyncio.run(AsyncStorage(MemoryStorage()).ping())
            True
        """
        timeout = check_timeout(timeout)
        ping = getattr(self.storage, "ping", None)

        def probe() -> bool:
            if callable(ping):
                return bool(ping(timeout))
            self.storage.exists("kit-ping")
            return True

        try:
            return await asyncio.wait_for(asyncio.to_thread(probe), timeout)
        except Exception:  # down, refused, late: not healthy
            return False

    def verify_signed_url(
        self, key: str, params: Mapping[str, str], *, method: str = "GET"
    ) -> SignedRequest:
        """The wrapped storage's check of a local signed URL (pure computation: sync)."""
        verify = getattr(self.storage, "verify_signed_url", None)
        if verify is None:
            raise ConfigurationError(
                f"{type(self.storage).__name__} has no local signed URLs to verify"
            )
        result = verify(key, params, method=method)
        assert isinstance(result, SignedRequest)
        return result


class AsyncReader:
    """An open object read chunk by chunk in a worker thread: ``async for chunk in
    reader``, closed at the end of iteration, by ``async with`` or :meth:`aclose`.

    Example::

        >>> import asyncio, io
        >>> async def demo() -> list[bytes]:
        ...     async with AsyncReader(io.BytesIO(b"abcde"), chunk_size=2) as reader:
        ...         return [chunk async for chunk in reader]
        >>> asyncio.run(demo())
        [b'ab', b'cd', b'e']
    """

    def __init__(self, stream: IO[bytes], chunk_size: int = CHUNK_SIZE) -> None:
        self._stream = stream
        self._chunk_size = _check_chunk_size(chunk_size)
        self._closed = False

    def __aiter__(self) -> AsyncReader:
        return self

    async def __anext__(self) -> bytes:
        if self._closed:
            raise StopAsyncIteration
        chunk = await self.read(self._chunk_size)
        if not chunk:
            await self.aclose()
            raise StopAsyncIteration
        return chunk

    async def read(self, size: int = -1) -> bytes:
        """Up to ``size`` bytes (all the rest when negative); b"" at the end."""
        if self._closed:
            return b""
        return await asyncio.to_thread(self._stream.read, size)

    async def aclose(self) -> None:
        """Close the underlying stream (idempotent)."""
        if not self._closed:
            self._closed = True
            await asyncio.to_thread(self._stream.close)

    async def __aenter__(self) -> AsyncReader:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class _LoopReader:
    """A blocking ``read()`` for a worker thread, pulling chunks from an async iterator
    that runs on ``loop``."""

    def __init__(self, chunks: AsyncIterator[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._chunks = chunks
        self._loop = loop
        self._buffer = b""
        self._done = False
        self.cancelled = threading.Event()

    def readable(self) -> bool:
        return True

    def _pull(self) -> bytes:
        if self.cancelled.is_set():
            raise InvalidData("the upload was cancelled while being stored")
        future = asyncio.run_coroutine_threadsafe(_next_or_empty(self._chunks), self._loop)
        chunk = future.result()
        if not isinstance(chunk, bytes | bytearray | memoryview):
            raise InvalidData(f"put() got {type(chunk).__name__} chunks; yield bytes")
        return bytes(chunk)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = [self._buffer]
            self._buffer = b""
            while not self._done:
                chunk = self._pull()
                if not chunk:
                    self._done = True
                parts.append(chunk)
            return b"".join(parts)
        while not self._buffer and not self._done:
            chunk = self._pull()
            if chunk:
                self._buffer = chunk
            else:
                self._done = True
        result, self._buffer = self._buffer[:size], self._buffer[size:]
        return result

    def close(self) -> None:
        """The async source is closed by :meth:`AsyncStorage.put`."""


_END = b""


async def _next_or_empty(chunks: AsyncIterator[bytes]) -> bytes:
    # An empty chunk from the source is skipped; b"" only means the end.
    while True:
        try:
            chunk = await anext(chunks)
        except StopAsyncIteration:
            return _END
        if chunk:
            return chunk


def _take(iterator: Iterator[Any], count: int) -> list[Any]:
    return list(islice(iterator, count))


def _check_chunk_size(chunk_size: int) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise InvalidData(f"chunk_size must be a positive int, not {chunk_size!r}")
    return chunk_size
